"""Run pods that really run: ProfileK8sRunLauncher on a real control plane with a real kubelet node.

Real: etcd, kube-apiserver v1.37, kube-controller-manager (the Job controller makes the run pod),
kube-scheduler; the Go-built kubelet v1.37 on Debian's containerd 1.6 and runc, with cgroup v1 memory
limits enforced by the kernel; the e2e user-code image built here from a debootstrap'd Debian base (its
Python packages from PyPI, as the Dockerfile installs them); dagster and dagster-k8s with the run launcher
and run monitoring of the dagster.yaml the chart renders (helm v4), as the chart's dagster ServiceAccount;
the PodTemplates from our renderer, as the operator applies them. In the pod, ``dagster api execute_run``
runs the job and reports to the launching instance.

Not the chart's deployment: the instance is sqlite in a host directory that the run pod mounts at the same
path (hostPath, so the namespace is not labelled ``restricted``), where the chart uses PostgreSQL. The pods
tolerate the real node's taint and select it, so the control plane's kwok nodes are never used here.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.launcher.base import WorkerStatus
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._daemon.monitoring.run_monitoring import monitor_started_run
from dagster_k8s.job import get_job_name_from_run_id

from floe_platform.config import load_platform_text
from floe_platform.dagster.profiles import PROFILE_TAG
from floe_platform.render import render_pod_templates
from testkit.controlplane import ControlPlane, wait_for, write_service_account_kubeconfig
from testkit.realnode.images import E2E_IMAGE
from testkit.realnode.node import RealNode

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
PLATFORM = {
    "platform": {"name": "realpods"},
    "infrastructure": {
        "resource_profiles": {
            "small": {
                "requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"cpu": "1", "memory": "1Gi"},
                "env": {"DUCKDB_THREADS": "1"},
            },
            "tiny": {
                "requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"cpu": "1", "memory": "512Mi"},
            },
        },
    },
}
RUN_TIMEOUT_S = 300.0


def _probes() -> ModuleType:
    """floe_e2e.probes, the e2e jobs the image carries, loaded from its file (no floe_demo needed)."""
    path = ROOT / "tests/e2e/image/floe_e2e/probes.py"
    spec = importlib.util.spec_from_file_location("floe_e2e_probes", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PROBES = _probes()


def _helm_template(namespace: str, tmp_path: Path) -> list[dict[str, Any]]:
    helm = shutil.which("helm") or str(ROOT / ".tools/bin/helm")
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"platform": PLATFORM}))
    output = subprocess.run(
        [helm, "template", "floe", str(ROOT / "charts/floe-platform"), "-n", namespace, "-f", str(values)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


PATHS = {
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "PodTemplate": "/api/v1/namespaces/{ns}/podtemplates",
}


def _is_dagster_part(doc: dict[str, Any]) -> bool:
    """The dagster ServiceAccount/Role/RoleBinding, and the ConfigMaps and Secrets a run pod refers to."""
    component = doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")
    if doc["kind"] in ("ServiceAccount", "Role", "RoleBinding"):
        return component == "dagster"
    return doc["kind"] in ("ConfigMap", "Secret")


@dataclass
class Platform:
    plane: ControlPlane
    node: RealNode
    namespace: str
    instance: dg.DagsterInstance
    shared_dir: Path

    @property
    def launcher(self) -> Any:
        return self.instance.run_launcher

    def launch(self, job_name: str, profile: str, run_config: dict[str, Any] | None = None) -> DagsterRun:
        """Launch ``job_name`` of floe_e2e.probes on ``profile``, placed on the real node, with the shared
        instance directory mounted at its own path."""
        volume = {"name": "instance", "hostPath": {"path": str(self.shared_dir), "type": "Directory"}}
        k8s_config = {
            "pod_spec_config": {
                "node_selector": self.node.node_selector,
                "tolerations": [self.node.toleration],
                "volumes": [volume],
            },
            "container_config": {
                "volume_mounts": [{"name": "instance", "mount_path": str(self.shared_dir)}],
            },
        }
        origin = JobPythonOrigin(
            job_name,
            RepositoryPythonOrigin(
                executable_path="/opt/venv/bin/python",
                code_pointer=ModuleCodePointer("floe_e2e.probes", "defs", working_directory=None),
                container_image=E2E_IMAGE,
            ),
        )
        run = self.instance.create_run_for_job(
            job_def=PROBES.defs.resolve_job_def(job_name),
            job_code_origin=origin,
            run_config=run_config or {},
            tags={PROFILE_TAG: profile, "dagster-k8s/config": json.dumps(k8s_config)},
        )
        self.instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
        _hand_to_pod_user(self.shared_dir)
        return self.run(run.run_id)

    def run(self, run_id: str) -> DagsterRun:
        found = self.instance.get_run_by_id(run_id)
        assert found is not None
        return found

    def pod(self, run: DagsterRun) -> dict[str, Any]:
        selector = f"job-name%3D{get_job_name_from_run_id(run.run_id)}"
        path = f"/api/v1/namespaces/{self.namespace}/pods?labelSelector={selector}"
        items = self.plane.admin_api().get(path)
        pods: list[dict[str, Any]] = items["items"]
        assert len(pods) == 1, pods
        return pods[0]

    def pod_finished(self, run: DagsterRun) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            pod = self.pod(run)
            return pod if pod.get("status", {}).get("phase") in ("Succeeded", "Failed") else None

        return wait_for("the run pod to finish", probe, RUN_TIMEOUT_S, interval=1.0)


def _hand_to_pod_user(directory: Path) -> None:
    """The run worker runs as uid 1000 and writes to the sqlite files the host made: give them to it."""
    for path in [directory, *directory.rglob("*")]:
        os.chown(path, 1000, 1000, follow_symlinks=False)


@pytest.fixture
def platform(
    control_plane: ControlPlane, control_plane_namespace: str, real_node: RealNode, tmp_path: Path
) -> Iterator[Platform]:
    namespace = control_plane_namespace
    admin = control_plane.admin_api()
    docs = _helm_template(namespace, tmp_path)
    for doc in docs:
        if _is_dagster_part(doc):
            admin.create(PATHS[doc["kind"]].format(ns=namespace), doc)
    config = load_platform_text(yaml.safe_dump(PLATFORM))
    for template in render_pod_templates(config, namespace=namespace):
        admin.create(PATHS["PodTemplate"].format(ns=namespace), template)
    instance_doc = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-instance")
    )
    dagster_yaml = yaml.safe_load(instance_doc["data"]["dagster.yaml"])
    shared_dir = tmp_path / "instance"
    shared_dir.mkdir()
    launcher = dagster_yaml["run_launcher"]
    account = launcher["config"]["service_account_name"]
    kubeconfig = write_service_account_kubeconfig(
        control_plane, namespace, account, shared_dir / "dagster.kubeconfig"
    )
    launcher["config"].update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    overrides = {
        "run_launcher": launcher,
        "run_monitoring": dagster_yaml["run_monitoring"],
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
    }
    with dg.instance_for_test(overrides=overrides, temp_dir=str(shared_dir)) as instance:
        yield Platform(control_plane, real_node, namespace, instance, shared_dir)


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "dagster")


def _template_env(profile: str, namespace: str) -> dict[str, str]:
    """The DUCKDB_* variables the renderer puts in the profile's PodTemplate."""
    config = load_platform_text(yaml.safe_dump(PLATFORM))
    templates = render_pod_templates(config, namespace=namespace)
    template = next(t for t in templates if t["metadata"]["name"].endswith(profile))
    container = next(c for c in template["template"]["spec"]["containers"] if c["name"] == "dagster")
    return {e["name"]: e["value"] for e in container["env"] if e["name"].startswith("DUCKDB_")}


def test_run_pod_runs_the_job_inside_its_profiles_memory_limit_and_duckdb_env(platform: Platform) -> None:
    """The run worker really runs in the pod and reports SUCCESS; from inside the container the job reads the
    kernel's memory limit of its cgroup (the profile's 1Gi) and sees the PodTemplate's DUCKDB_* variables."""
    started = time.monotonic()
    run = platform.launch(PROBES.REPORT_LIMITS_JOB, "small")
    pod = platform.pod_finished(run)
    print(f"\n[realnode] launch to the end of the limits report's pod: {time.monotonic() - started:.0f} s")
    status = pod["status"]["containerStatuses"][0]
    assert pod["status"]["phase"] == "Succeeded", status
    assert status["state"]["terminated"]["exitCode"] == 0
    assert pod["spec"]["nodeName"] == platform.node.name
    assert _container(pod)["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    finished = wait_for(
        "the run's SUCCESS", lambda: r if (r := platform.run(run.run_id)).is_finished else None, 60
    )
    assert finished.status == DagsterRunStatus.SUCCESS
    event = platform.instance.get_latest_materialization_event(dg.AssetKey(["e2e", "container_limits"]))
    assert event is not None
    assert event.asset_materialization is not None
    metadata = event.asset_materialization.metadata
    assert int(metadata["memory_limit_bytes"].value) == 1024 * MIB
    assert metadata["duckdb_env"].value == _template_env("small", platform.namespace)


def _oom_sentence(pod: dict[str, Any]) -> str:
    return (
        f"Run worker pod {pod['metadata']['name']} was OOMKilled: it used more than the memory limit 512Mi "
        f"of resource profile 'tiny'; raise limits.memory of 'tiny' in platform.yaml, run it on a larger "
        f"profile with the run tag {PROFILE_TAG}, or lower DUCKDB_MEMORY_LIMIT so DuckDB spills sooner."
    )


def test_run_past_its_profile_memory_is_oom_killed_by_the_kernel_and_says_so(platform: Platform) -> None:
    """The job allocates 2 GiB under the ``tiny`` profile's 512Mi limit: the kernel's memory-cgroup OOM
    killer ends the container (containerd reports OOMKilled, exit 137), kcm fails the Job, and the launcher's
    health check and run monitoring, as the daemon runs it, fail the run with the launcher's sentence."""
    started = time.monotonic()
    run_config = {"ops": {"e2e__memory_hog": {"config": {"mebibytes": 2048}}}}
    run = platform.launch(PROBES.MEMORY_HOG_JOB, "tiny", run_config)
    pod = platform.pod_finished(run)
    print(f"\n[realnode] launch to the OOM kill of the memory hog's pod: {time.monotonic() - started:.0f} s")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert pod["status"]["phase"] == "Failed"
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    messages = [r.message for r in platform.instance.all_logs(run.run_id)]
    assert any("allocated 64 MiB" in message for message in messages), "the job never ran in the pod"

    def health() -> Any:
        result = platform.launcher.check_run_worker_health(platform.run(run.run_id))
        return result if result.status == WorkerStatus.FAILED else None

    assert wait_for("the failed health check", health, 60).msg == _oom_sentence(pod)
    record = platform.instance.get_run_record_by_id(run.run_id)
    monitor_started_run(platform.instance, None, record, logging.getLogger(__name__))  # type: ignore[arg-type]
    failed = platform.run(run.run_id)
    assert failed.status == DagsterRunStatus.FAILURE
    messages = [r.message for r in platform.instance.all_logs(run.run_id)]
    assert any(_oom_sentence(pod) in message for message in messages), messages
