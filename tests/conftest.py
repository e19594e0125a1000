"""Shared test helpers: paths of the repository."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.emulator import EmulatedCluster, emulated_cluster
from testkit.localstack import LocalStack
from testkit.postgres import Postgres

ROOT = Path(__file__).resolve().parent.parent

# The real control plane (etcd, kube-apiserver, kcm, kube-scheduler, kwok): `control_plane` fixtures;
# real pods on a kubelet node of it (`make e2e`): `real_engine`, `real_node`.
pytest_plugins = ["testkit.controlplane.pytest_plugin", "testkit.realnode.pytest_plugin"]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def kube_cluster(tmp_path: Path) -> Iterator[EmulatedCluster]:
    """A fresh Kubernetes API emulator (kmock over real HTTP) with a kubeconfig in ``tmp_path``."""
    with emulated_cluster(tmp_path) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def localstack_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real LocalStack S3 endpoint shared by the whole session (it takes about 20 s to start)."""
    localstack = LocalStack(tmp_path_factory.mktemp("localstack")).start()
    try:
        yield localstack.endpoint
    finally:
        localstack.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """A real PostgreSQL server (Debian's binaries) shared by the whole session; tests make own databases."""
    server = Postgres().start()
    try:
        yield server
    finally:
        server.remove()
