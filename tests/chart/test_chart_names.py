"""Every name the chart generates fits its kind's limit for the longest release name Helm accepts.

Real helm v4 (`helm template`) renders the chart with a 53-character release name (ci/long-release-name-
values.yaml, plus variants that render every optional object); each object's name and labels are checked
against what Kubernetes enforces, including the names Kubernetes derives from them: a StatefulSet's pods
get the label `controller-revision-hash: <name>-<10 characters>` (so the name is at most 52, the limit in
kubernetes#64023), a Job's pods the label `job-name: <name>` (so at most 63). The same release installed
on the real kube-apiserver: tests/chart/test_chart_on_apiserver.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from chart_render import CI_DIR, Rendered, release_name, render, run_helm

from floe_platform.config.models import DNS_LABEL

LONG_VALUES = CI_DIR / "long-release-name-values.yaml"
LONG_RELEASE = release_name(LONG_VALUES)
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Kinds whose name becomes a label value or a DNS label (63), and the StatefulSet's own tighter limit.
LIMITS = {"StatefulSet": 52}
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
# A location name of 40 characters, the longest the values schema allows.
LONGEST_LOCATION = "l" * 40
VARIANTS = {
    "long-release-name": [LONG_VALUES],
    "three-profiles-own-s3-bucket-job": [CI_DIR / "three-profiles-values.yaml"],
    "cluster-wide": [CI_DIR / "cluster-wide-values.yaml"],
    # Every optional object at once: code locations (one with the longest name), the read-only webserver
    # and its Ingress, PodDisruptionBudgets, NetworkPolicies, the step executor's objects, the bucket Job.
    "every-optional-object": [
        CI_DIR / "three-profiles-values.yaml",
        CI_DIR / "several-locations-values.yaml",
        CI_DIR / "ingress-read-only-values.yaml",
        CI_DIR / "network-policy-values.yaml",
    ],
}
VARIANT_SETS = {
    "three-profiles-own-s3-bucket-job": ["computeLogBucketJob.enabled=true"],
    "every-optional-object": [
        "computeLogBucketJob.enabled=true",
        "dagster.stepJobs.enabled=true",
        f"userCode.locations[2].name={LONGEST_LOCATION}",
    ],
}
# Two releases of the longest length that differ only in their last character.
TWIN_RELEASES = (LONG_RELEASE, LONG_RELEASE[:-1] + chr(ord(LONG_RELEASE[-1]) + 1))


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def long_release(request: pytest.FixtureRequest) -> Rendered:
    name: str = request.param
    return render(VARIANTS[name], sets=VARIANT_SETS.get(name, ()), release=LONG_RELEASE)


def test_the_long_release_name_is_the_longest_helm_accepts() -> None:
    assert len(LONG_RELEASE) == 53
    refused = run_helm(["template", LONG_RELEASE + "x", str(CI_DIR.parent)])
    assert refused.returncode != 0
    assert "53" in refused.stderr


def _labels(doc: dict[str, Any]) -> dict[str, str]:
    labels = dict(doc["metadata"].get("labels") or {})
    template = (doc.get("spec") or {}).get("template") or {}
    labels.update((template.get("metadata") or {}).get("labels") or {})
    return labels


def test_every_object_name_fits_its_kinds_limit(long_release: Rendered) -> None:
    too_long = []
    for doc in long_release.docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind in CLUSTER_SCOPED:
            continue
        limit = LIMITS.get(kind, 63)
        if len(name) > limit or not DNS_LABEL.fullmatch(name):
            too_long.append(f"{kind}/{name} ({len(name)} > {limit})")
        if kind == "Service":
            assert DNS_1035.fullmatch(name), name
    assert too_long == []
    assert any(doc["kind"] == "StatefulSet" for doc in long_release.docs) or "cluster-wide" not in str(
        long_release.values
    )


def test_names_kubernetes_derives_stay_valid_label_values(long_release: Rendered) -> None:
    for doc in long_release.docs:
        name = doc["metadata"]["name"]
        if doc["kind"] == "StatefulSet":
            assert len(f"{name}-{'x' * 10}") <= 63, f"controller-revision-hash of {name}"
        if doc["kind"] == "Job":
            assert len(name) <= 63, f"job-name label of {name}"
        for key, value in _labels(doc).items():
            assert len(value) <= 63, f"{doc['kind']}/{name}: label {key}={value}"


def test_long_names_of_one_release_stay_distinct_and_keep_the_component(long_release: Rendered) -> None:
    names = [(doc["kind"], doc["metadata"]["name"]) for doc in long_release.docs]
    assert len(names) == len(set(names))
    statefulsets = long_release.of_kind("StatefulSet")
    for sts in statefulsets:
        assert sts["metadata"]["name"].endswith("-postgresql")
        assert sts["spec"]["serviceName"].endswith("-postgresql-headless")


@pytest.mark.parametrize("variant", ["every-optional-object", "cluster-wide"])
def test_two_long_releases_differing_only_at_the_end_share_no_object_name(variant: str) -> None:
    """Installed side by side in one namespace, no object of one release may take the name of the
    other's: each name the chart shortens keeps a hash of the whole release name. Not generated: the CRD
    (one per cluster) and the FloePlatform (named by platform.yaml's platform.name)."""
    first, second = (
        render(VARIANTS[variant], VARIANT_SETS.get(variant, ()), release) for release in TWIN_RELEASES
    )
    names = []
    for rendered in (first, second):
        named = {(doc["kind"], doc["metadata"]["name"]) for doc in rendered.docs}
        named -= {
            (kind, name) for kind, name in named if kind in {"CustomResourceDefinition", "FloePlatform"}
        }
        for kind, name in named:
            assert len(name) <= LIMITS.get(kind, 63), f"{kind}/{name}"
        names.append(named)
    assert len(names[0]) == len(names[1]) > 20
    assert names[0].isdisjoint(names[1]), sorted(names[0] & names[1])


def test_the_longest_location_name_keeps_its_name_whole() -> None:
    rendered = render(
        VARIANTS["every-optional-object"], VARIANT_SETS["every-optional-object"], release=LONG_RELEASE
    )
    assert any(
        doc["metadata"]["name"].endswith(f"-code-{LONGEST_LOCATION}") for doc in rendered.of_kind("Service")
    )


def test_short_release_names_are_unchanged() -> None:
    """Names that already fit keep today's form, so an upgrade renames nothing."""
    rendered = render()
    assert rendered.named("StatefulSet", "postgresql")["metadata"]["name"] == "floe-floe-platform-postgresql"
    assert rendered.named("Deployment", "webserver")["metadata"]["name"] == "floe-floe-platform-webserver"


# What earlier charts (before every shortened name carried a hash) named PostgreSQL's objects for long
# releases: an upgrade must keep these, or the new StatefulSet would start on an empty volume and a new
# password. Other objects of releases longer than 36 characters are renamed once (README, Upgrade).
EARLIER_POSTGRESQL_NAMES = {
    37: ("9b973", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    45: ("9a407", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    53: ("2618f", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
}


@pytest.mark.parametrize("length", sorted(EARLIER_POSTGRESQL_NAMES))
def test_postgresql_keeps_the_names_earlier_charts_gave_long_releases(length: int) -> None:
    digest, head = EARLIER_POSTGRESQL_NAMES[length]
    rendered = render(release="a" * length)
    names = {
        (doc["kind"], doc["metadata"]["name"])
        for doc in rendered.docs
        if doc["kind"] in {"StatefulSet", "Secret", "Service"} and "postgresql" in doc["metadata"]["name"]
    }
    assert names == {
        ("StatefulSet", f"{head}-{digest}-postgresql"),
        ("Secret", f"{head}-{digest}-postgresql"),
        ("Service", f"{head}-{digest}-postgresql"),
        ("Service", f"{head}aa-{digest}-postgresql-headless"),
    }
