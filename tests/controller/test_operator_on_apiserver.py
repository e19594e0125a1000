"""`floe operator` against the real control plane, as the chart's operator ServiceAccount.

Real: kube-apiserver v1.37 (the CRD's structural schema, CEL rules and pruning, strict field validation,
defaulting and canonical quantities, RBAC on a TokenRequest token, LimitRanger and ResourceQuota
admission), etcd, kube-controller-manager (its garbage collector follows the templates' ownerReferences)
and kube-scheduler; the real kubectl. The operator is the real `floe operator` process (kopf). The chart's
CRD, operator ServiceAccount, Role and RoleBinding are what `helm template` renders, applied by the admin;
the operator never uses the admin identity. kwok fakes the nodes; no pod runs here except the one
LimitRanger refuses, which never gets that far.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from floe_platform.config import ConfigError, parse_platform
from floe_platform.config.quantity import parse_quantity
from floe_platform.render import render_guardrails, render_pod_templates
from floe_platform.render.podtemplate import PLATFORM_LABEL
from testkit.controlplane import ApiError, ControlPlane, KubeApi, wait_for, write_service_account_kubeconfig
from testkit.operator_on_apiserver import (
    FP,
    OPERATOR_SA,
    PRODUCTION,
    apply_crd,
    apply_operator_rbac,
    contains,
    floe_cr,
    kubectl,
)
from testkit.operator_process import OperatorProcess
from testkit.platforms import pod_shape_profile

pytestmark = pytest.mark.slow

CORPUS = sorted((Path(__file__).parent / "bad_floeplatforms").glob("*.yaml"))
Json = dict[str, Any]


@dataclass
class Setup:
    plane: ControlPlane
    api: KubeApi  # admin, for reading back and set-up
    ns: str
    operator: OperatorProcess

    def fp(self, name: str) -> Json:
        return self.api.get(f"{FP.format(ns=self.ns)}/{name}")

    def templates(self) -> list[Json]:
        items: list[Json] = self.api.get(f"/api/v1/namespaces/{self.ns}/podtemplates")["items"]
        return items

    def ready(self, name: str) -> Json:
        conditions = (self.fp(name).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Ready"), {})

    def wait_ready(self, name: str, timeout: float = 60) -> None:
        wait_for(f"{name} Ready", lambda: True if self.ready(name).get("status") == "True" else None, timeout)

    def wait_refused(self, name: str, timeout: float = 60) -> Json:
        """The Ready condition once the operator has given one a reason."""
        return wait_for(
            f"{name} judged", lambda: self.ready(name) if self.ready(name).get("reason") else None, timeout
        )


@pytest.fixture(scope="module")
def crd(control_plane: ControlPlane) -> None:
    """The chart's CRD, applied once per module (each change makes the server re-initialise its storage)."""
    apply_crd(control_plane)


@pytest.fixture
def setup(
    control_plane: ControlPlane, crd: None, control_plane_namespace: str, tmp_path: Path
) -> Iterator[Setup]:
    """The chart's operator RBAC in a fresh namespace and `floe operator -n NS` running with its token."""
    ns = control_plane_namespace
    apply_operator_rbac(control_plane, ns)
    kubeconfig = write_service_account_kubeconfig(
        control_plane, ns, OPERATOR_SA, tmp_path / "operator.kubeconfig"
    )
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", ("--namespace", ns), resync_seconds=2)
    operator.running()
    try:
        yield Setup(control_plane, control_plane.admin_api(), ns, operator)
    finally:
        operator.stop()
        print(f"\n--- operator log (tail)\n{operator.log_tail(15)}")


# --- tests -------------------------------------------------------------------------------------------


def test_floe_cr_piped_to_kubectl_apply_gets_the_rendered_podtemplates_as_the_server_stores_them(
    setup: Setup,
) -> None:
    """`floe cr … | kubectl apply -f -`; the operator (own token) writes one PodTemplate per profile, and
    what kube-apiserver stored (defaulted, quantities made canonical) contains the renderer's output."""
    kubectl(setup.plane, "apply", "-f", "-", stdin=floe_cr("prod", setup.ns))
    setup.wait_ready("prod", 60)
    config = parse_platform(yaml.safe_load(PRODUCTION.read_text()))
    rendered = {
        t["metadata"]["name"]: t
        for t in render_pod_templates(config, platform_name="prod", namespace=setup.ns)
    }
    live = {t["metadata"]["name"]: t for t in setup.templates()}
    assert sorted(live) == sorted(rendered) == ["prod-default", "prod-ingest", "prod-small", "prod-transform"]
    uid = setup.fp("prod")["metadata"]["uid"]
    for name, template in rendered.items():
        stored = live[name]
        assert (
            contains(stored["metadata"], {k: template["metadata"][k] for k in ("labels", "annotations")})
            == []
        )
        assert contains(stored["template"], template["template"]) == [], name
        assert [(r["uid"], r["controller"]) for r in stored["metadata"]["ownerReferences"]] == [(uid, True)]
    # The server really did canonicalise and default: the comparison above was not one of equal texts.
    container = live["prod-transform"]["template"]["spec"]["containers"][0]
    assert container["terminationMessagePolicy"] == "File"  # a server default the renderer does not write
    status = setup.fp("prod")["status"]
    assert status["profileNames"] == "default,ingest,small,transform"
    assert status["observedGeneration"] == 1

    # The printer columns, as kubectl prints them.
    table = kubectl(setup.plane, "get", "fp", "-n", setup.ns).stdout
    print(f"\n$ kubectl get fp\n{table}")
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "PROFILES", "READY", "REASON", "AGE"]
    assert row.split()[:4] == ["prod", "default,ingest,small,transform", "True", "Reconciled"]

    # A resync of an unchanged platform writes nothing, though the stored text differs from the rendered.
    before = {name: t["metadata"]["resourceVersion"] for name, t in live.items()}

    def resyncs() -> int:
        return setup.operator.log_path.read_text().count("Resync: ")

    seen = resyncs()
    wait_for("two resyncs", lambda: True if resyncs() >= seen + 2 else None, 20)
    assert {t["metadata"]["name"]: t["metadata"]["resourceVersion"] for t in setup.templates()} == before


def test_kubectl_explain_shows_the_field_descriptions(control_plane: ControlPlane, crd: None) -> None:
    """kube-apiserver publishes the CRD's schema as OpenAPI v3; the real `kubectl explain` reads it."""
    # kubectl's discovery may lag a CRD that has just become Established: ask until it knows `fp`.
    explained = wait_for(
        "kubectl to discover fp",
        lambda: (
            kubectl(control_plane, "explain", "fp.spec.infrastructure", check=False).returncode == 0 or None
        ),
        30,
        interval=1,
    )
    assert explained
    text = kubectl(control_plane, "explain", "fp.spec.infrastructure").stdout
    print(f"\n$ kubectl explain fp.spec.infrastructure\n{text}")
    flat = " ".join(text.split())
    assert "DESCRIPTION: Where and how Dagster runs execute." in flat
    assert "resource_profiles <map[string]Object> -required-" in flat
    assert "Named resource profiles; each becomes one PodTemplate named <platform>-<profile>." in flat
    deep = " ".join(
        kubectl(control_plane, "explain", "fp.spec.infrastructure.resource_profiles.limits").stdout.split()
    )
    assert "The most the pod may use (memory at least 64Mi)" in deep


@dataclass(frozen=True)
class Outcome:
    case: str
    refused_by: str  # "kube-apiserver: ..." or "floe operator"
    message: str


def _expect(path: Path) -> tuple[Json, str]:
    first, _ = path.read_text().split("\n", 1)
    return yaml.safe_load(path.read_text()), first.removeprefix("# expect: ")


def _api_layer(stderr: str) -> str:
    if "strict decoding error" in stderr:
        return "kube-apiserver: strict field validation"
    if (
        "Required value" in stderr
        or "must be of type" in stderr
        or "should match" in stderr
        or "should have" in stderr
    ):
        return "kube-apiserver: OpenAPI schema"
    return "kube-apiserver: CEL rule"


def _api_message(stderr: str) -> str:
    """kubectl's error without the file name and CEL's "other rules not checked" note: the field and what."""
    lines = [
        line.lstrip("* ")
        for line in stderr.strip().splitlines()
        if "validation rules were not checked" not in line
    ]
    text = " ".join(lines)
    text = re.sub(r'^Error from server \(BadRequest\): error when creating "[^"]+": ', "", text)
    return re.sub(r"^The FloePlatform \"[a-z-]+\" is invalid: ", "", text)


# Which line of defence refuses each case, and with what (part of) message. The API server comes first;
# the operator sees only what it admits.
EXPECTED_LAYER = {
    "01-spec-missing.yaml": ("kube-apiserver: OpenAPI schema", "spec: Required value"),
    "02-spec-not-a-mapping.yaml": (
        "kube-apiserver: OpenAPI schema",
        'spec in body must be of type object: "array"',
    ),
    "03-memory-gb-suffix.yaml": (
        "kube-apiserver: OpenAPI schema",
        'spec.infrastructure.resource_profiles.transform.requests.memory: Invalid value: "4Gb"',
    ),
    "04-request-above-limit.yaml": (
        "kube-apiserver: CEL rule",
        "resource_profiles[transform].limits.memory: Invalid value: "
        "requests.memory must not exceed limits.memory",
    ),
    "05-duckdb-memory-at-limit.yaml": ("floe operator", ""),
    "06-profile-name-uppercase.yaml": (
        "kube-apiserver: CEL rule",
        "profile names must be at most 63 lowercase",
    ),
    "07-limits-typo.yaml": (
        "kube-apiserver: strict field validation",
        'unknown field "spec.infrastructure.resource_profiles.transform.limit"',
    ),
    "08-one-good-one-bad-profile.yaml": (
        "kube-apiserver: OpenAPI schema",
        'resource_profiles.bad.limits.cpu: Invalid value: "two"',
    ),
    "09-threads-zero.yaml": (
        "kube-apiserver: CEL rule",
        "env: Invalid value: DUCKDB_THREADS must be a positive whole number of threads (1 to 1024)",
    ),
    "10-unknown-spec-section.yaml": (
        "kube-apiserver: strict field validation",
        'unknown field "spec.orchestration"',
    ),
    "11-no-profiles.yaml": (
        "kube-apiserver: OpenAPI schema",
        "resource_profiles in body should have at least 1 properties",
    ),
    "12-inline-credentials.yaml": (
        "kube-apiserver: strict field validation",
        'unknown field "spec.storage.lake.secret_access_key"',
    ),
    # An escalation ladder spans profiles; only the operator's models check it, as `floe validate` does.
    "13-escalate-to-cycle.yaml": ("floe operator", "the ladder small -> transform -> small is a cycle"),
    "14-escalate-to-unknown.yaml": ("floe operator", "'huge' is not a profile (profiles: small, transform)"),
}


def test_bad_floeplatforms_are_refused_by_the_api_server_first_and_the_operator_after(setup: Setup) -> None:
    """Every file of the bad-FloePlatform corpus through `kubectl apply` (strict field validation, its
    default): kube-apiserver refuses what the CRD's schema, CEL rules and strict decoding can see; the
    operator refuses the rest with InvalidSpec, a Warning event and no PodTemplate. A good FloePlatform goes
    alongside, so "no PodTemplate" cannot pass merely because the operator did nothing."""
    assert sorted(EXPECTED_LAYER) == [path.name for path in CORPUS]
    outcomes: list[Outcome] = []
    operator_cases: dict[str, str] = {}
    for path in CORPUS:
        resource, expected = _expect(path)
        done = kubectl(setup.plane, "apply", "-n", setup.ns, "-f", str(path), check=False)
        if done.returncode != 0:
            outcomes.append(Outcome(path.name, _api_layer(done.stderr), _api_message(done.stderr)))
        else:
            operator_cases[resource["metadata"]["name"]] = expected
            outcomes.append(Outcome(path.name, "floe operator", expected))
    kubectl(setup.plane, "apply", "-f", "-", stdin=floe_cr("good", setup.ns))
    for name, expected in operator_cases.items():
        ready = setup.wait_refused(name, 60)
        assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec"), ready
        assert expected in ready["message"], ready["message"]
        selector = f"involvedObject.name%3D{name},type%3DWarning"
        events = setup.api.get(f"/api/v1/namespaces/{setup.ns}/events?fieldSelector={selector}")["items"]
        assert any(e["reason"] == "InvalidSpec" and expected in e["message"] for e in events), events
    setup.wait_ready("good", 60)
    platforms = {(t["metadata"].get("labels") or {}).get(PLATFORM_LABEL) for t in setup.templates()}
    assert platforms == {"good"}

    lines = ["| File | Refused by | Message (last line) |", "| --- | --- | --- |"]
    lines += [f"| `{o.case}` | {o.refused_by} | {o.message} |" for o in outcomes]
    print("\n" + "\n".join(lines))
    for outcome in outcomes:
        layer, text = EXPECTED_LAYER[outcome.case]
        assert outcome.refused_by == layer, outcome
        assert text in outcome.message, outcome


def test_without_strict_field_validation_unknown_keys_are_pruned_before_the_operator_sees_them(
    setup: Setup,
) -> None:
    """kube-apiserver prunes unknown fields when the client does not ask for strict validation
    (`kubectl apply --validate=false`, most client libraries). The three strict-validation cases then part
    ways: the typo `limit` leaves the required `limits` missing (refused by the schema); an unknown section
    and an inline secret are dropped before storage, so the operator never sees them and the platform is
    Ready (the secret is not kept in etcd)."""
    typo = kubectl(
        setup.plane, "apply", "--validate=false", "-n", setup.ns, "-f", str(CORPUS[6]), check=False
    )
    assert typo.returncode != 0
    assert "spec.infrastructure.resource_profiles.transform.limits: Required value" in typo.stderr
    for path, name, dropped in (
        (CORPUS[9], "unknown-section", "orchestration"),
        (CORPUS[11], "inline-creds", ""),
    ):
        kubectl(setup.plane, "apply", "--validate=false", "-n", setup.ns, "-f", str(path))
        setup.wait_ready(name, 60)
        spec = setup.fp(name)["spec"]
        if dropped:
            assert dropped not in spec
        else:
            assert spec["storage"]["lake"] == {"endpoint": "http://s3:9000"}


def test_crd_duckdb_threads_rule_agrees_with_the_models(
    control_plane: ControlPlane, crd: None, control_plane_namespace: str
) -> None:
    """The CRD's CEL rule on DUCKDB_THREADS, run by kube-apiserver in server-side dry runs, accepts exactly
    what the models accept."""
    resource, _ = _expect(CORPUS[8])  # 09-threads-zero
    for value in ["0", "1", "4", "05", "+4", "-1", "1024", "1025", " 4", "4.0", "abc", "", "٣"]:
        resource["spec"]["infrastructure"]["resource_profiles"]["transform"]["env"]["DUCKDB_THREADS"] = value
        try:
            parse_platform(resource["spec"])
            models = True
        except ConfigError:
            models = False
        done = kubectl(
            control_plane,
            "apply",
            "--dry-run=server",
            "-n",
            control_plane_namespace,
            "-f",
            "-",
            stdin=json.dumps(resource),
            check=False,
        )
        assert (done.returncode == 0) == models, (value, models, done.stderr)


def test_deleting_a_floeplatform_needs_no_operator_the_garbage_collector_removes_its_podtemplates(
    setup: Setup,
) -> None:
    """The operator puts no finalizer on a FloePlatform, so deleting one never waits for the operator: with
    the operator stopped (SIGKILL), the FloePlatform goes at once, and kcm's garbage collector deletes its
    PodTemplates, which carry an ownerReference to it (the operator deletes none itself)."""
    kubectl(setup.plane, "apply", "-f", "-", stdin=floe_cr("doomed", setup.ns))
    setup.wait_ready("doomed", 60)
    assert not setup.fp("doomed")["metadata"].get("finalizers")
    assert len(setup.templates()) == 4
    setup.operator.kill()
    try:
        kubectl(setup.plane, "delete", "fp", "doomed", "-n", setup.ns, "--wait=true", "--timeout=30s")
        wait_for("the garbage collector", lambda: True if not setup.templates() else None, 30)
    finally:
        setup.operator.running()
    log = setup.operator.log_path.read_text()
    assert "deleted ['doomed-" not in log  # kcm did it, not the operator


def test_the_finalizer_of_an_earlier_operator_is_removed(setup: Setup) -> None:
    """Earlier versions of the operator put the finalizer ``floe.dev/operator`` on every FloePlatform. The
    operator removes it (a PATCH as its ServiceAccount, which the chart's Role must allow) and reconciles."""
    resource = json.loads(json.dumps(yaml.safe_load(floe_cr("marked", setup.ns))))
    resource["metadata"]["finalizers"] = ["floe.dev/operator"]
    kubectl(setup.plane, "apply", "-f", "-", stdin=json.dumps(resource))
    setup.wait_ready("marked", 60)
    wait_for(
        "the old finalizer gone",
        lambda: True if not setup.fp("marked")["metadata"].get("finalizers") else None,
        30,
    )
    kubectl(setup.plane, "delete", "fp", "marked", "-n", setup.ns, "--wait=true", "--timeout=30s")


def test_sigkilled_operator_converges_after_restart_without_duplicates(setup: Setup) -> None:
    """SIGKILL while several FloePlatforms are being reconciled, then a restart: kopf resumes each, every
    write is idempotent against the real server, and the result is exactly one template per profile."""
    names = [f"p{i}" for i in range(16)]
    # The operator keeps up with kubectl's creates, so it starts on a backlog of all of them at once, and is
    # killed at its first template.
    setup.operator.kill()
    kubectl(setup.plane, "apply", "-f", "-", stdin="---\n".join(floe_cr(name, setup.ns) for name in names))
    setup.operator.start()
    wait_for("the first template", lambda: True if setup.templates() else None, 60, interval=0.02)
    setup.operator.kill()
    written_at_kill = len(setup.templates())
    setup.operator.running()
    for name in names:
        setup.wait_ready(name, 90)
    config = parse_platform(yaml.safe_load(PRODUCTION.read_text()))
    expected = {
        t["metadata"]["name"]: t
        for name in names
        for t in render_pod_templates(config, platform_name=name, namespace=setup.ns)
    }
    live = setup.templates()
    print(f"\n{written_at_kill} of {len(expected)} templates were written when the operator was killed")
    assert written_at_kill < len(expected)  # it really was mid-reconcile
    assert sorted(t["metadata"]["name"] for t in live) == sorted(expected)
    for template in live:
        assert contains(template["template"], expected[template["metadata"]["name"]]["template"]) == []
        assert len(template["metadata"]["ownerReferences"]) == 1


def test_namespace_limits_apply_and_limitranger_refuses_a_pod_above_the_maximum(
    setup: Setup, tmp_path: Path
) -> None:
    """`namespace_limits.enabled`: the operator writes the LimitRange and ResourceQuota (its Role allows it);
    kube-apiserver's LimitRanger admission then refuses a pod whose container asks for more than the maximum,
    and admits one within it."""
    platform = yaml.safe_load(PRODUCTION.read_text())
    platform["infrastructure"]["namespace_limits"] = {"enabled": True, "concurrent_runs": 2}
    source = tmp_path / "platform.yaml"
    source.write_text(yaml.safe_dump(platform))
    kubectl(setup.plane, "apply", "-f", "-", stdin=floe_cr("guarded", setup.ns, source))
    setup.wait_ready("guarded", 60)
    config = parse_platform(platform)
    rendered = {g["kind"]: g for g in render_guardrails(config, "guarded", setup.ns)}
    limit_range = setup.api.get(f"/api/v1/namespaces/{setup.ns}/limitranges/guarded-limits")
    quota = setup.api.get(f"/api/v1/namespaces/{setup.ns}/resourcequotas/guarded-quota")
    assert contains(limit_range["spec"], rendered["LimitRange"]["spec"]) == []
    assert contains(quota["spec"], rendered["ResourceQuota"]["spec"]) == []
    assert setup.fp("guarded")["status"]["namespaceLimits"] == [
        {"kind": "LimitRange", "name": "guarded-limits"},
        {"kind": "ResourceQuota", "name": "guarded-quota"},
    ]
    maximum = limit_range["spec"]["limits"][0]["max"]["memory"]
    too_big = parse_quantity(maximum) * 2

    def pod(name: str, memory: str) -> Json:
        resources = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": memory}}
        container = {"name": "dagster", "image": "example.invalid/never-pulled:1", "resources": resources}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"containers": [container]},
        }

    pods = f"/api/v1/namespaces/{setup.ns}/pods"
    with pytest.raises(ApiError) as refused:
        setup.api.create(pods, pod("too-big", str(int(too_big))))
    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    print(f"\nLimitRanger: {message}")
    assert f"maximum memory usage per Container is {maximum}" in message
    setup.api.create(pods, pod("fits", "1Gi"))


def test_a_profile_using_every_pod_shape_field_round_trips_through_the_server(
    setup: Setup, tmp_path: Path
) -> None:
    """`floe cr | kubectl apply` (strict field validation) of a profile with extended resources, ephemeral
    storage, affinity, priority class, topology spread, env_from, pod annotations and labels and extra
    volumes: the CRD keeps every field (nothing pruned), the operator's PodTemplate is accepted by
    kube-apiserver's own PodTemplate validation and contains the renderer's output, and resyncs leave it
    untouched (the server's canonical form is not mistaken for a change)."""
    platform = {
        "version": 1,
        "platform": {"name": "shape"},
        "infrastructure": {"resource_profiles": {"gpu": pod_shape_profile()}},
    }
    source = tmp_path / "platform.yaml"
    source.write_text(yaml.safe_dump(platform))
    kubectl(setup.plane, "apply", "-f", "-", stdin=floe_cr("shape", setup.ns, source))
    setup.wait_ready("shape", 60)
    stored_profile = setup.fp("shape")["spec"]["infrastructure"]["resource_profiles"]["gpu"]
    assert contains(stored_profile, pod_shape_profile()) == []
    config = parse_platform(platform)
    rendered = render_pod_templates(config, platform_name="shape", namespace=setup.ns)[0]
    live = next(t for t in setup.templates() if t["metadata"]["name"] == "shape-gpu")
    assert contains(live["template"], rendered["template"]) == []
    spec = live["template"]["spec"]
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert spec["affinity"]["nodeAffinity"] == pod_shape_profile()["affinity"]["nodeAffinity"]
    before = live["metadata"]["resourceVersion"]

    def resyncs() -> int:
        return setup.operator.log_path.read_text().count("Resync: ")

    seen = resyncs()
    wait_for("two resyncs", lambda: True if resyncs() >= seen + 2 else None, 20)
    after = next(t for t in setup.templates() if t["metadata"]["name"] == "shape-gpu")
    assert after["metadata"]["resourceVersion"] == before
