"""The emulator harness behaves like an API server where our code depends on it (kmock over real HTTP)."""

from __future__ import annotations

import kubernetes
import pytest

from testkit.emulator import EmulatedCluster, validate_object


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


def test_failed_json_patch_test_is_refused_with_422(kube_cluster: EmulatedCluster) -> None:
    """kube-apiserver answers a failed `test` op with 422 Unprocessable Entity (kmock alone says 500)."""
    client = kube_cluster.api_client()
    core = kubernetes.client.CoreV1Api(client)
    body = {"metadata": {"name": "t", "labels": {"a": "b"}}, "template": {}}
    core.create_namespaced_pod_template("floe", body)
    stale = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
        {"op": "replace", "path": "/metadata/labels/a", "value": "c"},
    ]
    with pytest.raises(kubernetes.client.ApiException) as refused:
        core.patch_namespaced_pod_template("t", "floe", stale)
    assert refused.value.status == 422
    assert core.read_namespaced_pod_template("t", "floe").metadata.labels == {"a": "b"}
