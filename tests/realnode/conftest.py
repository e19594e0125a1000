"""Real pods: a kubelet node on Debian's containerd and runc joins the session's real control plane.

These tests run under ``make e2e`` (all of them) and ``make e2e-smoke`` (test_run_pods.py), which set
FLOE_REAL_PODS=1: the first run on a machine installs Debian packages and builds every image (many
minutes), so ``make test`` leaves them out and says so. Where real pods are asked for but the machine
cannot run containers at all (not root, or no cgroup memory controller), they are skipped with that
reason; nothing else is a reason to skip.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from testkit.controlplane import ControlPlane
from testkit.realnode import engine as engine_module
from testkit.realnode import images, node
from testkit.realnode.engine import Engine
from testkit.realnode.node import RealNode

REAL_PODS_TIMEOUT_S = 3600  # the first test of a cold machine waits for packages and image builds


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    real = {"real_engine", "real_node"}
    ours = [item for item in items if real & set(getattr(item, "fixturenames", ()))]
    if not ours:
        return
    if os.environ.get("FLOE_REAL_PODS") != "1":
        reason = "real pods run under `make e2e` (packages and image builds take minutes)"
    else:
        reason = engine_module.unavailable_reason() or ""
    for item in ours:
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
        else:
            item.add_marker(pytest.mark.timeout(REAL_PODS_TIMEOUT_S))


@pytest.fixture(scope="session")
def real_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """containerd and dockerd, with every image built and imported into containerd; stopped at the end."""
    engine_module.install_packages()
    run_dir = tmp_path_factory.mktemp("engine")
    with engine_module.store_lock(engine_module.store_dir()):
        started = time.monotonic()
        engine = engine_module.start(run_dir)
        try:
            images.ensure_images(engine)
            print(f"\n[realnode] engine and images ready in {time.monotonic() - started:.0f} s")
            yield engine
        finally:
            engine_module.stop(run_dir)


@pytest.fixture(scope="session")
def real_node(
    control_plane: ControlPlane, real_engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealNode]:
    """A Ready kubelet node of the session's control plane, tainted so only tolerating pods land on it."""
    run_dir = tmp_path_factory.mktemp("node")
    started = time.monotonic()
    joined = node.join(control_plane, real_engine, run_dir)
    print(f"\n[realnode] node {joined.name} Ready in {time.monotonic() - started:.0f} s")
    try:
        yield joined
    finally:
        node.leave(control_plane, run_dir)
