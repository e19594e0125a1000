"""The chart's scripts (files/*.py), run as the hook Job and `helm test` run them, against real LocalStack
and a real dagster-webserver.

LocalStack (open source, S3 only) runs on the host under Python 3.13, one per session, stopped by pid
(testkit/localstack.py). The scripts run under the project venv's Python, whose boto3 is the one
the user-code image ships. The smoke test's run goes through a real dagster-webserver (its GraphQL API) on
the host, serving a code location with floe_platform.dagster.smoke's job, with a sqlite instance whose runs
are subprocesses: it shows the launch, the run config, the profile tag and the status polling, not a run
pod or run monitoring (no daemon here; the run pod on the real API server:
tests/dagster/test_launcher_on_apiserver.py). The tests of the bucket check alone use a stand-in
answering `/server_info` only.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from chart_render import CHART

from testkit.ports import free_port
from testkit.waiting import wait_until

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


@pytest.mark.parametrize("bucket_env", [{"BUCKET": ""}, {}], ids=["empty", "absent"])
def test_bucket_hook_without_a_compute_log_bucket_creates_only_the_extra_buckets(
    localstack: str, bucket_env: dict[str, str]
) -> None:
    """Compute logs elsewhere, the catalog on this S3: BUCKET is empty or unset, and PREFIX and
    RETENTION_DAYS are unset, as LocalStack's env then is."""
    name = f"lake-{len(bucket_env)}"
    env = {"S3_ENDPOINT": localstack, "AWS_REGION": "us-east-1", "EXTRA_BUCKETS": f"{name}, ", **bucket_env}
    result = _run_script("create-bucket.py", env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"bucket {name} created"]
    s3 = _s3(localstack)
    s3.head_bucket(Bucket=name)
    with pytest.raises(s3.exceptions.ClientError, match="NoSuchLifecycleConfiguration"):
        s3.get_bucket_lifecycle_configuration(Bucket=name)


def test_bucket_hook_with_no_bucket_at_all_does_nothing() -> None:
    """No S3 is reachable here: the hook must not even wait for one when it has nothing to create."""
    env = {"S3_ENDPOINT": f"http://127.0.0.1:{free_port()}", "AWS_REGION": "us-east-1", "BUCKET": ""}
    result = _run_script("create-bucket.py", {**env, "WAIT_SECONDS": "30"})
    assert (result.returncode, result.stdout.strip()) == (0, "no bucket to create"), result.stderr


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


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def dagster_webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real dagster-webserver serving the smoke-test job, stopped by its pid."""
    home = tmp_path_factory.mktemp("dagster-home")
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n"
    )
    # A code location as a user writes one: their Definitions, with the smoke-test job added.
    location = home / "smoke_location.py"
    location.write_text(
        "import dagster as dg\n\nfrom floe_platform.dagster.smoke import smoke_test_job\n\n"
        "defs = dg.Definitions(jobs=[smoke_test_job])\n"
    )
    workspace = home / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - python_file:\n      relative_path: {location}\n      location_name: floe-demo\n"
    )
    port = free_port()
    webserver = str(Path(sys.executable).parent / "dagster-webserver")
    command = [webserver, "-h", "127.0.0.1", "-p", str(port), "-w", str(workspace)]
    log = (home / "webserver.log").open("wb")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home)
    url = f"http://127.0.0.1:{port}"
    try:
        ready = wait_until(lambda: _answers(f"{url}/server_info") or process.poll() is not None, 120, 0.5)
        log_tail = (home / "webserver.log").read_text()[-3000:]
        assert ready, log_tail
        assert process.poll() is None, log_tail
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _smoke_run_env(url: str, seconds: str) -> dict[str, str]:
    return {
        "WEBSERVER_URL": url,
        "LOCATION": "floe-demo",
        "JOB": "floe_smoke_test",
        "PROFILE": "default",
        "RUN_SECONDS": seconds,
        "TIMEOUT_SECONDS": "120",
    }


def test_helm_test_launches_a_run_through_graphql_and_requires_success(dagster_webserver: str) -> None:
    """The run stays in progress for RUN_SECONDS (the chart sets one run-monitoring poll plus 15 s)."""
    result = _run_script("smoke-test.py", _smoke_run_env(dagster_webserver, "3"))
    assert result.returncode == 0, result.stderr
    assert "on profile default, running 3 s" in result.stdout
    assert re.search(r"run [0-9a-f-]{36} succeeded", result.stdout), result.stdout


def test_helm_test_fails_when_the_run_fails(dagster_webserver: str) -> None:
    """A run that ends in FAILURE (here: an op given a negative sleep) fails `helm test`, naming the run."""
    result = _run_script("smoke-test.py", _smoke_run_env(dagster_webserver, "-1"))
    assert result.returncode != 0
    assert re.search(r"helm test failed: RuntimeError: run [0-9a-f-]{36} ended FAILURE", result.stderr), (
        result.stderr
    )


def test_helm_test_fails_naming_a_job_the_location_lacks(dagster_webserver: str) -> None:
    env = {**_smoke_run_env(dagster_webserver, "0"), "JOB": "no_such_job"}
    result = _run_script("smoke-test.py", env)
    assert result.returncode != 0
    assert "launching no_such_job in floe-demo failed" in result.stderr, result.stderr
