"""The shared lakehouse catalog as the tests and benchmarks run it: a real PostgreSQL for DuckLake's metadata,
real LocalStack S3 for its data files, and run pods stood in for by processes.

A stand-in run pod gets exactly the env of the PodTemplate our renderer writes, with each ``secretKeyRef``
resolved from a dict of Secrets as the kubelet would resolve it from the API, plus PATH and a HOME of its
own; no other variable of the test process reaches it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]

from floe_platform.config import load_platform_text
from floe_platform.render import render_pod_templates
from testkit.postgres import PASSWORD, SUPERUSER, Postgres

S3_SECRET = "lake-s3"
DATABASE_SECRET = "lake-db"
S3_KEY_ID = "test-access-key"
S3_SECRET_KEY = "test-secret-key"


def lakehouse_platform_yaml(postgres: Postgres, s3_endpoint: str, database: str, bucket: str) -> str:
    """A platform.yaml whose catalog is ``database`` on ``postgres`` and whose data go to ``bucket``."""
    return f"""
platform: {{name: lakehouse}}
storage:
  local-s3:
    endpoint: {s3_endpoint}
    region: us-east-1
    path_style_access: true
    credentials: {{secret_name: {S3_SECRET}}}
catalog:
  name: lake
  storage_ref: local-s3
  bucket: {bucket}
  database:
    host: {postgres.host}
    port: {postgres.port}
    database: {database}
    username: {SUPERUSER}
    password: {{secret_name: {DATABASE_SECRET}, key: password}}
infrastructure:
  resource_profiles:
    transform:
      requests: {{cpu: "1", memory: 1Gi}}
      limits: {{cpu: "2", memory: 2Gi}}
"""


def secrets() -> dict[str, dict[str, str]]:
    """The Secrets the PodTemplate refers to, as the platform team would have created them."""
    return {
        S3_SECRET: {"AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY},
        DATABASE_SECRET: {"password": PASSWORD},
    }


def resolve_env(env: list[Mapping[str, Any]], secret_data: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """A container's env list as the process sees it: values, and secretKeyRefs looked up."""
    resolved: dict[str, str] = {}
    for entry in env:
        if "value" in entry:
            resolved[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            resolved[entry["name"]] = secret_data[ref["name"]][ref["key"]]
    return resolved


def run_pod_env(platform_yaml: str, profile: str, home: Path) -> dict[str, str]:
    """The env of a run pod of ``profile``, rendered by our renderer, for a stand-in process in ``home``."""
    config = load_platform_text(platform_yaml)
    template = next(
        t for t in render_pod_templates(config) if t["metadata"]["labels"]["floe.dev/profile"] == profile
    )
    container = template["template"]["spec"]["containers"][0]
    env = resolve_env(container["env"], secrets())
    home.mkdir(parents=True, exist_ok=True)
    temp = Path(env.get("DUCKDB_TEMP_DIRECTORY", str(home / "duckdb")))
    env["DUCKDB_TEMP_DIRECTORY"] = str(home / temp.name)  # the pod's emptyDir, here under its own home
    return {
        **env,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "TMPDIR": str(home),
        "DBT_TARGET_PATH": str(home / "dbt-target"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DAGSTER_HOME": str(home / "dagster_home"),
    }


RUN_POD_SCRIPT = Path(__file__).resolve().parent / "run_pod.py"  # run by path: cwd is the pod's
RUN_POD_TIMEOUT = 600


def run_pod(platform_yaml: str, step: str, home: Path, profile: str = "transform") -> dict[str, Any]:
    """One stand-in run pod: ``testkit/run_pod.py step`` in ``home`` with the PodTemplate's env only.

    Returns the step's JSON result plus its ``returncode`` and ``stderr``.
    """
    env = run_pod_env(platform_yaml, profile, home)
    done = subprocess.run(
        [sys.executable, str(RUN_POD_SCRIPT), step],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=RUN_POD_TIMEOUT,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise AssertionError(f"{step} printed nothing; stderr:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["returncode"] = done.returncode
    result["stderr"] = done.stderr
    return result


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET_KEY,
    )


def create_bucket(endpoint: str, bucket: str) -> None:
    s3_client(endpoint).create_bucket(Bucket=bucket)


def keys_under(endpoint: str, bucket: str, prefix: str) -> list[str]:
    listed = s3_client(endpoint).list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [str(item["Key"]) for item in listed.get("Contents", [])]
