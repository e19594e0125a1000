"""The chart's pre-delete hook (`floe delete-platforms`) waits for FloePlatforms held by a finalizer, and
gives up with one line naming them.

Real: kube-apiserver v1.37 and etcd (a finalizer keeps a deleted object, with its deletionTimestamp, until
it is removed), the chart's CRD and the hook's ServiceAccount, Role and RoleBinding as the real helm v4
renders them, the real `floe delete-platforms` command run on the host as the hook's own ServiceAccount
(the same command the hook Job's container runs), and in one test the real `floe operator` (kopf) as the
chart's operator ServiceAccount. The hook inside a pod, created by `helm uninstall`, is shown in
tests/chart/test_chart_on_apiserver.py.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from floe_platform.controller.handlers import FINALIZER
from floe_platform.controller.uninstall import POLL_SECONDS
from testkit.controlplane import (
    ControlPlane,
    wait_for,
    wait_for_service_account,
    write_service_account_kubeconfig,
)
from testkit.helm import WITHOUT_CLUSTER
from testkit.operator_on_apiserver import FP, floe_cr, kubectl
from testkit.operator_process import OperatorProcess

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "floe-platform"
RELEASE = "floe"
SELECTOR = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=platform"
HOOK_SA = f"{RELEASE}-floe-platform-uninstall"
OPERATOR_SA = f"{RELEASE}-floe-platform-operator"
CRD = "floeplatforms.floe.dev"


def _tool(name: str) -> str:
    return shutil.which(name) or str(ROOT / ".tools" / "bin" / name)


def _chart_objects(namespace: str, *templates: str) -> str:
    """The named templates as `helm template` renders them for release ``floe`` in ``namespace``."""
    shown = [arg for template in templates for arg in ("-s", f"templates/{template}.yaml")]
    # With a platform, so the hook's objects render (compute-logs-off has one).
    values = CHART / "ci" / "compute-logs-off-values.yaml"
    command = [_tool("helm"), "template", RELEASE, str(CHART), "-n", namespace, "-f", str(values), *shown]
    done = subprocess.run(
        [*command, *WITHOUT_CLUSTER], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


def _crd_established(plane: ControlPlane) -> None:
    kubectl(plane, "apply", "-f", str(CHART / "crds"))

    def established() -> bool | None:
        crd = plane.admin_api().get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}")
        conditions = (crd.get("status") or {}).get("conditions") or []
        return True if any(c["type"] == "Established" and c["status"] == "True" for c in conditions) else None

    wait_for(f"the CRD {CRD} to be Established", established, 60)


def _hook_kubeconfig(plane: ControlPlane, namespace: str, tmp_path: Path) -> Path:
    rbac = _chart_objects(namespace, "uninstall-serviceaccount", "uninstall-role", "uninstall-rolebinding")
    kubectl(plane, "apply", "-n", namespace, "-f", "-", stdin=rbac)
    wait_for_service_account(plane.admin_api(), namespace, HOOK_SA)
    return write_service_account_kubeconfig(plane, namespace, HOOK_SA, tmp_path / "hook.kubeconfig")


def _create_platform(plane: ControlPlane, namespace: str, name: str, release: str, held: bool) -> None:
    """A FloePlatform of ``release`` as the chart labels it; ``held``: with the finalizer an earlier
    operator version put on every FloePlatform."""
    resource: dict[str, Any] = yaml.safe_load(floe_cr(name, namespace))
    resource["metadata"]["labels"] = {
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/component": "platform",
    }
    if held:
        resource["metadata"]["finalizers"] = [FINALIZER]
    plane.admin_api().create(FP.format(ns=namespace), resource)


def _platform(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = plane.admin_api().get(f"{FP.format(ns=namespace)}/{name}")
    return found


def _hook(namespace: str, timeout_seconds: float) -> list[str]:
    floe = shutil.which("floe") or str(ROOT / ".venv" / "bin" / "floe")
    return [
        floe,
        "delete-platforms",
        "--namespace",
        namespace,
        "--selector",
        SELECTOR,
        "--timeout-seconds",
        f"{timeout_seconds:g}",
    ]


def _env(kubeconfig: Path) -> dict[str, str]:
    return {"KUBECONFIG": str(kubeconfig), "PATH": "/usr/bin:/bin"}


def _run_hook(kubeconfig: Path, namespace: str, timeout_seconds: float) -> subprocess.CompletedProcess[str]:
    """The hook's command as the hook Job runs it, to its end."""
    return subprocess.run(
        _hook(namespace, timeout_seconds),
        env=_env(kubeconfig),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _release_finalizer(plane: ControlPlane, namespace: str, name: str) -> None:
    kubectl(
        plane,
        "patch",
        "floeplatform",
        name,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":null}}',
    )


def test_a_platform_held_by_a_finalizer_makes_the_hook_give_up_naming_it(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """Nobody removes the finalizer (no operator runs): the hook deletes the FloePlatform, waits its
    timeout out and exits 1 with one line that names the FloePlatform left and what to check. Another
    release's FloePlatform is neither deleted nor waited for."""
    plane, ns = control_plane, control_plane_namespace
    _crd_established(plane)
    kubeconfig = _hook_kubeconfig(plane, ns, tmp_path)
    _create_platform(plane, ns, "held", RELEASE, held=True)
    _create_platform(plane, ns, "other-release", "other", held=False)

    started = time.monotonic()
    hook = _run_hook(kubeconfig, ns, 3)
    elapsed = time.monotonic() - started
    print(f"\nhook after {elapsed:.1f} s: rc={hook.returncode} {hook.stderr.strip()}")
    assert hook.returncode == 1
    lines = hook.stderr.strip().splitlines()
    assert len(lines) == 1, hook.stderr
    assert lines[0].startswith(f"floe delete-platforms: FloePlatforms still present in {ns} after 3 s: held;")
    assert "a finalizer holds them" in lines[0]
    assert f"kubectl -n {ns} get fp,pods" in lines[0]
    assert 3 <= elapsed < 3 + 10 * POLL_SECONDS
    assert "deleting FloePlatform" in hook.stdout
    held = _platform(plane, ns, "held")
    assert held["metadata"]["deletionTimestamp"]
    assert held["metadata"]["finalizers"] == [FINALIZER]
    assert "deletionTimestamp" not in _platform(plane, ns, "other-release")["metadata"]
    _release_finalizer(plane, ns, "held")


def test_the_hook_waits_until_the_running_operator_releases_an_earlier_versions_finalizer(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """The reason the hook waits: a FloePlatform marked by an earlier operator version stays Terminating
    until the operator, still running during the pre-delete hook, removes that finalizer. The hook is
    started first and keeps polling (the FloePlatform is deleted but still there); once the real operator
    starts, it releases the finalizer and the hook returns 0 having seen it gone."""
    plane, ns = control_plane, control_plane_namespace
    _crd_established(plane)
    kubeconfig = _hook_kubeconfig(plane, ns, tmp_path)
    kubectl(
        plane,
        "apply",
        "-n",
        ns,
        "-f",
        "-",
        stdin=_chart_objects(ns, "operator-serviceaccount", "operator-role", "operator-rolebinding"),
    )
    wait_for_service_account(plane.admin_api(), ns, OPERATOR_SA)
    _create_platform(plane, ns, "marked", RELEASE, held=True)

    hook = subprocess.Popen(
        _hook(ns, 90),
        env=_env(kubeconfig),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    operator: OperatorProcess | None = None
    try:
        wait_for(
            "the hook to delete the FloePlatform",
            lambda: True if _platform(plane, ns, "marked")["metadata"].get("deletionTimestamp") else None,
            30,
        )
        time.sleep(3 * POLL_SECONDS)  # several polls that still find it
        assert hook.poll() is None, "the hook returned while the FloePlatform was still there"
        assert _platform(plane, ns, "marked")["metadata"]["finalizers"] == [FINALIZER]

        operator_kubeconfig = write_service_account_kubeconfig(
            plane, ns, OPERATOR_SA, tmp_path / "op.kubeconfig"
        )
        operator = OperatorProcess(operator_kubeconfig, tmp_path / "operator.log", scope=("--namespace", ns))
        operator.running()
        out, err = hook.communicate(timeout=120)
    finally:
        if hook.poll() is None:
            hook.kill()
            hook.wait()
        if operator is not None:
            operator.stop()
    print(f"\nhook: {out.strip()} {err.strip()}")
    assert hook.returncode == 0, err
    assert f"deleting FloePlatform {ns}/marked" in out
    assert f"1 FloePlatform(s) deleted from {ns}" in out
    assert plane.admin_api().get(FP.format(ns=ns))["items"] == []


def test_the_hook_without_its_role_fails_in_one_line(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """The hook run with a token its Role was not bound to (the namespace's ``default`` ServiceAccount):
    kube-apiserver answers 403 and the hook says which call was refused, in one line, exit 1."""
    plane, ns = control_plane, control_plane_namespace
    _crd_established(plane)
    _create_platform(plane, ns, "kept", RELEASE, held=False)
    kubeconfig = write_service_account_kubeconfig(plane, ns, "default", tmp_path / "default.kubeconfig")
    hook = _run_hook(kubeconfig, ns, 5)
    assert hook.returncode == 1
    assert hook.stderr.strip() == f"floe delete-platforms: cannot list FloePlatforms in {ns}: 403 Forbidden"
    assert "deletionTimestamp" not in _platform(plane, ns, "kept")["metadata"]
