"""Still a drop-in replacement: dagster-k8s's own launcher behaviours, run against ``K8sRunLauncher`` and
``ProfileK8sRunLauncher`` alike, where no profile is involved (no tag, no ``default_profile``).

The behaviours are the ones dagster-k8s's own launcher tests pin (config from the instance, container
context and ``run_k8s_config`` layering, run-tag config including an image, the ``dagster/*`` labels, the
``only_allow_user_defined_*`` allow-lists, the run worker's exit code, run health, resume after a run
worker crash, debug info) plus terminate and API failures; the cases are written here.

Real: etcd, kube-apiserver v1.37 (every Job is read back as the server stored it), kube-controller-manager
(the Job controller creates pods, counts them, retries a failed pod up to ``backoffLimit``, fails a Job
past ``activeDeadlineSeconds``), kube-scheduler, dagster 1.13 and dagster-k8s 0.29 with a sqlite
instance; the launcher logs in with the admin kubeconfig (RBAC is not what this module is about). kwok
plays the kubelet: nothing runs, a pod succeeds after ``floe.dev/test-run-duration``, or ends OOMKilled
when annotated ``floe.dev/test-oomkill``. Real sockets for connection-level failures: a closed port
(refused) and a listener that hangs up without answering. kmock's emulator only for answers a real
server gives on no demand: an HTTP 500 or 403 on one request, and a connection dropped on one request.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp.web
import dagster as dg
import kubernetes
import pytest
import urllib3
import yaml
from dagster._core.code_pointer import FileCodePointer
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.launcher.base import WorkerStatus
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.storage.tags import DOCKER_IMAGE_TAG
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._grpc.types import ExecuteRunArgs, ResumeRunArgs
from dagster_k8s.client import DagsterK8sAPIRetryLimitExceeded
from dagster_k8s.job import get_job_name_from_run_id

from testkit.controlplane import ControlPlane, wait_for
from testkit.emulator import EmulatedCluster
from testkit.faults import FaultPlan, Rule

IMAGE = "floe-platform/user-code:0.1.0"
LAUNCHERS = [
    pytest.param(("dagster_k8s", "K8sRunLauncher"), id="K8sRunLauncher"),
    pytest.param(("floe_platform.dagster.launcher", "ProfileK8sRunLauncher"), id="ProfileK8sRunLauncher"),
]


@dg.op
def work() -> None:
    """Never executed: kwok runs no container."""


@dg.job
def drop_in_job() -> None:
    work()


defs = dg.Definitions(jobs=[drop_in_job])


@pytest.fixture(params=LAUNCHERS)
def launcher_class(request: pytest.FixtureRequest) -> tuple[str, str]:
    module_and_class: tuple[str, str] = request.param
    return module_and_class


@dataclass
class Deployment:
    """A Dagster instance whose run launcher is ``launcher_class``, configured from dagster.yaml."""

    instance: dg.DagsterInstance
    namespace: str
    admin: Any  # a kubernetes ApiClient as admin, for the test's own reads

    @property
    def launcher(self) -> Any:
        return self.instance.run_launcher

    def create(
        self,
        tags: dict[str, str] | None = None,
        container_context: dict[str, Any] | None = None,
        location_name: str | None = None,
    ) -> DagsterRun:
        """A run of ``drop_in_job``; with ``location_name``, loaded from that code location (as the
        webserver's runs are), so the run has a remote origin."""
        origin = JobPythonOrigin(
            "drop_in_job",
            RepositoryPythonOrigin(
                executable_path=sys.executable,
                code_pointer=FileCodePointer(__file__, "defs"),
                container_image=IMAGE,
                container_context=container_context or {},
            ),
        )
        remote_origin = None
        if location_name is not None:
            location = InProcessCodeLocationOrigin(
                LoadableTargetOrigin(executable_path=sys.executable, python_file=__file__, attribute="defs"),
                container_image=IMAGE,
                location_name=location_name,
            )
            remote_origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), "drop_in_job")
        return self.instance.create_run_for_job(
            job_def=defs.resolve_job_def("drop_in_job"),
            job_code_origin=origin,
            remote_job_origin=remote_origin,
            tags=tags or {},
        )

    def launch(
        self,
        tags: dict[str, str] | None = None,
        container_context: dict[str, Any] | None = None,
        location_name: str | None = None,
    ) -> DagsterRun:
        run = self.create(tags, container_context, location_name)
        self.instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
        return self.run(run.run_id)

    def run(self, run_id: str) -> DagsterRun:
        found = self.instance.get_run_by_id(run_id)
        assert found is not None
        return found

    def job(self, run: DagsterRun) -> dict[str, Any]:
        batch = kubernetes.client.BatchV1Api(self.admin)
        job = batch.read_namespaced_job(get_job_name_from_run_id(run.run_id), self.namespace)
        serialized: dict[str, Any] = self.admin.sanitize_for_serialization(job)
        return serialized

    def job_gone(self, run: DagsterRun) -> bool | None:
        try:
            self.job(run)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return True
            raise
        return None

    def started(self, run: DagsterRun) -> DagsterRun:
        event = DagsterEvent(event_type_value=DagsterEventType.RUN_START.value, job_name="drop_in_job")
        self.instance.report_dagster_event(event, run.run_id)
        return self.run(run.run_id)

    def finished(self, run: DagsterRun) -> DagsterRun:
        self.instance.report_run_failed(run)
        return self.run(run.run_id)

    def job_status(self, run: DagsterRun, *keys: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            status: dict[str, Any] = self.job(run).get("status") or {}
            return status if all(status.get(key) for key in keys) else None

        return wait_for(f"the Job's status to show {keys}", probe, 60)


def _launcher_config(kubeconfig: Path, namespace: str, **extra: Any) -> dict[str, Any]:
    return {
        "service_account_name": "default",
        "instance_config_map": "dagster-instance",
        "dagster_home": "/opt/dagster/dagster_home",
        "job_image": IMAGE,
        "job_namespace": namespace,
        "load_incluster_config": False,
        "kubeconfig_file": str(kubeconfig),
        **extra,
    }


@pytest.fixture
def deploy(
    launcher_class: tuple[str, str], control_plane: ControlPlane, control_plane_namespace: str
) -> Iterator[Any]:
    """Builds Deployments on the real control plane with extra launcher config."""
    contexts: list[Any] = []
    admin = kubernetes.config.new_client_from_config(str(control_plane.kubeconfig))

    def make(**extra: Any) -> Deployment:
        deployment = _deployment(
            launcher_class, control_plane.kubeconfig, control_plane_namespace, extra, contexts
        )
        deployment.admin = admin
        return deployment

    yield make
    for context in reversed(contexts):
        context.__exit__(None, None, None)
    admin.close()


def _deployment(
    launcher_class: tuple[str, str],
    kubeconfig: Path,
    namespace: str,
    extra: dict[str, Any],
    contexts: list[Any],
) -> Deployment:
    module, name = launcher_class
    context = dg.instance_for_test(
        overrides={
            "run_launcher": {
                "module": module,
                "class": name,
                "config": _launcher_config(kubeconfig, namespace, **extra),
            },
            "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
        }
    )
    contexts.append(context)
    return Deployment(context.__enter__(), namespace, None)


def _reported(deployment: Deployment, run: DagsterRun, message: str) -> bool:
    """Whether the launcher wrote ``message`` to the run's event log (dagster prefixes the class name)."""
    return any(record.message.endswith(message) for record in deployment.instance.all_logs(run.run_id))


def _container(job: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = job["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _env(job: dict[str, Any]) -> dict[str, Any]:
    return {entry["name"]: entry for entry in _container(job).get("env") or []}


# Config ------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fail_pod_on_run_failure", [None, True])
def test_config_from_the_instance_reaches_the_launcher_and_the_job(
    deploy: Any, fail_pod_on_run_failure: bool | None
) -> None:
    """dagster.yaml keys become launcher attributes and the Job kube-apiserver stores: resources, labels,
    env_vars, the PostgreSQL password Secret, and the run worker's exit-code flag in its args."""
    resources = {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}}
    extra: dict[str, Any] = {
        "resources": resources,
        "labels": {"team": "data"},
        "env_vars": ["FOO_TEST=foo"],
        "postgres_password_secret": "dagster-postgresql-secret",
    }
    if fail_pod_on_run_failure is not None:
        extra["fail_pod_on_run_failure"] = fail_pod_on_run_failure
    deployment = deploy(**extra)
    launcher = deployment.launcher
    assert launcher.fail_pod_on_run_failure is fail_pod_on_run_failure
    assert launcher.resources == resources
    assert launcher.scheduler_name is None
    run = deployment.launch()
    job = deployment.job(run)
    container = _container(job)
    assert container["image"] == IMAGE
    assert run.tags[DOCKER_IMAGE_TAG] == IMAGE
    assert container["resources"] == resources
    assert "command" not in container  # the stock run worker, no wrapper: no profile is involved
    expected_args = ExecuteRunArgs(
        job_origin=run.job_code_origin,
        run_id=run.run_id,
        instance_ref=deployment.instance.get_ref(),
        set_exit_code_on_failure=fail_pod_on_run_failure,
    ).get_command_args()
    assert container["args"] == expected_args
    env = _env(job)
    assert env["FOO_TEST"]["value"] == "foo"
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "dagster-postgresql-secret"
    assert env["DAGSTER_RUN_JOB_NAME"]["value"] == "drop_in_job"
    assert job["spec"]["template"]["metadata"]["labels"]["team"] == "data"
    assert "floe.dev/profile" not in job["spec"]["template"]["metadata"]["labels"]
    assert not [name for name in env if name.startswith("DUCKDB_")]


@pytest.mark.slow
def test_without_a_postgres_secret_the_run_pod_gets_no_password(deploy: Any) -> None:
    deployment = deploy()
    job = deployment.job(deployment.launch())
    assert "DAGSTER_PG_PASSWORD" not in _env(job)


@pytest.mark.slow
def test_container_context_and_run_k8s_config_layering(deploy: Any) -> None:
    """Launcher ``run_k8s_config`` < code location container context < run tag; what is not overridden
    is kept (tty, backoffLimit), env lists from launcher and code location add up."""
    deployment = deploy(
        env_vars=["FOO_TEST=foo"],
        scheduler_name="test-scheduler",
        run_k8s_config={
            "container_config": {"command": ["echo", "RUN"], "tty": True},
            "pod_spec_config": {"dns_policy": "Default"},
            "job_spec_config": {"backoff_limit": 120},
        },
    )
    container_context = {
        "k8s": {
            "env_vars": ["BAR_TEST=bar"],
            "resources": {
                "limits": {"memory": "64Mi", "cpu": "250m"},
                "requests": {"memory": "32Mi", "cpu": "125m"},
            },
            "scheduler_name": "test-scheduler-2",
            "security_context": {"capabilities": {"add": ["SYS_PTRACE"]}},
            "run_k8s_config": {"container_config": {"command": ["echo", "REPLACED"]}},
        }
    }
    tag = {"container_config": {"working_dir": "/work/dir"}}
    run = deployment.launch({"dagster-k8s/config": json.dumps(tag)}, container_context)
    job = deployment.job(run)
    container = _container(job)
    assert container["command"] == ["echo", "REPLACED"]
    assert container["tty"] is True
    assert container["workingDir"] == "/work/dir"
    assert container["resources"] == {
        "limits": {"memory": "64Mi", "cpu": "250m"},
        "requests": {"memory": "32Mi", "cpu": "125m"},
    }
    assert container["securityContext"]["capabilities"]["add"] == ["SYS_PTRACE"]
    assert {"FOO_TEST", "BAR_TEST"} <= set(_env(job))
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["schedulerName"] == "test-scheduler-2"
    assert pod_spec["dnsPolicy"] == "Default"
    assert job["spec"]["backoffLimit"] == 120


@pytest.mark.slow
def test_run_tag_config_sets_resources_scheduler_and_labels(deploy: Any) -> None:
    deployment = deploy(
        labels={"from": "launcher"},
        resources={
            "requests": {"cpu": "250m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"},
        },
    )
    resources = {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "2560Mi"}}
    tag = {
        "container_config": {"resources": resources},
        "pod_spec_config": {"scheduler_name": "test-scheduler-2"},
        "pod_template_spec_metadata": {"labels": {"from-tag": "yes"}},
    }
    job = deployment.job(deployment.launch({"dagster-k8s/config": json.dumps(tag)}))
    assert _container(job)["resources"] == resources
    assert job["spec"]["template"]["spec"]["schedulerName"] == "test-scheduler-2"
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert (labels["from"], labels["from-tag"]) == ("launcher", "yes")


@pytest.mark.slow
def test_an_image_in_the_run_tag_replaces_the_code_locations_and_is_recorded_as_the_runs_image(
    deploy: Any,
) -> None:
    deployment = deploy()
    tag = {"container_config": {"image": "acme/other-image:2"}}
    run = deployment.launch({"dagster-k8s/config": json.dumps(tag)})
    assert _container(deployment.job(run))["image"] == "acme/other-image:2"
    assert run.tags[DOCKER_IMAGE_TAG] == "acme/other-image:2"


@pytest.mark.slow
def test_the_job_and_its_pod_carry_dagsters_job_run_and_code_location_labels(deploy: Any) -> None:
    """``dagster/job`` and ``dagster/run-id`` always; ``dagster/code-location`` for a run loaded from a code
    location; ``dagster/deployment-name`` from DAGSTER_CLOUD_DEPLOYMENT_NAME in the container's env."""
    deployment = deploy(
        run_k8s_config={
            "container_config": {"env": [{"name": "DAGSTER_CLOUD_DEPLOYMENT_NAME", "value": "prod"}]}
        }
    )
    located = deployment.launch(location_name="analytics")
    plain = deployment.launch()
    for run, location in ((located, "analytics"), (plain, None)):
        job = deployment.job(run)
        for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
            assert labels["dagster/job"] == "drop_in_job"
            assert labels["dagster/run-id"] == run.run_id
            assert labels["dagster/deployment-name"] == "prod"
            assert labels.get("dagster/code-location") == location


@pytest.mark.slow
def test_only_allow_user_defined_k8s_config_fields_refuses_a_run_outside_the_list(deploy: Any) -> None:
    """The allow-list binds what users set (run tag, code location), not the launcher's own config: an
    allowed field reaches the Job; a field outside the list fails the launch naming it, and no Job exists."""
    allowed = {"container_config": {"resources": True}, "pod_template_spec_metadata": {"labels": True}}
    deployment = deploy(
        only_allow_user_defined_k8s_config_fields=allowed,
        run_k8s_config={"container_config": {"working_dir": "/launcher"}},  # not user-defined: not bound
    )
    assert deployment.launcher.only_allow_user_defined_k8s_config_fields == allowed
    resources = {"limits": {"cpu": "500m", "memory": "256Mi"}}
    ok = {"container_config": {"resources": resources}, "pod_template_spec_metadata": {"labels": {"a": "b"}}}
    job = deployment.job(deployment.launch({"dagster-k8s/config": json.dumps(ok)}))
    assert _container(job)["resources"] == resources
    assert _container(job)["workingDir"] == "/launcher"
    assert job["spec"]["template"]["metadata"]["labels"]["a"] == "b"

    outside = {"container_config": {"working_dir": "/user"}, "pod_spec_config": {"dns_policy": "Default"}}
    refused = deployment.create({"dagster-k8s/config": json.dumps(outside)})
    with pytest.raises(Exception, match="violated the allowed list") as raised:
        deployment.instance.launch_run(refused.run_id, workspace=None)  # type: ignore[arg-type]
    assert {"container_config.working_dir", "pod_spec_config.dns_policy"} <= set(
        str(raised.value).rsplit(": ", 1)[1].split(", ")
    )
    assert deployment.job_gone(refused)
    assert deployment.run(refused.run_id).status == DagsterRunStatus.FAILURE

    in_code_location = {"k8s": {"run_k8s_config": {"pod_spec_config": {"dns_policy": "Default"}}}}
    with pytest.raises(Exception, match=r"violated the allowed list: pod_spec_config\.dns_policy"):
        deployment.launch(container_context=in_code_location)


@pytest.mark.slow
def test_only_allow_user_defined_env_vars_drops_the_others_set_by_users_and_keeps_the_launchers(
    deploy: Any,
) -> None:
    deployment = deploy(only_allow_user_defined_env_vars=["ALLOWED"], env_vars=["FROM_LAUNCHER=kept"])
    assert deployment.launcher.only_allow_user_defined_env_vars == ["ALLOWED"]
    tag = {
        "container_config": {
            "env": [{"name": "ALLOWED", "value": "1"}, {"name": "BLOCKED_TAG", "value": "2"}]
        }
    }
    container_context = {"k8s": {"env_vars": ["BLOCKED_LOCATION=3", "ALLOWED=4"]}}
    job = deployment.job(deployment.launch({"dagster-k8s/config": json.dumps(tag)}, container_context))
    env = _env(job)
    assert env["FROM_LAUNCHER"]["value"] == "kept"
    assert "ALLOWED" in env
    assert not {"BLOCKED_TAG", "BLOCKED_LOCATION"} & set(env)


# Run health, debug info, terminate ------------------------------------------------------------------------


@pytest.mark.slow
def test_run_health_follows_the_job_the_job_controller_reports(deploy: Any) -> None:
    """No Job: UNKNOWN. Active: RUNNING. Succeeded: SUCCESS for a finished run, FAILED for a started one
    (its worker never reported the end). Failed (kcm past activeDeadlineSeconds, not an OOM kill): FAILED."""
    deployment = deploy()
    launcher = deployment.launcher
    never_launched = deployment.create()
    health = launcher.check_run_worker_health(never_launched)
    assert health.status == WorkerStatus.UNKNOWN
    assert health.msg == f"Job {get_job_name_from_run_id(never_launched.run_id)} could not be found"

    long = {"pod_template_spec_metadata": {"annotations": {"floe.dev/test-run-duration": "120s"}}}
    active = deployment.started(deployment.launch({"dagster-k8s/config": json.dumps(long)}))
    deployment.job_status(active, "active")
    assert launcher.check_run_worker_health(active).status == WorkerStatus.RUNNING

    short = {"pod_template_spec_metadata": {"annotations": {"floe.dev/test-run-duration": "1s"}}}
    succeeded_started = deployment.started(deployment.launch({"dagster-k8s/config": json.dumps(short)}))
    succeeded_finished = deployment.finished(deployment.launch({"dagster-k8s/config": json.dumps(short)}))
    deployment.job_status(succeeded_started, "succeeded")
    deployment.job_status(succeeded_finished, "succeeded")
    health = launcher.check_run_worker_health(succeeded_started)
    assert (health.status, health.msg) == (
        WorkerStatus.FAILED,
        "Run has not completed but K8s job has no active pods",
    )
    assert launcher.check_run_worker_health(succeeded_finished).status == WorkerStatus.SUCCESS

    deadline = {**long, "job_spec_config": {"active_deadline_seconds": 2}}
    failed = deployment.finished(deployment.launch({"dagster-k8s/config": json.dumps(deadline)}))
    deployment.job_status(failed, "failed")
    health = launcher.check_run_worker_health(failed)
    assert (health.status, health.msg) == (WorkerStatus.FAILED, "K8s job failed")


@pytest.mark.slow
def test_a_job_with_a_failed_pod_and_an_active_retry_pod_reads_running(deploy: Any) -> None:
    """backoffLimit 1: kwok ends the first pod OOMKilled, kcm counts it failed and starts a second pod.
    With failed=1 and active=1 the run's worker is RUNNING, not FAILED."""
    deployment = deploy()
    tag = {
        "pod_template_spec_metadata": {
            "annotations": {"floe.dev/test-oomkill": "true", "floe.dev/test-run-duration": "30s"}
        },
        "job_spec_config": {"backoff_limit": 1},
    }
    run = deployment.started(deployment.launch({"dagster-k8s/config": json.dumps(tag)}))
    status = deployment.job_status(run, "failed", "active")
    assert (status["failed"], status["active"]) == (1, 1)
    health = deployment.launcher.check_run_worker_health(run)
    assert health.status == WorkerStatus.RUNNING, health.msg


@pytest.mark.slow
def test_resume_run_launches_a_numbered_job_that_health_and_terminate_then_follow(deploy: Any) -> None:
    """Run-worker crash recovery, as run monitoring does it (``instance.resume_run``): the original Job is
    gone, so health reads UNKNOWN; the resume creates ``dagster-run-<id>-1`` running ``api resume_run``;
    health then follows that Job, and terminate deletes it."""
    deployment = deploy()
    long = {"pod_template_spec_metadata": {"annotations": {"floe.dev/test-run-duration": "120s"}}}
    run = deployment.started(deployment.launch({"dagster-k8s/config": json.dumps(long)}))
    first = get_job_name_from_run_id(run.run_id)
    kubernetes.client.BatchV1Api(deployment.admin).delete_namespaced_job(
        first, deployment.namespace, propagation_policy="Background"
    )
    wait_for("the first Job to be gone", lambda: deployment.job_gone(run), 60)
    health = deployment.launcher.check_run_worker_health(run)
    assert (health.status, health.msg) == (WorkerStatus.UNKNOWN, f"Job {first} could not be found")

    deployment.instance.resume_run(run.run_id, workspace=None, attempt_number=1)  # type: ignore[arg-type]
    assert deployment.instance.count_resume_run_attempts(run.run_id) == 1
    resumed_name = get_job_name_from_run_id(run.run_id, resume_attempt_number=1)
    resumed = kubernetes.client.BatchV1Api(deployment.admin).read_namespaced_job(
        resumed_name, deployment.namespace
    )
    expected_args = ResumeRunArgs(
        job_origin=run.job_code_origin, run_id=run.run_id, instance_ref=deployment.instance.get_ref()
    ).get_command_args()
    assert resumed.spec.template.spec.containers[0].args == expected_args
    assert resumed.metadata.labels["dagster/run-id"] == run.run_id

    def active() -> bool | None:
        status = (
            kubernetes.client.BatchV1Api(deployment.admin)
            .read_namespaced_job_status(resumed_name, deployment.namespace)
            .status
        )
        return True if status.active else None

    wait_for("the resumed Job's pod to run", active, 60)
    assert deployment.launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
    assert deployment.launcher.terminate(run.run_id) is True

    def resumed_gone() -> bool | None:
        try:
            kubernetes.client.BatchV1Api(deployment.admin).read_namespaced_job(
                resumed_name, deployment.namespace
            )
        except kubernetes.client.ApiException as error:
            return True if error.status == 404 else None
        return None

    wait_for("terminate to delete the resumed Job", resumed_gone, 60)


@pytest.mark.slow
def test_debug_info_describes_the_pods_or_else_the_job(deploy: Any) -> None:
    """With a pod (kcm made it, kwok ran it): per-pod debug info and the kubectl hint for the pod. A Job
    whose pod the ResourceQuota refuses has none: the Job's debug info and the hint for the Job."""
    deployment = deploy()
    long = {"pod_template_spec_metadata": {"annotations": {"floe.dev/test-run-duration": "120s"}}}
    with_pod = deployment.launch({"dagster-k8s/config": json.dumps(long)})
    deployment.job_status(with_pod, "active")
    job_name = get_job_name_from_run_id(with_pod.run_id)
    info = deployment.launcher.get_run_worker_debug_info(with_pod, include_container_logs=False)
    assert f"Debug information for pod {job_name}-" in info
    assert f"`kubectl describe job {job_name}` in your cluster." in info
    assert "try running `kubectl describe pod " in info

    # kube-apiserver's ResourceQuota admission refuses every further pod: the next Job never gets one.
    quota = {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
    kubernetes.client.CoreV1Api(deployment.admin).create_namespaced_resource_quota(
        deployment.namespace, quota
    )
    podless = deployment.launch()
    deployment.job_status(podless, "startTime")
    podless_name = get_job_name_from_run_id(podless.run_id)
    info = deployment.launcher.get_run_worker_debug_info(podless, include_container_logs=False)
    assert f"Debug information for job {podless_name}:" in info
    hint = f"try running `kubectl describe job {podless_name}` in your cluster."
    assert info.endswith(f"For more information about the failure, {hint}")


@pytest.mark.slow
def test_terminate_deletes_the_job_and_reports_it_and_a_finished_run_is_left_alone(deploy: Any) -> None:
    deployment = deploy()
    long = {"pod_template_spec_metadata": {"annotations": {"floe.dev/test-run-duration": "120s"}}}
    run = deployment.started(deployment.launch({"dagster-k8s/config": json.dumps(long)}))
    assert deployment.launcher.terminate(run.run_id) is True
    assert deployment.run(run.run_id).status == DagsterRunStatus.CANCELING
    assert _reported(deployment, run, "Run was terminated successfully.")
    # A Job's default deletion orphans its pods: kube-controller-manager's garbage collector removes the
    # Job's `orphan` finalizer first, so the Job lingers for a moment after the DELETE is answered.
    wait_for("the terminated run's Job to be gone", lambda: deployment.job_gone(run), 60)
    done = deployment.finished(deployment.launch())
    assert deployment.launcher.terminate(done.run_id) is False


# API failures ---------------------------------------------------------------------------------------------


@dataclass
class BrokenEndpoint:
    """A real socket the launcher is pointed at: ``refused`` (nothing listens) or ``hang-up`` (accepts,
    reads, closes without answering)."""

    kind: str
    port: int
    _server: socket.socket | None = None

    @classmethod
    def start(cls, kind: str) -> BrokenEndpoint:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        if kind == "refused":
            server.close()
            return cls(kind, port)
        server.listen(16)
        endpoint = cls(kind, port, server)
        threading.Thread(target=endpoint._hang_up, daemon=True).start()
        return endpoint

    def _hang_up(self) -> None:
        assert self._server is not None
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            connection.recv(65536)
            connection.close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "broken", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "broken", "user": {"token": "unused"}}],
            "contexts": [{"name": "broken", "context": {"cluster": "broken", "user": "broken"}}],
            "current-context": "broken",
        }
        path.write_text(yaml.safe_dump(config))
        return path


@pytest.fixture(params=["refused", "hang-up"])
def broken(
    request: pytest.FixtureRequest, launcher_class: tuple[str, str], tmp_path: Path
) -> Iterator[Deployment]:
    endpoint = BrokenEndpoint.start(request.param)
    contexts: list[Any] = []
    try:
        yield _deployment(
            launcher_class, endpoint.kubeconfig(tmp_path / "broken.kubeconfig"), "floe", {}, contexts
        )
    finally:
        for context in reversed(contexts):
            context.__exit__(None, None, None)
        endpoint.stop()


@pytest.mark.slow
def test_connection_failures_fail_the_launch_and_read_as_unknown_health_and_failed_terminate(
    broken: Deployment,
) -> None:
    """urllib3 errors, not ApiException: health says UNKNOWN with the error, terminate reports the error
    and returns None, debug info raises it."""
    started = broken.started(broken.create())
    health = broken.launcher.check_run_worker_health(started)
    assert health.status == WorkerStatus.UNKNOWN
    assert "MaxRetryError" in (health.msg or "") or "ProtocolError" in (health.msg or "")
    assert broken.launcher.terminate(started.run_id) is None
    assert _reported(broken, started, "Run was not terminated successfully; encountered error in delete_job")
    with pytest.raises(urllib3.exceptions.HTTPError):
        broken.launcher.get_run_worker_debug_info(started)


@pytest.mark.slow
def test_a_refused_connection_fails_the_launch_after_dagster_k8s_retries(
    launcher_class: tuple[str, str], tmp_path: Path
) -> None:
    """dagster-k8s retries the Job's creation 3 times, 10 s apart, then gives up; the run is FAILURE."""
    endpoint = BrokenEndpoint.start("refused")
    contexts: list[Any] = []
    try:
        broken = _deployment(launcher_class, endpoint.kubeconfig(tmp_path / "k.yaml"), "floe", {}, contexts)
        run = broken.create()
        with pytest.raises(DagsterK8sAPIRetryLimitExceeded, match="Retry limit of 3 exceeded"):
            broken.instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
        assert broken.run(run.run_id).status == DagsterRunStatus.FAILURE
    finally:
        for context in reversed(contexts):
            context.__exit__(None, None, None)


@pytest.fixture
def emulated(launcher_class: tuple[str, str], kube_cluster: EmulatedCluster) -> Iterator[Deployment]:
    contexts: list[Any] = []
    try:
        deployment = _deployment(launcher_class, kube_cluster.kubeconfig_path, "floe", {}, contexts)
        deployment.admin = kube_cluster.api_client()
        yield deployment
    finally:
        for context in reversed(contexts):
            context.__exit__(None, None, None)


def _fail_job(deployment: Deployment, run: DagsterRun) -> None:
    """What the Job controller and kubelet would leave after a plain failure (exit code 1, no OOM)."""
    name = get_job_name_from_run_id(run.run_id)
    kubernetes.client.BatchV1Api(deployment.admin).patch_namespaced_job(
        name, "floe", {"status": {"failed": 1, "active": 0}}
    )
    core = kubernetes.client.CoreV1Api(deployment.admin)
    pod = {
        "metadata": {"name": f"{name}-abcde", "labels": {"job-name": name}},
        "spec": {"containers": [{"name": "dagster", "image": IMAGE}]},
    }
    core.create_namespaced_pod("floe", pod)


@pytest.mark.slow
@pytest.mark.parametrize("status", [500, 403])
def test_api_errors_of_the_server_read_the_same(
    emulated: Deployment, kube_cluster: EmulatedCluster, status: int
) -> None:
    """kmock answers one request with the status. The Job status read: a 500 is retried (10 s later) and
    the run reads RUNNING, a 403 makes health UNKNOWN naming it. Terminate returns None with the error
    reported. A failed run's pod listing (ProfileK8sRunLauncher looks for an OOM kill there) leaves the
    stock answer."""
    started = emulated.started(emulated.launch())
    name = get_job_name_from_run_id(started.run_id)
    batch = kubernetes.client.BatchV1Api(emulated.admin)
    batch.patch_namespaced_job(name, "floe", {"status": {"active": 1}})  # as the Job controller would
    status_read = FaultPlan([Rule("job status", frozenset({"FETCH"}), "jobs", status=status)])
    kube_cluster.emulator.fault_hook = status_read
    health = emulated.launcher.check_run_worker_health(started)
    assert status_read.fired["job status"] == 1
    if status == 500:
        assert health.status == WorkerStatus.RUNNING
    else:
        assert health.status == WorkerStatus.UNKNOWN
        assert f"({status})" in (health.msg or "")

    kube_cluster.emulator.fault_hook = None
    _fail_job(emulated, started)
    finished = emulated.finished(started)
    pod_list = FaultPlan([Rule("pods", frozenset({"LIST"}), "pods", status=status)])
    kube_cluster.emulator.fault_hook = pod_list
    health = emulated.launcher.check_run_worker_health(finished)
    assert (health.status, health.msg) == (WorkerStatus.FAILED, "K8s job failed")
    kube_cluster.emulator.fault_hook = None

    running = emulated.started(emulated.launch())
    delete = FaultPlan([Rule("delete", frozenset({"DELETE"}), "jobs", status=status)])
    kube_cluster.emulator.fault_hook = delete
    assert emulated.launcher.terminate(running.run_id) is None
    assert delete.fired["delete"] == 1
    assert _reported(
        emulated, running, "Run was not terminated successfully; encountered error in delete_job"
    )


class DropPodLists:
    """An emulator hook that hangs up on every pod listing without an answer: the client sees a connection
    error (urllib3 retries it, then MaxRetryError), not an HTTP status. kmock keeps the underlying aiohttp
    request private; this is the only place a test reaches for it."""

    def __init__(self) -> None:
        self.dropped = 0

    async def __call__(self, request: Any) -> aiohttp.web.StreamResponse | None:
        action = getattr(request.action, "value", "")
        if action == "LIST" and getattr(request.resource, "plural", "") == "pods":
            self.dropped += 1
            request._raw_request.transport.close()
            return aiohttp.web.Response(status=500)
        return None


@pytest.mark.slow
def test_a_dropped_connection_while_listing_pods_leaves_the_stock_health_answer(
    emulated: Deployment, kube_cluster: EmulatedCluster
) -> None:
    """Only ProfileK8sRunLauncher lists pods in a health check (to name an OOM kill); a connection error
    there must not turn the stock FAILED answer into an exception."""
    run = emulated.started(emulated.launch())
    _fail_job(emulated, run)
    finished = emulated.finished(run)
    hook = DropPodLists()
    kube_cluster.emulator.fault_hook = hook
    health = emulated.launcher.check_run_worker_health(finished)
    assert (health.status, health.msg) == (WorkerStatus.FAILED, "K8s job failed")
    if emulated.launcher.__class__.__name__ == "ProfileK8sRunLauncher":
        assert hook.dropped == 4  # the request and urllib3's three retries
