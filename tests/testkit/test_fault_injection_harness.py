"""The emulator's fault hook and label selectors do what the fault tests rely on (kmock over real HTTP,
with the real kubernetes client on the other end)."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import kubernetes  # type: ignore[import-untyped]
import pytest

from testkit.emulator import EmulatedCluster, emulated_cluster
from testkit.faults import FaultPlan, Rule

TEMPLATE = {
    "apiVersion": "v1",
    "kind": "PodTemplate",
    "metadata": {"name": "t", "labels": {"team": "a"}},
    "template": {"spec": {"containers": [{"name": "dagster", "image": "x"}]}},
}


def test_injected_error_reaches_the_client_and_changes_nothing(kube_cluster: EmulatedCluster) -> None:
    plan = FaultPlan([Rule("create-503", frozenset({"CREATE"}), "podtemplates", status=503)])
    kube_cluster.emulator.fault_hook = plan
    core = kubernetes.client.CoreV1Api(kube_cluster.api_client())
    with pytest.raises(kubernetes.client.ApiException) as refused:
        core.create_namespaced_pod_template("floe", TEMPLATE)
    assert refused.value.status == 503
    assert core.list_namespaced_pod_template("floe").items == []
    core.create_namespaced_pod_template("floe", TEMPLATE)  # the rule fired its one time
    assert [t.metadata.name for t in core.list_namespaced_pod_template("floe").items] == ["t"]
    assert plan.fired["create-503"] == 1


def test_expired_watch_ends_the_stream_with_an_error_410_event(kube_cluster: EmulatedCluster) -> None:
    kube_cluster.emulator.fault_hook = FaultPlan(
        [Rule("watch-410", frozenset({"WATCH"}), "podtemplates", expire_watch=True)]
    )
    url = f"{kube_cluster.url}/api/v1/namespaces/floe/podtemplates?watch=true&resourceVersion=1"
    request = urllib.request.Request(url, headers={"Authorization": "Bearer emulator-token"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        event = json.loads(response.readline())
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410


def test_slow_rule_delays_the_answer_but_serves_it(kube_cluster: EmulatedCluster) -> None:
    kube_cluster.emulator.fault_hook = FaultPlan(
        [Rule("slow", frozenset({"CREATE"}), "podtemplates", delay=0.5)]
    )
    core = kubernetes.client.CoreV1Api(kube_cluster.api_client())
    started = time.perf_counter()
    core.create_namespaced_pod_template("floe", TEMPLATE)
    assert time.perf_counter() - started >= 0.5
    assert len(core.list_namespaced_pod_template("floe").items) == 1


def test_label_selectors_filter_lists_only_when_asked(tmp_path: Path) -> None:
    for honour, expected in ((False, ["t", "u"]), (True, ["t"])):
        workdir = tmp_path / str(honour)
        workdir.mkdir()
        with emulated_cluster(workdir, honour_label_selectors=honour) as cluster:
            core = kubernetes.client.CoreV1Api(cluster.api_client())
            core.create_namespaced_pod_template("floe", TEMPLATE)
            other = {**TEMPLATE, "metadata": {"name": "u", "labels": {"team": "b"}}}
            core.create_namespaced_pod_template("floe", other)
            listed = core.list_namespaced_pod_template("floe", label_selector="team=a")
            assert sorted(t.metadata.name for t in listed.items) == expected
