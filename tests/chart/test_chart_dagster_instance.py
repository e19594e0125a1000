"""The rendered dagster.yaml, loaded by Dagster 1.13's own config machinery.

Runs helm v4 over the ci/ matrix, then validates the instance ConfigMap with Dagster's instance schema
(`dagster_instance_config`) and each configurable class's `config_type()` through `process_config`, as
`ConfigurableClassData.rehydrate` does at startup, but without constructing the classes: those connect
to Postgres or the Kubernetes API, which are not here.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import kubernetes
import kubernetes_validate
import pytest
import yaml
from chart_render import CI_DIR, HelmError, Rendered, containers, env_of, render
from dagster._config import process_config, resolve_to_config_type
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config, get_tick_retention_settings
from dagster._core.scheduler.instigation import TickStatus
from dagster_k8s.job import DagsterK8sJobConfig, UserDefinedDagsterK8sConfig, construct_dagster_k8s_job

from floe_platform.config.models import ComputeLogs

pytestmark = pytest.mark.slow  # Dagster's own config validation of every CI render

CONFIGURABLE_KEYS = (
    "run_storage",
    "event_log_storage",
    "schedule_storage",
    "run_launcher",
    "run_coordinator",
    "compute_logs",
)


def _process(section: dict[str, Any]) -> Any:
    """Validate ``section``'s config with its class's own ``config_type()``; raise on any error."""
    cls = getattr(importlib.import_module(section["module"]), section["class"])
    result = process_config(resolve_to_config_type(cls.config_type()), section.get("config", {}))
    assert result.success, (
        f"{section['module']}.{section['class']}: {[e.message for e in result.errors or []]}"
    )
    return result.value


@pytest.fixture(autouse=True)
def _instance_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The env the chart's containers get from Secrets, so that `env:` config sources resolve."""
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "from-the-secret")


def test_instance_config_passes_dagsters_instance_schema(release: Rendered, tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text(release.named("ConfigMap", "instance")["data"]["dagster.yaml"])
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    assert config["telemetry"]["enabled"] is False


def test_each_configurable_class_accepts_its_config(release: Rendered) -> None:
    """Including the project's ProfileK8sRunLauncher, imported from floe_platform.dagster.launcher."""
    instance = release.dagster_yaml()
    for key in CONFIGURABLE_KEYS:
        _process(instance[key])


def test_launcher_config_check_refuses_a_misspelt_key(default_release: Rendered) -> None:
    """Guard: the launcher's config_type() does refuse an unknown key, so the test above can fail."""
    launcher = default_release.dagster_yaml()["run_launcher"]
    launcher["config"]["platfrom_name"] = launcher["config"].pop("platform_name")
    with pytest.raises(AssertionError, match="platfrom_name"):
        _process(launcher)


def test_launcher_config_carries_the_contract_settings(default_release: Rendered) -> None:
    launcher = default_release.dagster_yaml()["run_launcher"]
    assert (launcher["module"], launcher["class"]) == (
        "floe_platform.dagster.launcher",
        "ProfileK8sRunLauncher",
    )
    settings = launcher["config"]
    assert settings["platform_name"] == "floe"
    assert settings["default_profile"] == "default"
    assert settings["profile_source"] == "api"
    assert settings["job_namespace"] == "floe"
    assert settings["job_image"] == "floe-platform/user-code:0.1.0"
    assert (
        settings["instance_config_map"] == default_release.named("ConfigMap", "instance")["metadata"]["name"]
    )
    assert settings["postgres_password_secret"] == "floe-floe-platform-postgresql"
    assert (
        settings["service_account_name"]
        == default_release.named("ServiceAccount", "dagster")["metadata"]["name"]
    )


def test_launcher_takes_platform_name_and_default_profile_from_the_platform(
    rendered_matrix: dict[str, Rendered],
) -> None:
    prod = rendered_matrix["three-profiles"].dagster_yaml()["run_launcher"]["config"]
    assert (prod["platform_name"], prod["default_profile"]) == ("floe-prod", "ingest")
    off = rendered_matrix["compute-logs-off"].dagster_yaml()["run_launcher"]["config"]
    assert (off["platform_name"], off["default_profile"]) == ("floe", "default")


def test_queued_coordinator_and_run_monitoring_are_set(default_release: Rendered) -> None:
    instance = default_release.dagster_yaml()
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert instance["run_coordinator"]["config"]["max_concurrent_runs"] == 10
    assert instance["run_monitoring"]["enabled"] is True
    assert instance["run_monitoring"]["start_timeout_seconds"] == 300


def test_run_retries_are_on_for_oom_escalation_and_pass_dagsters_schema(
    default_release: Rendered, tmp_path: Path
) -> None:
    """Dagster's instance schema (dagster_instance_config) reads the rendered run_retries; enabled with
    0 retries by default, so only an OOM kill on a profile with escalate_to is retried."""
    (tmp_path / "dagster.yaml").write_text(
        default_release.named("ConfigMap", "instance")["data"]["dagster.yaml"]
    )
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_retries"] == {"enabled": True, "max_retries": 0, "retry_on_asset_or_op_failure": True}


def test_run_retries_values_reach_dagster_yaml(tmp_path: Path) -> None:
    sets = ["dagster.runRetries.maxRetries=3", "dagster.runRetries.retryOnAssetOrOpFailure=false"]
    release = render(sets=sets)
    (tmp_path / "dagster.yaml").write_text(release.named("ConfigMap", "instance")["data"]["dagster.yaml"])
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_retries"] == {"enabled": True, "max_retries": 3, "retry_on_asset_or_op_failure": False}


def test_instance_schema_check_refuses_a_misspelt_run_retries_key(
    default_release: Rendered, tmp_path: Path
) -> None:
    """Guard: Dagster's schema does refuse a wrong key inside run_retries, so the tests above can fail."""
    instance = default_release.dagster_yaml()
    instance["run_retries"]["max_retry"] = instance["run_retries"].pop("max_retries")
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance))
    with pytest.raises(DagsterInvalidConfigError, match="max_retry"):
        dagster_instance_config(str(tmp_path))


def test_default_compute_logs_go_to_localstack_with_platform_defaults(default_release: Rendered) -> None:
    """Without a platform, bucket, prefix and upload interval are platform.yaml's own defaults."""
    logs = default_release.dagster_yaml()["compute_logs"]
    defaults = ComputeLogs()
    assert logs["class"] == "S3ComputeLogManager"
    assert logs["config"] == {
        "bucket": defaults.bucket,
        "prefix": defaults.prefix,
        "local_dir": defaults.local_dir,
        "upload_interval": defaults.upload_interval,
        "region": "us-east-1",
        "use_ssl": False,
        "endpoint_url": "http://floe-floe-platform-localstack.floe.svc:4566",
    }


def test_compute_logs_mirror_the_platforms_settings(rendered_matrix: dict[str, Rendered]) -> None:
    """storage_ref names the platform's own S3: its endpoint, region and TLS, and its Secret."""
    release = rendered_matrix["three-profiles"]
    given = release.values["platform"]["observability"]["compute_logs"]
    config = release.dagster_yaml()["compute_logs"]["config"]
    assert (config["bucket"], config["prefix"], config["upload_interval"]) == (
        given["bucket"],
        given["prefix"],
        given["upload_interval"],
    )
    assert config["endpoint_url"] == "https://s3.eu-west-1.amazonaws.com"
    assert (config["region"], config["use_ssl"]) == ("eu-west-1", True)
    daemon = release.named("Deployment", "daemon")["spec"]["template"]["spec"]["containers"][0]
    key = next(e for e in daemon["env"] if e["name"] == "AWS_SECRET_ACCESS_KEY")
    assert key["valueFrom"]["secretKeyRef"] == {"name": "floe-lake-s3", "key": "AWS_SECRET_ACCESS_KEY"}
    assert not release.has("Job", "create-bucket"), "your own S3's bucket Job is opt-in"


def test_compute_logs_off_means_no_s3_anywhere(rendered_matrix: dict[str, Rendered]) -> None:
    release = rendered_matrix["compute-logs-off"]
    assert release.dagster_yaml()["compute_logs"]["class"] == "NoOpComputeLogManager"
    assert "run_k8s_config" not in release.dagster_yaml()["run_launcher"]["config"]
    assert not release.has("Job", "create-bucket")
    for _, pod in release.workloads():
        for container in pod["containers"]:
            assert not [e for e in container.get("env", []) if e["name"].startswith("AWS_")]


def test_run_pods_built_by_dagster_k8s_get_the_s3_credentials(default_release: Rendered) -> None:
    """dagster-k8s itself turns the launcher's run_k8s_config into the run Job; the result is a valid
    Kubernetes 1.37 Job whose container reads the S3 keys from the chart's Secret."""
    settings = default_release.dagster_yaml()["run_launcher"]["config"]
    job_config = DagsterK8sJobConfig(
        job_image=settings["job_image"],
        dagster_home=settings["dagster_home"],
        instance_config_map=settings["instance_config_map"],
        postgres_password_secret=settings["postgres_password_secret"],
    )
    user_config = UserDefinedDagsterK8sConfig.from_dict(settings["run_k8s_config"])  # type: ignore[no-untyped-call]
    job = construct_dagster_k8s_job(
        job_config, ["dagster", "api", "execute_run"], "dagster-run-1", user_config
    )
    manifest = kubernetes.client.ApiClient().sanitize_for_serialization(job)
    manifest |= {"apiVersion": "batch/v1", "kind": "Job"}
    kubernetes_validate.validate(manifest, "1.37.0", strict=True)
    env = {e["name"]: e for e in manifest["spec"]["template"]["spec"]["containers"][0]["env"]}
    secret = default_release.named("Secret", "s3")["metadata"]["name"]
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": secret,
        "key": "AWS_ACCESS_KEY_ID",
    }
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "postgresql-password"


def test_builtin_localstack_creates_the_configured_bucket_with_retention_on_each_start(
    default_release: Rendered,
) -> None:
    """No hook Job for the built-in S3: LocalStack's ready.d hook (the scripts ConfigMap's create-bucket.py)
    creates the bucket and its rule on every start (run by real LocalStack: test_chart_localstack_init)."""
    assert not default_release.has("Job", "create-bucket")
    pod = default_release.named("Deployment", "localstack")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    defaults = ComputeLogs()
    assert (env["BUCKET"], env["PREFIX"], env["RETENTION_DAYS"]) == (
        defaults.bucket,
        defaults.prefix,
        str(defaults.retention_days),
    )
    hooks = next(volume for volume in pod["volumes"] if volume["name"] == "ready-hooks")
    assert hooks["configMap"]["items"] == [{"key": "create-bucket.py", "path": "create-buckets.py"}]


def test_own_s3_gets_the_bucket_job_only_when_opted_in(rendered_matrix: dict[str, Rendered]) -> None:
    """retention_days on your own S3 needs s3:PutLifecycleConfiguration: the post-install/post-upgrade Job
    applies it only with computeLogBucketJob.enabled, with the storage's endpoint and Secret."""
    assert not rendered_matrix["three-profiles"].has("Job", "create-bucket")
    release = render([CI_DIR / "three-profiles-values.yaml"], sets=["computeLogBucketJob.enabled=true"])
    job = release.named("Job", "create-bucket")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    given = release.values["platform"]["observability"]["compute_logs"]
    assert env["BUCKET"]["value"] == given["bucket"]
    assert env["RETENTION_DAYS"]["value"] == str(given.get("retention_days", ComputeLogs().retention_days))
    assert env["S3_ENDPOINT"]["value"] == "https://s3.eu-west-1.amazonaws.com"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "floe-lake-s3"
    assert container["command"] == ["python", "/opt/floe/scripts/create-bucket.py"]


def _applies_retention(release: Rendered) -> list[str]:
    """The workloads that put a lifecycle rule on the compute-log bucket (they get RETENTION_DAYS)."""
    return sorted(
        doc["metadata"]["labels"]["app.kubernetes.io/component"]
        for doc, pod in release.workloads()
        if any("RETENTION_DAYS" in env_of(container) for container in containers(pod))
    )


def test_the_retention_days_doc_promises_expiry_exactly_where_the_chart_applies_it(
    rendered_matrix: dict[str, Rendered],
) -> None:
    """platform.yaml's retention_days says when objects expire; the chart must do exactly that: the built-in
    S3 always (LocalStack's start hook), your own S3 only with computeLogBucketJob.enabled (the Job)."""
    doc = " ".join((ComputeLogs.model_fields["retention_days"].description or "").split())
    assert (
        "always on the built-in S3, on your own S3 only with the chart's computeLogBucketJob.enabled" in doc
    )
    assert "Otherwise nothing expires" in doc
    assert _applies_retention(rendered_matrix["default"]) == ["localstack"]
    own_s3 = CI_DIR / "three-profiles-values.yaml"
    assert _applies_retention(rendered_matrix["three-profiles"]) == []
    assert _applies_retention(render([own_s3], sets=["computeLogBucketJob.enabled=true"])) == [
        "create-bucket"
    ]


def test_instance_yaml_is_plain_yaml_without_templating_leftovers(release: Rendered) -> None:
    text = release.named("ConfigMap", "instance")["data"]["dagster.yaml"]
    assert "{{" not in text
    assert "<no value>" not in text
    assert isinstance(yaml.safe_load(text), dict)


# Run-queue, run-monitoring, retention and additional sections (ci/instance-settings-values.yaml).


def _instance_settings(rendered_matrix: dict[str, Rendered], tmp_path: Path) -> dict[str, Any]:
    """The instance-settings case's dagster.yaml as Dagster's own loader returns it (schema-checked)."""
    text = rendered_matrix["instance-settings"].named("ConfigMap", "instance")["data"]["dagster.yaml"]
    (tmp_path / "dagster.yaml").write_text(text)
    config, _ = dagster_instance_config(str(tmp_path))
    return dict(config)


def test_run_queue_limits_and_dequeue_settings_reach_the_coordinator(
    rendered_matrix: dict[str, Rendered],
) -> None:
    """QueuedRunCoordinator's own config_type() accepts them, with a plain value, a per-value group and no
    value at all."""
    coordinator = _process(rendered_matrix["instance-settings"].dagster_yaml()["run_coordinator"])
    assert coordinator["tag_concurrency_limits"] == [
        {"key": "floe/resource-profile", "value": "transform", "limit": 2},
        {"key": "team", "value": {"applyLimitPerUniqueValue": True}, "limit": 3},
        {"key": "backfill", "limit": 5},
    ]
    assert (
        coordinator["max_concurrent_runs"],
        coordinator["dequeue_interval_seconds"],
        coordinator["dequeue_use_threads"],
        coordinator["dequeue_num_workers"],
    ) == (20, 5, True, 4)


def test_run_monitoring_resume_and_slot_settings_pass_dagsters_schema(
    rendered_matrix: dict[str, Rendered], tmp_path: Path
) -> None:
    monitoring = _instance_settings(rendered_matrix, tmp_path)["run_monitoring"]
    assert (monitoring["max_resume_run_attempts"], monitoring["free_slots_after_run_end_seconds"]) == (2, 300)
    defaults = rendered_matrix["default"].dagster_yaml()["run_monitoring"]
    assert (defaults["max_resume_run_attempts"], defaults["free_slots_after_run_end_seconds"]) == (0, 0)


def test_tick_retention_is_read_by_dagster_as_written(
    rendered_matrix: dict[str, Rendered], tmp_path: Path
) -> None:
    """Dagster's own reader turns the section into days per tick status."""
    retention = _instance_settings(rendered_matrix, tmp_path)["retention"]
    defaults = {status: -1 for status in TickStatus}
    schedule = get_tick_retention_settings(retention["schedule"], defaults)
    sensor = get_tick_retention_settings(retention["sensor"], defaults)
    assert set(schedule.values()) == {30}
    assert {status.value.lower(): days for status, days in sensor.items()} == {
        "skipped": 3,
        "success": 30,
        "failure": 90,
        "started": -1,
    }
    assert "retention" not in rendered_matrix["default"].dagster_yaml(), "off by default: Dagster's own"


def test_additional_instance_config_is_written_and_checked_by_dagster(
    rendered_matrix: dict[str, Rendered], tmp_path: Path
) -> None:
    config = _instance_settings(rendered_matrix, tmp_path)
    assert config["code_servers"] == {"reload_timeout": 120}
    assert config["concurrency"] == {"default_op_concurrency_limit": 4}


def test_dagsters_schema_refuses_a_misspelt_additional_section(tmp_path: Path) -> None:
    """Guard: a typo in the escape hatch renders, and Dagster's own instance schema refuses it."""
    rendered = render(sets=["dagster.additionalInstanceConfig.code_server.reload_timeout=60"])
    (tmp_path / "dagster.yaml").write_text(rendered.named("ConfigMap", "instance")["data"]["dagster.yaml"])
    with pytest.raises(DagsterInvalidConfigError, match="code_server"):
        dagster_instance_config(str(tmp_path))


@pytest.mark.parametrize("section", ["run_launcher", "run_monitoring", "compute_logs", "retention"])
def test_additional_instance_config_may_not_repeat_a_section_of_the_chart(section: str) -> None:
    with pytest.raises(HelmError) as refused:
        render(sets=[f"dagster.additionalInstanceConfig.{section}.enabled=true"])
    assert (
        f"dagster.additionalInstanceConfig.{section}: the chart writes this dagster.yaml section itself"
        in str(refused.value)
    )


# The launcher's run_k8s_config (layer 1): values verbatim, the S3 credentials kept first.


def test_run_k8s_config_of_the_values_reaches_the_launcher_with_the_s3_env_first(
    rendered_matrix: dict[str, Rendered],
) -> None:
    release = rendered_matrix["instance-settings"]
    config = release.dagster_yaml()["run_launcher"]["config"]["run_k8s_config"]
    given = release.values["dagster"]["runLauncher"]["runK8sConfig"]
    assert config["job_spec_config"] == {"ttlSecondsAfterFinished": 3600}
    assert config["pod_spec_config"] == given["podSpecConfig"]
    assert config["job_metadata"] == given["jobMetadata"]
    assert config["pod_template_spec_metadata"] == given["podTemplateSpecMetadata"]
    container = config["container_config"]
    assert [entry["name"] for entry in container["env"]] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    assert container["envFrom"] == [{"secretRef": {"name": "warehouse-credentials"}}]
    assert container["volumeMounts"] == given["containerConfig"]["volumeMounts"]


def test_dagster_k8s_builds_a_valid_job_from_the_values_run_k8s_config(
    rendered_matrix: dict[str, Rendered],
) -> None:
    """dagster-k8s turns layer 1 into a Kubernetes 1.37 Job (kubernetes-validate --strict) with the TTL,
    priority class, envFrom and volume of the values."""
    settings = rendered_matrix["instance-settings"].dagster_yaml()["run_launcher"]["config"]
    job_config = DagsterK8sJobConfig(
        job_image=settings["job_image"],
        dagster_home=settings["dagster_home"],
        instance_config_map=settings["instance_config_map"],
        postgres_password_secret=settings["postgres_password_secret"],
    )
    user_config = UserDefinedDagsterK8sConfig.from_dict(settings["run_k8s_config"])  # type: ignore[no-untyped-call]
    job = construct_dagster_k8s_job(
        job_config, ["dagster", "api", "execute_run"], "dagster-run-2", user_config
    )
    manifest = kubernetes.client.ApiClient().sanitize_for_serialization(job)
    manifest |= {"apiVersion": "batch/v1", "kind": "Job"}
    kubernetes_validate.validate(manifest, "1.37.0", strict=True)
    pod = manifest["spec"]["template"]["spec"]
    assert manifest["spec"]["ttlSecondsAfterFinished"] == 3600
    assert manifest["metadata"]["labels"]["team"] == "analytics"
    assert pod["priorityClassName"] == "floe-batch"
    assert {"name": "dbt-profiles", "configMap": {"name": "dbt-profiles"}} in pod["volumes"]
    assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "warehouse-credentials"}}]
