"""The emulator harness behaves like an API server where our code depends on it (kmock over real HTTP)."""

from __future__ import annotations

import kubernetes

from support.kube_emulator import EmulatedCluster, validate_object


def test_created_objects_get_uid_resource_version_and_namespace(kube_cluster: EmulatedCluster) -> None:
    core = kubernetes.client.CoreV1Api(kube_cluster.api_client())
    body = {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": "t"},
        "template": {"spec": {"containers": [{"name": "dagster", "image": "x"}]}},
    }
    validate_object(body)
    core.create_namespaced_pod_template("floe", body)
    core.patch_namespaced_pod_template("t", "floe", {"metadata": {"labels": {"a": "b"}}})
    stored = core.read_namespaced_pod_template("t", "floe")
    assert stored.metadata.uid
    assert stored.metadata.namespace == "floe"
    assert int(stored.metadata.resource_version) >= 2
    assert stored.metadata.labels == {"a": "b"}
    assert [t.metadata.name for t in core.list_namespaced_pod_template("floe").items] == ["t"]
