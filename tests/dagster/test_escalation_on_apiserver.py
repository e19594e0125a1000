"""Escalation on OOM: an OOM-killed run is retried one rung up its profile's ladder, on a real control plane.

Real: etcd, kube-apiserver v1.37 (RBAC with the chart's dagster ServiceAccount token, PodSecurity
``restricted``), kube-controller-manager (the Job controller makes the run pod and fails the Job when it
fails), kube-scheduler; dagster 1.13 with the chart's ``run_launcher``, ``run_monitoring`` and
``run_retries`` (dagster.yaml rendered by the real helm v4); Dagster's own failure path
(``monitor_started_run``, as the monitoring daemon calls it, which sets ``dagster/will_retry``) and its own
auto-retry (``EventLogConsumerDaemon.run_iteration``, the daemon's loop that re-executes failed runs), over
an in-process code location; the PodTemplates from our renderer. Storage is sqlite, not PostgreSQL.

Faked by kwok: nodes and the pods' lifecycle. No container runs: an OOM kill is kwok's stage for the pod
annotation ``floe.dev/test-oomkill`` (phase Failed, container terminated OOMKilled, exit code 137), the
tests report RUN_START where the run worker would, and memory limits are only asked for.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import kubernetes
import pytest
import yaml
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.execution.plan.resume_retry import ReexecutionStrategy
from dagster._core.launcher.base import WorkerStatus
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.storage.tags import MAX_RETRIES_TAG, PARENT_RUN_ID_TAG, WILL_RETRY_TAG
from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._daemon.auto_run_reexecution.event_log_consumer import EventLogConsumerDaemon
from dagster._daemon.monitoring.run_monitoring import monitor_started_run
from dagster_k8s.job import get_job_name_from_run_id
from test_launcher_on_apiserver import PATHS, RESTRICTED, _dagster_objects, helm_template

from floe_platform.config import load_platform_text
from floe_platform.dagster.escalation import LADDER_TAG
from floe_platform.dagster.profiles import MEMORY_LIMIT_TAG, PROFILE_TAG
from floe_platform.render import render_pod_templates
from floe_platform.usage.tags import OOM_TAG
from testkit.controlplane import ControlPlane, KubeApi, wait_for, write_service_account_kubeconfig

pytestmark = pytest.mark.slow  # each test runs one to three Jobs to their end on the control plane

IMAGE = "floe-platform/user-code:0.1.0"
LOCATION = "escalation-tests"
# The ladder; requests stay small so that every rung fits a kwok node.
PLATFORM = {
    "platform": {"name": "acme"},
    "infrastructure": {
        "resource_profiles": {
            "small": {
                "requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"cpu": "1", "memory": "2Gi"},
                "escalate_to": "transform",
            },
            "transform": {
                "requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"cpu": "2", "memory": "12Gi"},
                "escalate_to": "large",
            },
            "large": {
                "requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"cpu": "4", "memory": "48Gi"},
            },
        }
    },
}
OOM = {"floe.dev/test-oomkill": "true", "floe.dev/test-run-duration": "1s"}
ENDS_AT_ONCE = {"floe.dev/test-run-duration": "1s"}


@dg.op
def work() -> None:
    """Never executed: kwok runs no container."""


@dg.job(tags={PROFILE_TAG: "small"})
def ladder_job() -> None:
    work()


defs = dg.Definitions(jobs=[ladder_job])


@dataclass
class Deployment:
    """The chart's Dagster instance against the control plane, with this module as its code location."""

    plane: ControlPlane
    namespace: str
    instance: dg.DagsterInstance
    workspace: WorkspaceProcessContext

    @property
    def admin(self) -> KubeApi:
        return self.plane.admin_api()

    def submit(self, tags: dict[str, str], pod_annotations: dict[str, str]) -> DagsterRun:
        """Create and submit a run of ``ladder_job``, as the webserver does; its pod gets the annotations
        through the run's dagster-k8s/config tag (which Dagster copies onto every retry)."""
        context = self.workspace.create_request_context()
        remote_job = (
            context.get_code_location(LOCATION).get_repository("__repository__").get_full_job("ladder_job")
        )
        config = {"pod_template_spec_metadata": {"annotations": pod_annotations}}
        run = self.instance.create_run_for_job(
            job_def=defs.resolve_job_def("ladder_job"),
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
            tags={**tags, "dagster-k8s/config": json.dumps(config)},
        )
        self.instance.submit_run(run.run_id, context)
        return self.run(run.run_id)

    def run(self, run_id: str) -> DagsterRun:
        found = self.instance.get_run_by_id(run_id)
        assert found is not None
        return found

    def pod(self, run: DagsterRun, *phases: str) -> dict[str, Any]:
        job = get_job_name_from_run_id(run.run_id)

        def probe() -> dict[str, Any] | None:
            path = f"/api/v1/namespaces/{self.namespace}/pods?labelSelector=job-name%3D{job}"
            pods = self.admin.get(path)["items"]
            return pods[0] if pods and pods[0].get("status", {}).get("phase") in phases else None

        return wait_for(f"the pod of {job} in {'/'.join(phases)}", probe, 60)

    def run_until_the_worker_dies(self, run: DagsterRun) -> DagsterRun:
        """Start the run (as its worker would report), let kwok end its pod, then let Dagster's run
        monitoring find the dead worker and fail the run, as the daemon does."""
        self.pod(run, "Running", "Failed", "Succeeded")
        event = DagsterEvent(event_type_value=DagsterEventType.RUN_START.value, job_name=run.job_name)
        self.instance.report_dagster_event(event, run.run_id)
        started = self.run(run.run_id)
        self.pod(run, "Failed", "Succeeded")
        launcher = self.instance.run_launcher

        def worker_failed() -> bool | None:
            return True if launcher.check_run_worker_health(started).status == WorkerStatus.FAILED else None

        wait_for("kcm to fail the Job", worker_failed, 60)
        record = self.instance.get_run_record_by_id(run.run_id)
        assert record is not None
        monitor_started_run(
            self.instance, self.workspace.create_request_context(), record, logging.getLogger()
        )
        failed = self.run(run.run_id)
        assert failed.status == DagsterRunStatus.FAILURE
        return failed

    def retry_daemon_tick(self) -> None:
        """One iteration of Dagster's auto-retry daemon (the event-log consumer)."""
        list(EventLogConsumerDaemon().run_iteration(self.workspace))

    def retry_of(self, run: DagsterRun) -> DagsterRun | None:
        children = [r for r in self.instance.get_runs() if r.tags.get(PARENT_RUN_ID_TAG) == run.run_id]
        assert len(children) <= 1
        return children[0] if children else None

    def memory_limit_of_job(self, run: DagsterRun) -> str:
        job = get_job_name_from_run_id(run.run_id)
        body = self.admin.get(f"/apis/batch/v1/namespaces/{self.namespace}/jobs/{job}")
        container = next(c for c in body["spec"]["template"]["spec"]["containers"] if c["name"] == "dagster")
        memory: str = container["resources"]["limits"]["memory"]
        return memory

    def messages(self, run: DagsterRun) -> list[str]:
        """The messages of the run's events, as Dagster's event log stores them (not shortened)."""
        entries = self.instance.all_logs(run.run_id)
        return [entry.dagster_event.message or "" for entry in entries if entry.dagster_event is not None]


@contextmanager
def deployment(
    plane: ControlPlane, namespace: str, tmp_path: Path, *, run_retries: bool = True
) -> Iterator[Deployment]:
    """As admin: the restricted label, the chart's dagster RBAC, the operator's PodTemplates. Then the
    chart's instance settings with the ServiceAccount's token, and an in-process code location;
    ``run_retries=False`` turns the chart's run_retries off, as a dagster.yaml without them has it."""
    admin = plane.admin_api()
    with kubernetes.config.new_client_from_config(str(plane.kubeconfig)) as client:
        kubernetes.client.CoreV1Api(client).patch_namespace(namespace, {"metadata": {"labels": RESTRICTED}})
    dagster_yaml, rbac = _dagster_objects(helm_template(namespace, tmp_path))
    for doc in rbac:
        admin.create(PATHS[doc["kind"]].format(ns=namespace), doc)
    config = load_platform_text(yaml.safe_dump(PLATFORM))
    for template in render_pod_templates(config, namespace=namespace):
        admin.create(PATHS["PodTemplate"].format(ns=namespace), template)
    launcher = dagster_yaml["run_launcher"]
    account = launcher["config"]["service_account_name"]
    kubeconfig = write_service_account_kubeconfig(plane, namespace, account, tmp_path / "dagster.kubeconfig")
    launcher["config"].update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    assert dagster_yaml["run_retries"]["enabled"] is True
    overrides = {
        "run_launcher": launcher,
        "run_monitoring": dagster_yaml["run_monitoring"],
        "run_retries": dagster_yaml["run_retries"] if run_retries else {"enabled": False},
        # The chart's QueuedRunCoordinator needs the queue daemon; the launch that follows is the same.
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
    }
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, python_file=__file__, attribute="defs"),
        container_image=IMAGE,
        location_name=LOCATION,
    )
    with (
        dg.instance_for_test(overrides=overrides) as instance,
        WorkspaceProcessContext(instance, InProcessTestWorkspaceLoadTarget(origin)) as workspace,
    ):
        found = Deployment(plane, namespace, instance, workspace)
        found.retry_daemon_tick()  # the daemon's first tick starts reading the event log from here
        yield found


@pytest.fixture
def deployed(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> Iterator[Deployment]:
    with deployment(control_plane, control_plane_namespace, tmp_path) as found:
        yield found


def _oom_sentence_start(deployed: Deployment, run: DagsterRun) -> str:
    pod = deployed.pod(run, "Failed")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    return f"Run worker pod {pod['metadata']['name']} was OOMKilled: it used more than the memory limit"


def test_each_oom_kill_moves_the_retry_one_rung_up_and_the_top_rung_stops(deployed: Deployment) -> None:
    """small (2Gi) -> transform (12Gi) -> large (48Gi): each run's pod is OOMKilled; the job sets no
    retries, yet Dagster's daemon retries the first two on the next rung, and the third fails for good
    with the sentence naming the ladder tried."""
    rungs = [("small", "2Gi"), ("transform", "12Gi"), ("large", "48Gi")]
    run = deployed.submit({}, OOM)
    root = run
    for index, (profile, memory) in enumerate(rungs):
        assert run.tags[PROFILE_TAG] == profile
        assert deployed.memory_limit_of_job(run) == memory
        failed = deployed.run_until_the_worker_dies(run)
        killed = _oom_sentence_start(deployed, run)
        assert failed.tags[OOM_TAG] == "true"
        deployed.retry_daemon_tick()
        retry = deployed.retry_of(failed)
        if index == len(rungs) - 1:
            break
        assert failed.tags[WILL_RETRY_TAG] == "true"
        assert failed.tags[MAX_RETRIES_TAG] == str(index + 1)  # the launcher's grant: the group's size
        next_profile, next_memory = rungs[index + 1]
        assert any(
            f"{killed} {memory} of resource profile {profile!r}, which escalates to {next_profile!r}" in m
            for m in deployed.messages(failed)
        )
        assert retry is not None, "Dagster's auto-retry did not re-execute the OOM-killed run"
        assert retry.root_run_id == root.run_id
        assert retry.tags[OOM_TAG] == "false"  # Dagster copied the parent's "true"; the launch resets it
        expected = (
            f"Retrying on profile {next_profile!r} ({next_memory}) after run {failed.run_id} was OOMKilled "
            f"on {profile!r} ({memory})"
        )
        assert expected in deployed.messages(retry)
        run = retry
    assert retry is None, "the top rung was retried"
    assert failed.tags[WILL_RETRY_TAG] == "false"
    assert failed.tags[LADDER_TAG] == "small:2Gi,transform:12Gi,large:48Gi"
    assert failed.tags[MEMORY_LIMIT_TAG] == "48Gi"
    last = (
        f"{killed} 48Gi of resource profile 'large', the top of the escalation ladder tried "
        "('small' (2Gi) -> 'transform' (12Gi) -> 'large' (48Gi)); raise limits.memory of 'large' in "
        "platform.yaml"
    )
    assert any(last in message for message in deployed.messages(failed)), deployed.messages(failed)
    assert len(deployed.instance.get_runs()) == 3


@pytest.mark.parametrize(
    ("user_retries", "retried_on"),
    [pytest.param({}, None, id="no-retries-asked"), pytest.param({MAX_RETRIES_TAG: "1"}, "small", id="one")],
)
def test_a_failure_that_is_not_an_oom_kill_is_not_escalated(
    deployed: Deployment, user_retries: dict[str, str], retried_on: str | None
) -> None:
    """The run's pod on 'small' (which escalates) ends without its worker reporting the end: run monitoring
    fails the run, not for memory. No retry is added; with the user's own dagster/max_retries, Dagster
    retries it on the same profile."""
    failed = deployed.run_until_the_worker_dies(deployed.submit(user_retries, ENDS_AT_ONCE))
    assert deployed.pod(failed, "Succeeded")
    launcher_events = [m for m in deployed.messages(failed) if "run worker job" in m]
    assert launcher_events == [
        "[ProfileK8sRunLauncher] Kubernetes run worker job created on resource profile 'small' (job tag)"
    ]
    assert OOM_TAG not in failed.tags
    assert failed.tags.get(MAX_RETRIES_TAG) == user_retries.get(MAX_RETRIES_TAG)
    deployed.retry_daemon_tick()
    retry = deployed.retry_of(failed)
    if retried_on is None:
        assert retry is None
        assert failed.tags[WILL_RETRY_TAG] == "false"
        return
    assert retry is not None
    assert retry.tags[PROFILE_TAG] == retried_on
    assert deployed.memory_limit_of_job(retry) == "2Gi"
    assert not [m for m in deployed.messages(retry) if m.startswith("Retrying on profile")]


def test_a_pinned_profile_still_escalates(deployed: Deployment) -> None:
    """The run tag floe/resource-profile picks the rung a run starts on; the ladder is the profile's. Pinned
    to 'transform', the OOM-killed run is retried on 'large', and 'large' OOM-killed is the end."""
    pinned = deployed.submit({PROFILE_TAG: "transform"}, OOM)
    assert deployed.memory_limit_of_job(pinned) == "12Gi"
    failed = deployed.run_until_the_worker_dies(pinned)
    deployed.retry_daemon_tick()
    retry = deployed.retry_of(failed)
    assert retry is not None
    assert retry.tags[PROFILE_TAG] == "large"
    assert deployed.memory_limit_of_job(retry) == "48Gi"
    assert (
        f"Retrying on profile 'large' (48Gi) after run {pinned.run_id} was OOMKilled on 'transform' (12Gi)"
        in deployed.messages(retry)
    )
    top = deployed.run_until_the_worker_dies(retry)
    deployed.retry_daemon_tick()
    assert deployed.retry_of(top) is None
    assert top.tags[LADDER_TAG] == "transform:12Gi,large:48Gi"


def test_a_job_the_api_server_refuses_is_named_with_its_profile(deployed: Deployment) -> None:
    """A ResourceQuota of zero Jobs: kube-apiserver's quota admission refuses the run's Job. The one event
    that names the Job and its profile, written after the Job exists when all goes well, is written
    before the launch fails, and Dagster fails the run (dagster-k8s wraps the API's refusal)."""
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-jobs"},
        "spec": {"hard": {"count/jobs.batch": "0"}},
    }
    deployed.admin.create(PATHS["ResourceQuota"].format(ns=deployed.namespace), quota)

    def quota_counted() -> bool | None:
        path = f"/api/v1/namespaces/{deployed.namespace}/resourcequotas/no-jobs"
        return True if deployed.admin.get(path).get("status", {}).get("hard") else None

    wait_for("kcm's quota controller to count the quota", quota_counted, 30)
    with pytest.raises(Exception, match="Kubernetes API Client") as raised:
        deployed.submit({}, ENDS_AT_ONCE)
    assert "exceeded quota: no-jobs" in str(raised.value.__cause__ or raised.value.__context__)
    [run] = deployed.instance.get_runs()
    assert run.status == DagsterRunStatus.FAILURE
    messages = deployed.messages(run)
    assert (
        "[ProfileK8sRunLauncher] Creating Kubernetes run worker job on resource profile 'small' (job tag)"
        in (messages)
    )
    assert not [m for m in messages if "run worker job created" in m]


def test_with_run_retries_off_an_oom_kill_on_a_profile_that_escalates_says_it_is_not_retried(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """dagster.yaml without run_retries: the OOM-killed run on 'small' is marked, gets no retry budget, and
    its failure names the rung it would have climbed to and the two ways there."""
    with deployment(control_plane, control_plane_namespace, tmp_path, run_retries=False) as deployed:
        assert not deployed.instance.run_retries_enabled
        run = deployed.submit({}, OOM)
        failed = deployed.run_until_the_worker_dies(run)
        killed = _oom_sentence_start(deployed, run)
        assert failed.tags[OOM_TAG] == "true"
        assert MAX_RETRIES_TAG not in failed.tags  # no budget granted: nothing would use it
        expected = (
            f"{killed} 2Gi of resource profile 'small', which escalates to 'transform', but run_retries is "
            "not enabled in dagster.yaml, so it is not retried; enable run_retries, or run it on "
            f"'transform' with the run tag {PROFILE_TAG}."
        )
        assert any(expected in message for message in deployed.messages(failed)), deployed.messages(failed)
        deployed.retry_daemon_tick()
        assert deployed.retry_of(failed) is None
        assert len(deployed.instance.get_runs()) == 1


def test_a_hand_reexecution_escalates_with_the_parents_profile_tag_and_not_with_another(
    deployed: Deployment,
) -> None:
    """Two re-executions of one OOM-killed run on 'small', made by hand as the UI's re-execute does
    (``create_reexecuted_run`` with the parent's tags): the one that keeps the parent's profile tag climbs
    to 'transform'; the one whose tag names 'large' runs on 'large', with no escalation event or ladder."""
    failed = deployed.run_until_the_worker_dies(deployed.submit({}, OOM))
    assert failed.tags[OOM_TAG] == "true"
    context = deployed.workspace.create_request_context()
    location = context.get_code_location(LOCATION)
    remote_job = location.get_repository("__repository__").get_full_job("ladder_job")

    def reexecute(extra_tags: dict[str, str]) -> DagsterRun:
        run = deployed.instance.create_reexecuted_run(
            request_context=context,
            parent_run=failed,
            code_location=location,
            remote_job=remote_job,
            strategy=ReexecutionStrategy.ALL_STEPS,
            extra_tags=extra_tags,
            use_parent_run_tags=True,
        )
        deployed.instance.submit_run(run.run_id, context)
        return deployed.run(run.run_id)

    kept, other = reexecute({}), reexecute({PROFILE_TAG: "large"})
    assert kept.tags[PARENT_RUN_ID_TAG] == other.tags[PARENT_RUN_ID_TAG] == failed.run_id
    assert (kept.tags[PROFILE_TAG], deployed.memory_limit_of_job(kept)) == ("transform", "12Gi")
    assert (
        f"Retrying on profile 'transform' (12Gi) after run {failed.run_id} was OOMKilled on 'small' (2Gi)"
        in deployed.messages(kept)
    )
    assert (other.tags[PROFILE_TAG], deployed.memory_limit_of_job(other)) == ("large", "48Gi")
    assert not [m for m in deployed.messages(other) if m.startswith("Retrying on profile")]
    assert LADDER_TAG not in other.tags
