"""The real operator: `floe operator --namespace floe` (kopf 1.45, standalone) in its own process, talking
real HTTP to kmock's Kubernetes emulator. The emulator stands in for the API server; it cannot show
garbage collection (so CR deletion is checked through ownerReferences), defaulting, validation (every
PodTemplate is checked with kubernetes-validate, every FloePlatform against the CRD schema) or label
selectors (the operator filters by label itself). Waits poll with a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from floe_platform.codegen.crd import floe_platform_crd
from floe_platform.config import parse_platform
from floe_platform.render import render_pod_templates
from testkit.crd_schema import cr_schema
from testkit.emulator import EmulatedCluster, emulated_cluster, validate_object
from testkit.operator_process import OperatorProcess
from testkit.platforms import CR, NAMESPACE, core_api, custom_objects, production_cr, templates
from testkit.waiting import eventually

pytestmark = pytest.mark.slow  # a real operator process per module

RESYNC_SECONDS = 2  # the OperatorProcess default


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedCluster]:
    with emulated_cluster(tmp_path_factory.mktemp("kube")) as emulated:
        yield emulated


@pytest.fixture(scope="module")
def running_operator(cluster: EmulatedCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    process = OperatorProcess(
        cluster.kubeconfig_path, tmp_path_factory.mktemp("operator") / "operator.log"
    ).running()
    yield
    process.stop()


def rendered(resource: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    config = parse_platform(resource["spec"], prefix=("spec",))
    return {t["metadata"]["name"]: t for t in render_pod_templates(config, name, NAMESPACE)}


def matches_renderer(cluster: EmulatedCluster, resource: dict[str, Any], name: str) -> bool:
    live, expected = templates(core_api(cluster), name), rendered(resource, name)
    return sorted(live) == sorted(expected) and all(
        live[n]["template"] == t["template"]
        and live[n]["metadata"]["annotations"] == t["metadata"]["annotations"]
        and live[n]["metadata"]["labels"] == t["metadata"]["labels"]
        for n, t in expected.items()
    )


def get_cr(cluster: EmulatedCluster, name: str) -> dict[str, Any]:
    body: dict[str, Any] = custom_objects(cluster).get_namespaced_custom_object(*CR, name)
    return body


def ready(cluster: EmulatedCluster, name: str, generation: int) -> dict[str, Any] | None:
    status = get_cr(cluster, name).get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    done = (
        status.get("observedGeneration") == generation and conditions.get("Ready", {}).get("status") == "True"
    )
    return status if done else None


def apply_and_wait(cluster: EmulatedCluster, name: str) -> dict[str, Any]:
    resource = production_cr(name)
    custom_objects(cluster).create_namespaced_custom_object(*CR, resource)
    eventually(lambda: ready(cluster, name, 1), what=f"{name} Ready")
    return resource


def patch_spec(cluster: EmulatedCluster, name: str, spec_patch: dict[str, Any]) -> None:
    custom_objects(cluster).patch_namespaced_custom_object(*CR, name, {"spec": spec_patch})


def profile_patch(profile: str, **fields: Any) -> dict[str, Any]:
    return {"infrastructure": {"resource_profiles": {profile: fields}}}


@pytest.mark.usefixtures("running_operator")
def test_applied_cr_gets_exactly_the_rendered_podtemplates(cluster: EmulatedCluster) -> None:
    resource = apply_and_wait(cluster, "apply")
    assert matches_renderer(cluster, resource, "apply")
    for template in templates(core_api(cluster), "apply").values():
        validate_object(template)
    stored = get_cr(cluster, "apply")
    assert stored["status"]["profileNames"] == "default,transform,ingest,small"
    assert [p["template"] for p in stored["status"]["profiles"]] == [
        "apply-default",
        "apply-transform",
        "apply-ingest",
        "apply-small",
    ]
    jsonschema.validate(stored, cr_schema(floe_platform_crd()))


@pytest.mark.usefixtures("running_operator")
def test_changed_profile_updates_its_template(cluster: EmulatedCluster) -> None:
    resource = apply_and_wait(cluster, "change")
    started = time.monotonic()
    patch_spec(cluster, "change", profile_patch("transform", limits={"cpu": "16", "memory": "64Gi"}))
    resource["spec"]["infrastructure"]["resource_profiles"]["transform"]["limits"]["memory"] = "64Gi"
    eventually(lambda: matches_renderer(cluster, resource, "change"), what="transform template updated")
    latency = time.monotonic() - started
    status = eventually(lambda: ready(cluster, "change", 2), what="status of generation 2")
    expected_hash = rendered(resource, "change")["change-transform"]["metadata"]["annotations"]
    assert {p["name"]: p["hash"] for p in status["profiles"]}["transform"] == expected_hash[
        "floe.dev/profile-hash"
    ]
    print(f"CR change -> template updated: {latency:.2f}s")


@pytest.mark.usefixtures("running_operator")
def test_removed_profile_deletes_its_template(cluster: EmulatedCluster) -> None:
    resource = apply_and_wait(cluster, "remove")
    patch_spec(cluster, "remove", {"infrastructure": {"resource_profiles": {"ingest": None}}})
    del resource["spec"]["infrastructure"]["resource_profiles"]["ingest"]
    eventually(lambda: matches_renderer(cluster, resource, "remove"), what="ingest template deleted")
    assert sorted(templates(core_api(cluster), "remove")) == [
        "remove-default",
        "remove-small",
        "remove-transform",
    ]
    assert eventually(lambda: ready(cluster, "remove", 2))["profileNames"] == "default,transform,small"


@pytest.mark.usefixtures("running_operator")
def test_invalid_update_reports_the_field_and_leaves_templates_untouched(cluster: EmulatedCluster) -> None:
    apply_and_wait(cluster, "invalid")
    before = templates(core_api(cluster), "invalid")
    patch_spec(cluster, "invalid", profile_patch("transform", limits={"cpu": "16", "memory": "12Gb"}))
    field = "spec.infrastructure.resource_profiles.transform.limits.memory"

    def invalid_condition() -> dict[str, Any] | None:
        status = get_cr(cluster, "invalid").get("status") or {}
        ready_condition = next(c for c in status.get("conditions", []) if c["type"] == "Ready")
        return ready_condition if ready_condition["reason"] == "InvalidSpec" else None

    condition = eventually(invalid_condition, what="Ready=False InvalidSpec")
    assert condition["status"] == "False"
    assert condition["message"].startswith(f"{field}: '12Gb' is not a Kubernetes quantity")
    events = eventually(
        lambda: [
            e
            for e in core_api(cluster).list_namespaced_event(NAMESPACE).items
            if e.involved_object.name == "invalid" and e.reason == "InvalidSpec"
        ],
        what="a Warning event",
    )
    assert events[0].type == "Warning"
    assert field in events[0].message
    time.sleep(RESYNC_SECONDS + 0.5)  # let a resync pass: it must not touch them either
    assert templates(core_api(cluster), "invalid") == before


@pytest.mark.usefixtures("running_operator")
def test_hand_edited_and_deleted_templates_are_repaired(cluster: EmulatedCluster) -> None:
    resource = apply_and_wait(cluster, "drift")
    core = core_api(cluster)
    started = time.monotonic()
    edit = {
        "template": {
            "spec": {"containers": [{"name": "dagster", "resources": {"limits": {"memory": "1Gi"}}}]}
        }
    }
    core.patch_namespaced_pod_template("drift-transform", NAMESPACE, edit)
    core.delete_namespaced_pod_template("drift-ingest", NAMESPACE)
    eventually(lambda: matches_renderer(cluster, resource, "drift"), timeout=30, what="drift repaired")
    print(f"drift repaired in {time.monotonic() - started:.2f}s (resync every {RESYNC_SECONDS}s)")


@pytest.mark.usefixtures("running_operator")
def test_templates_are_owned_by_the_cr_which_deletes_without_waiting_for_the_operator(
    cluster: EmulatedCluster,
) -> None:
    """The emulator has no garbage collector: check the ownerReference a real one would follow, and that no
    finalizer holds the CR (the garbage collector on kube-apiserver: test_operator_on_apiserver.py)."""
    apply_and_wait(cluster, "owned")
    uid = get_cr(cluster, "owned")["metadata"]["uid"]
    assert not get_cr(cluster, "owned")["metadata"].get("finalizers")
    for template in templates(core_api(cluster), "owned").values():
        (owner,) = template["metadata"]["ownerReferences"]
        assert owner == {
            "apiVersion": "floe.dev/v1alpha1",
            "kind": "FloePlatform",
            "name": "owned",
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    custom_objects(cluster).delete_namespaced_custom_object(*CR, "owned")

    def cr_names() -> list[str]:
        return [
            item["metadata"]["name"]
            for item in custom_objects(cluster).list_namespaced_custom_object(*CR)["items"]
        ]

    eventually(lambda: "owned" not in cr_names(), what="the CR gone")
