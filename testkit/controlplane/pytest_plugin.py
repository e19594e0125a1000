"""pytest fixtures for the real control plane: register with ``pytest_plugins`` in a conftest.

``control_plane`` starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok once
per session in a temporary directory and stops exactly those processes at the end. Where Go is
missing the tests that use it are skipped with the reason (the binaries are built from Go modules).
``fault_proxy`` puts ``testkit.faultproxy.FaultProxy`` in front of its kube-apiserver for one test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.controlplane import build, cluster
from testkit.controlplane.cluster import ControlPlane
from testkit.controlplane.kubeapi import ApiError
from testkit.faultproxy import FaultProxy
from testkit.ports import host_ip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Build the binaries before any test runs when a selected test needs them.

    A cold build takes many minutes; inside the fixture it would count against the test's timeout.
    """
    wanted = any("control_plane" in getattr(item, "fixturenames", ()) for item in items)
    if not wanted or config.option.collectonly or shutil.which("go") is None:
        return
    if not build.is_built(build.bin_dir()):
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("building the control plane from Go modules (the first time takes minutes)")
        build.ensure_built()


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A real control plane with two Ready kwok nodes, shared by the session.

    Under ``make e2e`` (FLOE_REAL_PODS=1) kube-apiserver also listens on the host's address, which is the
    `kubernetes` Service's endpoint: a real node's pods reach it there (``testkit.realnode``).
    """
    try:
        build.go_binary()
    except build.GoMissingError as error:
        pytest.skip(f"no real control plane: {error}")
    state_dir = tmp_path_factory.mktemp("controlplane")
    pod_address = host_ip() if os.environ.get("FLOE_REAL_PODS") == "1" else None
    plane = cluster.up(state_dir, pod_address=pod_address)
    try:
        yield plane
    finally:
        cluster.down(state_dir)


@pytest.fixture
def control_plane_namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace whose ``default`` ServiceAccount exists, deleted after the test."""
    api = control_plane.admin_api()
    name = f"test-{uuid.uuid4().hex[:8]}"
    api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    cluster.wait_for_service_account(api, name, "default")
    yield name
    try:
        api.delete(f"/api/v1/namespaces/{name}")
    except ApiError as error:
        if error.status != 404:
            raise


@pytest.fixture
def fault_proxy(control_plane: ControlPlane, tmp_path: Path) -> Iterator[FaultProxy]:
    """A fault-injecting proxy to the real kube-apiserver, with no fault until the test sets a hook."""
    proxy = FaultProxy(control_plane, tmp_path / "fault-proxy").start()
    try:
        yield proxy
    finally:
        proxy.stop()
