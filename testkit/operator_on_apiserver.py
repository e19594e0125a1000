"""Setting up `floe operator` on the real control plane, shared by the operator's real-server tests.

The chart's objects come from the real `helm template`, the user's FloePlatforms from the real `floe cr`,
and the admin applies them with the real kubectl; the operator itself only ever uses its own
ServiceAccount token. ``contains`` compares what the renderer wrote with what kube-apiserver stored.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from floe_platform.config.quantity import QuantityError, parse_quantity
from testkit.controlplane import ControlPlane
from testkit.controlplane.chart import OPERATOR_SA, ROOT, chart_objects, tool
from testkit.controlplane.chart import install_crd as apply_crd

__all__ = [
    "FP",
    "OPERATOR_SA",
    "PRODUCTION",
    "apply_crd",
    "apply_operator_rbac",
    "contains",
    "floe_cr",
    "kubectl",
]

PRODUCTION = ROOT / "platform-config" / "platform" / "production" / "platform.yaml"
FP = "/apis/floe.dev/v1alpha1/namespaces/{ns}/floeplatforms"


def kubectl(
    plane: ControlPlane, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """The real kubectl as admin (who applies resources here; the operator has its own token)."""
    done = subprocess.run(
        [tool("kubectl"), f"--kubeconfig={plane.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check:
        assert done.returncode == 0, f"kubectl {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def floe_cr(name: str, namespace: str, source: Path = PRODUCTION) -> str:
    """`floe cr` output, exactly what a user pipes into `kubectl apply -f -`."""
    floe = shutil.which("floe") or str(ROOT / ".venv" / "bin" / "floe")
    command = [floe, "cr", str(source), "--name", name, "-n", namespace]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout


def apply_operator_rbac(plane: ControlPlane, namespace: str) -> None:
    """The chart's operator ServiceAccount, Role and RoleBinding in ``namespace``."""
    rbac = chart_objects(namespace, ("ServiceAccount", "Role", "RoleBinding"), OPERATOR_SA)
    kubectl(plane, "apply", "-f", "-", stdin=rbac)


def contains(live: Any, rendered: Any, path: str = "") -> list[str]:
    """Where ``live`` (as the server stores it) fails to contain ``rendered``: every rendered field present
    with an equal value, lists item for item, quantities (under resources, sizeLimit, a LimitRange or a
    quota) by value. Fields the server added are allowed."""
    if isinstance(rendered, Mapping):
        if not isinstance(live, Mapping):
            return [f"{path}: {live!r} is not a mapping"]
        problems = []
        for key, value in rendered.items():
            if key not in live:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += contains(live[key], value, f"{path}.{key}")
        return problems
    if isinstance(rendered, list):
        if not isinstance(live, list) or len(live) != len(rendered):
            return [f"{path}: {live!r} != {rendered!r}"]
        return [
            p
            for i, (a, w) in enumerate(zip(live, rendered, strict=True))
            for p in contains(a, w, f"{path}[{i}]")
        ]
    same = live == rendered or (_quantity_path(path) and _same_quantity(live, rendered))
    return [] if same else [f"{path}: {live!r} != {rendered!r}"]


def _quantity_path(path: str) -> bool:
    return re.search(r"resources|sizeLimit|\.limits\[|\.hard\.", path) is not None


def _same_quantity(live: Any, rendered: Any) -> bool:
    try:
        return parse_quantity(str(live)) == parse_quantity(str(rendered))
    except QuantityError:
        return False
