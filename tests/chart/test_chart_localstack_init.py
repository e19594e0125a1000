"""The built-in LocalStack creates the compute-log bucket and its lifecycle rule, and the shared catalog's
bucket, on every start.

Real: LocalStack (open source, S3 only) on the host under Python 3.13 (testkit/localstack.py), started,
stopped and started again by pid; its own init-hook runner executes the `ready.d` script the chart mounts
from its scripts ConfigMap, with the env the chart gives the LocalStack container (real helm v4).
LocalStack runs in its host mode here (OVERRIDE_IN_DOCKER=0, so its init directory is under
FILESYSTEM_ROOT, not this machine's /etc), which keeps its state in memory as the chart's pod keeps it in
an emptyDir: a restart loses every bucket, as a rescheduled pod does. Not shown: the container image's own
runner (4.14.0); the hook's endpoint is the host LocalStack's port instead of the pod's 127.0.0.1:4566.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from chart_render import render

from testkit.localstack import LocalStack
from testkit.waiting import wait_until

pytestmark = pytest.mark.slow

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "chart-test", "AWS_SECRET_ACCESS_KEY": "chart-test-secret"}


def _s3(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        **{
            "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        },
    )


def _retention(endpoint: str, bucket: str) -> list[tuple[str, int]] | None:
    try:
        rules = _s3(endpoint).get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except Exception:  # no bucket, or no rule yet
        return None
    return [(rule["Filter"]["Prefix"], rule["Expiration"]["Days"]) for rule in rules]


PROFILES = {
    "infrastructure": {
        "resource_profiles": {
            "default": {
                "requests": {"cpu": "100m", "memory": "256Mi"},
                "limits": {"cpu": "1", "memory": "1Gi"},
            }
        }
    }
}


def _hook_env(platform: dict[str, Any], tmp_path: Path) -> tuple[dict[str, str], Path]:
    """Render the chart with ``platform``, lay out its ready.d hook under a LocalStack FILESYSTEM_ROOT as
    the pod mounts it, and return the container's plain env (its Secret refs checked) and that root."""
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"platform": platform}))
    rendered = render([values])
    deployment = rendered.named("Deployment", "localstack")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "ready-hooks")
    assert mount["mountPath"] == "/etc/localstack/init/ready.d"
    volume = next(v for v in pod["volumes"] if v["name"] == "ready-hooks")
    configmap = rendered.named("ConfigMap", "scripts")
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]

    root = tmp_path / "filesystem"
    ready_d = root / "etc" / "localstack" / "init" / "ready.d"
    ready_d.mkdir(parents=True)
    for item in volume["configMap"]["items"]:
        (ready_d / item["path"]).write_text(configmap["data"][item["key"]])
    # The credentials come from the chart's S3 Secret; CREDENTIALS stand in for its generated values.
    s3_secret = rendered.named("Secret", "s3")["metadata"]["name"]
    from_secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e
    }
    assert from_secrets == dict.fromkeys(CREDENTIALS, s3_secret)
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}, root


def _localstack(tmp_path: Path, env: dict[str, str], root: Path) -> LocalStack:
    localstack = LocalStack(
        tmp_path / "localstack",
        extra_env={**env, **CREDENTIALS, "FILESYSTEM_ROOT": str(root), "OVERRIDE_IN_DOCKER": "0"},
    )
    (tmp_path / "localstack").mkdir()
    localstack.extra_env["S3_ENDPOINT"] = localstack.endpoint  # the pod's 127.0.0.1:4566, on this host
    return localstack


def _buckets(endpoint: str) -> list[str]:
    return sorted(bucket["Name"] for bucket in _s3(endpoint).list_buckets()["Buckets"])


def test_localstack_recreates_the_bucket_and_its_rule_after_a_restart(tmp_path: Path) -> None:
    platform = {
        "observability": {"compute_logs": {"bucket": "restart-logs", "prefix": "logs/", "retention_days": 9}},
        **PROFILES,
    }
    env, root = _hook_env(platform, tmp_path)
    assert (env["BUCKET"], env["PREFIX"], env["RETENTION_DAYS"]) == ("restart-logs", "logs/", "9")
    localstack = _localstack(tmp_path, env, root)
    localstack.start()
    try:
        assert wait_until(lambda: _retention(localstack.endpoint, "restart-logs") is not None, 60, 0.5)
        assert _retention(localstack.endpoint, "restart-logs") == [("logs/", 9)]
        _s3(localstack.endpoint).put_object(Bucket="restart-logs", Key="logs/run-1/out.txt", Body=b"lost")

        localstack.stop()
        localstack.start()
        assert wait_until(lambda: _retention(localstack.endpoint, "restart-logs") is not None, 60, 0.5)
        assert _retention(localstack.endpoint, "restart-logs") == [("logs/", 9)]
        # The restart lost the old state (as a new pod does); the bucket came back from the hook alone.
        listed = _s3(localstack.endpoint).list_objects_v2(Bucket="restart-logs")
        assert listed.get("KeyCount", 0) == 0
    finally:
        localstack.stop()


def test_localstack_creates_the_catalog_bucket_when_compute_logs_are_off(tmp_path: Path) -> None:
    """The shared catalog's bucket does not depend on compute logs: with them off, the hook has no
    compute-log bucket to make, and still creates the catalog's bucket (no lifecycle rule), also after a
    restart."""
    platform = {"observability": {"compute_logs": {"enabled": False}}, **PROFILES}
    env, root = _hook_env(platform, tmp_path)
    assert env["EXTRA_BUCKETS"] == "floe-lake"
    assert not {"BUCKET", "PREFIX", "RETENTION_DAYS"} & env.keys()
    localstack = _localstack(tmp_path, env, root)
    localstack.start()
    try:
        assert wait_until(lambda: _buckets(localstack.endpoint) == ["floe-lake"], 60, 0.5)
        with pytest.raises(ClientError, match="NoSuchLifecycleConfiguration"):
            _s3(localstack.endpoint).get_bucket_lifecycle_configuration(Bucket="floe-lake")
        _s3(localstack.endpoint).put_object(Bucket="floe-lake", Key="lake/t/part-0.parquet", Body=b"lost")

        localstack.stop()
        localstack.start()
        assert wait_until(lambda: _buckets(localstack.endpoint) == ["floe-lake"], 60, 0.5)
        assert _s3(localstack.endpoint).list_objects_v2(Bucket="floe-lake").get("KeyCount", 0) == 0
    finally:
        localstack.stop()
