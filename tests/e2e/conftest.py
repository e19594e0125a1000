"""The e2e suite: collected by every `make test`, skipped (with the reason) where it cannot run.

Two cluster providers run the same suite (``test_kind_e2e.py``):
- ``make e2e`` (FLOE_REAL_PODS=1): the real node of these machines (``realnode_cluster``), with no registry.
- ``make e2e-kind``: a kind cluster (``deployment``); it sets FLOE_E2E=required, which turns a missing
  prerequisite into a failure instead of a skip.
The platform is deployed once per session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from deployment import Deployment, deploy
from prerequisites import missing_prerequisites, skip_reason
from realnode_cluster import deploy_on_real_node

from testkit.realnode import engine as engine_module

E2E_MARKER = "e2e"
E2E_TIMEOUT_S = 3600


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{E2E_MARKER}: runs against a kind cluster (Docker and kind needed)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    e2e_items = [item for item in items if item.get_closest_marker(E2E_MARKER)]
    if not e2e_items:
        return
    problems = real_node_problems() if on_real_node() else missing_prerequisites()
    if not problems:
        for item in e2e_items:  # the first test also waits for image builds and the install
            item.add_marker(pytest.mark.timeout(E2E_TIMEOUT_S))
        return
    reason = f"real pods cannot run here: {problems[0]}" if on_real_node() else skip_reason(problems)
    if os.environ.get("FLOE_E2E") == "required":
        raise pytest.UsageError(f"make e2e-kind: {reason}")
    for item in e2e_items:
        item.add_marker(pytest.mark.skip(reason=reason))


def on_real_node() -> bool:
    return os.environ.get("FLOE_REAL_PODS") == "1"


def real_node_problems() -> list[str]:
    reason = engine_module.unavailable_reason()
    return [reason] if reason else []


@pytest.fixture(scope="session")
def platform(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """The chart and a Ready FloePlatform on the real node (``make e2e``), or on a kind cluster that is
    torn down afterwards unless KEEP_CLUSTER=1."""
    if on_real_node():
        plane = request.getfixturevalue("control_plane")
        engine = request.getfixturevalue("real_engine")
        node = request.getfixturevalue("real_node")
        with deploy_on_real_node(plane, engine, node) as deployment:
            yield deployment
        return
    with deploy() as deployment:
        yield deployment
