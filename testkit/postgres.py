"""Real PostgreSQL on the host, for tests that need Dagster's database: initdb into a temporary directory,
`postgres` on a loopback port in its own process group, stopped by that group's pid, never by name.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the `postgres` user,
in a directory of its own under the system's temporary directory (pytest's are private to root); that
directory is removed by ``stop()``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2  # type: ignore[import-untyped]

from testkit.ports import free_port

USER = "dagster"
PASSWORD = "floe-test-password"
DATABASE = "dagster"


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    if found is None:
        raise FileNotFoundError(f"PostgreSQL's {name} not found on PATH or in /usr/lib/postgresql/*/bin")
    return str(found)


class Postgres:
    """One server; ``start()`` then ``stop()``. ``port`` is chosen up front, so a test can point a client at
    it before the server runs."""

    def __init__(self, workdir: Path) -> None:
        self._user = "postgres" if os.geteuid() == 0 else None
        self._own_dir = self._user is not None
        self.workdir = Path(tempfile.mkdtemp(prefix="floe-postgres-")) if self._own_dir else workdir
        self.port = free_port()
        self.data = self.workdir / "data"
        self.log = self.workdir / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None

    def _own(self, path: Path) -> None:
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self) -> Postgres:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._own(self.workdir)
        if not self.data.exists():
            password_file = self.workdir / "password"
            password_file.write_text(PASSWORD)
            self._own(password_file)
            subprocess.run(
                [_binary("initdb"), "-D", str(self.data), "-U", USER, f"--pwfile={password_file}",
                 "--auth-host=scram-sha-256", "--auth-local=trust"],
                user=self._user, check=True, capture_output=True, timeout=120,
            )  # fmt: skip
        with self.log.open("ab") as output:
            self._process = subprocess.Popen(
                [_binary("postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
                 "-k", str(self.workdir)],
                user=self._user, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self._wait_ready()
        return self

    def _connect(self, database: str) -> psycopg2.extensions.connection:
        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user=USER, password=PASSWORD, dbname=database, connect_timeout=2
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                connection = self._connect("postgres")
            except psycopg2.OperationalError:
                if self._process is not None and self._process.poll() is not None:
                    break
                time.sleep(0.2)
                continue
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if cursor.fetchone() is None:
                    cursor.execute(f"CREATE DATABASE {DATABASE}")
            connection.close()
            return
        self.stop()
        raise RuntimeError(f"PostgreSQL did not start; its log ends: {self.log.read_text()[-2000:]}")

    def tables(self) -> set[str]:
        connection = self._connect(DATABASE)
        with connection.cursor() as cursor:
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            names = {row[0] for row in cursor.fetchall()}
        connection.close()
        return names

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)
