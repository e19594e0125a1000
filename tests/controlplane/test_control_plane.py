"""The test control plane is a real one: version, scheduling, Jobs, RBAC, garbage collection, PodSecurity.

Real: etcd, kube-apiserver, kube-controller-manager (kcm), kube-scheduler, all built from Go modules.
Faked by kwok: the two nodes and the lifecycle of pods bound to them; no container runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from testkit.controlplane import (
    ApiError,
    ControlPlane,
    KubeApi,
    service_account_token,
    wait_for,
    wait_for_service_account,
    write_service_account_kubeconfig,
)
from testkit.controlplane.cluster import NODE_NAMES

ROOT = Path(__file__).resolve().parents[2]
Json = dict[str, Any]


def tool(name: str) -> str:
    """helm and kubectl from PATH, else where `make install` puts them."""
    return shutil.which(name) or str(ROOT / ".tools" / "bin" / name)


def kubectl(plane: ControlPlane, *args: str, kubeconfig: Path | None = None) -> Json:
    """The real kubectl, as admin unless another kubeconfig is given; the output parsed from JSON."""
    out = subprocess.run(
        [tool("kubectl"), f"--kubeconfig={kubeconfig or plane.kubeconfig}", *args, "-o", "json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    result: Json = json.loads(out)
    return result


def job_manifest(name: str, annotations: dict[str, str]) -> Json:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "dagster",
                            "image": "example.invalid/never-pulled:1",
                            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                        }
                    ],
                },
            },
        },
    }


def job_pod(api: KubeApi, namespace: str, job: str) -> Json | None:
    pods = api.get(f"/api/v1/namespaces/{namespace}/pods?labelSelector=job-name%3D{job}")["items"]
    return pods[0] if pods else None


def pod_phase(api: KubeApi, namespace: str, job: str, phases: set[str]) -> Json | None:
    pod = job_pod(api, namespace, job)
    return pod if pod and pod.get("status", {}).get("phase") in phases else None


def job_condition(api: KubeApi, namespace: str, job: str, condition: str) -> bool | None:
    status = api.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/{job}").get("status", {})
    done = any(c["type"] == condition and c["status"] == "True" for c in status.get("conditions", []))
    return True if done else None


def test_server_is_v1_37_with_two_ready_untainted_nodes(control_plane: ControlPlane) -> None:
    """kube-apiserver + etcd, queried with the real kubectl. kwok fakes the nodes and keeps them Ready;
    kcm lifts the not-ready taint kube-apiserver puts on every new node."""
    version = kubectl(control_plane, "version")["serverVersion"]
    assert version["gitVersion"].startswith("v1.37."), version
    assert (version["major"], version["minor"]) == ("1", "37")
    nodes = kubectl(control_plane, "get", "nodes")["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == sorted(NODE_NAMES)
    for node in nodes:
        ready = [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready == ["True"], node["status"]["conditions"]
        assert not node["spec"].get("taints"), node["spec"]
        assert node["status"]["allocatable"] | {"ephemeral-storage": "x"} == {
            "cpu": "8",
            "memory": "32Gi",
            "pods": "110",
            "ephemeral-storage": "x",
        }


@pytest.mark.slow
def test_job_pod_is_created_scheduled_run_and_succeeds(
    control_plane: ControlPlane, control_plane_namespace: str
) -> None:
    """kcm's Job controller creates the pod, kube-scheduler binds it to a kwok node, the Job completes.
    kwok fakes the run: Running with a pod IP for 3 s (the annotation), then exit code 0."""
    api, ns = control_plane.admin_api(), control_plane_namespace
    api.create(
        f"/apis/batch/v1/namespaces/{ns}/jobs", job_manifest("ok", {"floe.dev/test-run-duration": "3s"})
    )
    running = wait_for("the Job's pod Running", lambda: pod_phase(api, ns, "ok", {"Running"}), 30)
    assert running["spec"]["nodeName"] in NODE_NAMES
    name = running["metadata"]["name"]
    events = api.get(f"/api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.name%3D{name}")["items"]
    assert any(e["reason"] == "Scheduled" and e["reportingComponent"] == "default-scheduler" for e in events)
    assert running["status"]["podIP"].startswith("10.244.")
    wait_for("the Job Complete", lambda: job_condition(api, ns, "ok", "Complete"), 30)
    pod = job_pod(api, ns, "ok")
    assert pod is not None
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


def test_oom_annotated_job_pod_ends_oomkilled_with_exit_code_137(
    control_plane: ControlPlane, control_plane_namespace: str
) -> None:
    """kcm's Job controller sees the pod fail and fails the Job (backoffLimit 0). kwok fakes the OOM kill:
    no memory is used, the pod's status says OOMKilled / 137 as a kubelet would write it."""
    api, ns = control_plane.admin_api(), control_plane_namespace
    job = job_manifest("oom", {"floe.dev/test-oomkill": "true", "floe.dev/test-run-duration": "500ms"})
    api.create(f"/apis/batch/v1/namespaces/{ns}/jobs", job)
    pod = wait_for("the Job's pod Failed", lambda: pod_phase(api, ns, "oom", {"Failed", "Succeeded"}), 30)
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    wait_for("the Job Failed", lambda: job_condition(api, ns, "oom", "Failed"), 30)


def test_service_account_is_refused_until_a_rolebinding_allows_it(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """kube-apiserver's RBAC authorizer with a token from the TokenRequest API; kwok is not involved."""
    admin, ns = control_plane.admin_api(), control_plane_namespace
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}}
    admin.create(f"/api/v1/namespaces/{ns}/serviceaccounts", sa)
    reader = control_plane.token_api(service_account_token(admin, ns, "reader"))
    pods = f"/api/v1/namespaces/{ns}/pods"
    assert reader.status_of("GET", pods) == 403
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}"
    rule = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}
    admin.create(f"{rbac}/roles", {"metadata": {"name": "pod-reader"}, "rules": [rule]})
    binding = {
        "metadata": {"name": "reader-reads-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
    }
    admin.create(f"{rbac}/rolebindings", binding)
    # The authorizer reads RBAC from an informer cache, so the grant takes effect within moments.
    wait_for("the RoleBinding to apply", lambda: True if reader.status_of("GET", pods) == 200 else None, 10)
    assert reader.status_of("DELETE", f"{pods}/anything") == 403  # only what the Role grants
    # The same identity through a kubeconfig, as a component under test would run.
    kubeconfig = write_service_account_kubeconfig(control_plane, ns, "reader", tmp_path / "reader.kubeconfig")
    me = kubectl(control_plane, "auth", "whoami", kubeconfig=kubeconfig)
    assert me["status"]["userInfo"]["username"] == f"system:serviceaccount:{ns}:reader"
    assert kubectl(control_plane, "get", "pods", "-n", ns, kubeconfig=kubeconfig)["items"] == []


def test_deleting_an_owner_garbage_collects_its_dependent(
    control_plane: ControlPlane, control_plane_namespace: str
) -> None:
    """kcm's garbage collector follows ownerReferences; kube-apiserver + etcd store them. No kwok."""
    api, ns = control_plane.admin_api(), control_plane_namespace
    configmaps = f"/api/v1/namespaces/{ns}/configmaps"
    owner = api.create(configmaps, {"metadata": {"name": "owner"}, "data": {}})
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    api.create(configmaps, {"metadata": {"name": "dependent", "ownerReferences": [reference]}})
    api.delete(f"{configmaps}/owner", {"propagationPolicy": "Background"})

    def dependent_gone() -> bool | None:
        try:
            api.get(f"{configmaps}/dependent")
        except ApiError as error:
            return True if error.status == 404 else None
        return None

    wait_for("the garbage collector to delete the dependent", dependent_gone, 30)


def test_restricted_namespace_refuses_a_privileged_pod(control_plane: ControlPlane) -> None:
    """kube-apiserver's PodSecurity admission plugin, on by default. No kwok, no kcm."""
    api, ns = control_plane.admin_api(), f"restricted-{uuid.uuid4().hex[:8]}"
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    api.create("/api/v1/namespaces", {"metadata": {"name": ns, "labels": labels}})
    # ServiceAccount admission runs first and refuses every pod until the namespace's SA exists.
    wait_for_service_account(api, ns, "default")
    container = {"name": "c", "image": "example.invalid/x:1", "securityContext": {"privileged": True}}
    pod = {"metadata": {"name": "privileged"}, "spec": {"containers": [container]}}
    with pytest.raises(ApiError) as refused:
        api.create(f"/api/v1/namespaces/{ns}/pods", pod)
    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest": privileged (container "c" must not set' in message
    # The same pod made compliant is admitted: the namespace refuses what the profile forbids, not all.
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    api.create(f"/api/v1/namespaces/{ns}/pods", pod)
    api.delete(f"/api/v1/namespaces/{ns}")


@pytest.mark.slow
def test_chart_installs_with_helm_wait(control_plane: ControlPlane) -> None:
    """The real helm v4 installs the chart into kube-apiserver (validation, admission, RBAC objects) and
    waits: kcm rolls the Deployments and the PostgreSQL StatefulSet and binds its claim to a pre-made
    volume, kube-scheduler places the pods. kwok fakes the pods' readiness; no image is pulled."""
    namespace = f"helm-{uuid.uuid4().hex[:8]}"
    install = [tool("helm"), "install", "floe", str(ROOT / "charts" / "floe-platform"), "-n", namespace]
    subprocess.run(
        [
            *install,
            "--create-namespace",
            "--wait",
            "--timeout=90s",
            f"--kubeconfig={control_plane.kubeconfig}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pods = kubectl(control_plane, "get", "pods", "-n", namespace)["items"]
    assert pods
    assert all(pod["status"]["phase"] == "Running" and pod["spec"]["nodeName"] in NODE_NAMES for pod in pods)
    claims = kubectl(control_plane, "get", "pvc", "-n", namespace)["items"]
    assert [claim["status"]["phase"] for claim in claims] == ["Bound"] * len(claims)
    control_plane.admin_api().delete(f"/api/v1/namespaces/{namespace}")
