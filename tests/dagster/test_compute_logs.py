"""Compute logs reach S3: dagster-aws's S3ComputeLogManager, configured as the chart renders it from
platform.yaml's observability.compute_logs (real helm v4), uploads a run's stdout and stderr to real
LocalStack. The only change to the rendered config is the endpoint: the chart's points at the in-cluster
LocalStack Service, this test's at the LocalStack it started on the host.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pytest
import yaml

from floe_platform.config import load_platform
from testkit.helm import WITHOUT_CLUSTER

ROOT = Path(__file__).resolve().parents[2]
LOCAL_PLATFORM = ROOT / "platform-config" / "platform" / "local" / "platform.yaml"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "floe-test", "AWS_SECRET_ACCESS_KEY": "floe-test-secret"}
STDOUT_MARKER = "floe compute log: hello from stdout"
STDERR_MARKER = "floe compute log: hello from stderr"

pytestmark = pytest.mark.slow


def rendered_compute_logs(tmp_path: Path) -> dict[str, Any]:
    """The compute_logs section of the dagster.yaml the chart renders for the local platform.yaml."""
    helm = shutil.which("helm") or str(ROOT / ".tools" / "bin" / "helm")
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"platform": yaml.safe_load(LOCAL_PLATFORM.read_text())}))
    chart = ROOT / "charts" / "floe-platform"
    output = subprocess.run(
        [
            helm,
            "template",
            "floe",
            str(chart),
            "--namespace",
            "floe",
            "--values",
            str(values),
            *WITHOUT_CLUSTER,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    for doc in yaml.safe_load_all(output):
        if doc and doc.get("kind") == "ConfigMap" and "dagster.yaml" in (doc.get("data") or {}):
            section: dict[str, Any] = yaml.safe_load(doc["data"]["dagster.yaml"])["compute_logs"]
            return section
    raise AssertionError("the chart rendered no ConfigMap with a dagster.yaml")


@dg.asset
def chatty() -> int:
    import sys

    print(STDOUT_MARKER)
    print(STDERR_MARKER, file=sys.stderr)
    return 1


def test_run_stdout_and_stderr_land_in_the_compute_log_bucket(
    localstack_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    logs = load_platform(LOCAL_PLATFORM).observability.compute_logs
    section = rendered_compute_logs(tmp_path)
    config = section["config"]
    assert section["class"] == "S3ComputeLogManager"
    assert (config["bucket"], config["prefix"], config["upload_interval"]) == (
        logs.bucket,
        logs.prefix,
        logs.upload_interval,
    )
    config = {**config, "endpoint_url": localstack_endpoint, "local_dir": str(tmp_path / "logs")}
    s3 = boto3.client("s3", endpoint_url=localstack_endpoint, region_name=config["region"])
    s3.create_bucket(Bucket=config["bucket"])  # the chart's LocalStack does this on start in a cluster

    overrides = {"compute_logs": {"module": section["module"], "class": section["class"], "config": config}}
    with dg.instance_for_test(overrides=overrides) as instance:
        result = dg.materialize([chatty], instance=instance)
        assert result.success
        instance.compute_log_manager.dispose()

    listed = s3.list_objects_v2(Bucket=config["bucket"], Prefix=config["prefix"].rstrip("/"))
    keys = [item["Key"] for item in listed.get("Contents", [])]
    assert any(result.run_id in key for key in keys), keys
    bodies = {key: s3.get_object(Bucket=config["bucket"], Key=key)["Body"].read().decode() for key in keys}
    assert any(STDOUT_MARKER in body and key.endswith(".out") for key, body in bodies.items()), bodies
    assert any(STDERR_MARKER in body and key.endswith(".err") for key, body in bodies.items()), bodies
