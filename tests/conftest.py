"""Shared test helpers: paths of the repository."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.kube_emulator import EmulatedCluster, emulated_cluster

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def kube_cluster(tmp_path: Path) -> Iterator[EmulatedCluster]:
    """A fresh Kubernetes API emulator (kmock over real HTTP) with a kubeconfig in ``tmp_path``."""
    with emulated_cluster(tmp_path) as cluster:
        yield cluster
