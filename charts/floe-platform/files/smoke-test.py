"""`helm test`: launch a tiny run through the webserver's GraphQL API and require SUCCESS.

The run (job JOB of code location LOCATION, tagged with the resource profile PROFILE) stays in progress
for RUN_SECONDS, which the chart sets past one run-monitoring poll: a daemon that cannot watch run pods
fails the run there, and so fails this test. With S3 compute logs, the bucket must exist too.

Settings come from env: WEBSERVER_URL, LOCATION, JOB, PROFILE, RUN_SECONDS, TIMEOUT_SECONDS, and BUCKET,
S3_ENDPOINT, AWS_REGION plus credentials when the compute logs go to S3.
"""

import json
import os
import sys
import time
import urllib.request
from typing import Any

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
  }
}
"""
STATUS = """
query Status($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } ... on Error { message } }
}
"""
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def graphql(url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer: dict[str, Any] = json.load(response)
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL errors: {answer['errors']}")
    data: dict[str, Any] = answer["data"]
    return data


def check_webserver(url: str) -> None:
    with urllib.request.urlopen(f"{url}/server_info", timeout=30) as response:
        info = json.load(response)
    print(f"webserver at {url}: dagster {info.get('dagster_version', '?')}")


def launch(url: str, location: str, job: str, profile: str, seconds: float) -> str:
    params = {
        "selector": {"repositoryLocationName": location, "repositoryName": "__repository__", "jobName": job},
        "runConfigData": {"ops": {"stay_running": {"config": {"seconds": seconds}}}},
        "executionMetadata": {"tags": [{"key": "floe/resource-profile", "value": profile}]},
    }
    result = graphql(url, LAUNCH, {"params": params})["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(
            f"launching {job} in {location} failed: {result['__typename']}: {result.get('message')}"
        )
    run_id: str = result["run"]["runId"]
    print(f"launched run {run_id} of {job} in {location} on profile {profile}, running {seconds:g} s")
    return run_id


def wait_for_end(url: str, run_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    status = "?"
    while time.monotonic() < deadline:
        answer = graphql(url, STATUS, {"runId": run_id})["runOrError"]
        if answer["__typename"] != "Run":
            raise RuntimeError(f"run {run_id}: {answer['__typename']}: {answer.get('message')}")
        status = answer["status"]
        if status in FINISHED:
            return status
        time.sleep(3)
    raise RuntimeError(f"run {run_id} still {status} after {timeout:g} s")


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
    url = os.environ["WEBSERVER_URL"]
    try:
        check_webserver(url)
        if os.environ.get("BUCKET"):
            check_bucket(os.environ["BUCKET"])
        if os.environ.get("JOB"):
            seconds = float(os.environ.get("RUN_SECONDS", "0"))
            run_id = launch(url, os.environ["LOCATION"], os.environ["JOB"], os.environ["PROFILE"], seconds)
            status = wait_for_end(url, run_id, float(os.environ.get("TIMEOUT_SECONDS", "600")))
            if status != "SUCCESS":
                raise RuntimeError(f"run {run_id} ended {status}; see it in the Dagster UI")
            print(f"run {run_id} succeeded")
    except Exception as error:  # any failure fails the test, with its reason
        sys.exit(f"helm test failed: {type(error).__name__}: {error}")


if __name__ == "__main__":
    main()
