"""The chart installed by the real helm v4 into the real control plane: Pod Security, `helm test`, upgrade,
uninstall.

Real: kube-apiserver v1.37 (validation, RBAC objects, the PodSecurity admission plugin), etcd,
kube-controller-manager (ReplicaSets, StatefulSets, the volume binder, garbage collection, namespace
deletion) and kube-scheduler. Faked by kwok: the two nodes and the pods' status (Running and Ready; the
`helm test` pod and hook Jobs' pods Succeeded). No container runs, so these tests show that every object is
accepted, admitted, scheduled and Ready as Kubernetes sees it, not that the programs inside work.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.controlplane import ControlPlane, wait_for, wait_for_service_account
from testkit.controlplane.cluster import NODE_NAMES

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "floe-platform"
RELEASE = "floe"
INSTANCE = f"app.kubernetes.io/instance={RELEASE}"
Json = dict[str, Any]


def tool(name: str) -> str:
    return shutil.which(name) or str(ROOT / ".tools" / "bin" / name)


def run(
    plane: ControlPlane, binary: str, *args: str, timeout: float = 150
) -> subprocess.CompletedProcess[str]:
    """helm or kubectl as admin (the one who installs a chart); fails with the tool's own message."""
    done = subprocess.run(
        [tool(binary), f"--kubeconfig={plane.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{binary} {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def kubectl_json(plane: ControlPlane, *args: str) -> Json:
    result: Json = json.loads(run(plane, "kubectl", *args, "-o", "json").stdout)
    return result


def pod_security_namespace(plane: ControlPlane, prefix: str, labels: dict[str, str]) -> Iterator[str]:
    api, name = plane.admin_api(), f"{prefix}-{uuid.uuid4().hex[:8]}"
    api.create("/api/v1/namespaces", {"metadata": {"name": name, "labels": labels}})
    wait_for_service_account(api, name, "default")
    yield name
    api.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def restricted_namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A namespace that enforces Pod Security "restricted", as a hardened cluster's namespaces do."""
    yield from pod_security_namespace(
        control_plane, "restricted", {"pod-security.kubernetes.io/enforce": "restricted"}
    )


@pytest.fixture
def baseline_namespace(control_plane: ControlPlane) -> Iterator[str]:
    """The documented exception for LocalStack: enforce "baseline", warn and audit at "restricted"."""
    labels = {
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }
    yield from pod_security_namespace(control_plane, "baseline", labels)


def workloads_ready(plane: ControlPlane, namespace: str) -> list[str]:
    """Every Deployment and StatefulSet of the release, each asserted Ready; returns their names."""
    names = []
    for kind in ("deployments", "statefulsets"):
        for item in kubectl_json(plane, "get", kind, "-n", namespace, "-l", INSTANCE)["items"]:
            wanted = item["spec"]["replicas"]
            assert item["status"].get("readyReplicas") == wanted, (
                kind,
                item["metadata"]["name"],
                item["status"],
            )
            names.append(item["metadata"]["name"])
    return sorted(names)


def admitted_pods(plane: ControlPlane, namespace: str) -> dict[str, str]:
    """The release's pods, by component, each Running on a kwok node."""
    pods = kubectl_json(plane, "get", "pods", "-n", namespace, "-l", INSTANCE)["items"]
    running = {}
    for pod in pods:
        if pod["status"]["phase"] == "Succeeded":  # a hook Job's pod
            continue
        assert pod["status"]["phase"] == "Running", pod["status"]
        assert pod["spec"]["nodeName"] in NODE_NAMES
        running[pod["metadata"]["labels"]["app.kubernetes.io/component"]] = pod["metadata"]["name"]
    return running


def pod_security_warnings(text: str) -> set[str]:
    """The containers kube-apiserver's PodSecurity warnings name (`container "x" must not ...`)."""
    return set(re.findall(r'container \\?"([a-z0-9-]+)\\?" must', text))


def test_restricted_namespace_install_helm_test_upgrade_and_uninstall_leave_nothing_behind(
    control_plane: ControlPlane, restricted_namespace: str, tmp_path: Path
) -> None:
    """helm install --wait into an `enforce: restricted` namespace with LocalStack off (the documented way),
    then helm test, helm upgrade with a changed profile, and the README's uninstall order."""
    plane, ns = control_plane, restricted_namespace
    values = CHART / "ci" / "compute-logs-off-values.yaml"
    install = run(
        plane, "helm", "install", RELEASE, str(CHART), "-n", ns, "-f", str(values), "--wait", "--timeout=90s"
    )
    # kube-apiserver's PodSecurity admission refused nothing and warned about nothing.
    assert not pod_security_warnings(install.stderr), install.stderr
    assert workloads_ready(plane, ns) == [
        f"{RELEASE}-floe-platform-{name}"
        for name in ("daemon", "operator", "postgresql", "user-code", "webserver")
    ]
    admitted = admitted_pods(plane, ns)
    print(f"\nadmitted under Pod Security 'restricted' in {ns}: {sorted(admitted)}")
    assert sorted(admitted) == ["daemon", "operator", "postgresql", "user-code", "webserver"]

    # helm test: the hook pod is admitted under "restricted" too, and kwok completes it.
    tested = run(plane, "helm", "test", RELEASE, "-n", ns, "--timeout=60s")
    assert "Phase:          Succeeded" in tested.stdout, tested.stdout

    # helm upgrade with a changed profile changes the FloePlatform the chart renders.
    spec_before = kubectl_json(plane, "get", "fp", RELEASE, "-n", ns)["spec"]
    profile = spec_before["infrastructure"]["resource_profiles"]["default"]
    assert profile["limits"]["memory"] == "4Gi"
    changed = tmp_path / "bigger.yaml"
    bigger = yaml.safe_load(values.read_text())
    bigger["platform"]["infrastructure"]["resource_profiles"]["default"]["limits"]["memory"] = "6Gi"
    changed.write_text(yaml.safe_dump(bigger))
    run(
        plane, "helm", "upgrade", RELEASE, str(CHART), "-n", ns, "-f", str(changed), "--wait", "--timeout=90s"
    )
    after = kubectl_json(plane, "get", "fp", RELEASE, "-n", ns)
    assert after["spec"]["infrastructure"]["resource_profiles"]["default"]["limits"]["memory"] == "6Gi"
    assert after["metadata"]["generation"] == 2

    # The README's uninstall order: FloePlatforms, the release, then what it keeps on purpose.
    run(plane, "kubectl", "-n", ns, "delete", "fp", "--all", "--wait=true", "--timeout=60s")
    run(plane, "helm", "uninstall", RELEASE, "-n", ns, "--wait", "--timeout=90s")
    kept = kubectl_json(plane, "get", "secret,pvc", "-n", ns, "-l", INSTANCE)["items"]
    assert sorted(item["kind"] for item in kept) == [
        "PersistentVolumeClaim",
        "Secret",
    ]  # data and its password
    run(plane, "kubectl", "-n", ns, "delete", "pvc,secret", "-l", INSTANCE, "--wait=true", "--timeout=60s")

    def nothing_left() -> bool | None:
        left = release_objects(plane, ns)
        return True if not left else None

    wait_for(f"nothing of the release left in {ns}: {release_objects(plane, ns)}", nothing_left, 60)
    # By Helm's rule, crds/ is installed once and never deleted: other releases' FloePlatforms need it.
    assert kubectl_json(plane, "get", "crd", "floeplatforms.floe.dev")["metadata"]["name"]


def release_objects(plane: ControlPlane, namespace: str) -> list[str]:
    """Every namespaced object that belongs to the release: labelled as its instance, or named after it."""
    kinds = run(
        plane, "kubectl", "api-resources", "--namespaced", "--verbs=list", "-o", "name"
    ).stdout.split()
    kinds = [kind for kind in kinds if kind not in ("events", "events.events.k8s.io")]
    items = kubectl_json(plane, "get", ",".join(kinds), "-n", namespace)["items"]
    left = []
    for item in items:
        metadata = item["metadata"]
        labelled = (metadata.get("labels") or {}).get("app.kubernetes.io/instance") == RELEASE
        if labelled or metadata["name"].startswith(f"{RELEASE}-floe-platform"):
            left.append(f"{item['kind']}/{metadata['name']}")
    return left


def test_localstack_installs_in_a_baseline_namespace_and_is_the_only_pod_restricted_refuses(
    control_plane: ControlPlane, baseline_namespace: str
) -> None:
    """The default install (LocalStack on) into the README's exception: `enforce: baseline` with `warn` and
    `audit` at restricted. kube-apiserver admits every pod and warns about LocalStack alone; a server-side
    dry run of `enforce: restricted` on the live namespace names the pods restricted would refuse."""
    plane, ns = control_plane, baseline_namespace
    install = run(plane, "helm", "install", RELEASE, str(CHART), "-n", ns, "--wait", "--timeout=90s")
    assert pod_security_warnings(install.stderr) == {"localstack"}, install.stderr
    assert "floe-floe-platform-localstack" in workloads_ready(plane, ns)
    admitted = admitted_pods(plane, ns)
    assert sorted(admitted) == ["daemon", "localstack", "operator", "postgresql", "user-code", "webserver"]
    dry_run = run(
        plane,
        "kubectl",
        "label",
        "--dry-run=server",
        "--overwrite",
        f"namespace/{ns}",
        "pod-security.kubernetes.io/enforce=restricted",
    )
    refused = re.findall(r"\b(floe-floe-platform-[a-z0-9-]+)", dry_run.stderr)
    print(f"\nPod Security 'restricted' would refuse in {ns}: {sorted(set(refused))}")
    assert refused, dry_run.stderr
    assert all(name.startswith("floe-floe-platform-localstack-") for name in refused), dry_run.stderr
    # helm waited for the post-install bucket hook Job too (kwok completed its pod): the install returned.
    run(plane, "helm", "uninstall", RELEASE, "-n", ns, "--wait", "--timeout=90s")


# The ci/ cases of the parity values: what each must leave in the cluster besides the usual workloads.
PARITY_CASES = {
    "several-locations": {
        "workloads": ["code-finance", "code-ml", "code-sales"],
        "objects": {"poddisruptionbudget": ["code-ml"]},
    },
    "ingress-read-only": {
        "workloads": ["webserver", "webserver-read-only"],
        "objects": {"ingress": ["webserver"], "poddisruptionbudget": ["webserver-read-only"]},
    },
    "network-policy": {
        "workloads": ["webserver", "webserver-read-only"],
        "objects": {
            "networkpolicy": [
                f"{name}-net"
                for name in (
                    "create-bucket",
                    "daemon",
                    "localstack",
                    "operator",
                    "postgresql",
                    "runs",
                    "test",
                    "user-code",
                    "webserver",
                    "webserver-read-only",
                )
            ]
        },
    },
    "instance-settings": {"workloads": ["user-code", "webserver"], "objects": {}},
}


@pytest.mark.parametrize("case", sorted(PARITY_CASES))
def test_parity_values_install_and_every_workload_gets_ready(
    control_plane: ControlPlane, baseline_namespace: str, case: str
) -> None:
    """helm install --wait of each parity ci/ file: kube-apiserver accepts every object (Ingress,
    PodDisruptionBudget, NetworkPolicy: validated, not enforced, as no ingress controller or network plugin
    runs), kcm and kwok make each code location's and webserver's Deployment Ready, and the workspace
    ConfigMap names a Service that exists for every location."""
    plane, ns = control_plane, baseline_namespace
    values = CHART / "ci" / f"{case}-values.yaml"
    run(
        plane, "helm", "install", RELEASE, str(CHART), "-n", ns, "-f", str(values), "--wait", "--timeout=120s"
    )
    ready = workloads_ready(plane, ns)
    prefix = f"{RELEASE}-floe-platform-"
    for name in PARITY_CASES[case]["workloads"]:
        assert f"{prefix}{name}" in ready, ready
    for kind, names in PARITY_CASES[case]["objects"].items():
        found = kubectl_json(plane, "get", kind, "-n", ns, "-l", INSTANCE)["items"]
        assert sorted(item["metadata"]["name"] for item in found) == [f"{prefix}{name}" for name in names]
    workspace = kubectl_json(plane, "get", "configmap", f"{prefix}workspace", "-n", ns)
    services = {item["metadata"]["name"] for item in kubectl_json(plane, "get", "svc", "-n", ns)["items"]}
    for entry in yaml.safe_load(workspace["data"]["workspace.yaml"])["load_from"]:
        assert entry["grpc_server"]["host"] in services
    run(plane, "helm", "uninstall", RELEASE, "-n", ns, "--wait", "--timeout=90s")
