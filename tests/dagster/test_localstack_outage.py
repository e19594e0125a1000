"""S3 (real LocalStack) goes away in the middle of a run: the run still succeeds, and its compute logs can
be uploaded once S3 is back.

Real: dagster 1.13 in-process, dagster-aws's ``S3ComputeLogManager``, boto3, open-source LocalStack on the
host (its own instance, stopped by pid and started again on the same port). What happens, as this test pins
it down: the step's stdout/stderr are captured to ``local_dir`` first; at the end of the step the manager's
upload to S3 fails, dagster reports that and the run still succeeds; the local files stay (they are deleted
only after a successful upload); and ``upload_to_cloud_storage`` for the run's log key, called once S3 is
back, puts them in the bucket. Dagster does not retry that upload on its own: the leftover files in
``local_dir`` (one ``<key>.complete`` per captured log) are the list of what to upload by hand.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import dagster as dg
import pytest

from testkit.localstack import LocalStack

BUCKET = "dagster-compute-logs"
PREFIX = "compute-logs"
MARKER_BEFORE = "floe outage: printed while S3 was up"
MARKER_AFTER = "floe outage: printed after S3 went away"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "floe-test", "AWS_SECRET_ACCESS_KEY": "floe-test-secret"}

pytestmark = pytest.mark.slow
_OUTAGE: list[LocalStack] = []


@dg.asset
def outlives_s3() -> int:
    print(MARKER_BEFORE, flush=True)
    _OUTAGE[0].stop()  # S3 goes away while the step runs
    print(MARKER_AFTER, flush=True)
    print(MARKER_AFTER, file=sys.stderr, flush=True)
    return 1


@pytest.fixture
def localstack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    instance = LocalStack(tmp_path / "localstack")
    instance.workdir.mkdir()
    instance.start()
    _OUTAGE[:] = [instance]
    try:
        yield instance
    finally:
        _OUTAGE.clear()
        instance.stop()


def _s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def test_run_survives_s3_outage_and_its_logs_upload_after_s3_returns(
    localstack: LocalStack, tmp_path: Path
) -> None:
    _s3(localstack.endpoint).create_bucket(Bucket=BUCKET)
    local_dir = tmp_path / "compute-logs"
    config = {
        "bucket": BUCKET,
        "prefix": PREFIX,
        "endpoint_url": localstack.endpoint,
        "region": "us-east-1",
        "local_dir": str(local_dir),
        "upload_interval": 1,
    }
    overrides = {
        "compute_logs": {
            "module": "dagster_aws.s3.compute_log_manager",
            "class": "S3ComputeLogManager",
            "config": config,
        }
    }
    with dg.instance_for_test(overrides=overrides) as instance:
        result = dg.materialize([outlives_s3], instance=instance)
        assert result.success, "the run failed because S3 was down"
        manager: Any = instance.compute_log_manager  # an S3ComputeLogManager, configured above
        assert type(manager).__name__ == "S3ComputeLogManager"
        kept = sorted(path for path in local_dir.rglob("*") if path.is_file())
        assert any(MARKER_AFTER in path.read_text(errors="replace") for path in kept), kept
        # What is left behind is exactly what never reached S3: one log key per *.complete file.
        log_keys = [
            list(path.relative_to(local_dir).with_suffix("").parts) for path in local_dir.rglob("*.complete")
        ]
        assert log_keys, "nothing was left in local_dir to upload"
        assert all(key[0] == result.run_id for key in log_keys), log_keys

        localstack.start()  # same port; a fresh LocalStack keeps no buckets, so make it again
        s3 = _s3(localstack.endpoint)
        s3.create_bucket(Bucket=BUCKET)
        from dagster._core.storage.compute_log_manager import ComputeIOType

        for log_key in log_keys:
            manager.upload_to_cloud_storage(log_key, ComputeIOType.STDOUT)
            manager.upload_to_cloud_storage(log_key, ComputeIOType.STDERR)
        manager.dispose()

    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    bodies = {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode() for key in keys}
    stdout = next(body for key, body in bodies.items() if result.run_id in key and key.endswith(".out"))
    stderr = next(body for key, body in bodies.items() if result.run_id in key and key.endswith(".err"))
    assert MARKER_BEFORE in stdout
    assert MARKER_AFTER in stdout
    assert MARKER_AFTER in stderr
