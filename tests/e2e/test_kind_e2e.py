"""The whole chain on real pods: images, chart, operator, launcher, run pods, S3 compute logs, helm test,
uninstall.

Runs against real Kubernetes with real pods: the real node of these machines (``make e2e``: the Go-built
control plane, a kubelet on containerd and runc, kube-proxy and CoreDNS) or kind (``make e2e-kind``). The
images are built from ``images/`` (and, on the real node, PostgreSQL and LocalStack from
``tests/realnode/images``); the chart runs the operator, the Dagster webserver, daemon and code server,
PostgreSQL and LocalStack S3; the suite drives them through Dagster's GraphQL API, kubectl and helm.
Skipped, with the reason, where neither can run (see ``conftest.py``). The last test uninstalls the release.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.config import Config
from dagster import DagsterRunStatus
from dagster_api import run_messages, wait_for_run
from dagster_graphql import DagsterGraphQLClient
from deployment import PLATFORM_FILE, PLATFORM_NAME, RELEASE, Deployment

from floe_platform.config import PlatformConfig, load_platform
from floe_platform.config.quantity import parse_quantity
from floe_platform.render import CONTAINER_NAME, PROFILE_LABEL, render_pod_template, template_name
from floe_platform.render.catalog_env import catalog_env

pytestmark = pytest.mark.e2e

DEMO_JOB = "main_job"  # floe_demo.definitions: bronze Python assets, then the dbt models
DEMO_PROFILE = "transform"
OOM_JOB = "e2e_memory_hog"
OOM_PROFILE = "tiny"
OOM_MEBIBYTES = 3072
PROFILE_TAG = "floe/resource-profile"
RUN_TIMEOUT_S = 1200
REPAIR_TIMEOUT_S = 60  # the operator promises 30 s; allow for a slow CI node
QUANTITY_KEYS = {"cpu", "memory", "sizeLimit", "ephemeral-storage"}
# What every namespace has, release or not; what `helm uninstall` keeps on purpose (chart README).
CLUSTER_DEFAULTS = {"ServiceAccount/default", "ConfigMap/kube-root-ca.crt"}
KEPT_ON_PURPOSE = {"Secret/floe-postgresql"}


@pytest.fixture(scope="module")
def config() -> PlatformConfig:
    return load_platform(PLATFORM_FILE)


@pytest.fixture(scope="module")
def webserver_port(platform: Deployment) -> Iterator[int]:
    with platform.port_forward("webserver", 3000) as port:
        yield port


@pytest.fixture(scope="module")
def dagster_client(webserver_port: int) -> DagsterGraphQLClient:
    return DagsterGraphQLClient("127.0.0.1", port_number=webserver_port)


@pytest.fixture(scope="module")
def s3(platform: Deployment) -> Iterator[Any]:
    """boto3 against the chart's LocalStack through a port-forward (LocalStack accepts any key pair)."""
    with platform.port_forward("localstack", 4566) as port:
        yield boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="e2e",
            aws_secret_access_key="e2e",
            config=Config(s3={"addressing_style": "path"}),
        )


def normalized(value: Any, key: str = "") -> Any:
    """Quantities as numbers: the API server stores '1000m' as '1', which is the same quantity."""
    if isinstance(value, dict):
        return {name: normalized(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [normalized(item, key) for item in value]
    if key in QUANTITY_KEYS and isinstance(value, str | int):
        return parse_quantity(value)
    return value


def differences(expected: Any, live: Any, path: str = "") -> list[str]:
    """Where ``live`` differs from ``expected`` on the fields ``expected`` sets (the server adds defaults)."""
    if isinstance(expected, dict):
        if not isinstance(live, dict):
            return [f"{path}: expected a mapping, found {live!r}"]
        return [
            problem
            for name, item in expected.items()
            for problem in differences(item, live.get(name), f"{path}.{name}")
        ]
    if isinstance(expected, list):
        if not isinstance(live, list) or len(live) != len(expected):
            return [f"{path}: expected {expected!r}, found {live!r}"]
        return [
            problem
            for index, (want, have) in enumerate(zip(expected, live, strict=True))
            for problem in differences(want, have, f"{path}[{index}]")
        ]
    return [] if expected == live else [f"{path}: expected {expected!r}, found {live!r}"]


def template_drift(platform: Deployment, config: PlatformConfig, profile: str) -> list[str]:
    rendered = render_pod_template(
        PLATFORM_NAME,
        profile,
        config.infrastructure.resource_profiles[profile],
        platform.namespace,
        catalog_env(config),
    )
    live = platform.kubectl_json("get", "podtemplate", template_name(PLATFORM_NAME, profile))
    return differences(normalized(rendered), normalized(live))


def eventually(condition: Callable[[], list[str]], timeout_s: float) -> list[str]:
    """Poll until ``condition`` reports no problem; the last problems when time runs out."""
    deadline = time.monotonic() + timeout_s
    problems = condition()
    while problems and time.monotonic() < deadline:
        time.sleep(2)
        problems = condition()
    return problems


def run_pod(platform: Deployment, run_id: str) -> dict[str, Any]:
    pods = platform.kubectl_json("get", "pods", "--selector", f"dagster/run-id={run_id}")["items"]
    assert len(pods) >= 1, f"no run pod labelled dagster/run-id={run_id}"
    return dict(pods[-1])


def run_container(pod: dict[str, Any]) -> dict[str, Any]:
    containers = [c for c in pod["spec"]["containers"] if c["name"] == CONTAINER_NAME]
    assert len(containers) == 1, f"run pod has no container named {CONTAINER_NAME}"
    return dict(containers[0])


def test_floeplatform_is_ready_for_its_current_generation(platform: Deployment) -> None:
    resource = platform.kubectl_json("get", "floeplatform", PLATFORM_NAME)
    conditions = {c["type"]: c for c in resource["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "True", conditions["Ready"]
    assert resource["status"]["observedGeneration"] == resource["metadata"]["generation"]


def test_each_profile_podtemplate_is_the_renderers_output(
    platform: Deployment, config: PlatformConfig
) -> None:
    uid = platform.kubectl_json("get", "floeplatform", PLATFORM_NAME)["metadata"]["uid"]
    for profile in config.infrastructure.resource_profiles:
        assert template_drift(platform, config, profile) == [], profile
        owners = platform.kubectl_json("get", "podtemplate", template_name(PLATFORM_NAME, profile))[
            "metadata"
        ]["ownerReferences"]
        assert [(owner["kind"], owner["uid"]) for owner in owners] == [("FloePlatform", uid)]


def test_bucket_job_created_the_compute_log_bucket(s3: Any, config: PlatformConfig) -> None:
    logs = config.observability.compute_logs
    s3.head_bucket(Bucket=logs.bucket)
    rules = s3.get_bucket_lifecycle_configuration(Bucket=logs.bucket)["Rules"]
    assert [rule["Expiration"]["Days"] for rule in rules] == [logs.retention_days]


def test_demo_job_succeeds_in_a_pod_with_the_profiles_resources_env_and_s3_logs(
    platform: Deployment, dagster_client: DagsterGraphQLClient, s3: Any, config: PlatformConfig
) -> None:
    run_id = dagster_client.submit_job_execution(DEMO_JOB, tags={PROFILE_TAG: DEMO_PROFILE})
    assert wait_for_run(dagster_client, run_id, RUN_TIMEOUT_S) == DagsterRunStatus.SUCCESS

    pod = run_pod(platform, run_id)
    rendered = render_pod_template(
        PLATFORM_NAME,
        DEMO_PROFILE,
        config.infrastructure.resource_profiles[DEMO_PROFILE],
        platform_env=catalog_env(config),
    )
    expected = rendered["template"]["spec"]["containers"][0]
    container = run_container(pod)
    assert normalized(container["resources"]) == normalized(expected["resources"])
    # The profile's DUCKDB_* and the catalog's env (values, and Secret references for credentials).
    live_env = {item["name"]: item for item in container["env"]}
    assert [item for item in expected["env"] if live_env.get(item["name"]) != item] == []
    assert pod["metadata"]["labels"][PROFILE_LABEL] == DEMO_PROFILE

    logs = config.observability.compute_logs

    def missing_logs() -> list[str]:
        keys = _keys(s3, logs.bucket)
        ours = [key for key in keys if f"/storage/{run_id}/" in key]
        return [] if ours else [f"no compute-log object of run {run_id} among {len(keys)} keys"]

    assert eventually(missing_logs, 120) == []

    # The run wrote its tables as Parquet files of the shared catalog, and its blob asset as a pickle,
    # to the catalog's bucket on the built-in S3: nothing stayed in the pod.
    catalog = config.catalog
    keys = _keys(s3, catalog.bucket)
    assert any(k.startswith(catalog.data_prefix) and k.endswith(".parquet") for k in keys), keys
    assert any(k.startswith(catalog.blob_prefix) for k in keys), keys


def _keys(s3: Any, bucket: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_run_past_its_profile_memory_is_oomkilled_and_says_so(
    platform: Deployment, dagster_client: DagsterGraphQLClient, webserver_port: int, config: PlatformConfig
) -> None:
    limit = config.infrastructure.resource_profiles[OOM_PROFILE].limits.memory_bytes()
    assert limit < OOM_MEBIBYTES * 1024**2
    run_config = {"ops": {"e2e__memory_hog": {"config": {"mebibytes": OOM_MEBIBYTES}}}}
    run_id = dagster_client.submit_job_execution(
        OOM_JOB, run_config=run_config, tags={PROFILE_TAG: OOM_PROFILE}
    )
    assert wait_for_run(dagster_client, run_id, RUN_TIMEOUT_S) == DagsterRunStatus.FAILURE

    statuses = run_pod(platform, run_id)["status"].get("containerStatuses", [])
    reasons = [
        (
            status.get("state", {}).get("terminated") or status.get("lastState", {}).get("terminated") or {}
        ).get("reason")
        for status in statuses
    ]
    assert "OOMKilled" in reasons, json.dumps(statuses)
    messages = run_messages(webserver_port, run_id)
    assert any("OOMKilled" in message and OOM_PROFILE in message for message in messages), messages


def test_hand_edited_podtemplate_is_reverted_by_the_operator(
    platform: Deployment, config: PlatformConfig
) -> None:
    name = template_name(PLATFORM_NAME, "default")
    patch = [{"op": "replace", "path": "/template/spec/containers/0/resources/limits/memory", "value": "7Gi"}]
    # The server's answer to the patch shows the edit took; the operator repairs it from the watch event
    # at once, so a read after the patch may already see the repair.
    live = platform.kubectl_json("patch", "podtemplate", name, "--type=json", f"--patch={json.dumps(patch)}")
    assert parse_quantity(
        live["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    ) == Decimal(7 * 1024**3)
    assert eventually(lambda: template_drift(platform, config, "default"), REPAIR_TIMEOUT_S) == []


def test_deleted_podtemplate_is_recreated_by_the_operator(
    platform: Deployment, config: PlatformConfig
) -> None:
    platform.kubectl("delete", "podtemplate", template_name(PLATFORM_NAME, OOM_PROFILE), "--wait=true")

    def not_back() -> list[str]:
        names = platform.kubectl("get", "podtemplates", "--output", "name").split()
        if f"podtemplate/{template_name(PLATFORM_NAME, OOM_PROFILE)}" not in names:
            return ["not recreated yet"]
        return template_drift(platform, config, OOM_PROFILE)

    assert eventually(not_back, REPAIR_TIMEOUT_S) == []


def test_helm_test_launches_a_run_that_succeeds(platform: Deployment) -> None:
    output = platform.helm("test", RELEASE, "--timeout", "15m")
    assert "Phase:          Succeeded" in output or "Phase: Succeeded" in output, output


def test_helm_uninstall_leaves_nothing_behind(platform: Deployment) -> None:
    """Runs last, in the chart README's order for a FloePlatform applied with kubectl: delete it, then
    ``helm uninstall --wait``. Left in the namespace: what every namespace has, the PostgreSQL password
    Secret that the chart keeps on purpose, and the Jobs and pods of finished runs, which are Dagster's run
    records (removed by their TTL, or with the namespace); nothing is left running."""
    platform.kubectl("delete", "floeplatforms", "--all", "--wait=true")
    platform.helm("uninstall", RELEASE, "--wait", "--timeout", "10m")

    def leftovers() -> list[str]:
        kinds = "floeplatforms,podtemplates,deployments,statefulsets,jobs,pods,services,configmaps,secrets"
        kinds += ",serviceaccounts,roles,rolebindings,persistentvolumeclaims,networkpolicies"
        kinds += ",poddisruptionbudgets,limitranges,resourcequotas"
        items = platform.kubectl_json("get", kinds)["items"]
        running = [f"Pod/{i['metadata']['name']}" for i in items if _is_running_pod(i)]
        names = {f"{item['kind']}/{item['metadata']['name']}" for item in items if not _is_run_record(item)}
        return running + sorted(names - CLUSTER_DEFAULTS - KEPT_ON_PURPOSE)

    assert eventually(leftovers, 180) == []
    secrets = platform.kubectl("get", "secrets", "--output", "name").split()
    assert [f"secret/{name.split('/')[1]}" for name in KEPT_ON_PURPOSE] == secrets


def _is_run_record(item: dict[str, Any]) -> bool:
    return item["kind"] in {"Job", "Pod"} and "dagster/run-id" in item["metadata"].get("labels", {})


def _is_running_pod(item: dict[str, Any]) -> bool:
    return item["kind"] == "Pod" and item.get("status", {}).get("phase") in {"Pending", "Running"}
