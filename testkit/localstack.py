"""Real LocalStack (open-source, S3 only) on the host, for tests that need S3.

It runs under Python 3.13 from `.tools/localstack-venv` (created by `scripts/localstack.sh`) on a free
loopback port, in its own process group, and is stopped by that group's pid, never by name. It takes
about 20 s to start, so tests share one per session (`localstack_endpoint` in tests/conftest.py);
`LocalStack` itself can also be stopped and started again, for outage tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from testkit.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
SETUP_SCRIPT = ROOT / "scripts" / "localstack.sh"
PYTHON = ROOT / ".tools" / "localstack-venv" / "bin" / "python"
READY_TIMEOUT = 120


class LocalStack:
    """One LocalStack process; ``endpoint`` stays the same across stop() and start()."""

    def __init__(self, workdir: Path, extra_env: dict[str, str] | None = None) -> None:
        """``extra_env``: more of LocalStack's environment, e.g. FILESYSTEM_ROOT (its init hooks live under
        <root>/etc/localstack/init) and what those hooks read."""
        self.workdir = workdir
        self.extra_env = dict(extra_env or {})
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "localstack.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalStack:
        subprocess.run([str(SETUP_SCRIPT)], check=True, timeout=900)  # idempotent: no-op once created
        env = {
            **os.environ,
            "GATEWAY_LISTEN": f"127.0.0.1:{self.port}",
            "SERVICES": "s3",
            "LOCALSTACK_VOLUME_DIR": str(self.workdir / "volume"),
            "TMPDIR": str(self.workdir),
            **self.extra_env,
        }
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as output:
            self._process = subprocess.Popen(
                [str(PYTHON), "-m", "localstack.runtime.main"],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopping it reaches only its children
            )
        self._wait_ready(offset)
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def _wait_ready(self, offset: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log.read_bytes()[offset:].decode(errors="replace")
            if "Ready." in text:
                return
            if self._process is not None and self._process.poll() is not None:
                break
            time.sleep(0.5)
        self.stop()
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"LocalStack did not print Ready.; its log ends: {tail}")
