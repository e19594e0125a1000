"""The chart's scripts (files/*.py), run as the hook Job and `helm test` run them, against real LocalStack.

LocalStack (open source, S3 only) runs on the host under Python 3.13, one per session, stopped by pid
(testkit/localstack.py). The scripts run under the project venv's Python, whose boto3 is the one
the user-code image ships. The webserver the smoke test calls is a stand-in: a local HTTP server
answering `/server_info` as dagster-webserver does; it cannot show that the real webserver is up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import boto3
import pytest
from chart_render import CHART

from testkit.ports import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "chart-test", "AWS_SECRET_ACCESS_KEY": "chart-test-secret"}

pytestmark = pytest.mark.slow


@pytest.fixture
def localstack(localstack_endpoint: str) -> str:
    """The session's real LocalStack (tests/conftest.py); each test uses buckets of its own."""
    return localstack_endpoint


def _s3(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def _run_script(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = CHART / "files" / name
    full_env = {**os.environ, **CREDENTIALS, "PYTHONDONTWRITEBYTECODE": "1", **env}
    return subprocess.run(
        [sys.executable, str(script)], env=full_env, capture_output=True, text=True, timeout=120, check=False
    )


def _bucket_env(endpoint: str, bucket: str, days: int) -> dict[str, str]:
    return {
        "S3_ENDPOINT": endpoint,
        "AWS_REGION": "us-east-1",
        "BUCKET": bucket,
        "PREFIX": "compute-logs/",
        "RETENTION_DAYS": str(days),
    }


def test_bucket_hook_creates_the_bucket_with_its_retention_rule(localstack: str) -> None:
    result = _run_script("create-bucket.py", _bucket_env(localstack, "dagster-compute-logs", 30))
    assert result.returncode == 0, result.stderr
    rules = _s3(localstack).get_bucket_lifecycle_configuration(Bucket="dagster-compute-logs")["Rules"]
    assert [(r["Filter"]["Prefix"], r["Expiration"]["Days"], r["Status"]) for r in rules] == [
        ("compute-logs/", 30, "Enabled")
    ]


def test_bucket_hook_is_idempotent_and_applies_a_new_retention(localstack: str) -> None:
    """post-upgrade runs it again: the bucket and its objects stay, the rule follows retention_days."""
    env = _bucket_env(localstack, "logs-upgrade", 30)
    assert _run_script("create-bucket.py", env).returncode == 0
    _s3(localstack).put_object(Bucket="logs-upgrade", Key="compute-logs/run-1/out.txt", Body=b"kept")
    again = _run_script("create-bucket.py", {**env, "RETENTION_DAYS": "7"})
    assert again.returncode == 0, again.stderr
    assert "exists" in again.stdout
    s3 = _s3(localstack)
    assert s3.get_object(Bucket="logs-upgrade", Key="compute-logs/run-1/out.txt")["Body"].read() == b"kept"
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket="logs-upgrade")["Rules"]
    assert rule["Expiration"]["Days"] == 7


def test_bucket_hook_gives_up_with_a_reason_when_s3_never_answers() -> None:
    env = {**_bucket_env(f"http://127.0.0.1:{free_port()}", "nowhere", 30), "WAIT_SECONDS": "1"}
    result = _run_script("create-bucket.py", env)
    assert result.returncode != 0
    assert "did not answer within 1s" in result.stderr


class _ServerInfo(BaseHTTPRequestHandler):
    """Answers /server_info the way dagster-webserver does (a JSON object with dagster_version)."""

    def do_GET(self) -> None:
        if self.path != "/server_info":
            self.send_error(404)
            return
        body = json.dumps({"dagster_version": "1.13.27"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows the scripts' output instead."""


@pytest.fixture
def webserver_stand_in() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _ServerInfo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_helm_test_passes_when_webserver_answers_and_bucket_exists(
    localstack: str, webserver_stand_in: str
) -> None:
    assert _run_script("create-bucket.py", _bucket_env(localstack, "smoke-logs", 30)).returncode == 0
    env = {
        "WEBSERVER_URL": webserver_stand_in,
        "BUCKET": "smoke-logs",
        "S3_ENDPOINT": localstack,
        "AWS_REGION": "us-east-1",
    }
    result = _run_script("smoke-test.py", env)
    assert result.returncode == 0, result.stderr
    assert "compute-log bucket smoke-logs exists" in result.stdout


def test_helm_test_fails_naming_a_missing_bucket(localstack: str, webserver_stand_in: str) -> None:
    env = {
        "WEBSERVER_URL": webserver_stand_in,
        "BUCKET": "never-created",
        "S3_ENDPOINT": localstack,
        "AWS_REGION": "us-east-1",
    }
    result = _run_script("smoke-test.py", env)
    assert result.returncode != 0
    assert "compute-log bucket never-created not found" in result.stderr


def test_helm_test_fails_when_the_webserver_does_not_answer() -> None:
    result = _run_script("smoke-test.py", {"WEBSERVER_URL": f"http://127.0.0.1:{free_port()}"})
    assert result.returncode != 0
    assert "helm test failed: URLError" in result.stderr
