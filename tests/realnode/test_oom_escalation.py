"""Escalation on OOM with real pods: the kernel OOM-kills a run on the first rung of its ladder, Dagster's own
auto-retry runs it again one rung up, and there it really runs and succeeds.

Real: the kernel's memory-cgroup OOM killer (cgroup v1 limits set by runc from the pod's limits), the
Go-built kubelet v1.37 on Debian's containerd 1.6 and runc, etcd, kube-apiserver v1.37 (the launcher as the
chart's dagster ServiceAccount), kube-controller-manager (the Job controller makes each run pod and fails
the Job of the killed one), kube-scheduler; the e2e image built here; dagster 1.13 with the chart's
``run_launcher``, ``run_monitoring`` and ``run_retries`` (helm v4); Dagster's failure path
(``monitor_started_run``, as the monitoring daemon calls it) and its auto-retry
(``EventLogConsumerDaemon.run_iteration``, the daemon's loop that re-executes failed runs); the PodTemplates
from our renderer. In the pods, ``dagster api execute_run`` runs the job and reports to the instance.

Not real: the daemons' loops are called here once each instead of running on their timers; the instance is
sqlite in a host directory the run pods mount (hostPath), where the chart uses PostgreSQL; the code
location is loaded in process on the host, and the pods run the same module from the image.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.storage.tags import MAX_RETRIES_TAG, WILL_RETRY_TAG

from floe_platform.dagster.escalation import LADDER_TAG
from floe_platform.dagster.profiles import MEMORY_LIMIT_TAG, PROFILE_TAG
from floe_platform.usage.tags import OOM_TAG
from testkit.controlplane import ControlPlane
from testkit.realnode.deployment import RealPodDeployment, deploy
from testkit.realnode.node import RealNode

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
ALLOCATE_MIB = 1024  # past tiny's 512Mi, well inside roomy's 2Gi with the run worker's own memory
# A two-rung ladder; requests stay small so both rungs fit the node whatever else runs on the machine.
PLATFORM = {
    "platform": {"name": "realladder"},
    "infrastructure": {
        "resource_profiles": {
            "tiny": {
                "requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"cpu": "1", "memory": "512Mi"},
                "escalate_to": "roomy",
            },
            "roomy": {
                "requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"cpu": "1", "memory": "2Gi"},
            },
        },
    },
}


@pytest.fixture
def deployed(
    control_plane: ControlPlane, control_plane_namespace: str, real_node: RealNode, tmp_path: Path
) -> Iterator[RealPodDeployment]:
    with deploy(control_plane, control_plane_namespace, real_node, PLATFORM, tmp_path) as deployment:
        yield deployment


def test_a_run_oom_killed_by_the_kernel_is_retried_one_rung_up_and_succeeds_there(
    deployed: RealPodDeployment,
) -> None:
    """The job sets no retries. It allocates 1 GiB on ``tiny`` (512Mi, escalates to ``roomy``): the kernel
    kills it, the run fails as OOM-killed with a retry granted, and Dagster's daemon re-executes it. The
    launcher puts the retry on ``roomy`` (2Gi), whose pod's cgroup really has 2Gi: the allocation that was
    killed one rung down now completes, above tiny's limit, and the run succeeds. Nothing retries after."""
    started = time.monotonic()
    run_config = {"ops": {"e2e__memory_hog": {"config": {"mebibytes": ALLOCATE_MIB}}}}
    run = deployed.submit(deployed.probes.MEMORY_HOG_JOB, "tiny", run_config)
    pod = deployed.pod_finished(run)
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert pod["status"]["phase"] == "Failed"
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    assert any("allocated 64 MiB" in line for line in deployed.log_lines(run)), "the job never ran in the pod"

    failed = deployed.fail_dead_worker(run)
    assert failed.status == DagsterRunStatus.FAILURE
    assert failed.tags[OOM_TAG] == "true"
    assert failed.tags[MAX_RETRIES_TAG] == "1"  # granted by the launcher: the job asked for none
    assert failed.tags[WILL_RETRY_TAG] == "true"
    killed = (
        f"Run worker pod {pod['metadata']['name']} was OOMKilled: it used more than the memory limit 512Mi "
        "of resource profile 'tiny', which escalates to 'roomy'; Dagster's run retries run it again there."
    )
    assert any(killed in message for message in deployed.messages(failed)), deployed.messages(failed)
    print(f"\n[realnode] launch to the first rung's OOM kill: {time.monotonic() - started:.0f} s")

    deployed.retry_daemon_tick()
    retry = deployed.retry_of(failed)
    assert retry is not None, "Dagster's auto-retry did not re-execute the OOM-killed run"
    assert retry.root_run_id == run.run_id
    assert retry.tags[PROFILE_TAG] == "roomy"
    assert retry.tags[MEMORY_LIMIT_TAG] == "2Gi"
    assert retry.tags[LADDER_TAG] == "tiny:512Mi,roomy:2Gi"
    assert retry.tags[OOM_TAG] == "false"  # Dagster copied the parent's "true"; the launch resets it
    expected = f"Retrying on profile 'roomy' (2Gi) after run {run.run_id} was OOMKilled on 'tiny' (512Mi)"
    assert expected in deployed.messages(retry)

    retried_pod = deployed.pod_finished(retry)
    status = retried_pod["status"]["containerStatuses"][0]
    assert retried_pod["status"]["phase"] == "Succeeded", status
    assert status["state"]["terminated"]["exitCode"] == 0
    assert retried_pod["spec"]["nodeName"] == deployed.node.name
    container = next(c for c in retried_pod["spec"]["containers"] if c["name"] == "dagster")
    assert container["resources"]["limits"]["memory"] == "2Gi"
    assert deployed.finished(retry).status == DagsterRunStatus.SUCCESS
    print(f"\n[realnode] launch to the success on the second rung: {time.monotonic() - started:.0f} s")

    metadata = deployed.materialization(retry)
    assert metadata["allocated_mib"] == ALLOCATE_MIB
    assert int(metadata["memory_limit_bytes"]) == 2048 * MIB  # what the kernel enforces, read in the pod
    peak = int(metadata["cgroup_peak_bytes"])
    print(f"[realnode] the retry's cgroup peaked at {peak / MIB:.0f} MiB")
    assert 512 * MIB < peak <= 2048 * MIB  # more than the first rung allowed: the retry needed the rung

    deployed.retry_daemon_tick()
    assert deployed.retry_of(retry) is None
    assert len(deployed.instance.get_runs()) == 2
