"""Create the compute-log bucket if it is missing and expire its objects after RETENTION_DAYS.

Run two ways, idempotent both: by the built-in LocalStack itself on every start (a `ready.d` init hook, so
a restarted LocalStack, whose state is lost, gets its buckets back), and for your own S3 by the opt-in
post-install/post-upgrade hook Job (computeLogBucketJob). Settings come from env: S3_ENDPOINT, AWS_REGION,
BUCKET, PREFIX, RETENTION_DAYS and the AWS credentials. An empty or absent BUCKET (compute logs not on this
S3) skips the compute-log bucket and its rule; PREFIX and RETENTION_DAYS are then not read.
EXTRA_BUCKETS (comma-separated, e.g. the shared catalog's) are created too, with no lifecycle rule.
"""

import os
import time
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

WAIT_SECONDS = int(os.environ.get("WAIT_SECONDS", "300"))


def wait_for_s3(s3: Any) -> None:
    """The hook can start before the S3 server answers; retry until it does or time runs out."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            s3.list_buckets()
            return
        except (BotoCoreError, ClientError) as error:
            if time.monotonic() > deadline:
                # Not sys.exit: LocalStack runs this file inside its own process.
                raise RuntimeError(
                    f"S3 at {os.environ.get('S3_ENDPOINT')} did not answer within {WAIT_SECONDS}s: {error}"
                ) from None
            time.sleep(3)


def ensure_bucket(s3: Any, bucket: str, region: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
        print(f"bucket {bucket} exists")
        return
    except ClientError:
        pass
    arguments: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**arguments)
        print(f"bucket {bucket} created")
    except s3.exceptions.BucketAlreadyOwnedByYou:
        print(f"bucket {bucket} exists")


def expire_after(s3: Any, bucket: str, prefix: str, days: int) -> None:
    rule = {
        "ID": "floe-compute-log-retention",
        "Status": "Enabled",
        "Filter": {"Prefix": prefix},
        "Expiration": {"Days": days},
    }
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [rule]})
    print(f"objects under s3://{bucket}/{prefix} expire after {days} days")


def main() -> None:
    region = os.environ["AWS_REGION"]
    bucket = os.environ.get("BUCKET", "").strip()
    extras = [name.strip() for name in os.environ.get("EXTRA_BUCKETS", "").split(",") if name.strip()]
    if not bucket and not extras:
        print("no bucket to create")
        return
    s3 = boto3.client("s3", endpoint_url=os.environ.get("S3_ENDPOINT") or None, region_name=region)
    wait_for_s3(s3)
    if bucket:
        ensure_bucket(s3, bucket, region)
        expire_after(s3, bucket, os.environ["PREFIX"], int(os.environ["RETENTION_DAYS"]))
    for extra in extras:
        ensure_bucket(s3, extra, region)


# A script for the hook Job; LocalStack's ready.d runner instead execs the file with empty globals, where
# __name__ is the builtins module's.
if __name__ in ("__main__", "builtins"):
    main()
