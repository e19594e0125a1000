"""Dagster's GraphQL API as the e2e suite uses it: the dagster-graphql client plus one query for run logs.

The query text is validated against Dagster's own GraphQL schema by ``test_e2e_config.py``, here, so a
typo fails in `make test` instead of on a kind cluster.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

TERMINAL = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}

RUN_MESSAGES_QUERY = """
query RunMessages($runId: ID!, $afterCursor: String) {
  logsForRun(runId: $runId, afterCursor: $afterCursor) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on MessageEvent { message eventType }
      }
    }
    ... on PythonError { message }
    ... on RunNotFoundError { message }
  }
}
"""


def wait_for_run(client: DagsterGraphQLClient, run_id: str, timeout_s: float) -> DagsterRunStatus:
    """Poll the run until it ends; its final status."""
    deadline = time.monotonic() + timeout_s
    status = client.get_run_status(run_id)
    while status not in TERMINAL:
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {status.value} after {timeout_s:.0f} s")
        time.sleep(3)
        status = client.get_run_status(run_id)
    return status


def _graphql(port: int, query: str, variables: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.load(response)
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body["data"]


def run_messages(port: int, run_id: str) -> list[str]:
    """Every message in the run's event log, oldest first."""
    messages: list[str] = []
    cursor: str | None = None
    while True:
        result = _graphql(port, RUN_MESSAGES_QUERY, {"runId": run_id, "afterCursor": cursor})["logsForRun"]
        if result["__typename"] != "EventConnection":
            raise RuntimeError(f"logsForRun({run_id}): {result['__typename']}: {result.get('message')}")
        messages += [event["message"] for event in result["events"] if event.get("message")]
        if not result["hasMore"]:
            return messages
        cursor = result["cursor"]
