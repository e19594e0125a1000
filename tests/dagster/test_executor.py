"""The step executor's contract with the run launcher and the demo code location.

Real: dagster 1.13 and dagster-k8s 0.29 (executor definitions, job snapshots, the run launcher's launch
path), the demo code location's definitions. Stand-in: kmock's emulator for the API server in the launch
test (every Job read back is checked against Kubernetes 1.37's OpenAPI); the step Jobs themselves are
launched on the real control plane in ``test_executor_on_apiserver.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import dagster as dg
import kubernetes
import pytest
from dagster._core.code_pointer import FileCodePointer
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster_k8s import k8s_job_executor

from floe_platform.config import load_platform, load_platform_text
from floe_platform.dagster.executor import profile_k8s_job_executor
from floe_platform.dagster.launcher import STEP_EXECUTOR_NAME
from floe_platform.dagster.profiles import PROFILE_TAG
from floe_platform.render import render_pod_templates
from testkit.emulator import EmulatedCluster, validate_object

ROOT = Path(__file__).resolve().parents[2]
# Every platform.yaml this repository ships: the examples (local is `make demo`'s) and the e2e suite's.
SHIPPED_PLATFORMS = [
    *sorted((ROOT / "platform-config" / "platform").glob("*/platform.yaml")),
    ROOT / "tests" / "e2e" / "platform-e2e.yaml",
]
NAMESPACE = "floe"
IMAGE = "floe-platform/user-code:0.1.0"
PLATFORM = load_platform_text(
    """
platform: {name: acme}
infrastructure:
  resource_profiles:
    small: {requests: {cpu: 250m, memory: 512Mi}, limits: {cpu: "1", memory: 2Gi}}
    transform: {requests: {cpu: "1", memory: 2Gi}, limits: {cpu: "2", memory: 4Gi}}
"""
)


@dg.op(tags={PROFILE_TAG: "small"})
def light() -> None:
    """Never executed."""


@dg.op(tags={PROFILE_TAG: "transform"})
def heavy() -> None:
    """Never executed."""


@dg.job(executor_def=profile_k8s_job_executor)
def per_step_job() -> None:
    light()
    heavy()


defs = dg.Definitions(jobs=[per_step_job])


def test_the_executor_takes_exactly_the_stock_executors_config() -> None:
    """A job swaps ``k8s_job_executor`` for this one and keeps its ``execution.config``."""
    ours = profile_k8s_job_executor.config_schema.config_type
    stock = k8s_job_executor.config_schema.config_type
    assert sorted(ours.fields) == sorted(stock.fields)
    assert profile_k8s_job_executor.name == STEP_EXECUTOR_NAME


@pytest.mark.slow  # parses the demo's dbt project when its manifest is missing or stale
def test_the_demo_per_step_job_runs_python_on_small_and_dbt_on_transform() -> None:
    from floe_demo.project import ensure_manifest

    ensure_manifest()  # importing the demo's definitions needs the manifest, as in `make demo`
    from floe_demo.definitions import defs as demo_defs

    job = demo_defs.resolve_job_def("per_step_job")
    assert job.executor_def is profile_k8s_job_executor
    profiles = {node.name: node.tags.get(PROFILE_TAG) for node in job.graph.nodes}
    assert profiles == {"small_step_duckdb_settings": "small", "dbt_models": "transform"}


@pytest.mark.slow  # imports the demo's definitions (dbt manifest)
@pytest.mark.parametrize("platform_file", SHIPPED_PLATFORMS, ids=lambda path: path.parent.name)
def test_each_shipped_platform_defines_every_profile_the_demo_jobs_name(platform_file: Path) -> None:
    """The profiles come from the demo's own op tags, so a job that names a new profile fails here until
    every shipped platform has it (a step on a missing profile fails before its Job exists)."""
    from floe_demo.project import ensure_manifest

    ensure_manifest()
    from floe_demo.definitions import defs as demo_defs

    named = {
        node.tags[PROFILE_TAG]
        for job in demo_defs.resolve_all_job_defs()
        for node in job.graph.nodes
        if PROFILE_TAG in node.tags
    }
    assert {"small", "transform"} <= named  # the per_step_job's two profiles are among them
    profiles = load_platform(platform_file).infrastructure.resource_profiles
    assert named - profiles.keys() == set(), f"{platform_file.relative_to(ROOT)} lacks these profiles"


@pytest.mark.slow
def test_a_step_executor_runs_pod_takes_the_default_profile_not_its_ops_tags(
    kube_cluster: EmulatedCluster,
) -> None:
    """Its ops ask for two profiles; for a one-pod run that fails the launch, here the ops' tags are the
    steps' and the run pod gets ``default_profile``, with the API token mounted (``step_jobs``)."""
    core = kubernetes.client.CoreV1Api(kube_cluster.api_client())
    for template in render_pod_templates(PLATFORM, namespace=NAMESPACE):
        core.create_namespaced_pod_template(NAMESPACE, template)
    config: dict[str, Any] = {
        "service_account_name": "dagster",
        "instance_config_map": "dagster-instance",
        "dagster_home": "/opt/dagster/dagster_home",
        "job_image": IMAGE,
        "job_namespace": NAMESPACE,
        "load_incluster_config": False,
        "kubeconfig_file": str(kube_cluster.kubeconfig_path),
        "platform_name": "acme",
        "default_profile": "transform",
        "step_jobs": True,
    }
    overrides = {
        "run_launcher": {
            "module": "floe_platform.dagster.launcher",
            "class": "ProfileK8sRunLauncher",
            "config": config,
        },
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
    }
    with dg.instance_for_test(overrides=overrides) as instance:
        origin = JobPythonOrigin(
            "per_step_job",
            RepositoryPythonOrigin(
                executable_path=sys.executable,
                code_pointer=FileCodePointer(__file__, "defs"),
                container_image=IMAGE,
            ),
        )
        run = instance.create_run_for_job(job_def=per_step_job, job_code_origin=origin)
        instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
        launched = instance.get_run_by_id(run.run_id)
        assert launched is not None
        assert launched.tags[PROFILE_TAG] == "transform"
    api = kube_cluster.api_client()
    [job] = kubernetes.client.BatchV1Api(api).list_namespaced_job(NAMESPACE).items
    body = api.sanitize_for_serialization(job)
    body.update(apiVersion="batch/v1", kind="Job")
    validate_object(body)
    pod = body["spec"]["template"]
    assert pod["metadata"]["labels"]["floe.dev/profile"] == "transform"
    assert pod["spec"]["automountServiceAccountToken"] is True
