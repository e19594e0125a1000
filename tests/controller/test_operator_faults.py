"""The operator converges through API faults on the real control plane, as the chart's operator account.

Real: kube-apiserver v1.37 and etcd (storage, defaulting, canonical quantities, RBAC on the operator's
TokenRequest token), kube-controller-manager; the chart's CRD and operator ServiceAccount, Role and
RoleBinding as the real `helm template` renders them; the real `floe operator` process (kopf).
Between the operator and kube-apiserver sits ``testkit.faultproxy``: it forwards every request unchanged
(the token too, so the server authorizes the operator) except those a ``FaultPlan`` rule picks, which it
answers itself with a 5xx or 409, an expired watch (ERROR 410), a reset connection, an answer lost after
the server acted, or late. The test's own set-up and reads go straight to kube-apiserver as admin, out of
reach of the faults. What the proxy cannot show: the server's own throttling (APF) or a watch cut in the
middle of a stream. The final state is what is checked: every profile's PodTemplate as the server stores the
renderer's output (its profile hash and every rendered field), nothing else with our labels, every
FloePlatform Ready for its latest generation. kwok's nodes play no part here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from floe_platform.config import parse_platform
from floe_platform.render import HASH_ANNOTATION, render_pod_templates
from floe_platform.render.podtemplate import PLATFORM_LABEL
from testkit.controlplane import ControlPlane, KubeApi, wait_for
from testkit.faultproxy import Action, FaultProxy
from testkit.faults import FaultInjector, FaultPlan, Rule
from testkit.operator_on_apiserver import (
    FP,
    OPERATOR_SA,
    apply_crd,
    apply_operator_rbac,
    contains,
    kubectl,
)
from testkit.operator_process import OperatorProcess
from testkit.platforms import floe_platform, platform_spec, profile_spec

pytestmark = pytest.mark.slow  # a real operator process on the control plane, through injected faults

CONVERGE_SECONDS = 90
# kopf's import and start-up alone took over 60 s once, with the 2 shared cores at a load average of 20.
START_SECONDS = 180
RESYNC_SECONDS = 2
WRITES = frozenset({"CREATE", "UPDATE"})
Json = dict[str, Any]


@dataclass
class Faulty:
    """A namespace with the chart's operator RBAC, and the operator (not yet started) behind the proxy."""

    plane: ControlPlane
    admin: KubeApi
    ns: str
    proxy: FaultProxy
    operator: OperatorProcess

    def create(self, platforms: dict[str, Json]) -> None:
        for name, spec in platforms.items():
            self.admin.create(FP.format(ns=self.ns), floe_platform(name, spec))

    def patch_spec(self, name: str, spec: Json) -> None:
        patch = json.dumps({"spec": spec})
        kubectl(self.plane, "patch", "fp", name, "-n", self.ns, "--type=merge", "-p", patch)

    def templates(self) -> list[Json]:
        items: list[Json] = self.admin.get(f"/api/v1/namespaces/{self.ns}/podtemplates")["items"]
        return items

    def problems(self, platforms: dict[str, Json]) -> list[str]:
        """How the stored PodTemplates and FloePlatform statuses differ from converged (empty: converged)."""
        expected = {
            template["metadata"]["name"]: template
            for name, spec in platforms.items()
            for template in render_pod_templates(parse_platform(spec), platform_name=name, namespace=self.ns)
        }
        ours = {
            t["metadata"]["name"]: t
            for t in self.templates()
            if PLATFORM_LABEL in t["metadata"].get("labels", {})
        }
        problems = [f"missing {name}" for name in sorted(set(expected) - set(ours))]
        problems += [f"extra {name}" for name in sorted(set(ours) - set(expected))]
        for name in sorted(set(ours) & set(expected)):
            live, rendered = ours[name], expected[name]
            if (
                live["metadata"]["annotations"][HASH_ANNOTATION]
                != rendered["metadata"]["annotations"][HASH_ANNOTATION]
            ):
                problems.append(f"{name}: stale profile hash")
            problems += [f"{name}{p}" for p in contains(live["template"], rendered["template"])]
        for name in platforms:
            resource = self.admin.get(f"{FP.format(ns=self.ns)}/{name}")
            status = resource.get("status") or {}
            ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
            if (
                status.get("observedGeneration") != resource["metadata"]["generation"]
                or ready.get("status") != "True"
            ):
                problems.append(
                    f"{name} not Ready for generation {resource['metadata']['generation']}: {status}"
                )
        return problems

    def assert_converges(self, platforms: dict[str, Json]) -> None:
        try:
            wait_for(
                "convergence", lambda: True if not self.problems(platforms) else None, CONVERGE_SECONDS, 0.5
            )
        except TimeoutError:
            pytest.fail(f"{self.problems(platforms)}\n{self.operator.log_tail()}")


@pytest.fixture(scope="module")
def crd(control_plane: ControlPlane) -> None:
    apply_crd(control_plane)


@pytest.fixture
def faulty(
    control_plane: ControlPlane,
    crd: None,
    control_plane_namespace: str,
    fault_proxy: FaultProxy,
    tmp_path: Path,
) -> Iterator[Faulty]:
    ns = control_plane_namespace
    apply_operator_rbac(control_plane, ns)
    kubeconfig = fault_proxy.service_account_kubeconfig(ns, OPERATOR_SA, tmp_path / "operator.kubeconfig")
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", ("--namespace", ns), RESYNC_SECONDS)
    try:
        yield Faulty(control_plane, control_plane.admin_api(), ns, fault_proxy, operator)
    finally:
        operator.stop()
        print(f"\n--- operator log (tail)\n{operator.log_tail(15)}")


def test_operator_converges_through_5xx_409_expired_watches_resets_lost_answers_and_slow_answers(
    faulty: Faulty,
) -> None:
    """Four platforms of three profiles, then a changed profile, all through a bounded storm of faults."""
    plan = FaultPlan(
        [
            Rule("podtemplate-write-503", WRITES, "podtemplates", status=503, times=4, every=2),
            Rule("podtemplate-write-500", WRITES, "podtemplates", status=500, times=2, every=3),
            Rule("podtemplate-patch-409", frozenset({"UPDATE"}), "podtemplates", status=409, times=2),
            Rule("podtemplate-list-504", frozenset({"LIST"}), "podtemplates", status=504, times=2, every=2),
            Rule("floeplatform-watch-410", frozenset({"WATCH"}), "floeplatforms", expire_watch=True, times=2),
            Rule(
                "podtemplate-create-reset",
                frozenset({"CREATE"}),
                "podtemplates",
                reset=True,
                times=2,
                every=3,
            ),
            Rule("podtemplate-create-lost", frozenset({"CREATE"}), "podtemplates", lose_answer=True, times=2),
            Rule("podtemplate-slow", WRITES, "podtemplates", delay=1.5, times=3),
        ]
    )
    faulty.proxy.fault_hook = plan
    faulty.operator.running(START_SECONDS)
    platforms = {f"team-{index}": platform_spec(3) for index in range(4)}
    faulty.create(platforms)
    # A spec change (one profile's limits) must also get through the faults.
    platforms["team-0"]["infrastructure"]["resource_profiles"]["p1"] = profile_spec(1, memory_mib=2048)
    time.sleep(1)
    faulty.patch_spec("team-0", platforms["team-0"])
    faulty.assert_converges(platforms)
    fired = {rule.name for rule in plan.rules if plan.fired[rule.name]}
    print(f"\nfaults fired: {dict(plan.fired)}")
    assert {
        "podtemplate-write-503",
        "floeplatform-watch-410",
        "podtemplate-create-reset",
        "podtemplate-create-lost",
        "podtemplate-slow",
    } <= fired, plan.fired
    # A lost answer means the server did create the template: the operator's retry met 409 AlreadyExists.
    lost = [e for e in faulty.proxy.exchanges if e.injected and e.served is not None]
    assert [e.served for e in lost] == [201] * len(lost)


def test_injected_500_and_409_on_template_patches_are_retried_until_the_state_converges(
    faulty: Faulty,
) -> None:
    faulty.operator.running(START_SECONDS)
    platforms = {"faults": platform_spec(2)}
    faulty.create(platforms)
    faulty.assert_converges(platforms)
    faults = FaultInjector(faulty.proxy)
    faults.fail_next("UPDATE", "podtemplates", 500, 409)
    platforms["faults"]["infrastructure"]["resource_profiles"]["p0"] = profile_spec(0, memory_mib=3072)
    faulty.patch_spec("faults", platforms["faults"])
    faulty.assert_converges(platforms)
    assert [status for _, _, status in faults.served] == [500, 409]


def test_resync_of_an_unchanged_platform_makes_no_podtemplate_request(faulty: Faulty) -> None:
    """The resync compares against the operator's watch-fed index, so a steady state costs no request at
    all: not a write (the stored resourceVersions stay) and not a read (the proxy sees every request)."""
    faulty.operator.running(START_SECONDS)
    platforms = {"steady": platform_spec(3)}
    faulty.create(platforms)
    faulty.assert_converges(platforms)
    before = {t["metadata"]["name"]: t["metadata"]["resourceVersion"] for t in faulty.templates()}

    def resyncs() -> int:
        return faulty.operator.log_path.read_text().count("Resync: ")

    seen, start = resyncs(), len(faulty.proxy.exchanges)
    wait_for("two resyncs", lambda: True if resyncs() >= seen + 2 else None, 20)
    during = [e.request for e in faulty.proxy.exchanges[start:]]
    calls = [(r.action, r.attributes.resource) for r in during if r.action is not Action.WATCH]
    assert not [call for call in calls if call[1] == "podtemplates"], calls
    assert {t["metadata"]["name"]: t["metadata"]["resourceVersion"] for t in faulty.templates()} == before


def test_a_write_the_role_does_not_allow_ends_in_an_api_error_status_and_a_warning(faulty: Faulty) -> None:
    """A real 403, from kube-apiserver's RBAC: the operator's Role without ``create`` on PodTemplates. The
    refusal is permanent (no retry storm): Ready False with reason ApiError naming the call, and a Warning
    event saying the same."""
    role_path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{faulty.ns}/roles/{OPERATOR_SA}"
    role = faulty.admin.get(role_path)
    for rule in role["rules"]:
        if "podtemplates" in rule["resources"]:
            rule["verbs"] = [verb for verb in rule["verbs"] if verb != "create"]
    faulty.admin.request("PUT", role_path, role)
    faulty.operator.running(START_SECONDS)
    faulty.create({"refused": platform_spec(1)})

    def refused() -> Json | None:
        status = faulty.admin.get(f"{FP.format(ns=faulty.ns)}/refused").get("status") or {}
        ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
        return ready if ready.get("reason") == "ApiError" else None

    ready: Json = wait_for("the ApiError status", refused, 60)
    assert ready["status"] == "False"
    assert f"create PodTemplate {faulty.ns}/refused-p0: HTTP 403" in ready["message"]
    selector = "involvedObject.name%3Drefused,type%3DWarning"
    events = faulty.admin.get(f"/api/v1/namespaces/{faulty.ns}/events?fieldSelector={selector}")["items"]
    assert any(e["reason"] == "ApiError" and "HTTP 403" in e["message"] for e in events), events
    assert faulty.templates() == []
    refusals = [e for e in faulty.proxy.exchanges if e.request.action is Action.CREATE and e.status == 403]
    assert refusals, "the 403 came from the real server through the proxy, not from a fault rule"
    assert not any(e.injected for e in faulty.proxy.exchanges)
