"""The operator's logic called directly, without kopf: `reconcile` against kmock's Kubernetes emulator over
real HTTP with the operator's own API client (the test reads back with the kubernetes client), and the
status functions as plain data. The emulator cannot show a real API server's defaulting or strategic
merge; every object written is checked with kubernetes-validate instead. The fault cases (5xx, 409, a
request-free reconcile) run on the real kube-apiserver through the fault proxy: test_reconcile_faults.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from floe_platform.config import ConfigError, parse_platform
from floe_platform.config.quantity import parse_quantity
from floe_platform.controller.client import reconcile
from floe_platform.controller.plan import PlatformRef, desired_templates, in_sync
from floe_platform.controller.status import (
    api_error_status,
    invalid_spec_status,
    reconciled_status,
)
from floe_platform.render import render_pod_templates
from testkit.emulator import EmulatedCluster, validate_object
from testkit.platforms import NAMESPACE, core_api, operator_api, production_cr, templates, with_profile

UID = "6f1c1c3e-0000-4000-8000-000000000001"


def stored_body(name: str = "prod", generation: int = 1) -> dict[str, Any]:
    """A FloePlatform as the API server returns it: with uid and generation."""
    resource = production_cr(name)
    resource["metadata"].update(uid=UID, generation=generation)
    return resource


def platform() -> PlatformRef:
    return PlatformRef.from_body(stored_body())


def expected_templates(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    config = parse_platform(body["spec"], prefix=("spec",))
    rendered = render_pod_templates(config, platform_name=body["metadata"]["name"], namespace=NAMESPACE)
    return {template["metadata"]["name"]: template for template in rendered}


def assert_matches_renderer(live: dict[str, dict[str, Any]], body: dict[str, Any]) -> None:
    expected = expected_templates(body)
    assert sorted(live) == sorted(expected)
    for name, template in expected.items():
        assert live[name]["template"] == template["template"]
        assert live[name]["metadata"]["labels"] == template["metadata"]["labels"]
        assert live[name]["metadata"]["annotations"] == template["metadata"]["annotations"]
        owner = live[name]["metadata"]["ownerReferences"]
        assert owner == [
            {
                "apiVersion": "floe.dev/v1alpha1",
                "kind": "FloePlatform",
                "name": body["metadata"]["name"],
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        validate_object(live[name])


def versions(live: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: item["metadata"]["resourceVersion"] for name, item in live.items()}


def test_first_reconcile_creates_exactly_the_rendered_templates(kube_cluster: EmulatedCluster) -> None:
    core, api = core_api(kube_cluster), operator_api(kube_cluster)
    outcome = reconcile(api, stored_body())
    assert sorted(outcome.created) == ["prod-default", "prod-ingest", "prod-small", "prod-transform"]
    assert_matches_renderer(templates(core, "prod"), stored_body())


def test_reconcile_of_an_unchanged_spec_writes_nothing(kube_cluster: EmulatedCluster) -> None:
    core, api = core_api(kube_cluster), operator_api(kube_cluster)
    reconcile(api, stored_body())
    before = versions(templates(core, "prod"))
    outcome = reconcile(api, stored_body())
    assert not outcome.changed
    assert versions(templates(core, "prod")) == before


def test_changed_profile_patches_only_its_template(kube_cluster: EmulatedCluster) -> None:
    core, api = core_api(kube_cluster), operator_api(kube_cluster)
    reconcile(api, stored_body())
    before = versions(templates(core, "prod"))
    changed = with_profile(stored_body(), "ingest", limits={"cpu": "2", "memory": "3Gi"})
    outcome = reconcile(api, changed)
    assert outcome.patched == ["prod-ingest"]
    live = templates(core, "prod")
    assert_matches_renderer(live, changed)
    assert versions(live)["prod-default"] == before["prod-default"]


def test_removed_profile_deletes_its_podtemplate_but_not_a_hand_applied_one(
    kube_cluster: EmulatedCluster,
) -> None:
    core, api = core_api(kube_cluster), operator_api(kube_cluster)
    reconcile(api, stored_body())
    hand_applied = expected_templates(stored_body())["prod-default"]
    hand_applied["metadata"]["name"] = "prod-manual"
    core.create_namespaced_pod_template(NAMESPACE, hand_applied)  # our labels, no owner
    smaller = stored_body()
    del smaller["spec"]["infrastructure"]["resource_profiles"]["ingest"]
    outcome = reconcile(api, smaller)
    assert outcome.deleted == ["prod-ingest"]
    assert sorted(templates(core, "prod")) == ["prod-default", "prod-manual", "prod-small", "prod-transform"]


def test_removed_escalate_to_takes_its_annotation_off_the_template(kube_cluster: EmulatedCluster) -> None:
    """The launcher reads escalate_to from the PodTemplate's annotation, so a stale one would keep
    escalating runs after platform.yaml stopped saying so; someone else's annotation stays."""
    core, api = core_api(kube_cluster), operator_api(kube_cluster)
    laddered = with_profile(stored_body(), "default", escalate_to="transform")
    reconcile(api, laddered)
    assert templates(core, "prod")["prod-default"]["metadata"]["annotations"]["floe.dev/escalate-to"] == (
        "transform"
    )
    foreign = {"metadata": {"annotations": {"team": "x"}}}
    core.patch_namespaced_pod_template("prod-default", NAMESPACE, foreign)
    outcome = reconcile(api, stored_body())
    assert outcome.patched == ["prod-default"]
    annotations = templates(core, "prod")["prod-default"]["metadata"]["annotations"]
    assert "floe.dev/escalate-to" not in annotations
    assert annotations["team"] == "x"


def test_invalid_spec_raises_with_the_field_path_and_writes_nothing(kube_cluster: EmulatedCluster) -> None:
    core, api = core_api(kube_cluster), operator_api(kube_cluster)
    reconcile(api, stored_body())
    before = templates(core, "prod")
    broken = with_profile(stored_body(), "transform", limits={"cpu": "16", "memory": "12Gb"})
    broken["spec"]["infrastructure"]["resource_profiles"]["ingest"]["limits"]["memory"] = "3Gi"
    with pytest.raises(ConfigError) as raised:
        reconcile(api, broken)
    assert any(
        line.startswith("spec.infrastructure.resource_profiles.transform.limits.memory: '12Gb'")
        for line in raised.value.lines
    )
    assert templates(core, "prod") == before  # ingest's valid change was not half-applied either


def test_hand_edited_template_is_restored_and_foreign_labels_kept(kube_cluster: EmulatedCluster) -> None:
    core, api = core_api(kube_cluster), operator_api(kube_cluster)
    reconcile(api, stored_body())
    edit = {
        "metadata": {"labels": {"team": "data"}},
        "template": {"spec": {"containers": [{"name": "dagster", "image": "x", "resources": {}}]}},
    }
    core.patch_namespaced_pod_template("prod-transform", NAMESPACE, edit)
    desired = {t["metadata"]["name"]: t for t in desired_templates(stored_body()["spec"], platform())}
    assert not in_sync(desired["prod-transform"], templates(core, "prod")["prod-transform"])
    outcome = reconcile(api, stored_body())
    assert outcome.patched == ["prod-transform"]
    live = templates(core, "prod")
    assert live["prod-transform"]["metadata"]["labels"]["team"] == "data"
    live["prod-transform"]["metadata"]["labels"].pop("team")
    assert_matches_renderer(live, stored_body())


def test_deleted_template_is_recreated(kube_cluster: EmulatedCluster) -> None:
    core, api = core_api(kube_cluster), operator_api(kube_cluster)
    reconcile(api, stored_body())
    core.delete_namespaced_pod_template("prod-default", NAMESPACE)
    assert reconcile(api, stored_body()).created == ["prod-default"]
    assert_matches_renderer(templates(core, "prod"), stored_body())


def test_create_that_finds_the_object_already_there_patches_it(kube_cluster: EmulatedCluster) -> None:
    """A stale list (or another replica) loses the race to create: 409 AlreadyExists, then patch."""
    core, api = core_api(kube_cluster), operator_api(kube_cluster)
    stale = expected_templates(stored_body())["prod-transform"]
    stale["template"]["spec"]["containers"][0]["env"] = []
    stale["metadata"]["labels"]["floe.dev/platform"] = "someone-else"  # invisible to our label filter
    core.create_namespaced_pod_template(NAMESPACE, stale)
    outcome = reconcile(api, stored_body())
    assert outcome.patched == ["prod-transform"]
    assert_matches_renderer(templates(core, "prod"), stored_body())


def test_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    first = reconciled_status(None, 1, [], "2026-01-01T00:00:00Z")
    again = reconciled_status(first, 1, [], "2026-01-02T00:00:00Z")
    assert again == first
    broken = invalid_spec_status(again, 2, ["spec.x: wrong"], "2026-01-03T00:00:00Z")
    ready = broken["conditions"][0]
    assert (ready["status"], ready["reason"], ready["lastTransitionTime"]) == (
        "False",
        "InvalidSpec",
        "2026-01-03T00:00:00Z",
    )
    assert ready["message"].startswith("spec.x: wrong")
    assert broken["observedGeneration"] == 2


def test_invalid_spec_and_transient_errors_keep_the_last_good_profiles() -> None:
    from floe_platform.controller.plan import ProfileTemplate

    good = reconciled_status(None, 1, [ProfileTemplate("a", "p-a", "h1")], "t0")
    assert invalid_spec_status(good, 2, ["spec.x: y"], "t1")["profiles"] == good["profiles"]
    retrying = api_error_status(good, 2, "patch: HTTP 503", transient=True, timestamp="t1")
    assert retrying["conditions"][0]["status"] == "True"  # still serving the last good templates
    assert retrying["conditions"][1]["reason"] == "Retrying"
    failed = api_error_status(good, 2, "list: HTTP 403", transient=False, timestamp="t1")
    assert (failed["conditions"][0]["status"], failed["conditions"][0]["reason"]) == ("False", "ApiError")


def test_stale_cache_still_converges_without_duplicates(kube_cluster: EmulatedCluster) -> None:
    """The operator passes a watch-fed cache; one that lags behind the API must not break anything."""
    core, api = core_api(kube_cluster), operator_api(kube_cluster)
    reconcile(api, stored_body())
    gone = templates(core, "prod")["prod-ingest"]
    core.delete_namespaced_pod_template("prod-ingest", NAMESPACE)
    smaller = stored_body()
    del smaller["spec"]["infrastructure"]["resource_profiles"]["ingest"]
    outcome = reconcile(api, smaller, known=[gone])  # cache: only the deleted one; API: the other two
    assert (outcome.created, outcome.deleted) == ([], ["prod-ingest"])
    assert_matches_renderer(templates(core, "prod"), smaller)


def test_quantities_the_api_server_canonicalized_are_in_sync_but_a_changed_value_is_not() -> None:
    """A real API server returns "1000m" as "1" and "1024Mi" as "1Gi" (kmock keeps text as written)."""
    desired = {t["metadata"]["name"]: t for t in desired_templates(stored_body()["spec"], platform())}
    wanted = desired["prod-transform"]
    live = copy.deepcopy(wanted)
    resources = live["template"]["spec"]["containers"][0]["resources"]
    resources["requests"]["cpu"] = str(parse_quantity(resources["requests"]["cpu"]) * 1000) + "m"
    resources["limits"]["memory"] = str(parse_quantity(resources["limits"]["memory"]) // 1024**2) + "Mi"
    assert live != wanted
    assert in_sync(wanted, live)
    resources["limits"]["memory"] = "1Gi"
    assert not in_sync(wanted, live)
