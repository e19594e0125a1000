"""pytest fixtures for real pods: register with ``pytest_plugins`` (tests/conftest.py does).

``real_engine`` starts containerd and dockerd and builds and imports the product images; ``real_node``
joins a kubelet to the session's control plane and starts the node's Services and DNS. Which tests may
use them, and when they are skipped, is decided by tests/realnode/conftest.py and tests/e2e/conftest.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from testkit.controlplane import ControlPlane
from testkit.ports import host_ip
from testkit.realnode import engine as engine_module
from testkit.realnode import images, network, node
from testkit.realnode.engine import Engine
from testkit.realnode.node import RealNode


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
    """A Ready kubelet node of the session's control plane, tainted so only tolerating pods land on it,
    with Services (kube-proxy) and cluster DNS (CoreDNS) for its pods."""
    run_dir = tmp_path_factory.mktemp("node")
    started = time.monotonic()
    joined = node.join(control_plane, real_engine, run_dir)
    print(f"\n[realnode] node {joined.name} Ready in {time.monotonic() - started:.0f} s")
    try:
        network.start(
            control_plane,
            run_dir / "network",
            joined.name,
            address=host_ip(),
            pod_cidr=engine_module.POD_SUBNET,
        )
        print(f"[realnode] kube-proxy and CoreDNS serving after {time.monotonic() - started:.0f} s")
        yield joined
    finally:
        node.leave(control_plane, run_dir)
        network.stop(run_dir / "network")
