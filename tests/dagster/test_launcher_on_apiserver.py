"""ProfileK8sRunLauncher on a real control plane, as the chart's dagster ServiceAccount.

Real: etcd, kube-apiserver v1.37 (validation, RBAC with the ServiceAccount's TokenRequest token, admission:
PodSecurity ``restricted``, LimitRanger, ResourceQuota, ServiceAccount), kube-controller-manager (the Job
controller creates the run pod, the quota controller counts it, the garbage collector), kube-scheduler
(binds the pod to a node); dagster 1.13 and dagster-k8s with the ``run_launcher`` and ``run_monitoring`` of
the dagster.yaml the chart renders (real helm v4); the PodTemplates and the LimitRange/ResourceQuota from
our renderer, as the operator applies them. Storage is sqlite (``dg.instance_for_test``), not PostgreSQL.

Faked by kwok: the nodes and the pods' lifecycle. No container runs and no image is pulled, so nothing in
the pod reports the run's start or end (the tests report RUN_START where the run worker would), memory
limits are only asked for, an OOM kill is an annotation (``floe.dev/test-oomkill``), a run's length is
the annotation ``floe.dev/test-run-duration``, and Secrets or ConfigMaps the pod refers to need not exist.
kwok serves no logs.

The fault tests at the end put ``testkit.faultproxy`` between the run launcher and kube-apiserver: it
forwards every request (the ServiceAccount's token too, so RBAC stays the server's) except those a
``FaultPlan`` rule answers itself (a 500, or an answer lost after the server acted). The 409 a retried
create meets there is the real server's.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
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
from dagster._core.code_pointer import FileCodePointer
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._daemon.monitoring.run_monitoring import monitor_started_run
from dagster_k8s.client import DagsterK8sUnrecoverableAPIError
from dagster_k8s.job import get_job_name_from_run_id

from floe_platform.config import load_platform_text
from floe_platform.dagster.profiles import PROFILE_TAG
from floe_platform.render import render_guardrails, render_pod_templates
from floe_platform.render.duckdb_env import derived_memory_limit
from testkit.controlplane import ControlPlane, KubeApi, wait_for, write_service_account_kubeconfig
from testkit.controlplane.cluster import NODE_NAMES
from testkit.faultproxy import Action, FaultProxy
from testkit.faults import FaultInjector, FaultPlan, Rule
from testkit.helm import WITHOUT_CLUSTER
from testkit.platforms import acme_platform, pod_shape_profile

pytestmark = pytest.mark.slow  # each test applies the chart's objects and runs a Job on the control plane

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "floe-platform/user-code:0.1.0"
PLATFORM = acme_platform(namespace_limits={"enabled": True, "concurrent_runs": 2})
GiB = 1024**3
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
# The dagster Role before the fix: written from memory, without jobs/status (nor events, nor pods delete).
ROLE_WITHOUT_JOBS_STATUS = [
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create", "delete"]},
    {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["podtemplates"], "verbs": ["get", "list", "watch"]},
]


@dg.op
def work() -> None:
    """Never executed: kwok runs no container."""


@dg.job
def apiserver_job() -> None:
    work()


defs = dg.Definitions(jobs=[apiserver_job])


def helm_template(
    namespace: str, tmp_path: Path, chart_values: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The chart rendered by the real helm v4 into ``namespace`` with PLATFORM as its platform, plus
    ``chart_values``."""
    helm = shutil.which("helm") or str(ROOT / ".tools" / "bin" / "helm")
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({**(chart_values or {}), "platform": PLATFORM}))
    chart = ROOT / "charts" / "floe-platform"
    output = subprocess.run(
        [
            helm,
            "template",
            "floe",
            str(chart),
            "--namespace",
            namespace,
            "--values",
            str(values),
            *WITHOUT_CLUSTER,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def _dagster_objects(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The instance's dagster.yaml and the dagster ServiceAccount, Role and RoleBinding."""
    instance = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-instance")
    )
    rbac = [
        doc
        for doc in docs
        if doc["kind"] in ("ServiceAccount", "Role", "RoleBinding")
        and doc["metadata"]["labels"]["app.kubernetes.io/component"] == "dagster"
    ]
    assert sorted(doc["kind"] for doc in rbac) == ["Role", "RoleBinding", "ServiceAccount"]
    dagster_yaml: dict[str, Any] = yaml.safe_load(instance["data"]["dagster.yaml"])
    return dagster_yaml, rbac


PATHS = {
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "PodTemplate": "/api/v1/namespaces/{ns}/podtemplates",
    "LimitRange": "/api/v1/namespaces/{ns}/limitranges",
    "ResourceQuota": "/api/v1/namespaces/{ns}/resourcequotas",
}


@dataclass
class Platform:
    """One namespace set up as the chart and the operator leave it, and a Dagster instance whose run
    launcher is the chart's, talking to kube-apiserver with the dagster ServiceAccount's token."""

    plane: ControlPlane
    namespace: str
    instance: dg.DagsterInstance

    @property
    def launcher(self) -> Any:
        return self.instance.run_launcher

    @property
    def admin(self) -> KubeApi:
        return self.plane.admin_api()

    def launch(self, profile: str, annotations: dict[str, str] | None = None) -> DagsterRun:
        """Launch a run on ``profile``; ``annotations`` go on its pod through the run's dagster-k8s/config."""
        tags = {PROFILE_TAG: profile}
        if annotations:
            config = {"pod_template_spec_metadata": {"annotations": annotations}}
            tags["dagster-k8s/config"] = json.dumps(config)
        origin = JobPythonOrigin(
            "apiserver_job",
            RepositoryPythonOrigin(
                executable_path=sys.executable,
                code_pointer=FileCodePointer(__file__, "defs"),
                container_image=IMAGE,
            ),
        )
        run = self.instance.create_run_for_job(
            job_def=defs.resolve_job_def("apiserver_job"), job_code_origin=origin, tags=tags
        )
        self.instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
        return self.run(run.run_id)

    def report_start(self, run: DagsterRun) -> DagsterRun:
        """What the run worker reports once it starts in the pod (nothing runs in a kwok pod)."""
        event = DagsterEvent(event_type_value=DagsterEventType.RUN_START.value, job_name="apiserver_job")
        self.instance.report_dagster_event(event, run.run_id)
        started = self.run(run.run_id)
        assert started.status == DagsterRunStatus.STARTED
        return started

    def run(self, run_id: str) -> DagsterRun:
        found = self.instance.get_run_by_id(run_id)
        assert found is not None
        return found

    def job(self, run: DagsterRun) -> dict[str, Any]:
        return self.admin.get(f"/apis/batch/v1/namespaces/{self.namespace}/jobs/{job_name(run)}")

    def job_active(self, run: DagsterRun) -> None:
        """Wait until kcm's Job controller counts the run pod as active."""
        wait_for(
            "the Job active", lambda: True if self.job(run).get("status", {}).get("active") else None, 30
        )

    def pods(self, run: DagsterRun) -> list[dict[str, Any]]:
        selector = f"job-name%3D{job_name(run)}"
        items: list[dict[str, Any]] = self.admin.get(
            f"/api/v1/namespaces/{self.namespace}/pods?labelSelector={selector}"
        )["items"]
        return items

    def pod_in_phase(self, run: DagsterRun, *phases: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            pods = self.pods(run)
            return pods[0] if pods and pods[0].get("status", {}).get("phase") in phases else None

        return wait_for(f"the run pod of {job_name(run)} in {'/'.join(phases)}", probe, 30)

    def health_until(self, run: DagsterRun, *statuses: WorkerStatus) -> CheckRunHealthResult:
        """Poll check_run_worker_health (as the daemon's run monitoring does) until one of ``statuses``."""

        def probe() -> CheckRunHealthResult | None:
            result: CheckRunHealthResult = self.launcher.check_run_worker_health(self.run(run.run_id))
            return result if result.status in statuses else None

        return wait_for(f"the run worker health {statuses}", probe, 30)


def job_name(run: DagsterRun) -> str:
    name: str = get_job_name_from_run_id(run.run_id)
    return name


@contextmanager
def set_up_platform(
    plane: ControlPlane,
    namespace: str,
    tmp_path: Path,
    role_rules: list[dict[str, Any]] | None = None,
    via: FaultProxy | None = None,
    *,
    chart_values: dict[str, Any] | None = None,
    extra_profiles: dict[str, Any] | None = None,
) -> Iterator[Platform]:
    """As admin: the restricted label, the chart's dagster ServiceAccount/Role/RoleBinding (the Role's rules
    replaced by ``role_rules`` when given), the operator's PodTemplates and guardrails. Then the chart's
    run launcher (rendered with ``chart_values``) with the ServiceAccount's token, talking to kube-apiserver
    through ``via`` if given."""
    admin = plane.admin_api()
    with kubernetes.config.new_client_from_config(str(plane.kubeconfig)) as client:
        kubernetes.client.CoreV1Api(client).patch_namespace(namespace, {"metadata": {"labels": RESTRICTED}})
    docs = helm_template(namespace, tmp_path, chart_values)
    dagster_yaml, rbac = _dagster_objects(docs)
    # What the operator renders: the chart's FloePlatform spec (PLATFORM plus the chart's catalog defaults).
    spec = next(doc for doc in docs if doc["kind"] == "FloePlatform")["spec"]
    spec["infrastructure"]["resource_profiles"].update(extra_profiles or {})
    config = load_platform_text(yaml.safe_dump(spec))
    for doc in rbac:
        body = {**doc, "rules": role_rules} if doc["kind"] == "Role" and role_rules is not None else doc
        admin.create(PATHS[doc["kind"]].format(ns=namespace), body)
    for doc in [
        *render_pod_templates(config, namespace=namespace),
        *render_guardrails(config, namespace=namespace),
    ]:
        admin.create(PATHS[doc["kind"]].format(ns=namespace), doc)
    launcher = dagster_yaml["run_launcher"]
    account = launcher["config"]["service_account_name"]
    path = tmp_path / "dagster.kubeconfig"
    if via is None:
        kubeconfig = write_service_account_kubeconfig(plane, namespace, account, path)
    else:
        kubeconfig = via.service_account_kubeconfig(namespace, account, path)
    launcher["config"].update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    assert launcher["config"]["job_namespace"] == namespace
    overrides = {
        "run_launcher": launcher,
        "run_monitoring": dagster_yaml["run_monitoring"],
        # The chart's QueuedRunCoordinator stops at QUEUED without a daemon; the launch is the same.
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
    }
    with dg.instance_for_test(overrides=overrides) as instance:
        yield Platform(plane, namespace, instance)


@pytest.fixture
def platform(control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path) -> Iterator[Platform]:
    with set_up_platform(control_plane, control_plane_namespace, tmp_path) as platform:
        yield platform


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "dagster")


def test_launched_run_is_admitted_by_limitrange_quota_and_restricted_policy(platform: Platform) -> None:
    """kube-apiserver accepts the Job; the Job controller's pod passes PodSecurity ``restricted``,
    LimitRanger and ResourceQuota admission (which act on pods, not Jobs), and kcm's quota controller
    counts it. kwok only makes the pod Running."""
    run = platform.launch("transform", {"floe.dev/test-run-duration": "60s"})
    assert run.status == DagsterRunStatus.STARTING
    job = platform.job(run)
    assert job["metadata"]["labels"]["floe.dev/profile"] == "transform"
    pod = platform.pod_in_phase(run, "Pending", "Running")
    ns = platform.namespace
    events = platform.admin.get(f"/api/v1/namespaces/{ns}/events")["items"]
    refused = [e["message"] for e in events if e["reason"] == "FailedCreate"]
    assert refused == []
    # Enforced on pods only: this pod exists, so kube-apiserver admitted it under "restricted".
    spec = pod["spec"]
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert _container(pod)["securityContext"]["allowPrivilegeEscalation"] is False
    quota_name = "acme-quota"

    def counted() -> dict[str, Any] | None:
        used = platform.admin.get(f"/api/v1/namespaces/{ns}/resourcequotas/{quota_name}")["status"].get(
            "used"
        )
        return used if used and used.get("requests.memory") == "2Gi" else None

    used = wait_for("the quota to count the run pod", counted, 30)
    assert (used["requests.cpu"], used["limits.memory"]) == ("1", "4Gi")


def test_run_pod_is_created_by_kcm_bound_by_the_scheduler_with_the_profiles_resources_and_duckdb_env(
    platform: Platform,
) -> None:
    """kcm's Job controller creates the pod from the Job dagster-k8s posted and kube-scheduler binds it to a
    kwok node; kwok moves it to Running."""
    run = platform.launch("transform", {"floe.dev/test-run-duration": "60s"})
    pod = platform.pod_in_phase(run, "Running")
    assert pod["spec"]["nodeName"] in NODE_NAMES
    container = _container(pod)
    assert container["image"] == IMAGE
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    env = {entry["name"]: entry.get("value") for entry in container["env"]}
    assert env["DUCKDB_THREADS"] == "2"
    assert env["DUCKDB_MEMORY_LIMIT"] == derived_memory_limit(4 * GiB)
    assert env["DUCKDB_TEMP_DIRECTORY"] == "/tmp/duckdb"
    assert pod["metadata"]["labels"]["floe.dev/profile"] == "transform"
    assert pod["metadata"]["labels"]["dagster/run-id"] == run.run_id
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_chart_catalog_env_reaches_the_run_pods_container(platform: Platform) -> None:
    """The shared catalog's env the chart's FloePlatform leads to (its PostgreSQL, its LocalStack) is in the
    launched run pod's container, credentials as secretKeyRefs only. kwok runs no container: the env is
    shown in the pod spec kube-apiserver admitted, not inside a process."""
    run = platform.launch("small", {"floe.dev/test-run-duration": "60s"})
    pod = platform.pod_in_phase(run, "Pending", "Running")
    env = {entry["name"]: entry for entry in _container(pod)["env"]}
    ns = platform.namespace
    assert env["FLOE_CATALOG_NAME"]["value"] == "lake"
    assert env["FLOE_CATALOG_METADATA"]["value"] == (
        f"postgres:host=floe-floe-platform-postgresql.{ns}.svc port=5432 dbname=dagster user=dagster"
    )
    assert env["FLOE_CATALOG_SCHEMA"]["value"] == "floe_catalog"
    assert env["FLOE_CATALOG_DATA_PATH"]["value"] == "s3://floe-lake/lake/"
    assert env["FLOE_BLOB_PATH"]["value"] == "s3://floe-lake/blobs/"
    assert env["FLOE_S3_ENDPOINT"]["value"] == f"http://floe-floe-platform-localstack.{ns}.svc:4566"
    assert env["FLOE_S3_PATH_STYLE"]["value"] == "true"
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "floe-floe-platform-postgresql",
        "key": "postgresql-password",
    }
    assert env["FLOE_S3_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "floe-floe-platform-s3",
        "key": "AWS_ACCESS_KEY_ID",
    }
    assert all("value" not in entry for name, entry in env.items() if "KEY" in name or "PASSWORD" in name)


def test_run_job_and_pod_carry_the_releases_labels_and_the_platforms_floe_labels(platform: Platform) -> None:
    """The PodTemplate's own app.kubernetes.io/instance (the platform's name, "acme") no longer overrides
    the release's: the Job and the pod kcm creates from it carry the chart's standard labels for release
    "floe", plus floe.dev/platform and floe.dev/profile from the profile."""
    run = platform.launch("small", {"floe.dev/test-run-duration": "60s"})
    release_labels = {
        "app.kubernetes.io/name": "floe-platform",
        "app.kubernetes.io/instance": "floe",
        "app.kubernetes.io/managed-by": "Helm",
        "app.kubernetes.io/part-of": "floe-platform",
    }
    pod = platform.pod_in_phase(run, "Pending", "Running")
    for labels in (platform.job(run)["metadata"]["labels"], pod["metadata"]["labels"]):
        assert {key: labels.get(key) for key in release_labels} == release_labels
    assert pod["metadata"]["labels"]["floe.dev/platform"] == "acme"
    assert pod["metadata"]["labels"]["floe.dev/profile"] == "small"
    selected = platform.admin.get(
        f"/api/v1/namespaces/{platform.namespace}/pods?labelSelector=app.kubernetes.io/instance=floe,floe.dev/platform=acme"
    )["items"]
    assert [item["metadata"]["name"] for item in selected] == [pod["metadata"]["name"]]


def test_health_check_follows_a_run_to_success(platform: Platform) -> None:
    """check_run_worker_health reads the Job's status that kcm's Job controller writes: RUNNING while the
    pod runs, SUCCESS once kwok ends it with exit code 0 (3 s, the run-duration annotation). The run stays
    STARTING: no run worker reports RUN_START (a STARTED run whose Job ends without the worker reporting
    the end is FAILED by dagster-k8s, rightly)."""
    run = platform.launch("small", {"floe.dev/test-run-duration": "3s"})
    assert platform.health_until(run, WorkerStatus.RUNNING).status == WorkerStatus.RUNNING
    platform.pod_in_phase(run, "Running")
    assert (
        platform.health_until(run, WorkerStatus.SUCCESS, WorkerStatus.FAILED).status == WorkerStatus.SUCCESS
    )
    assert platform.pods(run)[0]["status"]["phase"] == "Succeeded"


def _oom_run(platform: Platform) -> tuple[DagsterRun, dict[str, Any]]:
    run = platform.launch("small", {"floe.dev/test-oomkill": "true", "floe.dev/test-run-duration": "1s"})
    job = platform.job(run)
    # kwok's OOM stage needs restartPolicy Never, which is what dagster-k8s gives every run Job.
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 0
    platform.pod_in_phase(run, "Running")
    run = platform.report_start(run)
    pod = platform.pod_in_phase(run, "Failed")
    return run, pod


def _oom_sentence(pod: dict[str, Any]) -> str:
    return (
        f"Run worker pod {pod['metadata']['name']} was OOMKilled: it used more than the memory limit 2Gi of "
        f"resource profile 'small'; raise limits.memory of 'small' in platform.yaml, run it on a larger "
        f"profile with the run tag {PROFILE_TAG}, or lower DUCKDB_MEMORY_LIMIT so DuckDB spills sooner."
    )


def test_oom_killed_run_fails_naming_its_profile_and_memory_limit(platform: Platform) -> None:
    """kwok ends the pod Failed, container OOMKilled / 137; kcm fails the Job (backoffLimit 0). The health
    check and then run monitoring, as the daemon runs it, fail the run with the launcher's sentence."""
    run, pod = _oom_run(platform)
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    health = platform.health_until(run, WorkerStatus.FAILED)
    assert health.msg == _oom_sentence(pod)
    record = platform.instance.get_run_record_by_id(run.run_id)
    monitor_started_run(platform.instance, None, record, logging.getLogger(__name__))  # type: ignore[arg-type]
    failed = platform.run(run.run_id)
    assert failed.status == DagsterRunStatus.FAILURE
    messages = [r.message for r in platform.instance.all_logs(run.run_id)]
    assert any(_oom_sentence(pod) in message for message in messages), messages


def test_debug_info_of_an_oom_killed_run_is_read_with_the_service_account_token(platform: Platform) -> None:
    """get_run_worker_debug_info lists the Job's pods and the namespace's events as the dagster
    ServiceAccount (RBAC of kube-apiserver). kwok serves no container logs: what it returns is shown."""
    run, pod = _oom_run(platform)
    platform.health_until(run, WorkerStatus.FAILED)
    info = platform.launcher.get_run_worker_debug_info(run)
    assert info is not None
    assert info.startswith(_oom_sentence(pod))
    assert f"Debug information for pod {pod['metadata']['name']}:" in info
    assert "Pod status: Failed" in info
    assert "Container 'dagster' status: Terminated with exit code 137: OOMKilled" in info
    # The pod log: kube-apiserver asks the node's kubelet, and a kwok node has none (HTTP 500, not 403).
    assert "Failure fetching pod logs for container 'dagster': (500)" in info
    assert "https://kwok-node-" in info
    assert ":10250/containerLogs/" in info
    assert "No warning events for pod." in info  # the events list was allowed; kwok writes no events
    assert "Forbidden" not in info


def test_run_beyond_the_quota_never_starts_and_debug_info_says_why(platform: Platform) -> None:
    """kube-apiserver's ResourceQuota admission refuses the pod of a third concurrent ``transform`` run
    (the quota fits concurrent_runs 2); kcm's Job controller records FailedCreate on the Job. The run stays
    RUNNING to the health check (dagster-k8s: a Job with no pod yet), and the debug info, read with the
    ServiceAccount token, finds the Job and its events by field selector."""
    first, second = (platform.launch("transform", {"floe.dev/test-run-duration": "120s"}) for _ in range(2))
    for run in (first, second):
        platform.pod_in_phase(run, "Running")
    third = platform.launch("transform", {"floe.dev/test-run-duration": "120s"})
    ns = platform.namespace

    def refused() -> str | None:
        selector = f"involvedObject.name%3D{job_name(third)}"
        events = platform.admin.get(f"/api/v1/namespaces/{ns}/events?fieldSelector={selector}")["items"]
        return next((e["message"] for e in events if e["reason"] == "FailedCreate"), None)

    message = wait_for("the Job controller's FailedCreate", refused, 30)
    assert "exceeded quota: acme-quota" in message
    assert platform.pods(third) == []
    assert platform.launcher.check_run_worker_health(third).status == WorkerStatus.RUNNING
    info = platform.launcher.get_run_worker_debug_info(third)
    assert info is not None
    assert f"Debug information for job {job_name(third)}:" in info
    assert "FailedCreate: " in info
    assert "exceeded quota: acme-quota" in info


def test_terminate_removes_the_runs_job_and_pods(platform: Platform) -> None:
    """dagster-k8s deletes the Job (kube-apiserver, orphaning its pods by the Job's default policy), then each
    pod; kcm's Job controller and GC release the pods' tracking finalizer and kwok removes them."""
    run = platform.launch("small", {"floe.dev/test-run-duration": "120s"})
    platform.pod_in_phase(run, "Running")
    run = platform.report_start(run)
    assert platform.launcher.terminate(run.run_id)
    ns = platform.namespace

    def gone() -> bool | None:
        jobs = platform.admin.get(f"/apis/batch/v1/namespaces/{ns}/jobs")["items"]
        names = {job["metadata"]["name"] for job in jobs}
        return True if job_name(run) not in names and not platform.pods(run) else None

    wait_for("the run's Job and pods gone", gone, 30)
    # CANCELED is the run worker's to report (or run monitoring's, after cancel_timeout_seconds).
    assert platform.run(run.run_id).status == DagsterRunStatus.CANCELING


@pytest.mark.parametrize(
    ("role_rules", "stays_started"),
    [
        pytest.param(None, True, id="chart-role"),
        pytest.param(ROLE_WITHOUT_JOBS_STATUS, False, id="role-without-jobs-status-fails-the-run"),
    ],
)
def test_run_monitoring_does_not_fail_a_healthy_running_run(
    control_plane: ControlPlane,
    control_plane_namespace: str,
    tmp_path: Path,
    role_rules: list[dict[str, Any]] | None,
    stays_started: bool,
) -> None:
    """monitor_started_run, as the daemon calls it, with the run's pod Running (kwok) and the Job active
    (kcm). The regression test for the Role without ``jobs/status``: kube-apiserver's RBAC refuses the
    status read, the health check says UNKNOWN and monitoring fails the run while its pod runs on."""
    with set_up_platform(control_plane, control_plane_namespace, tmp_path, role_rules) as platform:
        run = platform.launch("small", {"floe.dev/test-run-duration": "120s"})
        platform.pod_in_phase(run, "Running")
        platform.job_active(run)
        run = platform.report_start(run)
        record = platform.instance.get_run_record_by_id(run.run_id)
        monitor_started_run(platform.instance, None, record, logging.getLogger(__name__))  # type: ignore[arg-type]
        after = platform.run(run.run_id)
        if stays_started:
            assert after.status == DagsterRunStatus.STARTED, "run monitoring failed a healthy run"
        else:
            assert after.status == DagsterRunStatus.FAILURE
            failure = next(r for r in platform.instance.all_logs(run.run_id) if "Marking run" in r.message)
            assert "Detected run worker status UNKNOWN" in failure.message
            assert 'cannot get resource \\"jobs/status\\" in API group \\"batch\\"' in failure.message
        assert platform.pods(run)[0]["status"]["phase"] == "Running"


# --- faults between the run launcher and kube-apiserver ------------------------------------------------


@pytest.fixture
def proxied_platform(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path, fault_proxy: FaultProxy
) -> Iterator[tuple[Platform, FaultProxy]]:
    with set_up_platform(control_plane, control_plane_namespace, tmp_path, via=fault_proxy) as platform:
        yield platform, fault_proxy


@pytest.mark.xfail(
    strict=True,
    raises=DagsterK8sUnrecoverableAPIError,
    reason="dagster-k8s 0.29: k8s_api_retry_creation_mutation counts only ApiExceptions as attempts, so the "
    "409 met by a retry after a connection error is raised as unrecoverable: the launch fails and the run is "
    "FAILED while its Job runs on (an orphan). Strict: this test fails once dagster-k8s is fixed.",
)
def test_a_job_create_whose_answer_is_lost_is_retried_and_the_servers_409_ends_it(
    proxied_platform: tuple[Platform, FaultProxy],
) -> None:
    """kube-apiserver creates the run's Job but the answer never arrives (connection reset). dagster-k8s
    retries the create (after its 10 s wait); the real server answers 409 AlreadyExists, which counts as
    done. One Job, and the run goes on as launched."""
    platform, proxy = proxied_platform
    plan = FaultPlan([Rule("job-create-lost", frozenset({"CREATE"}), "jobs", lose_answer=True)])
    proxy.fault_hook = plan
    run = platform.launch("small", {"floe.dev/test-run-duration": "60s"})
    assert run.status == DagsterRunStatus.STARTING
    assert plan.fired == {"job-create-lost": 1}
    creates = [(e.served, e.status) for e in proxy.exchanges if e.request.action is Action.CREATE]
    assert creates == [(201, None), (None, 409)]
    jobs = platform.admin.get(f"/apis/batch/v1/namespaces/{platform.namespace}/jobs")["items"]
    assert [job["metadata"]["name"] for job in jobs] == [job_name(run)]
    assert platform.pod_in_phase(run, "Pending", "Running")


def test_a_500_on_the_profiles_podtemplate_read_does_not_fail_the_run(
    proxied_platform: tuple[Platform, FaultProxy],
) -> None:
    """One transient 500 on the read of the run's PodTemplate, as dagster-k8s tolerates on its own calls."""
    platform, proxy = proxied_platform
    faults = FaultInjector(proxy)
    faults.fail_next("FETCH", "podtemplates", 500)
    run = platform.launch("transform", {"floe.dev/test-run-duration": "60s"})
    assert faults.served == [("FETCH", "podtemplates", 500)]
    assert run.status == DagsterRunStatus.STARTING
    assert platform.job(run)["metadata"]["labels"]["floe.dev/profile"] == "transform"


def test_run_monitoring_does_not_fail_a_running_run_on_one_500_from_the_job_status_read(
    proxied_platform: tuple[Platform, FaultProxy],
) -> None:
    """A 500 on the health check's Job status read: dagster-k8s retries it (10 s later) and run monitoring
    leaves the STARTED run alone, where a refused read (the RBAC regression above) fails it."""
    platform, proxy = proxied_platform
    run = platform.launch("small", {"floe.dev/test-run-duration": "120s"})
    platform.pod_in_phase(run, "Running")
    platform.job_active(run)
    run = platform.report_start(run)
    plan = FaultPlan([Rule("job-status-500", frozenset({"FETCH"}), "jobs", status=500)])
    proxy.fault_hook = plan
    record = platform.instance.get_run_record_by_id(run.run_id)
    monitor_started_run(platform.instance, None, record, logging.getLogger(__name__))  # type: ignore[arg-type]
    assert plan.fired == {"job-status-500": 1}
    assert platform.run(run.run_id).status == DagsterRunStatus.STARTED


def test_launcher_run_k8s_config_of_the_chart_reaches_the_job_and_its_pod(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """dagster.runLauncher.runK8sConfig (layer 1, below the profile's PodTemplate): kube-apiserver accepts
    the Job with its TTL; the Priority admission plugin resolves the priority class on kcm's pod; the pod
    has the values' envFrom, annotation and volume beside the profile's DuckDB temp volume; and kcm's
    TTL-after-finished controller deletes the Job once kwok ends its pod."""
    admin = control_plane.admin_api()
    priority_class = f"floe-batch-{control_plane_namespace}"[:63]
    admin.create(
        "/apis/scheduling.k8s.io/v1/priorityclasses",
        {"metadata": {"name": priority_class}, "value": 1000, "description": "run pods of this test"},
    )
    chart_values = {
        "dagster": {
            "runLauncher": {
                "runK8sConfig": {
                    "containerConfig": {
                        "envFrom": [{"secretRef": {"name": "warehouse-credentials"}}],
                        "volumeMounts": [{"name": "dbt-profiles", "mountPath": "/opt/dbt/profiles"}],
                    },
                    "podSpecConfig": {
                        "priorityClassName": priority_class,
                        "volumes": [{"name": "dbt-profiles", "configMap": {"name": "dbt-profiles"}}],
                    },
                    "podTemplateSpecMetadata": {"annotations": {"floe.dev/test-layer": "launcher"}},
                    "jobSpecConfig": {"ttlSecondsAfterFinished": 1},
                }
            }
        }
    }
    try:
        with set_up_platform(
            control_plane, control_plane_namespace, tmp_path, chart_values=chart_values
        ) as platform:
            run = platform.launch("small", {"floe.dev/test-run-duration": "2s"})
            assert platform.job(run)["spec"]["ttlSecondsAfterFinished"] == 1
            pod = platform.pod_in_phase(run, "Running", "Succeeded")
            assert (pod["spec"]["priorityClassName"], pod["spec"]["priority"]) == (priority_class, 1000)
            assert pod["metadata"]["annotations"]["floe.dev/test-layer"] == "launcher"
            container = _container(pod)
            assert container["envFrom"] == [{"secretRef": {"name": "warehouse-credentials"}}]
            mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
            assert mounts["dbt-profiles"] == "/opt/dbt/profiles"
            volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
            assert volumes["dbt-profiles"]["configMap"]["name"] == "dbt-profiles"
            assert mounts[_temp_volume_name(volumes)] == "/tmp/duckdb", "the profile's layer is kept"
            # The profile (layer 2) still decides the resources.
            assert container["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
            ns = platform.namespace

            def job_deleted() -> bool | None:
                jobs = platform.admin.get(f"/apis/batch/v1/namespaces/{ns}/jobs")["items"]
                return True if job_name(run) not in {job["metadata"]["name"] for job in jobs} else None

            wait_for("kcm's TTL controller to delete the finished Job", job_deleted, 60)
    finally:
        admin.delete(f"/apis/scheduling.k8s.io/v1/priorityclasses/{priority_class}")


def _temp_volume_name(volumes: dict[str, dict[str, Any]]) -> str:
    """The profile's emptyDir for DuckDB spills (the only emptyDir with a size limit in a run pod)."""
    return next(name for name, volume in volumes.items() if (volume.get("emptyDir") or {}).get("sizeLimit"))


def test_a_profiles_pod_shape_reaches_the_run_pod(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """A profile using every pod-shape field (testkit.platforms.pod_shape_profile), launched through the
    chart's launcher: kcm's Job controller creates the pod, admitted by PodSecurity ``restricted`` and the
    Priority plugin (which resolves the priority class), with the profile's GPU and ephemeral storage,
    affinity, spread, envFrom, volumes, annotations and labels. kwok nodes have no GPU, so the pod stays
    Pending: the spec is what is shown, not a scheduled GPU run."""
    admin = control_plane.admin_api()
    profile = pod_shape_profile()
    # Cluster-scoped: created once for the whole control plane, and kept for other test runs.
    if (
        admin.status_of("GET", f"/apis/scheduling.k8s.io/v1/priorityclasses/{profile['priority_class_name']}")
        == 404
    ):
        admin.create(
            "/apis/scheduling.k8s.io/v1/priorityclasses",
            {"metadata": {"name": profile["priority_class_name"]}, "value": 500},
        )
    with set_up_platform(
        control_plane, control_plane_namespace, tmp_path, extra_profiles={"gpu": profile}
    ) as platform:
        run = platform.launch("gpu")
        pod = platform.pod_in_phase(run, "Pending", "Running")
        spec, container = pod["spec"], _container(pod)
        assert (spec["priorityClassName"], spec["priority"]) == ("batch-high", 500)
        assert spec["affinity"] == profile["affinity"]
        assert spec["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert container["resources"]["requests"]["ephemeral-storage"] == "5Gi"
        assert container["envFrom"] == [
            {"secretRef": {"name": "warehouse"}, "prefix": "WH_"},
            {"configMapRef": {"name": "settings", "optional": True}},
        ]
        volumes = {volume["name"] for volume in spec["volumes"]}
        assert {"dbt-profiles", "certs", "models", "scratch", "duckdb-temp"} <= volumes
        mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
        assert mounts["dbt-profiles"] == "/opt/dbt"
        assert pod["metadata"]["annotations"]["example.com/owner"] == "ml-team"
        assert pod["metadata"]["labels"]["team"] == "ml"
        assert pod["metadata"]["labels"]["floe.dev/profile"] == "gpu"
        env = {entry["name"]: entry.get("value") for entry in container["env"]}
        assert env["DUCKDB_MEMORY_LIMIT"] == derived_memory_limit(4 * GiB), "DuckDB reads cpu and memory only"
