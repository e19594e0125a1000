"""The operator converges through API faults and through being killed mid-reconcile.

Runs the real operator (``floe operator``, kopf, its own process) against the kmock emulator, whose fault
hook answers chosen requests with 5xx, 409, an expired watch (ERROR 410) or late. The emulator cannot show
a real API server's own retries, throttling (APF) or watch bookmarks; the final state is what is checked:
every profile's PodTemplate exactly as the renderer makes it, none missing, extra or duplicated.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes  # type: ignore[import-untyped]
import pytest

from floe_platform.api import GROUP, PLURAL, VERSION
from testkit.emulator import EmulatedCluster
from testkit.faults import FaultPlan, Rule, observer_client
from testkit.operator_process import OperatorProcess
from testkit.platforms import (
    expected_templates,
    floe_platform,
    judge,
    list_templates,
    platform_spec,
    profile_spec,
)
from testkit.waiting import wait_until

pytestmark = pytest.mark.slow  # a real operator process through injected faults

NAMESPACE = "floe"
CONVERGE_SECONDS = 90
WRITES = frozenset({"CREATE", "UPDATE"})


@pytest.fixture
def operator(kube_cluster: EmulatedCluster, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator with a 3 s resync; stopped by pid at the end."""
    process = OperatorProcess(
        kube_cluster.kubeconfig_path, tmp_path / "operator.log", ("--namespace", NAMESPACE), 3
    )
    yield process
    process.stop()


def _create(cluster: EmulatedCluster, platforms: dict[str, dict[str, Any]]) -> None:
    custom = kubernetes.client.CustomObjectsApi(observer_client(cluster))
    for name, spec in platforms.items():
        custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, floe_platform(name, spec))


def _assert_converges(cluster: EmulatedCluster, platforms: dict[str, Any], operator: OperatorProcess) -> None:
    expected = expected_templates(platforms, NAMESPACE)
    api = observer_client(cluster)
    converged = wait_until(
        lambda: judge(list_templates(api, NAMESPACE), expected).converged, CONVERGE_SECONDS, 0.5
    )
    verdict = judge(list_templates(api, NAMESPACE), expected)
    assert converged, f"{verdict}\n{operator.log_tail()}"


def test_operator_converges_through_5xx_409_expired_watches_and_slow_answers(
    kube_cluster: EmulatedCluster, operator: OperatorProcess
) -> None:
    plan = FaultPlan(
        [
            Rule("podtemplate-write-503", WRITES, "podtemplates", status=503, times=4, every=2),
            Rule("podtemplate-write-500", WRITES, "podtemplates", status=500, times=2, every=3),
            Rule("podtemplate-patch-409", frozenset({"UPDATE"}), "podtemplates", status=409, times=2),
            Rule("podtemplate-list-504", frozenset({"LIST"}), "podtemplates", status=504, times=2, every=2),
            Rule("floeplatform-watch-410", frozenset({"WATCH"}), "floeplatforms", expire_watch=True, times=2),
            Rule("podtemplate-slow", WRITES, "podtemplates", delay=1.5, times=3),
        ]
    )
    kube_cluster.emulator.fault_hook = plan
    operator.start().wait_ready()
    platforms = {f"team-{index}": platform_spec(3) for index in range(4)}
    _create(kube_cluster, platforms)
    # A spec change (one profile's limits) and a removed profile must also get through the faults.
    custom = kubernetes.client.CustomObjectsApi(observer_client(kube_cluster))
    platforms["team-0"]["infrastructure"]["resource_profiles"]["p1"] = profile_spec(1, memory_mib=2048)
    time.sleep(1)
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, "team-0", {"spec": platforms["team-0"]}
    )
    _assert_converges(kube_cluster, platforms, operator)
    fired = {rule.name for rule in plan.rules if plan.fired[rule.name]}
    assert {"podtemplate-write-503", "floeplatform-watch-410", "podtemplate-slow"} <= fired, plan.fired


def test_operator_killed_mid_reconcile_converges_after_restart(
    kube_cluster: EmulatedCluster, operator: OperatorProcess
) -> None:
    # Slow template writes stretch each reconcile, so the kill lands between a platform's writes.
    slow = FaultPlan([Rule("slow-create", frozenset({"CREATE"}), "podtemplates", delay=0.4, times=1000)])
    kube_cluster.emulator.fault_hook = slow
    operator.start().wait_ready()
    platforms = {f"team-{index}": platform_spec(5) for index in range(4)}
    _create(kube_cluster, platforms)
    api = observer_client(kube_cluster)
    assert wait_until(lambda: len(list_templates(api, NAMESPACE)) >= 2, 30, 0.05)
    operator.kill()
    written = len(list_templates(api, NAMESPACE))
    assert written < 20, "the kill came too late to interrupt a reconcile"
    kube_cluster.emulator.fault_hook = None
    operator.start().wait_ready()
    _assert_converges(kube_cluster, platforms, operator)
