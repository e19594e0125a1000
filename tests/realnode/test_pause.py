"""The pod sandbox's pause binary, built from tests' own Go source with the real Go toolchain and run here.

No container is involved: what is checked is the behaviour the kubelet relies on (it sleeps until told to
stop, stops at once on SIGTERM). Its Dockerfile is checked in test_images.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from testkit.realnode.images import PAUSE_SOURCE


@pytest.mark.slow
def test_pause_sleeps_until_sigterm_and_then_exits_cleanly(tmp_path: Path) -> None:
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed; the pause binary is built from Go source")
    binary = tmp_path / "pause"
    subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=PAUSE_SOURCE,
        check=True,
        env={**os.environ, "CGO_ENABLED": "0"},
    )
    process = subprocess.Popen([str(binary)])
    try:
        time.sleep(0.5)
        assert process.poll() is None, "pause exited on its own"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
