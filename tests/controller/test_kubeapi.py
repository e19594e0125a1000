"""The operator's own API client (``controller.kubeapi``): every way it finds credentials, proven by asking
the real kube-apiserver who it is (a SelfSubjectReview), and the errors it reports.

Real: kube-apiserver v1.37 and etcd (TLS with the control plane's CA, client certificates, ServiceAccount
tokens from the TokenRequest API), a real exec credential plugin (a script run as a subprocess), and a
real ``python`` process for what the operator's process imports. Kubeconfig files that cannot be used
need no server.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from floe_platform.controller.kubeapi import (
    ApiStatusError,
    CredentialsError,
    KubeClient,
    in_cluster_credentials,
    kubeconfig_credentials,
)
from testkit.controlplane import ControlPlane
from testkit.controlplane.cluster import kubeconfig_text, service_account_token

REVIEW = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}


def whoami(client: KubeClient) -> str:
    """The user name kube-apiserver authenticated this client as."""
    review = client.request_json("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=REVIEW)
    name: str = review["status"]["userInfo"]["username"]
    return name


def service_account(plane: ControlPlane, namespace: str, name: str) -> str:
    """Create the ServiceAccount; a fresh token for it."""
    body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
    plane.admin_api().create(f"/api/v1/namespaces/{namespace}/serviceaccounts", body)
    return service_account_token(plane.admin_api(), namespace, name)


def kubeconfig(plane: ControlPlane, path: Path, user: dict[str, Any]) -> Path:
    path.write_text(kubeconfig_text(plane.server, plane.ca_file, "someone", user))
    return path


@pytest.mark.slow  # the real control plane
def test_inline_client_certificate_and_ca_data(
    control_plane: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control plane's admin kubeconfig: CA, client certificate and key all inline (base64 PEM). The
    inline certificate and key pass through private temporary files that ``ssl`` reads and that are then
    deleted: a key never stays on disk."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    client = KubeClient.from_kubeconfig(control_plane.kubeconfig)
    assert list(tmp_path.iterdir()) == []
    assert whoami(client) == "floe-admin"


@pytest.mark.slow  # the real control plane
def test_a_token_file_is_read_again_when_it_is_rotated(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """``tokenFile`` (relative to the kubeconfig) is re-read when it changes, as a kubelet-rotated token."""
    ns = control_plane_namespace
    first, second = service_account(control_plane, ns, "first"), service_account(control_plane, ns, "second")
    token_file = tmp_path / "token"
    token_file.write_text(first)
    client = KubeClient.from_kubeconfig(
        kubeconfig(control_plane, tmp_path / "config", {"tokenFile": "token"})
    )
    assert whoami(client) == f"system:serviceaccount:{ns}:first"
    token_file.write_text(second)
    assert whoami(client) == f"system:serviceaccount:{ns}:second"


@pytest.mark.slow  # the real control plane
def test_an_exec_plugin_token_is_used_and_kept_until_it_expires(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """A kubeconfig ``exec`` plugin (as EKS and GKE use) runs once; its token serves every request."""
    token = service_account(control_plane, control_plane_namespace, "plugged")
    runs = tmp_path / "runs"
    plugin = tmp_path / "plugin.py"
    credential = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential"}
    plugin.write_text(
        textwrap.dedent(f"""\
            import json, os, pathlib
            request = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
            assert request["kind"] == "ExecCredential", request
            with pathlib.Path({str(runs)!r}).open("a") as runs:
                runs.write(os.environ["GREETING"] + "\\n")
            print(json.dumps({{**{credential!r}, "status": {{"token": {token!r}}}}}))
        """)
    )
    exec_plugin = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": sys.executable,
        "args": [str(plugin)],
        "env": [{"name": "GREETING", "value": "hello"}],
    }
    client = KubeClient.from_kubeconfig(kubeconfig(control_plane, tmp_path / "config", {"exec": exec_plugin}))
    assert whoami(client) == f"system:serviceaccount:{control_plane_namespace}:plugged"
    assert whoami(client) == f"system:serviceaccount:{control_plane_namespace}:plugged"
    assert runs.read_text() == "hello\n"


@pytest.mark.slow  # the real control plane
def test_in_cluster_service_account(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pod's view: KUBERNETES_SERVICE_HOST/PORT and the projected token, CA and namespace files."""
    token = service_account(control_plane, control_plane_namespace, "in-pod")
    (tmp_path / "token").write_text(token)
    (tmp_path / "ca.crt").write_bytes(control_plane.ca_file.read_bytes())
    (tmp_path / "namespace").write_text(control_plane_namespace)
    host, port = control_plane.server.removeprefix("https://").rsplit(":", 1)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    credentials = in_cluster_credentials(tmp_path)
    assert credentials.default_namespace == control_plane_namespace
    assert whoami(KubeClient(credentials)) == f"system:serviceaccount:{control_plane_namespace}:in-pod"


@pytest.mark.slow  # the real control plane
def test_an_error_status_carries_the_servers_code_and_message(
    control_plane: ControlPlane, control_plane_namespace: str
) -> None:
    client = KubeClient.from_kubeconfig(control_plane.kubeconfig)
    with pytest.raises(ApiStatusError) as missing:
        client.request("GET", f"/api/v1/namespaces/{control_plane_namespace}/podtemplates/nothing")
    assert (missing.value.status, missing.value.reason) == (404, "Not Found")
    assert 'podtemplates "nothing" not found' in str(missing.value)


def _config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    config.update(overrides)
    return config


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (_config(**{"current-context": ""}), "no current-context"),
        (_config(**{"current-context": "y"}), "the current context 'y' is not defined"),
        (_config(clusters=[]), "context 'x' names no defined cluster"),
        (_config(clusters=[{"name": "c", "cluster": {}}]), "cluster 'c' has no server"),
        ("clusters: [\n", "ParserError"),
    ],
    ids=["no-current-context", "undefined-context", "undefined-cluster", "no-server", "not-yaml"],
)
def test_an_unusable_kubeconfig_says_why(config: Any, reason: str, tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    with pytest.raises(CredentialsError) as error:
        kubeconfig_credentials(str(path))
    assert str(error.value).startswith(f"the kubeconfig {path} is unusable (")
    assert reason in str(error.value)


def test_kubeconfigs_merge_as_kubectl_merges_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """KUBECONFIG=a:b: the first file to set the current context or a name wins; paths are relative to the
    file that holds them."""
    first = _config(users=[{"name": "u", "user": {"tokenFile": "token"}}])
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config").write_text(yaml.safe_dump({"current-context": "x", "users": first["users"]}))
    (tmp_path / "b").write_text(yaml.safe_dump(_config(**{"current-context": "other"})))
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'a' / 'config'}:{tmp_path / 'b'}")
    credentials = kubeconfig_credentials()
    assert credentials.server == "https://127.0.0.1:6443"
    assert credentials.token_path == str(tmp_path / "a" / "token")
    assert credentials.token is None


@pytest.mark.slow
def test_the_operator_process_keeps_the_kubernetes_package_out(tmp_path: Path) -> None:
    """A real interpreter that imports the operator's entry point (kopf included): ``import kubernetes``
    fails there, so kopf did not load the package's models either."""
    probe = (
        "import sys, floe_platform.controller.main\n"
        "assert 'kopf' in sys.modules\n"
        "try:\n    import kubernetes\nexcept ImportError:\n    print('kept out')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "kept out"
