"""The kopf shell's logic called directly: `handlers.sync` with a real kopf Patch and the operator's own API
client against kmock's emulator; kopf's event poster is replaced by a list (no kopf runtime here). Transient
API errors are tested on the real kube-apiserver through the fault proxy (test_reconcile_faults.py), a real
403 with the operator process (test_operator_faults.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import kopf
import pytest

from floe_platform.controller import handlers
from testkit.emulator import EmulatedCluster
from testkit.platforms import core_api, operator_api, production_cr, with_profile

UID = "6f1c1c3e-0000-4000-8000-000000000002"
LOGGER = logging.getLogger("test")


@pytest.fixture
def posted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Warning events the shell posts, as (reason, message)."""
    events: list[tuple[str, str]] = []
    monkeypatch.setattr(kopf, "warn", lambda body, *, reason, message: events.append((reason, message)))
    return events


def body(resource: dict[str, Any], generation: int = 1, status: dict[str, Any] | None = None) -> kopf.Body:
    resource = {**resource, "metadata": {**resource["metadata"], "uid": UID, "generation": generation}}
    if status is not None:
        resource["status"] = status
    return kopf.Body(resource)


def run_sync(cluster: EmulatedCluster, platform: kopf.Body, retry: int | None = 0) -> kopf.Patch:
    patch = kopf.Patch()
    handlers.sync(operator_api(cluster), platform, patch, LOGGER, known=None, retry=retry, always_warn=True)
    return patch


def test_success_writes_a_ready_status_once(kube_cluster: EmulatedCluster, posted: list[Any]) -> None:
    first = run_sync(kube_cluster, body(production_cr("prod")))
    status = dict(first["status"])
    assert status["conditions"][0]["status"] == "True"
    assert status["observedGeneration"] == 1
    again = run_sync(kube_cluster, body(production_cr("prod"), status=status))
    assert "status" not in again  # unchanged: no status write, no watch event, no churn
    assert posted == []


def test_invalid_spec_sets_status_and_posts_a_warning(
    kube_cluster: EmulatedCluster, posted: list[Any]
) -> None:
    broken = with_profile(production_cr("prod"), "ingest", requests={"cpu": "4", "memory": "512Mi"})
    patch = run_sync(kube_cluster, body(broken, generation=3))
    ready = patch["status"]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.infrastructure.resource_profiles.ingest.limits.cpu" in ready["message"]
    assert [reason for reason, _ in posted] == ["InvalidSpec"]
    assert core_api(kube_cluster).list_namespaced_pod_template("floe").items == []


@pytest.mark.asyncio
async def test_the_resync_loop_goes_on_past_a_platform_it_cannot_handle(
    kube_cluster: EmulatedCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """The resync loop over the FloePlatform index, with the real reconcile against the emulator: a
    malformed entry (no uid) raises inside reconcile; the loop logs it and still reconciles the next one."""
    good = dict(body(production_cr("prod")))
    broken = production_cr("broken")
    platforms = {("floe", "broken"): [json.dumps(broken)], ("floe", "prod"): [json.dumps(good)]}
    empty: dict[Any, list[str]] = {}
    indexes = {handlers.PLATFORM_INDEX: platforms, handlers.INDEX: empty}
    indexes.update({index_id: empty for index_id in handlers.GUARDRAIL_INDEXES.values()})
    memo = {"core": operator_api(kube_cluster)}
    loop = asyncio.create_task(handlers.resync_forever(memo, indexes, interval=0.05))
    try:
        for _ in range(400):
            if len(core_api(kube_cluster).list_namespaced_pod_template("floe").items) == 4:
                break
            await asyncio.sleep(0.05)
    finally:
        loop.cancel()
    assert len(core_api(kube_cluster).list_namespaced_pod_template("floe").items) == 4
    assert "Resync of broken failed" in caplog.text
