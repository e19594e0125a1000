"""RBAC, operator wiring and generated Secrets of the rendered chart (real helm v4, no API server).

`helm template` has no cluster, so `lookup` returns nothing and every render generates new passwords.
The upgrade path is tested at template level: a probe chart calls the same helper the Secret templates
use, `floe.keptOrNewSecretValue`, with a simulated existing Secret in place of lookup's answer.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import yaml
from chart_render import CHART, Rendered, render, run_helm


def _operator_command(release: Rendered) -> list[str]:
    spec = release.named("Deployment", "operator")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    command: list[str] = spec["template"]["spec"]["containers"][0]["command"]
    return command


def test_operator_role_is_least_privilege_in_its_namespace(default_release: Rendered) -> None:
    role = default_release.named("Role", "operator")
    assert role["metadata"]["namespace"] == "floe"
    # Which rules, exactly, is derived from the operator's own calls in test_chart_rbac_derived.py.
    assert role["rules"]
    binding = default_release.named("RoleBinding", "operator")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "floe-floe-platform-operator", "namespace": "floe"}
    ]
    assert not default_release.of_kind("ClusterRole")
    assert _operator_command(default_release) == ["floe", "operator", "--namespace", "floe"]


def test_operator_liveness_probe_is_healthz_on_8080(default_release: Rendered) -> None:
    container = default_release.named("Deployment", "operator")["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["ports"] == [{"name": "health", "containerPort": 8080, "protocol": "TCP"}]


def test_cluster_wide_operator_gets_a_cluster_role_and_all_namespaces(
    rendered_matrix: dict[str, Rendered],
) -> None:
    release = rendered_matrix["cluster-wide"]
    (cluster_role,) = release.of_kind("ClusterRole")
    assert cluster_role["rules"] == rendered_matrix["default"].named("Role", "operator")["rules"]
    (binding,) = release.of_kind("ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": cluster_role["metadata"]["name"],
    }
    assert not release.has("Role", "operator")
    assert _operator_command(release) == ["floe", "operator", "--all-namespaces"]


def test_operator_watching_several_namespaces_gets_a_role_in_each() -> None:
    release = render(sets=["operator.watchNamespaces={team-a,team-b}"])
    roles = [role for role in release.of_kind("Role") if role["metadata"]["name"].endswith("-operator")]
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["team-a", "team-b"]
    assert _operator_command(release) == [
        "floe",
        "operator",
        "--namespace",
        "team-a",
        "--namespace",
        "team-b",
    ]


def test_run_service_account_is_bound_to_the_launchers_role(default_release: Rendered) -> None:
    """Which rules, exactly, is derived from the launcher's own calls in test_chart_rbac_derived.py."""
    role = default_release.named("Role", "dagster")
    account = default_release.named("ServiceAccount", "dagster")["metadata"]["name"]
    binding = default_release.named("RoleBinding", "dagster")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == account
    for suffix in ("webserver", "daemon"):
        pod = default_release.named("Deployment", suffix)["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == account
    launcher = default_release.dagster_yaml()["run_launcher"]["config"]
    assert launcher["service_account_name"] == account


def test_step_jobs_switch_is_off_by_default_and_adds_the_run_workers_identity_when_on(
    default_release: Rendered, rendered_matrix: dict[str, Rendered]
) -> None:
    """Off: no run-worker objects, run pods keep the dagster ServiceAccount (no token). On (three-profiles):
    run pods get the run-worker ServiceAccount bound to its own Role; its rules are derived from the step
    executor's calls in test_chart_rbac_derived.py."""
    off = default_release.dagster_yaml()["run_launcher"]["config"]
    assert off["step_jobs"] is False
    assert not any(
        default_release.has(kind, "run-worker") for kind in ("ServiceAccount", "Role", "RoleBinding")
    )
    release = rendered_matrix["three-profiles"]
    on = release.dagster_yaml()["run_launcher"]["config"]
    account = release.named("ServiceAccount", "run-worker")["metadata"]["name"]
    binding = release.named("RoleBinding", "run-worker")
    assert on["step_jobs"] is True
    assert on["service_account_name"] == account
    assert binding["roleRef"]["name"] == release.named("Role", "run-worker")["metadata"]["name"]
    assert binding["subjects"][0]["name"] == account


def test_pods_that_never_call_the_api_get_no_token(release: Rendered) -> None:
    """The launcher in every webserver (the read-only one too) loads in-cluster config; a code location
    gets a token only with the ServiceAccount its values name (userCode.locations[].serviceAccount)."""
    for doc, pod in release.workloads():
        component = doc["metadata"]["labels"]["app.kubernetes.io/component"]
        named_account = component == "user-code" and "serviceAccountName" in pod
        accounts = ("webserver", "webserver-read-only", "daemon", "operator", "uninstall")
        if component not in accounts and not named_account:
            assert pod.get("automountServiceAccountToken") is False, doc["metadata"]["name"]


def _password(release: Rendered) -> str:
    data = release.named("Secret", "postgresql")["data"]
    return base64.b64decode(data["postgresql-password"]).decode()


def test_a_fresh_install_generates_a_strong_password(default_release: Rendered) -> None:
    password = _password(default_release)
    assert len(password) == 32
    assert password.isalnum()
    secret = default_release.named("Secret", "postgresql")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert _password(render()) != password, "without a stored Secret each render generates anew"


def _probe_chart(tmp_path: Path, existing: dict[str, Any]) -> Path:
    """A chart whose only template calls floe.keptOrNewSecretValue; floe-platform is its subchart."""
    probe = tmp_path / "probe"
    (probe / "templates").mkdir(parents=True)
    shutil.copytree(CHART, probe / "charts" / "floe-platform", ignore=shutil.ignore_patterns("ci"))
    (probe / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    # The subchart renders without a cluster here: its guard against that is opted out of (testkit/helm.py).
    opt_out = {"postgresql": {"auth": {"failWithoutCluster": False}}}
    (probe / "values.yaml").write_text(yaml.safe_dump({"existing": existing, "floe-platform": opt_out}))
    (probe / "templates" / "probe.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\ndata:\n"
        '  value: {{ include "floe.keptOrNewSecretValue" (list .Values.existing "postgresql-password") }}\n'
    )
    return probe


def _probe_value(chart: Path) -> str:
    result = run_helm(
        [
            "template",
            "floe",
            str(chart),
            "--namespace",
            "floe",
            "--show-only",
            "templates/probe.yaml",
        ]
    )
    assert result.returncode == 0, result.stderr
    value: str = yaml.safe_load(result.stdout)["data"]["value"]
    return value


def test_upgrade_keeps_the_stored_password(tmp_path: Path, default_release: Rendered) -> None:
    """Upgrade: lookup finds the Secret the install stored, and its value is kept byte for byte."""
    stored = default_release.named("Secret", "postgresql")
    assert _probe_value(_probe_chart(tmp_path, stored)) == stored["data"]["postgresql-password"]


def test_install_without_a_stored_secret_generates_one(tmp_path: Path) -> None:
    """Guard: with no stored Secret (lookup's answer on install) the helper does generate a value."""
    value = _probe_value(_probe_chart(tmp_path, {}))
    assert len(base64.b64decode(value)) == 32
