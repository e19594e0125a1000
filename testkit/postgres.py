"""A real PostgreSQL server on the host, for the lakehouse catalog's tests and benchmarks.

It runs Debian's PostgreSQL binaries (`scripts/postgres.sh` installs the `postgresql` package when they are
missing) on a free loopback port, with its data directory and socket in a fresh temporary directory. The
server is one process (``postgres -D``), started in its own process group and stopped by that group's pid,
never by name; ``stop()`` and ``start()`` again keep the port and the data, for outage tests.

PostgreSQL refuses to run as root. When the tests run as root (CI does), the server runs as the
``postgres`` user the Debian package creates, and the temporary directory belongs to that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from testkit.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
SETUP_SCRIPT = ROOT / "scripts" / "postgres.sh"
SERVICE_USER = "postgres"
SUPERUSER = "floe"
PASSWORD = "floe-test-password"
READY_TIMEOUT = 60


def postgres_bindir() -> Path:
    """The directory of ``initdb`` and ``postgres``: FLOE_POSTGRES_BINDIR, else Debian's newest, else PATH."""
    explicit = os.environ.get("FLOE_POSTGRES_BINDIR")
    if explicit:
        return Path(explicit)
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_major_version, reverse=True)
    if debian:
        return Path(debian[0]).parent
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    subprocess.run([str(SETUP_SCRIPT)], check=True, timeout=900)
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_major_version, reverse=True)
    if not debian:
        raise RuntimeError(f"no PostgreSQL server binaries after {SETUP_SCRIPT}")
    return Path(debian[0]).parent


def _major_version(path: str) -> int:
    return int(Path(path).parents[1].name)


def _run_as() -> str | None:
    """The user the server runs as: ``postgres`` when we are root, else ourselves (None)."""
    return SERVICE_USER if os.geteuid() == 0 else None


class Postgres:
    """One PostgreSQL server; ``port`` and the data stay the same across stop() and start()."""

    def __init__(self, superuser: str = SUPERUSER, database: str | None = None) -> None:
        """``superuser`` (password ``PASSWORD``) owns the cluster; ``database`` is created on first start."""
        self.superuser = superuser
        self.database = database
        self.bindir = postgres_bindir()
        self.user = _run_as()
        self.workdir = Path(tempfile.mkdtemp(prefix="floe-pg-"))
        self.datadir = self.workdir / "data"
        self.log = self.workdir / "postgres.log"
        self.port = free_port()
        self.host = "127.0.0.1"
        self._process: subprocess.Popen[bytes] | None = None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)

    def dsn(self, database: str = "postgres") -> str:
        """A libpq keyword/value connection string, without the password (PGPASSWORD carries it)."""
        return f"host={self.host} port={self.port} user={self.superuser} dbname={database}"

    def start(self) -> Postgres:
        first_start = not self.datadir.exists()
        if first_start:
            self._initdb()
        with self.log.open("ab") as output:
            self._process = subprocess.Popen(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.datadir),
                    "-h",
                    self.host,
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.workdir),
                    "-c",
                    "max_connections=200",
                    "-c",
                    "fsync=off",  # test data: durability across a host crash buys nothing here
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                user=self.user,
                start_new_session=True,  # its own process group: stopping it reaches only its children
            )
        self._wait_ready()
        if first_start and self.database:
            self.create_database(self.database)
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        os.killpg(process.pid, signal.SIGINT)  # "fast" shutdown: roll back open transactions, then exit
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def remove(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def tables(self, database: str, schema: str = "public") -> set[str]:
        """The names of the tables in ``schema`` of ``database``."""
        listed = self.psql(f"SELECT tablename FROM pg_tables WHERE schemaname = '{schema}'", database)
        return set(listed.split())

    def create_database(self, name: str) -> None:
        self.psql(f'CREATE DATABASE "{name}"')

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql, self.dsn(database)],
            env={**os.environ, "PGPASSWORD": PASSWORD},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout.strip()

    def _initdb(self) -> None:
        password_file = self.workdir / "password"
        password_file.write_text(PASSWORD)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(password_file, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                self.superuser,
                "--pwfile",
                str(password_file),
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=self.user,
            timeout=120,
        )
        password_file.unlink()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                break
            probe = subprocess.run(
                [str(self.bindir / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port)],
                check=False,
                timeout=10,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.2)
        self.stop()
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"PostgreSQL did not become ready; its log ends: {tail}")
