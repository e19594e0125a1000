"""The step executor (``floe_platform.dagster.executor``) on a real control plane, as the run worker.

Real: etcd, kube-apiserver v1.37 (validation, RBAC with the run-worker ServiceAccount's TokenRequest token,
PodSecurity ``restricted`` admission of the step pods), kube-controller-manager (the Job controller makes
each step pod), kube-scheduler; helm v4 renders the chart with ``dagster.stepJobs.enabled`` and its
ServiceAccounts, Roles and dagster.yaml are applied as they are; dagster 1.13's real run worker path
(``execute_run`` with the ``StepDelegatingExecutor``) and dagster-k8s's step handler under ours; our
renderer's PodTemplates. Storage is sqlite (``dg.instance_for_test``), not PostgreSQL.

kwok pods do not execute, so the run worker's own code is run here, in the test process, exactly as it runs
in a run pod: it loads the chart's run launcher with the run-worker token and launches each step's Job on
the API server; no step process ever reports back. The step pods are told (annotation
``floe.dev/test-oomkill``) to end OOMKilled, so the executor's health check (every 20 s, dagster's
default) fails each step with the launcher's OOM sentence and the run ends. The demo code location's
``per_step_job`` runs the same way, on the platform ``make demo`` uses: its Python and dbt steps get their
Jobs and pods, but neither runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import kubernetes
import pytest
import yaml
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.events import DagsterEventType
from dagster._core.execution.api import execute_run
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

from floe_platform.config import load_platform_text
from floe_platform.dagster.executor import profile_k8s_job_executor
from floe_platform.dagster.launcher import STEP_JOBS_SWITCH, StepJobsDisabledError
from floe_platform.dagster.profiles import PROFILE_TAG
from floe_platform.render import render_pod_templates
from testkit.controlplane import ControlPlane, KubeApi, wait_for, write_service_account_kubeconfig
from testkit.helm import WITHOUT_CLUSTER
from testkit.platforms import acme_platform

pytestmark = pytest.mark.slow  # a real run worker waits for dagster's 20 s step health check

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "floe-platform/user-code:0.1.0"
PLATFORM = acme_platform()
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
PATHS = {
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "PodTemplate": "/api/v1/namespaces/{ns}/podtemplates",
}
# kwok ends a pod with this annotation OOMKilled (exit code 137) a second after it starts.
OOM_ON_KWOK = json.dumps(
    {
        "pod_template_spec_metadata": {
            "annotations": {"floe.dev/test-oomkill": "true", "floe.dev/test-run-duration": "1s"}
        }
    }
)


@dg.op(tags={PROFILE_TAG: "small", "dagster-k8s/config": OOM_ON_KWOK})
def light() -> None:
    """A light Python step (never executed: kwok runs no container)."""


@dg.op(tags={PROFILE_TAG: "transform", "dagster-k8s/config": OOM_ON_KWOK})
def heavy() -> None:
    """A DuckDB-heavy step (never executed)."""


@dg.job(executor_def=profile_k8s_job_executor)
def two_step_job() -> None:
    light()
    heavy()


@dg.op(tags={PROFILE_TAG: "huge"})
def unknown_profile_step() -> None:
    """Never launched: its profile does not exist."""


@dg.job(executor_def=profile_k8s_job_executor)
def unknown_profile_job() -> None:
    unknown_profile_step()


@dg.job
def plain_job() -> None:
    light()


def _limit_and_layer(memory: str, layer: str) -> str:
    """A ``dagster-k8s/config`` that raises the memory limit and says which layer set FLOE_LAYER."""
    container = {"resources": {"limits": {"memory": memory}}, "env": [{"name": "FLOE_LAYER", "value": layer}]}
    return json.dumps({"container_config": container})


@dg.op
def unprofiled() -> None:
    """No profile tag: its pod takes the run's profile (never executed)."""


@dg.op(tags={PROFILE_TAG: "small", "dagster-k8s/config": _limit_and_layer("3Gi", "op-tag")})
def op_tag_limit() -> None:
    """On small, its op tag raises the memory limit to 3Gi (never executed)."""


@dg.op(tags={PROFILE_TAG: "small", "dagster-k8s/config": _limit_and_layer("3Gi", "op-tag")})
def per_step_limit() -> None:
    """As op_tag_limit, and the executor's per_step_k8s_config raises it again, to 6Gi (never executed)."""


@dg.job(executor_def=profile_k8s_job_executor)
def layered_job() -> None:
    unprofiled()
    op_tag_limit()
    per_step_limit()


def helm_template(
    namespace: str, tmp_path: Path, step_jobs: bool, platform: dict[str, Any]
) -> list[dict[str, Any]]:
    helm = shutil.which("helm") or str(ROOT / ".tools" / "bin" / "helm")
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"platform": platform, "dagster": {"stepJobs": {"enabled": step_jobs}}}))
    output = subprocess.run(
        [
            helm,
            "template",
            "floe",
            str(ROOT / "charts" / "floe-platform"),
            "-n",
            namespace,
            "-f",
            str(values),
            *WITHOUT_CLUSTER,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


@dataclass
class Platform:
    plane: ControlPlane
    namespace: str
    instance: dg.DagsterInstance
    docs: list[dict[str, Any]]
    name: str  # the platform's name: its PodTemplates are <name>-<profile>

    @property
    def admin(self) -> KubeApi:
        return self.plane.admin_api()

    def create_run(
        self, job: str, tags: dict[str, str] | None = None
    ) -> tuple[ReconstructableJob, DagsterRun]:
        recon = ReconstructableJob.for_file(__file__, job)
        return recon, self.create_run_of(recon, tags=tags)

    def create_run_of(
        self,
        recon: ReconstructableJob,
        *,
        tags: dict[str, str] | None = None,
        run_config: dict[str, Any] | None = None,
        code_location_context: dict[str, Any] | None = None,
    ) -> DagsterRun:
        """A run of ``recon``; ``code_location_context`` is the code location's container context."""
        origin = recon.get_python_origin()
        if code_location_context is not None:
            repository = origin.repository_origin._replace(container_context=code_location_context)
            origin = origin._replace(repository_origin=repository)
        return self.instance.create_run_for_job(
            job_def=recon.get_definition(),
            job_code_origin=origin,
            tags=tags or {},
            run_config=run_config or {},
        )

    def step_jobs(self, run: DagsterRun) -> dict[str, dict[str, Any]]:
        """The run's step Jobs by op (label ``dagster/op``)."""
        selector = f"dagster/run-id%3D{run.run_id}"
        jobs = self.admin.get(f"/apis/batch/v1/namespaces/{self.namespace}/jobs?labelSelector={selector}")
        return {job["metadata"]["labels"]["dagster/op"]: job for job in jobs["items"]}


def _account(docs: list[dict[str, Any]], component: str) -> str:
    found = [
        doc
        for doc in docs
        if doc["kind"] == "ServiceAccount"
        and doc["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    assert len(found) == 1, f"the chart renders no {component} ServiceAccount"
    name: str = found[0]["metadata"]["name"]
    return name


@contextmanager
def set_up(
    plane: ControlPlane,
    namespace: str,
    tmp_path: Path,
    *,
    step_jobs: bool,
    identity: str,
    platform: dict[str, Any] = PLATFORM,
) -> Iterator[Platform]:
    """As admin: the restricted label, the chart's ServiceAccounts/Roles/RoleBindings and ``platform``'s
    PodTemplates; then a Dagster instance with the chart's run launcher, logged in with ``identity``'s
    token."""
    admin = plane.admin_api()
    with kubernetes.config.new_client_from_config(str(plane.kubeconfig)) as client:
        kubernetes.client.CoreV1Api(client).patch_namespace(namespace, {"metadata": {"labels": RESTRICTED}})
    docs = helm_template(namespace, tmp_path, step_jobs, platform)
    rbac = [doc for doc in docs if doc["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
    config = load_platform_text(yaml.safe_dump(platform))
    for doc in [*rbac, *render_pod_templates(config, namespace=namespace)]:
        admin.create(PATHS[doc["kind"]].format(ns=namespace), doc)
    instance_map = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-instance")
    )
    launcher = yaml.safe_load(instance_map["data"]["dagster.yaml"])["run_launcher"]
    kubeconfig = write_service_account_kubeconfig(
        plane, namespace, _account(docs, identity), tmp_path / f"{identity}.kubeconfig"
    )
    launcher["config"].update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    overrides = {
        "run_launcher": launcher,
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
    }
    with dg.instance_for_test(overrides=overrides) as instance:
        yield Platform(plane, namespace, instance, docs, launcher["config"]["platform_name"])


def _container(job: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == "dagster")


def _env(container: dict[str, Any]) -> dict[str, str | None]:
    return {entry["name"]: entry.get("value") for entry in container.get("env") or []}


def _template_container(platform: Platform, profile: str) -> dict[str, Any]:
    template = platform.admin.get(
        f"/api/v1/namespaces/{platform.namespace}/podtemplates/{platform.name}-{profile}"
    )
    return next(c for c in template["template"]["spec"]["containers"] if c["name"] == "dagster")


def _step_failures(instance: dg.DagsterInstance, run: DagsterRun) -> dict[str, str]:
    failures = {}
    for record in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE):
        event = record.dagster_event
        assert event is not None
        assert event.step_key is not None
        error = event.step_failure_data.error
        failures[event.step_key] = error.message if error else event.message or ""
    return failures


def test_two_step_run_launches_two_step_jobs_shaped_by_their_profiles_with_the_run_worker_token(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """Each step's Job differs from the other's exactly as the two profiles' PodTemplates do; kube-apiserver
    admits both Jobs from the run-worker ServiceAccount (the chart's Role) and their pods under
    ``restricted``; each OOM kill fails its step with the launcher's sentence for step pods."""
    with set_up(
        control_plane, control_plane_namespace, tmp_path, step_jobs=True, identity="run-worker"
    ) as platform:
        recon, run = platform.create_run("two_step_job")
        execute_run(recon, run, platform.instance)
        finished = platform.instance.get_run_by_id(run.run_id)
        assert finished is not None
        assert finished.status == DagsterRunStatus.FAILURE

        jobs = platform.step_jobs(run)
        assert sorted(jobs) == ["heavy", "light"]
        containers = {op: _container(job) for op, job in jobs.items()}
        for op, profile in (("light", "small"), ("heavy", "transform")):
            expected = _template_container(platform, profile)
            assert containers[op]["resources"] == expected["resources"]
            assert _env(containers[op]).items() >= _env(expected).items()
            pod = jobs[op]["spec"]["template"]
            assert pod["metadata"]["labels"]["floe.dev/profile"] == profile
            assert pod["spec"]["automountServiceAccountToken"] is False  # step pods call no API
            assert "command" not in containers[op]  # dagster's step worker args, unwrapped
        step_names = {"DAGSTER_RUN_STEP_KEY"}
        light_env, heavy_env = _env(containers["light"]), _env(containers["heavy"])
        differing = {
            name for name in light_env.keys() | heavy_env.keys() if light_env.get(name) != heavy_env.get(name)
        }
        small_env, transform_env = (
            _env(_template_container(platform, "small")),
            _env(_template_container(platform, "transform")),
        )
        profile_differences = {
            name
            for name in small_env.keys() | transform_env.keys()
            if small_env.get(name) != transform_env.get(name)
        }
        assert profile_differences == {"DUCKDB_MEMORY_LIMIT", "DUCKDB_THREADS"}
        assert differing - {name for name in differing if name.startswith("DAGSTER_")} == profile_differences
        assert differing & step_names == step_names

        failures = _step_failures(platform.instance, run)
        assert sorted(failures) == ["heavy", "light"]
        assert (
            "was OOMKilled: it used more than the memory limit 2Gi of resource profile 'small'"
            in failures["light"]
        )
        assert "memory limit 4Gi of resource profile 'transform'" in failures["heavy"]
        assert f"with the op tag {PROFILE_TAG}" in failures["heavy"]
        assert failures["light"].count("Step worker pod dagster-step-") == 1


def test_unknown_step_profile_fails_the_step_before_its_job_exists(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """The step fails with the list of profiles; kube-apiserver holds no step Job for the run."""
    with set_up(
        control_plane, control_plane_namespace, tmp_path, step_jobs=True, identity="run-worker"
    ) as platform:
        recon, run = platform.create_run("unknown_profile_job")
        execute_run(recon, run, platform.instance)
        finished = platform.instance.get_run_by_id(run.run_id)
        assert finished is not None
        assert finished.status == DagsterRunStatus.FAILURE
        failure = _step_failures(platform.instance, run)["unknown_profile_step"]
        assert (
            "Resource profile 'huge' (from the op tag of step 'unknown_profile_step') does not exist"
            in failure
        )
        assert "Available profiles: small, transform" in failure
        assert platform.step_jobs(run) == {}


def test_with_the_switch_off_a_step_executor_run_fails_its_launch_naming_the_switch(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """The chart's defaults: the launcher (dagster ServiceAccount) refuses before creating the run's Job."""
    with set_up(
        control_plane, control_plane_namespace, tmp_path, step_jobs=False, identity="dagster"
    ) as platform:
        _, run = platform.create_run("two_step_job")
        with pytest.raises(StepJobsDisabledError, match=STEP_JOBS_SWITCH.replace(".", r"\.")):
            platform.instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
        jobs = platform.admin.get(f"/apis/batch/v1/namespaces/{platform.namespace}/jobs")["items"]
        assert jobs == []
        failed = platform.instance.get_run_by_id(run.run_id)
        assert failed is not None
        assert failed.status == DagsterRunStatus.FAILURE


def test_with_the_switch_on_only_step_executor_run_pods_get_the_run_worker_token(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """The launcher (dagster ServiceAccount) creates both run Jobs; kcm makes their pods under ``restricted``.
    Only the step executor's run pod mounts a token, the run-worker ServiceAccount's."""
    with set_up(
        control_plane, control_plane_namespace, tmp_path, step_jobs=True, identity="dagster"
    ) as platform:
        pods = {}
        for job in ("two_step_job", "plain_job"):
            _, run = platform.create_run(job, {PROFILE_TAG: "small"})
            platform.instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
            selector = f"dagster/run-id%3D{run.run_id}"

            def created(selector: str = selector) -> dict[str, Any] | None:
                listed = platform.admin.get(
                    f"/api/v1/namespaces/{platform.namespace}/pods?labelSelector={selector}"
                )
                return listed["items"][0] if listed["items"] else None

            pods[job] = wait_for(f"the run pod of {job}", created, 30)
        run_worker = _account(platform.docs, "run-worker")
        assert pods["two_step_job"]["spec"]["serviceAccountName"] == run_worker
        assert pods["two_step_job"]["spec"]["automountServiceAccountToken"] is True
        mounts = _container_of_pod(pods["two_step_job"])["volumeMounts"]
        assert any(mount["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount" for mount in mounts)
        assert pods["plain_job"]["spec"]["automountServiceAccountToken"] is False


def _container_of_pod(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "dagster")


def test_step_pods_take_the_four_layers_in_order_and_recompute_duckdb_for_changed_limits(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """Each layer sets what the one below it set, and the step Jobs kube-apiserver holds show who won:
    executor config (1) < profile (2) < code location (3) < op tag, then per_step_k8s_config (4). A step with
    no profile tag is shaped by the run's profile; a changed limit recomputes the derived DUCKDB_* only."""
    executor = {
        "step_k8s_config": {
            "container_config": {
                "resources": {"limits": {"memory": "1Gi"}},  # below every profile: loses to layer 2
                "env": [
                    {"name": "FLOE_LAYER", "value": "executor"},
                    {"name": "FLOE_FROM_EXECUTOR", "value": "yes"},
                ],
            },
            **json.loads(OOM_ON_KWOK),  # kwok ends every step pod OOMKilled, so the run ends
        },
        "per_step_k8s_config": {"per_step_limit": json.loads(_limit_and_layer("6Gi", "per-step"))},
    }
    code_location = {
        "k8s": {
            "run_k8s_config": {
                "container_config": {
                    "resources": {"limits": {"cpu": "3"}},
                    "env": [{"name": "FLOE_LAYER", "value": "code-location"}],
                }
            }
        }
    }
    with set_up(
        control_plane, control_plane_namespace, tmp_path, step_jobs=True, identity="run-worker"
    ) as platform:
        run = platform.create_run_of(
            ReconstructableJob.for_file(__file__, "layered_job"),
            tags={PROFILE_TAG: "transform"},
            run_config={"execution": {"config": executor}},
            code_location_context=code_location,
        )
        execute_run(ReconstructableJob.for_file(__file__, "layered_job"), run, platform.instance)
        jobs = platform.step_jobs(run)
        assert sorted(jobs) == ["op_tag_limit", "per_step_limit", "unprofiled"]
        containers = {op: _container(job) for op, job in jobs.items()}
        envs = {op: _env(container) for op, container in containers.items()}
        limits = {op: container["resources"]["limits"] for op, container in containers.items()}
        profiles = {
            op: job["spec"]["template"]["metadata"]["labels"]["floe.dev/profile"] for op, job in jobs.items()
        }

        assert profiles == {"unprofiled": "transform", "op_tag_limit": "small", "per_step_limit": "small"}
        transform = _template_container(platform, "transform")
        assert containers["unprofiled"]["resources"]["requests"] == transform["resources"]["requests"]
        assert limits == {
            "unprofiled": {"cpu": "3", "memory": "4Gi"},  # transform's memory, the code location's cpu
            "op_tag_limit": {"cpu": "3", "memory": "3Gi"},
            "per_step_limit": {"cpu": "3", "memory": "6Gi"},
        }
        assert {op: env["FLOE_LAYER"] for op, env in envs.items()} == {
            "unprofiled": "code-location",
            "op_tag_limit": "op-tag",
            "per_step_limit": "per-step",
        }
        assert all(env["FLOE_FROM_EXECUTOR"] == "yes" for env in envs.values())  # layer 1 still reaches
        duckdb = {op: (env["DUCKDB_MEMORY_LIMIT"], env["DUCKDB_THREADS"]) for op, env in envs.items()}
        assert duckdb == {
            "unprofiled": ("2730MiB", "2"),  # 2/3 of 4Gi; transform sets DUCKDB_THREADS itself: kept
            "op_tag_limit": ("2048MiB", "3"),  # 2/3 of 3Gi; threads derived from the code location's cpu 3
            "per_step_limit": ("4096MiB", "3"),  # 2/3 of 6Gi
        }
        assert _step_failures(platform.instance, run).keys() == jobs.keys()  # each ended by its OOM kill


def test_the_demo_per_step_job_launches_its_python_step_on_small_and_dbt_on_transform(
    control_plane: ControlPlane, control_plane_namespace: str, tmp_path: Path
) -> None:
    """The demo code location's ``per_step_job`` on the platform ``make demo`` uses (local/platform.yaml,
    given to the chart as its ``platform``): the run worker creates one step Job per step, each shaped by
    the PodTemplate of the profile its op tag names. kwok runs no container, so neither the Python step nor
    dbt runs; each step pod is told through the executor's config to end OOMKilled, which ends the run."""
    from floe_demo.project import ensure_manifest

    ensure_manifest()  # importing the demo's definitions needs the dbt manifest, as in `make demo`
    local = yaml.safe_load((ROOT / "platform-config" / "platform" / "local" / "platform.yaml").read_text())
    recon = ReconstructableRepository.for_module("floe_demo.definitions", "defs").get_reconstructable_job(
        "per_step_job"
    )
    with set_up(
        control_plane,
        control_plane_namespace,
        tmp_path,
        step_jobs=True,
        identity="run-worker",
        platform=local,
    ) as platform:
        run_config = {"execution": {"config": {"step_k8s_config": json.loads(OOM_ON_KWOK)}}}
        run = platform.create_run_of(recon, run_config=run_config)
        execute_run(recon, run, platform.instance)

        jobs = platform.step_jobs(run)
        expected_profiles = {"small_step_duckdb_settings": "small", "dbt_models": "transform"}
        assert sorted(jobs) == sorted(expected_profiles)
        for op, profile in expected_profiles.items():
            pod = jobs[op]["spec"]["template"]
            assert pod["metadata"]["labels"]["floe.dev/profile"] == profile
            template = _template_container(platform, profile)
            assert _container(jobs[op])["resources"] == template["resources"]
            assert _env(_container(jobs[op])).items() >= _env(template).items()
        failures = _step_failures(platform.instance, run)
        assert "memory limit 2Gi of resource profile 'small'" in failures["small_step_duckdb_settings"]
        assert "memory limit 12Gi of resource profile 'transform'" in failures["dbt_models"]
