"""Run pods that really run: ProfileK8sRunLauncher on a real control plane with a real kubelet node.

Real: etcd, kube-apiserver v1.37, kube-controller-manager (the Job controller makes the run pod),
kube-scheduler; the Go-built kubelet v1.37 on Debian's containerd 1.6 and runc, with cgroup v1 memory
limits enforced by the kernel; the e2e user-code image built here from a debootstrap'd Debian base (its
Python packages from PyPI, as the Dockerfile installs them); dagster and dagster-k8s with the run launcher
and run monitoring of the dagster.yaml the chart renders (helm v4), as the chart's dagster ServiceAccount;
the PodTemplates from our renderer, as the operator applies them. In the pod, ``dagster api execute_run``
runs the job and reports to the launching instance.

Not the chart's deployment: the instance is sqlite in a host directory that the run pod mounts at the same
path (hostPath, so the namespace is not labelled ``restricted``), where the chart uses PostgreSQL; the code
location is loaded in process (``testkit.realnode.deployment``). The pods tolerate the real node's taint
and select it, so the control plane's kwok nodes are never used here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster._core.storage.dagster_run import DagsterRunStatus

from floe_platform.dagster.profiles import PROFILE_TAG
from testkit.controlplane import ControlPlane
from testkit.realnode.deployment import RealPodDeployment, deploy
from testkit.realnode.node import RealNode

pytestmark = pytest.mark.slow

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


@pytest.fixture
def platform(
    control_plane: ControlPlane, control_plane_namespace: str, real_node: RealNode, tmp_path: Path
) -> Iterator[RealPodDeployment]:
    with deploy(control_plane, control_plane_namespace, real_node, PLATFORM, tmp_path) as deployment:
        yield deployment


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "dagster")


def test_run_pod_runs_the_job_inside_its_profiles_memory_limit_and_duckdb_env(
    platform: RealPodDeployment,
) -> None:
    """The run worker really runs in the pod and reports SUCCESS; from inside the container the job reads the
    kernel's memory limit of its cgroup (the profile's 1Gi) and sees the PodTemplate's DUCKDB_* variables."""
    started = time.monotonic()
    run = platform.submit(platform.probes.REPORT_LIMITS_JOB, "small")
    pod = platform.pod_finished(run)
    print(f"\n[realnode] launch to the end of the limits report's pod: {time.monotonic() - started:.0f} s")
    status = pod["status"]["containerStatuses"][0]
    assert pod["status"]["phase"] == "Succeeded", status
    assert status["state"]["terminated"]["exitCode"] == 0
    assert pod["spec"]["nodeName"] == platform.node.name
    assert _container(pod)["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert platform.finished(run).status == DagsterRunStatus.SUCCESS
    metadata = platform.materialization(run)
    assert int(metadata["memory_limit_bytes"]) == 1024 * MIB
    assert metadata["duckdb_env"] == platform.template_env("small")


def _oom_sentence(pod: dict[str, Any]) -> str:
    return (
        f"Run worker pod {pod['metadata']['name']} was OOMKilled: it used more than the memory limit 512Mi "
        f"of resource profile 'tiny'; raise limits.memory of 'tiny' in platform.yaml, run it on a larger "
        f"profile with the run tag {PROFILE_TAG}, or lower DUCKDB_MEMORY_LIMIT so DuckDB spills sooner."
    )


def test_run_past_its_profile_memory_is_oom_killed_by_the_kernel_and_says_so(
    platform: RealPodDeployment,
) -> None:
    """The job allocates 2 GiB under the ``tiny`` profile's 512Mi limit: the kernel's memory-cgroup OOM
    killer ends the container (containerd reports OOMKilled, exit 137), kcm fails the Job, and the launcher's
    health check and run monitoring, as the daemon runs it, fail the run with the launcher's sentence."""
    started = time.monotonic()
    run_config = {"ops": {"e2e__memory_hog": {"config": {"mebibytes": 2048}}}}
    run = platform.submit(platform.probes.MEMORY_HOG_JOB, "tiny", run_config)
    pod = platform.pod_finished(run)
    print(f"\n[realnode] launch to the OOM kill of the memory hog's pod: {time.monotonic() - started:.0f} s")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert pod["status"]["phase"] == "Failed"
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    lines = platform.log_lines(run)
    assert any("allocated 64 MiB" in line for line in lines), "the job never ran in the pod"
    failed = platform.fail_dead_worker(run)
    assert failed.status == DagsterRunStatus.FAILURE
    assert platform.launcher.check_run_worker_health(failed).msg == _oom_sentence(pod)
    messages = platform.messages(failed)
    assert any(_oom_sentence(pod) in message for message in messages), messages
