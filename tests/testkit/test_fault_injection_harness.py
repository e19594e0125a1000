"""The emulator's opt-in label selectors, which the derived-RBAC tests rely on (kmock over real HTTP, with
the real kubernetes client on the other end). The fault rules themselves are tested where the fault tests
use them, on the real kube-apiserver through the fault proxy: tests/testkit/test_fault_proxy.py."""

from __future__ import annotations

from pathlib import Path

import kubernetes  # type: ignore[import-untyped]

from testkit.emulator import emulated_cluster

TEMPLATE = {
    "apiVersion": "v1",
    "kind": "PodTemplate",
    "metadata": {"name": "t", "labels": {"team": "a"}},
    "template": {"spec": {"containers": [{"name": "dagster", "image": "x"}]}},
}


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
