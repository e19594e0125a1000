"""ProfileK8sRunLauncher against the Kubernetes API emulator (kmock over real HTTP).

Real: dagster 1.13 (instance, run storage, launch path), dagster-k8s's ``K8sRunLauncher`` and its client,
the kubernetes client, our renderer. Stand-in: kmock for the API server. It cannot show admission (every
Job read back is checked with ``validate_object`` against Kubernetes 1.37's OpenAPI instead), the Job
controller (no pods appear; tests create them), or label selectors (it ignores them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import kubernetes
import pytest
import yaml
from dagster._core.code_pointer import FileCodePointer
from dagster._core.launcher.base import WorkerStatus
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

from floe_platform.config import load_platform_text
from floe_platform.dagster.launcher import ProfileK8sRunLauncher
from floe_platform.dagster.profiles import MEMORY_LIMIT_TAG, PROFILE_TAG
from floe_platform.render import render_pod_templates
from floe_platform.render.duckdb_env import derived_memory_limit
from testkit.emulator import EmulatedCluster, validate_object
from testkit.helm import WITHOUT_CLUSTER

pytestmark = pytest.mark.slow  # each test starts a Dagster instance and launches against the emulator (3-6 s)

NAMESPACE = "floe"
IMAGE = "floe-platform/user-code:0.1.0"
PLATFORM_YAML = """
platform: {name: acme}
infrastructure:
  resource_profiles:
    transform:
      requests: {cpu: "1", memory: 2Gi}
      limits: {cpu: "4", memory: 6Gi}
      env: {DUCKDB_THREADS: "3", TEAM: data}
      node_selector: {pool: compute}
      tolerations: [{key: dedicated, operator: Equal, value: dagster, effect: NoSchedule}]
      temp_volume_size: 20Gi
    small:
      requests: {cpu: 250m, memory: 512Mi}
      limits: {cpu: "1", memory: 2Gi}
"""
PLATFORM = load_platform_text(PLATFORM_YAML)
GiB = 1024**3


@dg.asset(op_tags={PROFILE_TAG: "small"})
def tagged_asset() -> int:
    return 1


@dg.asset
def plain_asset() -> int:
    return 2


defs = dg.Definitions(
    assets=[tagged_asset, plain_asset],
    jobs=[
        dg.define_asset_job("tagged_assets_job", selection=[tagged_asset]),
        dg.define_asset_job("plain_job", selection=[plain_asset]),
        dg.define_asset_job("job_tagged_job", selection=[plain_asset], tags={PROFILE_TAG: "transform"}),
    ],
)


def _launcher_config(cluster: EmulatedCluster, **extra: Any) -> dict[str, Any]:
    return {
        "service_account_name": "dagster",
        "instance_config_map": "dagster-instance",
        "dagster_home": "/opt/dagster/dagster_home",
        "job_image": IMAGE,
        "job_namespace": NAMESPACE,
        "load_incluster_config": False,
        "kubeconfig_file": str(cluster.kubeconfig_path),
        "platform_name": "acme",
        **extra,
    }


@pytest.fixture
def cluster(kube_cluster: EmulatedCluster) -> EmulatedCluster:
    """The emulator holding the PodTemplates the operator would have created for PLATFORM."""
    core = kubernetes.client.CoreV1Api(kube_cluster.api_client())
    for template in render_pod_templates(PLATFORM, namespace=NAMESPACE):
        core.create_namespaced_pod_template(NAMESPACE, template)
    return kube_cluster


@pytest.fixture
def make_instance(cluster: EmulatedCluster) -> Iterator[Any]:
    """Builds a Dagster instance (sqlite in a temp dir) whose run launcher is ours."""
    stack: list[Any] = []

    def make(**launcher_extra: Any) -> dg.DagsterInstance:
        context = dg.instance_for_test(
            overrides={
                "run_launcher": {
                    "module": "floe_platform.dagster.launcher",
                    "class": "ProfileK8sRunLauncher",
                    "config": _launcher_config(cluster, **launcher_extra),
                },
                "run_coordinator": {
                    "module": "dagster._core.run_coordinator",
                    "class": "DefaultRunCoordinator",
                },
            }
        )
        stack.append(context)
        return context.__enter__()

    yield make
    for context in reversed(stack):
        context.__exit__(None, None, None)


def _launch(
    instance: dg.DagsterInstance,
    job_name: str,
    tags: Mapping[str, str] | None = None,
    container_context: Mapping[str, Any] | None = None,
) -> DagsterRun:
    origin = JobPythonOrigin(
        job_name,
        RepositoryPythonOrigin(
            executable_path=sys.executable,
            code_pointer=FileCodePointer(__file__, "defs"),
            container_image=IMAGE,
            container_context=dict(container_context or {}),
        ),
    )
    run = instance.create_run_for_job(
        job_def=defs.resolve_job_def(job_name), job_code_origin=origin, tags=dict(tags or {})
    )
    instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
    return instance.get_run_by_id(run.run_id)  # type: ignore[return-value]


def _posted_jobs(cluster: EmulatedCluster) -> list[dict[str, Any]]:
    """Every Job in the emulator, each checked the way a real API server would check it."""
    api = cluster.api_client()
    listed = kubernetes.client.BatchV1Api(api).list_namespaced_job(NAMESPACE)
    jobs = [api.sanitize_for_serialization(job) for job in listed.items]
    for job in jobs:
        job.setdefault("apiVersion", "batch/v1")
        job.setdefault("kind", "Job")
        validate_object(job)
    return jobs


def _only_job(cluster: EmulatedCluster) -> dict[str, Any]:
    jobs = _posted_jobs(cluster)
    assert len(jobs) == 1
    return jobs[0]


def _container(job: Mapping[str, Any]) -> dict[str, Any]:
    containers = job["spec"]["template"]["spec"]["containers"]
    return next(container for container in containers if container["name"] == "dagster")


def _env(job: Mapping[str, Any]) -> dict[str, str]:
    env = _container(job)["env"]
    names = [entry["name"] for entry in env]
    assert len(names) == len(set(names)), f"duplicate env names: {names}"
    return {entry["name"]: entry.get("value") for entry in env}


def test_run_pod_carries_the_profiles_resources_env_volumes_placement_and_labels(
    cluster: EmulatedCluster, make_instance: Any
) -> None:
    """The Job dagster-k8s posts is the profile's PodTemplate plus Dagster's own command and env."""
    run = _launch(make_instance(), "plain_job", tags={PROFILE_TAG: "transform"})
    job = _only_job(cluster)
    pod = job["spec"]["template"]
    container = _container(job)
    assert container["image"] == IMAGE
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "4", "memory": "6Gi"},
    }
    env = _env(job)
    assert env["TEAM"] == "data"
    assert env["DUCKDB_THREADS"] == "3"
    assert env["DUCKDB_MEMORY_LIMIT"] == derived_memory_limit(6 * GiB)
    assert env["DUCKDB_TEMP_DIRECTORY"] == "/tmp/duckdb"
    assert "DAGSTER_RUN_JOB_NAME" in env
    assert {"name": "duckdb-temp", "mountPath": "/tmp/duckdb"} in container["volumeMounts"]
    assert {"name": "duckdb-temp", "emptyDir": {"sizeLimit": "20Gi"}} in pod["spec"]["volumes"]
    assert pod["spec"]["nodeSelector"] == {"pool": "compute"}
    assert pod["spec"]["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "dagster", "effect": "NoSchedule"}
    ]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["metadata"]["labels"]["floe.dev/profile"] == "transform"
    assert pod["metadata"]["labels"]["floe.dev/platform"] == "acme"
    assert pod["metadata"]["labels"]["dagster/run-id"] == run.run_id
    assert job["metadata"]["labels"]["floe.dev/profile"] == "transform"
    assert run.tags[PROFILE_TAG] == "transform"
    assert run.tags[MEMORY_LIMIT_TAG] == "6Gi"


@pytest.mark.parametrize(
    ("job_name", "run_tags", "expected"),
    [
        pytest.param("job_tagged_job", {PROFILE_TAG: "small"}, "small", id="run-tag-beats-job-tag"),
        pytest.param("job_tagged_job", {}, "transform", id="job-tag"),
        pytest.param("tagged_assets_job", {}, "small", id="asset-op-tag"),
        pytest.param("plain_job", {}, "transform", id="launcher-default-profile"),
    ],
)
def test_profile_is_chosen_by_run_tag_then_job_tag_then_asset_tag_then_default(
    cluster: EmulatedCluster, make_instance: Any, job_name: str, run_tags: dict[str, str], expected: str
) -> None:
    """Selection order, each layer seen in the Job posted to the emulator."""
    _launch(make_instance(default_profile="transform"), job_name, tags=run_tags)
    job = _only_job(cluster)
    assert job["spec"]["template"]["metadata"]["labels"]["floe.dev/profile"] == expected


def test_run_without_any_profile_is_launched_as_the_stock_launcher_would(
    cluster: EmulatedCluster, make_instance: Any
) -> None:
    """No tag and no default: plain dagster-k8s behaviour, no profile label."""
    _launch(make_instance(), "plain_job")
    job = _only_job(cluster)
    assert "floe.dev/profile" not in job["spec"]["template"]["metadata"]["labels"]
    assert "DUCKDB_MEMORY_LIMIT" not in _env(job)


def test_unknown_profile_fails_the_run_listing_the_profiles_and_creates_no_job(
    cluster: EmulatedCluster, make_instance: Any
) -> None:
    """The launch stops before any POST: the emulator holds no Job afterwards."""
    instance = make_instance()
    with pytest.raises(Exception, match="Resource profile 'huge'") as raised:
        _launch(instance, "plain_job", tags={PROFILE_TAG: "huge"})
    message = str(raised.value)
    assert "Available profiles: small, transform" in message
    assert "acme-huge" in message
    assert _posted_jobs(cluster) == []
    [run] = instance.get_runs()
    assert run.status == DagsterRunStatus.FAILURE


def test_precedence_launcher_below_profile_below_code_location_below_run_tag(
    cluster: EmulatedCluster, make_instance: Any
) -> None:
    """Each layer overrides the one below it; derived DUCKDB_MEMORY_LIMIT follows the effective limit.

    Layer 1 (launcher run_k8s_config) sets a 1Gi limit and LAYER=launcher; the profile raises it to 6Gi;
    the code location's container context sets 4Gi and LAYER=code-location; the run's dagster-k8s/config
    tag sets 3Gi. The explicit DUCKDB_THREADS=3 of the profile survives every override.
    """
    launcher_layer = {
        "container_config": {
            "resources": {"limits": {"memory": "1Gi", "cpu": "1"}},
            "env": [{"name": "LAYER", "value": "launcher"}, {"name": "LAUNCHER_ONLY", "value": "yes"}],
        }
    }
    code_location = {
        "k8s": {
            "run_k8s_config": {
                "container_config": {
                    "resources": {"limits": {"memory": "4Gi"}},
                    "env": [{"name": "LAYER", "value": "code-location"}],
                }
            }
        }
    }
    run_tag = {"container_config": {"resources": {"limits": {"memory": "3Gi"}}}}
    instance = make_instance(run_k8s_config=launcher_layer)

    _launch(instance, "plain_job", tags={PROFILE_TAG: "transform"})
    profile_job = _only_job(cluster)
    assert _container(profile_job)["resources"]["limits"] == {"cpu": "4", "memory": "6Gi"}
    assert _env(profile_job)["LAYER"] == "launcher"
    assert _env(profile_job)["LAUNCHER_ONLY"] == "yes"
    _delete_jobs(cluster)

    _launch(instance, "plain_job", tags={PROFILE_TAG: "transform"}, container_context=code_location)
    location_job = _only_job(cluster)
    assert _container(location_job)["resources"]["limits"] == {"cpu": "4", "memory": "4Gi"}
    assert _env(location_job)["LAYER"] == "code-location"
    assert _env(location_job)["DUCKDB_MEMORY_LIMIT"] == derived_memory_limit(4 * GiB)
    assert _env(location_job)["DUCKDB_THREADS"] == "3"
    _delete_jobs(cluster)

    tagged = {PROFILE_TAG: "transform", "dagster-k8s/config": json.dumps(run_tag)}
    run = _launch(instance, "plain_job", tags=tagged, container_context=code_location)
    tag_job = _only_job(cluster)
    assert _container(tag_job)["resources"]["limits"] == {"cpu": "4", "memory": "3Gi"}
    assert _env(tag_job)["DUCKDB_MEMORY_LIMIT"] == derived_memory_limit(3 * GiB)
    assert _env(tag_job)["DUCKDB_THREADS"] == "3"
    assert run.tags[MEMORY_LIMIT_TAG] == "3Gi"


def test_cpu_override_recomputes_derived_threads_but_keeps_a_higher_layers_duckdb_value(
    cluster: EmulatedCluster, make_instance: Any
) -> None:
    """Profile 'small' derives all three DUCKDB_* values; the run tag raises CPU and sets a memory value."""
    run_tag = {
        "container_config": {
            "resources": {"limits": {"cpu": "3", "memory": "4Gi"}},
            "env": [{"name": "DUCKDB_MEMORY_LIMIT", "value": "1GB"}],
        }
    }
    tags = {PROFILE_TAG: "small", "dagster-k8s/config": json.dumps(run_tag)}
    _launch(make_instance(), "plain_job", tags=tags)
    env = _env(_only_job(cluster))
    assert env["DUCKDB_THREADS"] == "3"
    assert env["DUCKDB_MEMORY_LIMIT"] == "1GB"


def test_profiles_can_come_from_a_mounted_directory(
    cluster: EmulatedCluster, make_instance: Any, tmp_path: Path
) -> None:
    """profile_source 'file' reads `floe render` output, e.g. a mounted ConfigMap, not the API."""
    profile_dir = tmp_path / "profiles"
    profile_dir.mkdir()
    (profile_dir / "templates.yaml").write_text(yaml.safe_dump_all(render_pod_templates(PLATFORM)))
    instance = make_instance(profile_source="file", profile_dir=str(profile_dir))
    _launch(instance, "plain_job", tags={PROFILE_TAG: "small"})
    job = _only_job(cluster)
    assert _container(job)["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
    with pytest.raises(Exception, match="Available profiles: small, transform"):
        _launch(instance, "plain_job", tags={PROFILE_TAG: "nope"})


def test_oom_killed_run_pod_fails_health_check_naming_profile_and_limit(
    cluster: EmulatedCluster, make_instance: Any
) -> None:
    """The pod and Job status are written into the emulator, as the kubelet and Job controller would."""
    instance = make_instance()
    run = _launch(instance, "plain_job", tags={PROFILE_TAG: "small"})
    instance.handle_run_event(run.run_id, _run_started_event(run))
    job = _only_job(cluster)
    job_name = job["metadata"]["name"]
    api = cluster.api_client()
    core = kubernetes.client.CoreV1Api(api)
    pod = _oom_killed_pod(job_name, run.run_id)
    validate_object(pod)
    core.create_namespaced_pod(NAMESPACE, pod)
    batch = kubernetes.client.BatchV1Api(api)
    batch.patch_namespaced_job(job_name, NAMESPACE, {"status": {"failed": 1, "active": 0}})

    launcher = instance.run_launcher
    assert isinstance(launcher, ProfileK8sRunLauncher)
    started = instance.get_run_by_id(run.run_id)
    assert started is not None
    health = launcher.check_run_worker_health(started)
    assert health.status == WorkerStatus.FAILED
    assert health.msg is not None
    assert "OOMKilled" in health.msg
    assert "memory limit 2Gi of resource profile 'small'" in health.msg
    assert "raise limits.memory" in health.msg
    debug = launcher.get_run_worker_debug_info(started, include_container_logs=False)
    assert debug is not None
    assert debug.startswith(health.msg)


def _run_started_event(run: DagsterRun) -> Any:
    from dagster._core.events import DagsterEvent, DagsterEventType

    return DagsterEvent(event_type_value=DagsterEventType.RUN_START.value, job_name=run.job_name)


def _oom_killed_pod(job_name: str, run_id: str) -> dict[str, Any]:
    terminated = {"exitCode": 137, "reason": "OOMKilled"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{job_name}-x7k2p", "labels": {"job-name": job_name, "dagster/run-id": run_id}},
        "spec": {
            "containers": [{"name": "dagster", "image": IMAGE, "resources": {"limits": {"memory": "2Gi"}}}],
            "restartPolicy": "Never",
        },
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "dagster",
                    "image": IMAGE,
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                }
            ],
        },
    }


def _delete_jobs(cluster: EmulatedCluster) -> None:
    batch = kubernetes.client.BatchV1Api(cluster.api_client())
    for job in batch.list_namespaced_job(NAMESPACE).items:
        batch.delete_namespaced_job(job.metadata.name, NAMESPACE)


def _chart_run_launcher() -> dict[str, Any]:
    """The run_launcher section of the dagster.yaml the chart renders with its defaults (real helm v4)."""
    root = Path(__file__).resolve().parents[2]
    helm = shutil.which("helm") or str(root / ".tools" / "bin" / "helm")
    rendered = subprocess.run(
        [
            helm,
            "template",
            "floe",
            str(root / "charts" / "floe-platform"),
            "--namespace",
            NAMESPACE,
            *WITHOUT_CLUSTER,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    for doc in yaml.safe_load_all(rendered):
        if doc and doc.get("kind") == "ConfigMap" and "dagster.yaml" in (doc.get("data") or {}):
            section: dict[str, Any] = yaml.safe_load(doc["data"]["dagster.yaml"])["run_launcher"]
            return section
    raise AssertionError("the chart rendered no dagster.yaml")


def test_the_charts_launcher_config_launches_a_run_on_its_default_profile(
    kube_cluster: EmulatedCluster, make_instance: Any
) -> None:
    """The chart's rendered run_launcher (only the in-cluster login swapped for the emulator's kubeconfig)
    is accepted by this class's config schema and launches on its default_profile."""
    section = _chart_run_launcher()
    assert (section["module"], section["class"]) == (
        "floe_platform.dagster.launcher",
        "ProfileK8sRunLauncher",
    )
    config = section["config"]
    platform = load_platform_text(
        f"""
platform: {{name: {config["platform_name"]}}}
infrastructure:
  resource_profiles:
    {config["default_profile"]}:
      requests: {{cpu: 500m, memory: 1Gi}}
      limits: {{cpu: "2", memory: 4Gi}}
"""
    )
    core = kubernetes.client.CoreV1Api(kube_cluster.api_client())
    for template in render_pod_templates(platform, namespace=config["job_namespace"]):
        core.create_namespaced_pod_template(config["job_namespace"], template)
    chart_config = {key: value for key, value in config.items() if key != "load_incluster_config"}
    run = _launch(make_instance(**chart_config), "plain_job")
    job = _only_job(kube_cluster)
    assert run.tags[PROFILE_TAG] == config["default_profile"]
    assert _container(job)["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    assert "AWS_ACCESS_KEY_ID" in _env(job)


@pytest.mark.parametrize(("cache_seconds", "expected_memory"), [(0, "3Gi"), (300, "2Gi")])
def test_templates_are_cached_for_profile_cache_seconds(
    cluster: EmulatedCluster, make_instance: Any, cache_seconds: int, expected_memory: str
) -> None:
    """A template changed in the API (as the operator would change it) is seen once the cache expires."""
    instance = make_instance(profile_cache_seconds=cache_seconds)
    _launch(instance, "plain_job", tags={PROFILE_TAG: "small"})
    _delete_jobs(cluster)
    core = kubernetes.client.CoreV1Api(cluster.api_client())
    template = core.api_client.sanitize_for_serialization(
        core.read_namespaced_pod_template("acme-small", NAMESPACE)
    )
    template["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "3Gi"
    core.patch_namespaced_pod_template("acme-small", NAMESPACE, {"template": template["template"]})
    _launch(instance, "plain_job", tags={PROFILE_TAG: "small"})
    assert _container(_only_job(cluster))["resources"]["limits"]["memory"] == expected_memory
