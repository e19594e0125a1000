"""Fixtures of the Dagster tests: real LocalStack (S3) on the host, one per session, stopped by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCALSTACK_SCRIPT = ROOT / "scripts" / "localstack.sh"
LOCALSTACK_PYTHON = ROOT / ".tools" / "localstack-venv" / "bin" / "python"
READY_TIMEOUT = 120


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_ready(process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if "Ready." in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(
        f"LocalStack did not print Ready.; its log ends: {log.read_text(errors='replace')[-2000:]}"
    )


@pytest.fixture(scope="session")
def localstack_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real LocalStack S3 endpoint (about 20 s to start), shared by the session, stopped by its pid."""
    subprocess.run([str(LOCALSTACK_SCRIPT)], check=True, timeout=900)  # idempotent: no-op once created
    workdir = tmp_path_factory.mktemp("localstack")
    port = _free_port()
    env = {
        **os.environ,
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "SERVICES": "s3",
        "LOCALSTACK_VOLUME_DIR": str(workdir / "volume"),
        "TMPDIR": str(workdir),
    }
    log = workdir / "localstack.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(LOCALSTACK_PYTHON), "-m", "localstack.runtime.main"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it reaches only its children
        )
    try:
        _wait_ready(process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
