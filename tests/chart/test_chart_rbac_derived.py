"""The chart's RBAC, derived from the API calls the code really makes, for every CI values file.

Each ServiceAccount's Role is not a list typed by hand: the test drives every path of the component
(the run launcher from the webserver and the daemon; the operator's reconcile, drift repair, status and
the removal of an earlier version's finalizer), records each request it makes as RBAC attributes, and
checks them against the Role and RoleBinding that real `helm template` (helm v4) renders, with
``testkit.rbac`` following Kubernetes' RBAC rules. The grants must equal what was used: nothing missing,
nothing extra.

Real: dagster 1.13 and dagster-k8s 0.29 (``ProfileK8sRunLauncher``, run monitoring's
``monitor_started_run``), the kubernetes client, kopf 1.45 (the operator in its own process), helm v4.
Stand-in: kmock's emulator for the API server, with ``testkit.rbac_gate`` answering 403 as a real
authorizer would to what the rendered Role does not allow. The real authorizer, with each component's
own ServiceAccount token, is the control-plane tier's job; this test needs no cluster.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import kubernetes
import pytest
import yaml
from chart_render import CI_DIR, CI_NAMES, NAMESPACE, Rendered, render
from dagster._core.code_pointer import FileCodePointer
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.execution.api import execute_run
from dagster._core.launcher.base import WorkerStatus
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._daemon.monitoring.run_monitoring import monitor_started_run
from dagster._utils.interrupts import capture_interrupts
from dagster_k8s.job import get_job_name_from_run_id

from floe_platform.api import platform_resource
from floe_platform.config import load_platform_text
from floe_platform.dagster.executor import profile_k8s_job_executor
from floe_platform.dagster.profiles import PROFILE_TAG
from floe_platform.render import render_pod_templates
from testkit.emulator import EmulatedCluster
from testkit.operator_process import OperatorProcess
from testkit.rbac_gate import Identity, RbacGate
from testkit.waiting import eventually

IMAGE = "floe-platform/user-code:0.1.0"
LAUNCHER_TOKEN = "dagster-service-account-token"
OPERATOR_TOKEN = "operator-service-account-token"
PROFILES = """
infrastructure:
  resource_profiles:
    small:
      requests: {cpu: 250m, memory: 512Mi}
      limits: {cpu: "1", memory: 2Gi}
"""


@dg.op
def work() -> None:
    """Never executed here: the run worker would run it in the pod."""


@dg.job
def rbac_job() -> None:
    work()


defs = dg.Definitions(jobs=[rbac_job])


def _service_account(release: Rendered, suffix: str) -> str:
    name: str = release.named("ServiceAccount", suffix)["metadata"]["name"]
    return name


@dataclass
class LauncherPaths:
    """A Dagster instance whose run launcher is the chart's, talking to the emulator as its ServiceAccount."""

    cluster: EmulatedCluster
    instance: dg.DagsterInstance
    identity: Identity

    @property
    def launcher(self) -> Any:
        return self.instance.run_launcher

    def batch(self) -> Any:
        return kubernetes.client.BatchV1Api(self.cluster.api_client())

    def core(self) -> Any:
        return kubernetes.client.CoreV1Api(self.cluster.api_client())

    def launch(self, tags: dict[str, str] | None = None) -> DagsterRun:
        origin = JobPythonOrigin(
            "rbac_job",
            RepositoryPythonOrigin(
                executable_path=sys.executable,
                code_pointer=FileCodePointer(__file__, "defs"),
                container_image=IMAGE,
            ),
        )
        run = self.instance.create_run_for_job(
            job_def=defs.resolve_job_def("rbac_job"),
            job_code_origin=origin,
            tags={PROFILE_TAG: "small", **(tags or {})},
        )
        self.instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
        self.instance.report_dagster_event(
            DagsterEvent(event_type_value=DagsterEventType.RUN_START.value, job_name="rbac_job"), run.run_id
        )
        started = self.instance.get_run_by_id(run.run_id)
        assert started is not None
        assert started.status == DagsterRunStatus.STARTED
        return started

    def set_job_status(self, run: DagsterRun, **status: int) -> None:
        """What the Job controller would write (as the test's own admin identity)."""
        body = {"status": {"startTime": "2026-01-01T00:00:00Z", **status}}
        self.batch().patch_namespaced_job_status(_job_name(run), NAMESPACE, body)

    def add_pod(self, run: DagsterRun, oom_killed: bool) -> None:
        """The run's pod as the Job controller and kubelet would leave it."""
        name = f"{_job_name(run)}-abcde"
        self.core().create_namespaced_pod(
            NAMESPACE,
            {
                "metadata": {"name": name, "labels": {"job-name": _job_name(run)}},
                "spec": {"containers": [{"name": "dagster", "image": IMAGE}]},
            },
        )
        terminated = {"exitCode": 137, "reason": "OOMKilled"} if oom_killed else {"exitCode": 0}
        container = {"name": "dagster", "image": IMAGE, "imageID": "", "ready": False, "restartCount": 0}
        container["state"] = {"terminated": terminated}
        phase = "Failed" if oom_killed else "Succeeded"
        self.core().patch_namespaced_pod_status(
            name, NAMESPACE, {"status": {"phase": phase, "containerStatuses": [container]}}
        )


def _job_name(run: DagsterRun) -> str:
    name: str = get_job_name_from_run_id(run.run_id)
    return name


def _launcher_paths(release: Rendered, cluster: EmulatedCluster, tmp_path: Path) -> Iterator[LauncherPaths]:
    """The chart's dagster.yaml run launcher, pointed at the emulator with the launcher's own token."""
    gate = RbacGate()
    identity = gate.add(LAUNCHER_TOKEN, NAMESPACE, _service_account(release, "dagster"), release.docs)
    cluster.emulator.fault_hook = gate
    cluster.emulator.honour_label_selectors = True  # debug info of a pod-less Job depends on them
    config = dict(release.dagster_yaml()["run_launcher"]["config"])
    config.update(load_incluster_config=False)
    config["kubeconfig_file"] = str(
        cluster.write_kubeconfig(tmp_path / "launcher.kubeconfig", LAUNCHER_TOKEN)
    )
    core = kubernetes.client.CoreV1Api(cluster.api_client())
    platform = load_platform_text(PROFILES)
    for template in render_pod_templates(platform, config["platform_name"], NAMESPACE):
        core.create_namespaced_pod_template(NAMESPACE, template)
    overrides = {
        "run_launcher": {
            "module": "floe_platform.dagster.launcher",
            "class": "ProfileK8sRunLauncher",
            "config": config,
        },
        # The chart's QueuedRunCoordinator would stop at QUEUED without a daemon; launching is the same.
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
    }
    with dg.instance_for_test(overrides=overrides) as instance:
        yield LauncherPaths(cluster, instance, identity)


def drive_every_launcher_path(paths: LauncherPaths) -> None:
    """Launch, monitor (running, succeeded, OOM-killed), debug info, terminate, and an unknown profile."""
    launcher = paths.launcher
    running = paths.launch()
    paths.set_job_status(running, active=1)
    assert launcher.check_run_worker_health(running).status == WorkerStatus.RUNNING
    # Run monitoring as the daemon does it: a healthy running run must stay STARTED.
    record = paths.instance.get_run_record_by_id(running.run_id)
    monitor_started_run(paths.instance, None, record, _quiet())  # type: ignore[arg-type]
    after = paths.instance.get_run_by_id(running.run_id)
    assert after is not None
    assert after.status == DagsterRunStatus.STARTED, "run monitoring failed a healthy run"

    paths.set_job_status(running, succeeded=1)
    assert launcher.check_run_worker_health(running).status == WorkerStatus.SUCCESS

    oom = paths.launch()
    paths.set_job_status(oom, failed=1)
    paths.add_pod(oom, oom_killed=True)
    health = launcher.check_run_worker_health(oom)
    assert health.status == WorkerStatus.FAILED
    assert "OOMKilled" in (health.msg or "")
    assert "OOMKilled" in (launcher.get_run_worker_debug_info(oom) or "")

    podless = paths.launch()  # failed before any pod existed: debug info then reads the Job and events
    paths.set_job_status(podless, failed=1)
    assert launcher.get_run_worker_debug_info(podless)

    cancelled = paths.launch()
    paths.add_pod(cancelled, oom_killed=False)
    assert launcher.terminate(cancelled.run_id)
    remaining = paths.core().list_namespaced_pod(NAMESPACE).items
    assert _job_name(cancelled) not in {pod.metadata.labels.get("job-name") for pod in remaining}

    with pytest.raises(Exception, match="Available profiles: small"):
        paths.launch({PROFILE_TAG: "huge"})


def _quiet() -> logging.Logger:
    return logging.getLogger("floe.tests.run_monitoring")


def _describe(keys: set[tuple[str, str, str, str]]) -> list[str]:
    return sorted(
        f"{verb} {group or 'core'}/{res}{'/' + sub if sub else ''}" for verb, group, res, sub in keys
    )


def assert_granted_exactly_what_was_used(identity: Identity) -> None:
    denied = sorted({str(request) for request in identity.denied})
    assert not denied, f"{identity.user} was refused: {denied}"
    needed, granted = identity.needed(), identity.authorizer.granted()
    assert _describe(granted - needed) == [], f"granted but never used by {identity.user}"
    assert _describe(needed - granted) == [], f"used but not granted to {identity.user}"


@pytest.mark.slow
@pytest.mark.parametrize("values", CI_NAMES)
def test_run_launcher_role_grants_exactly_what_every_run_path_uses(
    values: str, kube_cluster: EmulatedCluster, tmp_path: Path
) -> None:
    """Launch, run monitoring, OOM health, debug info and terminate, as the chart's dagster ServiceAccount."""
    release = render([CI_DIR / f"{values}-values.yaml"])
    for paths in _launcher_paths(release, kube_cluster, tmp_path):
        drive_every_launcher_path(paths)
        print(f"{values}: launcher used {_describe(paths.identity.needed())}")
        assert_granted_exactly_what_was_used(paths.identity)


# The run worker of the step executor (dagster.stepJobs.enabled) ----------------------------------------

RUN_WORKER_TOKEN = "run-worker-service-account-token"
STEP_JOBS_VALUES = [
    name
    for name in CI_NAMES
    if (yaml.safe_load((CI_DIR / f"{name}-values.yaml").read_text()) or {})
    .get("dagster", {})
    .get("stepJobs", {})
    .get("enabled")
]


@dg.op(tags={PROFILE_TAG: "small"})
def oom_step() -> None:
    """Never executed: its Job is failed by the test, as the Job controller would fail it."""


@dg.op(tags={PROFILE_TAG: "small"})
def cancelled_step() -> None:
    """Never executed: the run is terminated while its Job is active."""


@dg.op(tags={PROFILE_TAG: "huge"})
def unknown_profile_step() -> None:
    """Never launched."""


@dg.job(executor_def=profile_k8s_job_executor)
def step_job() -> None:
    oom_step()
    cancelled_step()
    unknown_profile_step()


def _step_job_names(batch: Any, run_id: str) -> dict[str, str]:
    jobs = batch.list_namespaced_job(NAMESPACE).items
    return {
        job.metadata.labels["dagster/op"]: job.metadata.name
        for job in jobs
        if job.metadata.labels.get("dagster/run-id") == run_id
    }


def drive_every_step_path(cluster: EmulatedCluster, instance: dg.DagsterInstance) -> None:
    """The run worker's real ``execute_run`` on the main thread; this thread plays the Job controller and
    kubelet (an OOM kill of one step) and then terminates the run as Kubernetes does: SIGTERM to the run
    worker, which the executor forwards to the step still running by deleting its Job."""
    recon = ReconstructableJob.for_file(__file__, "step_job")
    run = instance.create_run_for_job(
        job_def=recon.get_definition(), job_code_origin=recon.get_python_origin()
    )
    batch = kubernetes.client.BatchV1Api(cluster.api_client())
    core = kubernetes.client.CoreV1Api(cluster.api_client())
    errors: list[BaseException] = []

    def job_controller() -> None:
        try:
            names = eventually(
                lambda: (
                    _step_job_names(batch, run.run_id)
                    if len(_step_job_names(batch, run.run_id)) == 2
                    else None
                ),
                timeout=60,
            )
            oom_job = names["oom_step"]
            batch.patch_namespaced_job_status(names["cancelled_step"], NAMESPACE, {"status": {"active": 1}})
            batch.patch_namespaced_job_status(oom_job, NAMESPACE, {"status": {"failed": 1}})
            pod = f"{oom_job}-abcde"
            core.create_namespaced_pod(
                NAMESPACE,
                {
                    "metadata": {"name": pod, "labels": {"job-name": oom_job}},
                    "spec": {
                        "containers": [
                            {"name": "dagster", "image": IMAGE, "resources": {"limits": {"memory": "2Gi"}}}
                        ]
                    },
                },
            )
            container = {
                "name": "dagster",
                "image": IMAGE,
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
            }
            core.patch_namespaced_pod_status(
                pod, NAMESPACE, {"status": {"phase": "Failed", "containerStatuses": [container]}}
            )
            eventually(
                lambda: (
                    True if instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE)[1:] else None
                ),
                timeout=60,
            )
            os.kill(os.getpid(), signal.SIGTERM)
        except BaseException as error:
            errors.append(error)

    controller = threading.Thread(target=job_controller, daemon=True)
    controller.start()
    with capture_interrupts():
        execute_run(recon, run, instance)
    controller.join(10)
    assert not errors, errors
    failures = {
        record.dagster_event.step_key: str(record.dagster_event.step_failure_data.error)
        for record in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE)
        if record.dagster_event is not None
    }
    assert "Step worker pod" in failures["oom_step"]
    assert "Available profiles: small" in failures["unknown_profile_step"]
    assert "cancelled_step" not in _step_job_names(batch, run.run_id)  # terminated: its Job deleted


@pytest.mark.slow
@pytest.mark.parametrize("values", STEP_JOBS_VALUES)
def test_run_worker_role_grants_exactly_what_the_step_executor_uses(
    values: str, kube_cluster: EmulatedCluster, tmp_path: Path
) -> None:
    """Launch steps (one with an unknown profile), step health with an OOM kill, terminate, as the chart's
    run-worker ServiceAccount, through the run launcher of the chart's dagster.yaml as a run pod loads it."""
    release = render([CI_DIR / f"{values}-values.yaml"])
    gate = RbacGate()
    identity = gate.add(RUN_WORKER_TOKEN, NAMESPACE, _service_account(release, "run-worker"), release.docs)
    kube_cluster.emulator.fault_hook = gate
    kube_cluster.emulator.honour_label_selectors = True
    config = dict(release.dagster_yaml()["run_launcher"]["config"])
    assert config["step_jobs"] is True
    config.update(load_incluster_config=False)
    config["kubeconfig_file"] = str(
        kube_cluster.write_kubeconfig(tmp_path / "rw.kubeconfig", RUN_WORKER_TOKEN)
    )
    core = kubernetes.client.CoreV1Api(kube_cluster.api_client())
    for template in render_pod_templates(load_platform_text(PROFILES), config["platform_name"], NAMESPACE):
        core.create_namespaced_pod_template(NAMESPACE, template)
    launcher = {
        "module": "floe_platform.dagster.launcher",
        "class": "ProfileK8sRunLauncher",
        "config": config,
    }
    with dg.instance_for_test(overrides={"run_launcher": launcher}) as instance:
        drive_every_step_path(kube_cluster, instance)
    print(f"{values}: run worker used {_describe(identity.needed())}")
    assert_granted_exactly_what_was_used(identity)


# The operator ------------------------------------------------------------------------------------------

CR = ("floe.dev", "v1alpha1")
OPERATOR_PLATFORM = """
infrastructure:
  resource_profiles:
    small:
      requests: {cpu: 250m, memory: 512Mi}
      limits: {cpu: "1", memory: 2Gi}
    large:
      requests: {cpu: "1", memory: 4Gi}
      limits: {cpu: "4", memory: 8Gi}
"""


@dataclass
class OperatorPaths:
    """The test's own (admin) view of the emulator, to act as a user would and to read the results."""

    cluster: EmulatedCluster
    namespace: str

    def custom(self) -> Any:
        return kubernetes.client.CustomObjectsApi(self.cluster.api_client())

    def core(self) -> Any:
        return kubernetes.client.CoreV1Api(self.cluster.api_client())

    def cr(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self.custom().get_namespaced_custom_object(
            *CR, self.namespace, "floeplatforms", name
        )
        return body

    def templates(self, name: str) -> dict[str, Any]:
        items = self.core().list_namespaced_pod_template(self.namespace).items
        return {
            t.metadata.name: t for t in items if (t.metadata.labels or {}).get("floe.dev/platform") == name
        }

    def ready_reason(self, name: str) -> str:
        conditions = (self.cr(name).get("status") or {}).get("conditions") or []
        return next((c["reason"] for c in conditions if c["type"] == "Ready"), "")

    def guardrails(self, name: str) -> dict[str, Any]:
        """This platform's LimitRange and ResourceQuota, by name."""
        core = self.core()
        items = [
            *core.list_namespaced_limit_range(self.namespace).items,
            *core.list_namespaced_resource_quota(self.namespace).items,
        ]
        return {
            i.metadata.name: i for i in items if (i.metadata.labels or {}).get("floe.dev/platform") == name
        }


def drive_namespace_limits(paths: OperatorPaths) -> None:
    """namespace_limits enabled (over hand-made objects of the same names), changed, then disabled."""
    custom, core, namespace = paths.custom(), paths.core(), paths.namespace
    # Made by hand under the operator's names: its creates meet 409, read them and take them over.
    core.create_namespaced_limit_range(
        namespace, {"metadata": {"name": "rbac-limits"}, "spec": {"limits": [{"type": "Container"}]}}
    )
    core.create_namespaced_resource_quota(namespace, {"metadata": {"name": "rbac-quota"}, "spec": {}})

    def set_limits(**limits: Any) -> None:
        spec = {"spec": {"infrastructure": {"namespace_limits": limits}}}
        custom.patch_namespaced_custom_object(*CR, namespace, "floeplatforms", "rbac", spec)

    def quota_cpu() -> str:
        quota = paths.guardrails("rbac").get("rbac-quota")
        return str(quota.spec.hard.get("requests.cpu")) if quota and quota.spec.hard else ""

    set_limits(enabled=True, concurrent_runs=2)
    eventually(lambda: quota_cpu() == "500m", what="guardrails applied over the hand-made ones")
    set_limits(concurrent_runs=3)
    eventually(lambda: quota_cpu() == "750m", what="quota follows concurrent_runs")
    set_limits(enabled=False)
    eventually(lambda: paths.guardrails("rbac") == {}, what="guardrails deleted when disabled")


def drive_every_operator_path(paths: OperatorPaths) -> None:
    """Reconcile, status, events, drift repair, profile removal, namespace limits, an invalid spec, and
    the finalizer of an earlier operator version, which the operator removes."""
    resource = platform_resource(load_platform_text(OPERATOR_PLATFORM), "rbac", paths.namespace)
    custom, core, namespace = paths.custom(), paths.core(), paths.namespace
    # A template of that name made by hand: the operator's create meets 409, reads it and takes it over.
    stray = {"metadata": {"name": "rbac-small"}, "template": {"spec": {"containers": []}}}
    core.create_namespaced_pod_template(namespace, stray)
    custom.create_namespaced_custom_object(*CR, namespace, "floeplatforms", resource)
    eventually(lambda: len(paths.templates("rbac")) == 2, what="both templates created and labelled")
    eventually(lambda: paths.ready_reason("rbac") == "Reconciled", what="Ready status")

    edit = {"template": {"spec": {"containers": [{"name": "dagster", "image": "hand-edited"}]}}}
    core.patch_namespaced_pod_template("rbac-small", namespace, edit)
    core.delete_namespaced_pod_template("rbac-large", namespace)
    eventually(lambda: "rbac-large" in paths.templates("rbac"), timeout=30, what="deleted template back")

    removal = {"spec": {"infrastructure": {"resource_profiles": {"large": None}}}}
    custom.patch_namespaced_custom_object(*CR, namespace, "floeplatforms", "rbac", removal)
    eventually(
        lambda: sorted(paths.templates("rbac")) == ["rbac-small"], what="removed profile's template gone"
    )
    drive_namespace_limits(paths)

    invalid = {"spec": {"infrastructure": {"resource_profiles": {"small": {"limits": {"memory": "2Gb"}}}}}}
    custom.patch_namespaced_custom_object(*CR, namespace, "floeplatforms", "rbac", invalid)
    eventually(lambda: paths.ready_reason("rbac") == "InvalidSpec", what="InvalidSpec status")

    custom.delete_namespaced_custom_object(*CR, namespace, "floeplatforms", "rbac")

    def gone() -> bool:
        listed = custom.list_namespaced_custom_object(*CR, namespace, "floeplatforms")["items"]
        return not any(item["metadata"]["name"] == "rbac" for item in listed)

    eventually(gone, what="the FloePlatform deleted")
    # FloePlatforms marked by an earlier operator keep its finalizer until the operator takes it off: the
    # one PATCH of a FloePlatform (not its status) the operator makes.
    marked = {**resource, "metadata": {**resource["metadata"], "finalizers": ["floe.dev/operator"]}}
    custom.create_namespaced_custom_object(*CR, namespace, "floeplatforms", marked)

    def unmarked() -> bool:
        found = custom.get_namespaced_custom_object(*CR, namespace, "floeplatforms", "rbac")
        return not found["metadata"].get("finalizers")

    eventually(unmarked, what="the earlier operator's finalizer removed")


@pytest.mark.slow
@pytest.mark.parametrize("values", CI_NAMES)
def test_operator_role_grants_exactly_what_reconcile_and_repair_use(
    values: str, kube_cluster: EmulatedCluster, tmp_path: Path
) -> None:
    """The operator (kopf, its own process) with the chart's command line, as the chart's operator account."""
    release = render([CI_DIR / f"{values}-values.yaml"])
    command = release.named("Deployment", "operator")["spec"]["template"]["spec"]["containers"][0]["command"]
    gate = RbacGate()
    identity = gate.add(OPERATOR_TOKEN, NAMESPACE, _service_account(release, "operator"), release.docs)
    kube_cluster.emulator.fault_hook = gate
    kubeconfig = kube_cluster.write_kubeconfig(tmp_path / "operator.kubeconfig", OPERATOR_TOKEN)
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", scope=command[2:]).running()
    try:
        drive_every_operator_path(OperatorPaths(kube_cluster, NAMESPACE))
    finally:
        operator.stop()
    print(f"{values}: operator used {_describe(identity.needed())}")
    assert_granted_exactly_what_was_used(identity)


UNINSTALL_TOKEN = "uninstall-hook-service-account-token"
WITH_PLATFORM = [
    name for name in CI_NAMES if "\nplatform:" in "\n" + (CI_DIR / f"{name}-values.yaml").read_text()
]


@pytest.mark.slow
@pytest.mark.parametrize("values", WITH_PLATFORM)
def test_uninstall_hook_role_grants_exactly_what_delete_platforms_uses(
    values: str, kube_cluster: EmulatedCluster, tmp_path: Path
) -> None:
    """The pre-delete hook's command (`floe delete-platforms`, as the chart's Job runs it) as the hook's own
    account: it lists the release's FloePlatforms, deletes each and lists again until none is left. (On the
    real kube-apiserver, with the operator running: test_chart_on_apiserver.)"""
    release = render([CI_DIR / f"{values}-values.yaml"])
    hook = release.named("Job", "uninstall")["spec"]["template"]["spec"]
    command = hook["containers"][0]["command"]
    gate = RbacGate()
    identity = gate.add(UNINSTALL_TOKEN, NAMESPACE, hook["serviceAccountName"], release.docs)
    platform = next(doc for doc in release.docs if doc["kind"] == "FloePlatform")
    custom = OperatorPaths(kube_cluster, NAMESPACE).custom()
    custom.create_namespaced_custom_object(*CR, NAMESPACE, "floeplatforms", platform)
    other = {**platform, "metadata": {"name": "not-this-release", "namespace": NAMESPACE}}
    custom.create_namespaced_custom_object(*CR, NAMESPACE, "floeplatforms", other)
    kube_cluster.emulator.honour_label_selectors = True
    kube_cluster.emulator.fault_hook = gate
    kubeconfig = kube_cluster.write_kubeconfig(tmp_path / "hook.kubeconfig", UNINSTALL_TOKEN)
    floe = str(Path(sys.executable).parent / "floe")
    done = subprocess.run(
        [floe, *command[1:]],
        env={"KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    kube_cluster.emulator.fault_hook = None
    left = custom.list_namespaced_custom_object(*CR, NAMESPACE, "floeplatforms")["items"]
    assert [item["metadata"]["name"] for item in left] == ["not-this-release"]
    print(f"{values}: uninstall hook used {_describe(identity.needed())}")
    assert_granted_exactly_what_was_used(identity)
