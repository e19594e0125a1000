"""Real pods: a kubelet node on Debian's containerd and runc joins the session's real control plane.

These tests run under ``make e2e`` (all of them) and ``make e2e-smoke`` (test_run_pods.py), which set
FLOE_REAL_PODS=1: the first run on a machine installs Debian packages and builds every image (many
minutes), so ``make test`` leaves them out and says so. Where real pods are asked for but the machine
cannot run containers at all (not root, or no cgroup memory controller), they are skipped with that
reason; nothing else is a reason to skip.
"""

from __future__ import annotations

import os

import pytest

from testkit.realnode import engine as engine_module

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
