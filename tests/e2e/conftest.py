"""The kind e2e suite: collected by every `make test`, skipped (with the reason) where it cannot run.

`make e2e-kind` sets FLOE_E2E=required, which turns a missing prerequisite into a failure instead of a skip.
The suite itself is ``test_kind_e2e.py``; the whole cluster is built once per session in ``deployment``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from deployment import Deployment, deploy
from prerequisites import missing_prerequisites, skip_reason

E2E_MARKER = "e2e"
E2E_TIMEOUT_S = 3600


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{E2E_MARKER}: runs against a kind cluster (Docker and kind needed)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    e2e_items = [item for item in items if item.get_closest_marker(E2E_MARKER)]
    if not e2e_items:
        return
    problems = missing_prerequisites()
    if not problems:
        for item in e2e_items:  # the first test also waits for image builds and the install
            item.add_marker(pytest.mark.timeout(E2E_TIMEOUT_S))
        return
    reason = skip_reason(problems)
    if os.environ.get("FLOE_E2E") == "required":
        raise pytest.UsageError(f"make e2e-kind: {reason}")
    for item in e2e_items:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def platform() -> Iterator[Deployment]:
    """kind cluster, both images, the chart and a Ready FloePlatform; torn down unless KEEP_CLUSTER=1."""
    with deploy() as deployment:
        yield deployment
