"""`floe operator` as a child process for tests, talking to any API server through a kubeconfig."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class OperatorProcess:
    """`floe operator` as a child process, stopped by its own pid."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        scope: Sequence[str] = ("--namespace", "floe"),
        resync_seconds: int = 2,
    ) -> None:
        self.port = free_port()
        self.log_path = log_path
        env = dict(os.environ, KUBECONFIG=str(kubeconfig))
        command = [sys.executable, "-m", "floe_platform.cli", "operator", *scope]
        command += ["--liveness-port", str(self.port), "--resync-seconds", str(resync_seconds)]
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        eventually(self._healthy, timeout=30, what=f"/healthz of the operator (log: {log_path})")

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"operator exited: {self.log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies mid-reconcile."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
