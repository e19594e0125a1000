"""The chart's objects on the real control plane, for benchmarks (and any test that wants them).

What `helm template` renders for a release, applied by the admin with the real kubectl; components then run
as their own ServiceAccount (``operator_kubeconfig``), never as the admin.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from testkit.controlplane.cluster import (
    ControlPlane,
    wait_for_service_account,
    write_service_account_kubeconfig,
)
from testkit.controlplane.kubeapi import wait_for
from testkit.helm import WITHOUT_CLUSTER

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "floe-platform"
OPERATOR_SA = "floe-floe-platform-operator"
CRD_NAME = "floeplatforms.floe.dev"


def tool(name: str) -> str:
    """A tool from PATH, else the one `make install` put in .tools/bin."""
    return shutil.which(name) or str(ROOT / ".tools" / "bin" / name)


def kubectl(plane: ControlPlane, *args: str, stdin: str | None = None) -> str:
    """The real kubectl as admin; raises with its output when it fails."""
    done = subprocess.run(
        [tool("kubectl"), f"--kubeconfig={plane.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {done.stdout}{done.stderr}")
    return done.stdout


def chart_objects(namespace: str, kinds: tuple[str, ...], name: str | None = None) -> str:
    """Objects of ``kinds`` (named ``name``, if given) as `helm template --include-crds` renders them for a
    release ``floe`` in ``namespace`` with default values, as one YAML stream."""
    rendered = subprocess.run(
        [tool("helm"), "template", "floe", str(CHART), "-n", namespace, "--include-crds", *WITHOUT_CLUSTER],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    documents = [doc for doc in yaml.safe_load_all(rendered) if doc]
    wanted = [d for d in documents if d["kind"] in kinds and name in (None, d["metadata"]["name"])]
    if sorted(doc["kind"] for doc in wanted) != sorted(kinds):
        raise RuntimeError(f"the chart did not render exactly one each of {kinds} named {name}")
    return yaml.safe_dump_all(wanted)


def install_crd(plane: ControlPlane) -> None:
    """The chart's CRD, applied and Established.

    Polled through the API rather than with `kubectl wait --for=condition=...`, which fails at once
    ("accessor error") when it reads the CRD before the server has written any condition."""
    kubectl(plane, "apply", "-f", "-", stdin=chart_objects("default", ("CustomResourceDefinition",)))
    api = plane.admin_api()

    def established() -> bool | None:
        crd = api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}")
        conditions = (crd.get("status") or {}).get("conditions") or []
        done = any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)
        return True if done else None

    wait_for(f"the CRD {CRD_NAME} to be Established", established, 60)


def operator_namespace(plane: ControlPlane, namespace: str, kubeconfig: Path) -> Path:
    """Create ``namespace`` with the chart's operator ServiceAccount, Role and RoleBinding, and write a
    kubeconfig that authenticates as that ServiceAccount (a TokenRequest token) to ``kubeconfig``."""
    kubectl(plane, "create", "namespace", namespace)
    rbac = chart_objects(namespace, ("ServiceAccount", "Role", "RoleBinding"), OPERATOR_SA)
    kubectl(plane, "apply", "-f", "-", stdin=rbac)
    wait_for_service_account(plane.admin_api(), namespace, OPERATOR_SA)
    return write_service_account_kubeconfig(plane, namespace, OPERATOR_SA, kubeconfig)
