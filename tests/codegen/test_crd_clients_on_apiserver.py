"""The generated FloePlatform CRD on a real kube-apiserver: which clients refuse an unknown key.

A structural CRD schema cannot forbid unknown keys (``additionalProperties: false`` beside ``properties``
is refused), so the API server prunes them unless the client asks for strict field validation. This
records, with real clients, what happens to a misspelt key and to inline S3 credentials (which the models
refuse by name): real kube-apiserver v1.37 with etcd (testkit.controlplane), the chart's CRD file, real
kubectl, real helm v4, and the kubernetes Python client the operator uses. No node or pod is involved,
so nothing here depends on kwok.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from floe_platform.api import GROUP, PLURAL, VERSION
from testkit.controlplane import ControlPlane, wait_for
from testkit.platforms import ROOT, production_cr

pytestmark = pytest.mark.slow  # a real control plane (started once per session)

CRD_FILE = ROOT / "charts/floe-platform/crds/floeplatforms.floe.dev.yaml"
TYPO_PATH = "spec.infrastructure.resource_profiles.default.limitz"


def _tool(name: str) -> str:
    return str(ROOT / ".tools" / "bin" / name)


def _kubectl(plane: ControlPlane, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    command = [_tool("kubectl"), f"--kubeconfig={plane.kubeconfig}", *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def crd(control_plane: ControlPlane) -> ControlPlane:
    """The chart's CRD, applied as admin and Established."""
    applied = _kubectl(control_plane, "apply", "-f", str(CRD_FILE))
    assert applied.returncode == 0, applied.stderr

    def established() -> bool | None:
        got = json.loads(_kubectl(control_plane, "get", "crd", f"{PLURAL}.{GROUP}", "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in got.get("status", {}).get("conditions", [])}
        return True if conditions.get("Established") == "True" else None

    wait_for("the FloePlatform CRD Established", established, timeout=30)
    return control_plane


def _with_typo(name: str, namespace: str) -> dict[str, Any]:
    resource = production_cr(name, namespace)
    resource["spec"]["infrastructure"]["resource_profiles"]["default"]["limitz"] = {"memory": "1Gi"}
    return resource


def _with_inline_credentials(name: str, namespace: str) -> dict[str, Any]:
    resource = production_cr(name, namespace)
    lake = copy.deepcopy(resource["spec"]["storage"]["lake"])
    lake["credentials"]["access_key"] = "AKIA-not-a-real-key"
    resource["spec"]["storage"]["lake"] = lake
    return resource


def _stored_spec(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    got = _kubectl(plane, "get", "fp", name, "-n", namespace, "-o", "json")
    assert got.returncode == 0, got.stderr
    spec: dict[str, Any] = json.loads(got.stdout)["spec"]
    return spec


def test_kubectl_refuses_a_misspelt_key_by_default(crd: ControlPlane, control_plane_namespace: str) -> None:
    """kubectl's default field validation is Strict: the apply fails and names the unknown field."""
    resource = _with_typo("typo", control_plane_namespace)
    applied = _kubectl(crd, "apply", "-f", "-", stdin=yaml.safe_dump(resource))
    assert applied.returncode != 0
    assert 'unknown field "spec.infrastructure.resource_profiles.default.limitz"' in applied.stderr


def test_kubectl_without_validation_gets_the_key_pruned_silently(
    crd: ControlPlane, control_plane_namespace: str
) -> None:
    """`--validate=false`: accepted, and the API server drops the unknown key; the operator never sees it."""
    resource = _with_typo("pruned", control_plane_namespace)
    applied = _kubectl(crd, "apply", "--validate=false", "-f", "-", stdin=yaml.safe_dump(resource))
    assert applied.returncode == 0, applied.stderr
    profile = _stored_spec(crd, control_plane_namespace, "pruned")["infrastructure"]["resource_profiles"]
    assert "limitz" not in profile["default"]


def test_inline_credentials_are_refused_by_kubectl(crd: ControlPlane, control_plane_namespace: str) -> None:
    """platform.yaml never holds credentials; through kubectl the unknown `access_key` fails the apply."""
    resource = _with_inline_credentials("creds", control_plane_namespace)
    applied = _kubectl(crd, "apply", "-f", "-", stdin=yaml.safe_dump(resource))
    assert applied.returncode != 0
    assert 'unknown field "spec.storage.lake.credentials.access_key"' in applied.stderr


def _custom_objects(plane: ControlPlane) -> Any:
    client = kubernetes.config.new_client_from_config(config_file=str(plane.kubeconfig))
    return kubernetes.client.CustomObjectsApi(client)


def test_the_python_client_warns_and_prunes_unless_it_asks_for_strict(
    crd: ControlPlane, control_plane_namespace: str
) -> None:
    """The server's default for a client that does not ask is Warn: stored, pruned. Strict refuses it."""
    api = _custom_objects(crd)
    namespace = control_plane_namespace
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _with_typo("lenient", namespace))
    stored = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "lenient")
    assert "limitz" not in stored["spec"]["infrastructure"]["resource_profiles"]["default"]
    with pytest.raises(kubernetes.client.ApiException) as refused:
        api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _with_typo("strict", namespace), field_validation="Strict"
        )
    assert refused.value.status == 400  # BadRequest: strict decoding error
    assert "limitz" in str(refused.value.body)


def _chart_with(tmp_path: Path, resource: dict[str, Any]) -> Path:
    chart = tmp_path / "fp-chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: fp-chart\nversion: 0.1.0\n")
    body = {key: value for key, value in resource.items() if key != "metadata"}
    body["metadata"] = {"name": resource["metadata"]["name"]}
    (chart / "templates" / "fp.yaml").write_text(yaml.safe_dump(body))
    return chart


def test_helm_install_refuses_a_misspelt_key(
    crd: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """helm v4 applies with strict field validation too: a FloePlatform with a misspelt key in a chart's
    `platform:` (or any template) fails `helm install`, naming the field."""
    chart = _chart_with(tmp_path, _with_typo("helmtypo", control_plane_namespace))
    installed = subprocess.run(
        [_tool("helm"), "install", "typo", str(chart), "-n", control_plane_namespace],
        env={"KUBECONFIG": str(crd.kubeconfig), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert installed.returncode != 0, installed.stdout
    assert "limitz" in installed.stderr
