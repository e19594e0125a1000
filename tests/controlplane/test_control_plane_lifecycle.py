"""Starting and stopping the test control plane: idempotent, and it only ever signals its own processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from testkit.controlplane import ControlPlane, cluster


def test_up_twice_returns_the_running_control_plane(control_plane: ControlPlane) -> None:
    """Real processes (etcd, kube-apiserver, kcm, kube-scheduler, kwok): a second `up` starts none."""
    pids_before = (control_plane.state_dir / "pids.json").read_text()
    start = time.monotonic()
    again = cluster.up(control_plane.state_dir)
    assert again == control_plane
    assert time.monotonic() - start < 5
    assert (control_plane.state_dir / "pids.json").read_text() == pids_before
    assert all(state.startswith("running") for state in cluster.status(control_plane.state_dir).values())


def test_down_refuses_a_directory_up_did_not_make(tmp_path: Path) -> None:
    """No component: `down` removes its state directory, so it must not remove anyone else's."""
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(RuntimeError, match="not a control plane's state directory"):
        cluster.down(tmp_path)
    assert (tmp_path / "precious.txt").exists()
    assert cluster.down(tmp_path / "missing") is False


def test_down_does_not_signal_a_pid_that_was_reused(tmp_path: Path) -> None:
    """No component: a `sleep` stands for a process that got a recorded pid after the component died."""
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        state = tmp_path / "state"
        state.mkdir()
        (state / "cluster.json").write_text("{}")
        record = {"pid": sleeper.pid, "start_time": "1", "argv": ["etcd"]}  # not the sleeper's start time
        (state / "pids.json").write_text(json.dumps({"etcd": record}))
        assert cluster.down(state) is True
        assert sleeper.poll() is None, "down signalled a process it did not start"
        assert not state.exists()
    finally:
        os.kill(sleeper.pid, signal.SIGTERM)
        sleeper.wait()


@pytest.mark.slow
def test_a_component_that_fails_to_start_is_reported_and_the_rest_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, control_plane: ControlPlane
) -> None:
    """Real etcd and kube-apiserver start; kwok gets a flag it does not know and exits. `up` must say so
    with kwok's own log and leave no process behind. (Needs the binaries, hence ``control_plane``.)"""
    real_argv, real_spawn = cluster._kwok_argv, cluster._spawn
    started: list[dict[str, Any]] = []

    def spawn(*args: Any) -> dict[str, Any]:
        started.append(real_spawn(*args))
        return started[-1]

    monkeypatch.setattr(cluster, "_kwok_argv", lambda *args: [*real_argv(*args), "--no-such-flag"])
    monkeypatch.setattr(cluster, "_spawn", spawn)
    state = tmp_path / "broken"
    with pytest.raises(RuntimeError, match=r"kwok exited during start-up(.|\n)*unknown flag: --no-such-flag"):
        cluster.up(state, timeout=60)
    assert not state.exists()
    assert len(started) == 5
    assert not [record["argv"][0] for record in started if cluster._is_ours(record)], "left running"
