"""``floe operator`` as a child process, for tests and benchmarks, against any API server via a kubeconfig.

Stopped by its own pid (SIGTERM, or SIGKILL to simulate a node dying mid-reconcile), never by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from testkit.ports import free_port, http_ok
from testkit.waiting import wait_until


class OperatorProcess:
    """``floe operator <scope>`` with ``kubeconfig``; ``start()`` then ``wait_ready()``, or ``running()``."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        scope: Sequence[str] = ("--namespace", "floe"),
        resync_seconds: float = 2,
    ) -> None:
        self.liveness_port = free_port()
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.scope = list(scope)
        self.resync_seconds = resync_seconds
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def running(self, timeout: float = 60) -> OperatorProcess:
        """Start, and wait until kopf answers its liveness probe."""
        self.start().wait_ready(timeout)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "the operator is not running"
        return self.process.pid

    def start(self) -> OperatorProcess:
        env = dict(os.environ) | {"KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "floe_platform.cli", "operator", *self.scope]
        command += ["--liveness-port", str(self.liveness_port), "--resync-seconds", str(self.resync_seconds)]
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait for kopf's liveness endpoint, which answers once the operator has started."""
        url = f"http://127.0.0.1:{self.liveness_port}/healthz"
        if not wait_until(lambda: http_ok(url) or self._exited(), timeout, interval=0.1) or self._exited():
            raise RuntimeError(f"the operator did not become ready:\n{self.log_tail()}")

    def _exited(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies or the OOM killer strikes mid-reconcile."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def _end(self, how: signal.Signals) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(how)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
