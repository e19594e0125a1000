"""The operator applies a FloePlatform's namespace guardrails (LimitRange, ResourceQuota) as its children.

The real operator: `floe operator --namespace floe` (kopf 1.45, standalone) in its own process, real HTTP
to kmock's Kubernetes emulator (``support.kube_emulator``), which stands in for the API server. What the
stand-in cannot show: garbage collection (ownership is checked through ownerReferences), the LimitRange
defaulting and quantity canonicalization of a real server (every object is checked with
kubernetes-validate, and the value comparison that keeps a canonicalized quota in sync is checked on
plain dicts below), and admission by the LimitRanger and ResourceQuota plugins themselves.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import kubernetes
import pytest

from floe_platform.config import parse_platform
from floe_platform.config.quantity import parse_quantity
from floe_platform.controller.plan import PlatformRef, desired_children, in_sync
from floe_platform.render import render_guardrails
from testkit.emulator import EmulatedCluster, emulated_cluster, validate_object
from testkit.operator_process import OperatorProcess
from testkit.waiting import eventually

pytestmark = pytest.mark.slow  # a real operator process per module

NAMESPACE = "floe"
CR = ("floe.dev", "v1alpha1", NAMESPACE, "floeplatforms")
NAME = "guard"
PROFILES = {
    "small": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
    "large": {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "8", "memory": "32Gi"}},
}
LIMITS = {
    "enabled": True,
    "concurrent_runs": 2,
    "services_headroom": {"cpu": "4", "memory": "8Gi"},
    "service_container_limits": [{"memory": "1Gi"}],
}


def _resource(limits: dict[str, Any]) -> dict[str, Any]:
    spec = {"infrastructure": {"resource_profiles": PROFILES, "namespace_limits": limits}}
    metadata = {"name": NAME, "namespace": NAMESPACE}
    return {"apiVersion": "floe.dev/v1alpha1", "kind": "FloePlatform", "metadata": metadata, "spec": spec}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedCluster]:
    with emulated_cluster(tmp_path_factory.mktemp("kube")) as emulated:
        process = OperatorProcess(
            emulated.kubeconfig_path, tmp_path_factory.mktemp("op") / "operator.log"
        ).running()
        try:
            yield emulated
        finally:
            process.stop()


class Guardrails:
    """The test's own (admin) view of the FloePlatform and its LimitRange and ResourceQuota."""

    def __init__(self, cluster: EmulatedCluster) -> None:
        client = cluster.api_client()
        self.core = kubernetes.client.CoreV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)

    def live(self) -> dict[str, dict[str, Any]]:
        """``{kind: object}`` of this platform's guardrails, as plain dicts."""
        found = {}
        for kind, items in (
            ("LimitRange", self.core.list_namespaced_limit_range(NAMESPACE).items),
            ("ResourceQuota", self.core.list_namespaced_resource_quota(NAMESPACE).items),
        ):
            for item in items:
                if (item.metadata.labels or {}).get("floe.dev/platform") == NAME:
                    found[kind] = self.core.api_client.sanitize_for_serialization(item)
        return found

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = self.custom.get_namespaced_custom_object(*CR, NAME)
        return body.get("status") or {}

    def uid(self) -> str:
        uid: str = self.custom.get_namespaced_custom_object(*CR, NAME)["metadata"]["uid"]
        return uid

    def ready_reason(self) -> str:
        conditions = self.status().get("conditions") or []
        return next((c["reason"] for c in conditions if c["type"] == "Ready"), "")

    def matches(self, resource: dict[str, Any]) -> bool:
        """The live guardrails say, by value, what the renderer says for ``resource``'s spec."""
        expected = render_guardrails(parse_platform(resource["spec"]), NAME, NAMESPACE)
        live = self.live()
        return sorted(live) == sorted(obj["kind"] for obj in expected) and all(
            _quantities(live[obj["kind"]]["spec"]) == _quantities(obj["spec"]) for obj in expected
        )


def _quantities(spec: dict[str, Any]) -> Any:
    """A guardrail's spec with every quantity as its value (the text form is free to differ)."""
    if "hard" in spec:
        return {key: parse_quantity(text) for key, text in spec["hard"].items()}
    return [{key: parse_quantity(text) for key, text in item["max"].items()} for item in spec["limits"]]


def test_guardrails_appear_follow_the_spec_survive_an_invalid_one_and_go_when_disabled(
    cluster: EmulatedCluster,
) -> None:
    view = Guardrails(cluster)
    resource = _resource(LIMITS)
    view.custom.create_namespaced_custom_object(*CR, resource)
    eventually(lambda: view.matches(resource), what="LimitRange and ResourceQuota applied")
    for obj in view.live().values():
        validate_object(obj)
        (owner,) = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == ("FloePlatform", view.uid(), True)
    eventually(lambda: view.ready_reason() == "Reconciled", what="Ready")
    assert view.status()["namespaceLimits"] == [
        {"kind": "LimitRange", "name": "guard-limits"},
        {"kind": "ResourceQuota", "name": "guard-quota"},
    ]

    changed = copy.deepcopy(resource)
    changed["spec"]["infrastructure"]["namespace_limits"]["concurrent_runs"] = 5
    view.custom.patch_namespaced_custom_object(*CR, NAME, {"spec": changed["spec"]})
    eventually(lambda: view.matches(changed), what="quota follows concurrent_runs 5")
    quota = view.live()["ResourceQuota"]["spec"]["hard"]
    assert parse_quantity(quota["requests.cpu"]) == 5 * 2 + 4

    before = {kind: obj["metadata"]["resourceVersion"] for kind, obj in view.live().items()}
    invalid = {"infrastructure": {"namespace_limits": {"services_headroom": {"memory": "8Gb"}}}}
    view.custom.patch_namespaced_custom_object(*CR, NAME, {"spec": invalid})
    eventually(lambda: view.ready_reason() == "InvalidSpec", what="InvalidSpec status")
    assert "spec.infrastructure.namespace_limits.services_headroom.memory" in str(view.status()["conditions"])
    assert {kind: obj["metadata"]["resourceVersion"] for kind, obj in view.live().items()} == before
    assert view.status()["namespaceLimits"] == [
        {"kind": "LimitRange", "name": "guard-limits"},
        {"kind": "ResourceQuota", "name": "guard-quota"},
    ], "an invalid spec keeps the guardrails in place, and says so"

    disabled = {
        "infrastructure": {"namespace_limits": {"enabled": False, "services_headroom": {"memory": "8Gi"}}}
    }
    view.custom.patch_namespaced_custom_object(*CR, NAME, {"spec": disabled})
    eventually(lambda: view.live() == {}, what="guardrails deleted when disabled")
    eventually(lambda: view.status().get("namespaceLimits") == [], what="status without guardrails")


def test_a_quota_the_server_canonicalized_is_in_sync_and_a_changed_one_is_not() -> None:
    """A server may hand quantities back in another text form: compare by value, patch only on change."""
    platform = PlatformRef(NAME, NAMESPACE, "uid-1", 1)
    (limit_range, quota) = desired_children(_resource(LIMITS)["spec"], platform).guardrails
    live = copy.deepcopy(quota)
    live["spec"]["hard"] = {
        key: f"{parse_quantity(text) * 1000:f}m" for key, text in quota["spec"]["hard"].items()
    }
    live["status"] = {"hard": live["spec"]["hard"], "used": {}}
    assert in_sync(quota, live)
    live["spec"]["hard"]["requests.cpu"] = (
        f"{parse_quantity(quota['spec']['hard']['requests.cpu']) + Decimal(1)}"
    )
    assert not in_sync(quota, live)
    defaulted = copy.deepcopy(limit_range)
    item = defaulted["spec"]["limits"][0]
    item["default"] = item["defaultRequest"] = dict(item["max"])  # the API server's LimitRange defaulting
    assert in_sync(limit_range, defaulted)
