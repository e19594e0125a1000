"""`helm test`: the webserver answers /server_info and, with S3 compute logs, the bucket exists.

Settings come from env: WEBSERVER_URL, and BUCKET, S3_ENDPOINT, AWS_REGION plus credentials when the
compute logs go to S3.
"""

import json
import os
import sys
import urllib.request


def check_webserver(url: str) -> None:
    with urllib.request.urlopen(f"{url}/server_info", timeout=30) as response:
        info = json.load(response)
    print(f"webserver at {url}: dagster {info.get('dagster_version', '?')}")


def check_bucket(bucket: str) -> None:
    import boto3

    s3 = boto3.client(
        "s3", endpoint_url=os.environ.get("S3_ENDPOINT") or None, region_name=os.environ["AWS_REGION"]
    )
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception as error:
        raise RuntimeError(
            f"compute-log bucket {bucket} not found at {os.environ.get('S3_ENDPOINT')}"
        ) from error
    print(f"compute-log bucket {bucket} exists")


def main() -> None:
    try:
        check_webserver(os.environ["WEBSERVER_URL"])
        if os.environ.get("BUCKET"):
            check_bucket(os.environ["BUCKET"])
    except Exception as error:  # any failure fails the test, with its reason
        sys.exit(f"helm test failed: {type(error).__name__}: {error}")


if __name__ == "__main__":
    main()
