"""Eight run pods append to one catalog table at the same time: no row is lost and none is duplicated.

Real: PostgreSQL 15 (Debian's server) as DuckLake's metadata database, open-source LocalStack S3 for the
data files, DuckDB 1.5.5 with the bundled ducklake/postgres/httpfs extensions, and eight separate writer
processes (``testkit/catalog_writer.py``) started together, each with only the PodTemplate's env.

What DuckLake guarantees, and this test pins down: every INSERT is a snapshot committed in one PostgreSQL
transaction; concurrent appends to the same table do not conflict logically, and a commit that loses the
race for the next snapshot id is retried by DuckLake itself, so each batch lands exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import pytest

from floe_platform.dagster.catalog import (
    attach_catalog,
    catalog_from_env,
    install_bundled_extensions,
    offline_config,
)
from testkit.lakehouse import create_bucket, lakehouse_platform_yaml, run_pod_env
from testkit.postgres import PASSWORD, Postgres

pytestmark = pytest.mark.slow  # eight processes load DuckDB's extensions and commit through PostgreSQL

WRITERS = 8
BATCHES = 5
ROWS = 1000
WRITER_SCRIPT = Path(__file__).resolve().parents[2] / "testkit" / "catalog_writer.py"


def test_eight_concurrent_writers_lose_no_rows_and_duplicate_none(
    postgres_server: Postgres, localstack_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", PASSWORD)  # this process creates and checks the table, as a run pod
    database = f"catalog_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(database)
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    create_bucket(localstack_endpoint, bucket)
    platform_yaml = lakehouse_platform_yaml(postgres_server, localstack_endpoint, database, bucket)
    envs = [run_pod_env(platform_yaml, "transform", tmp_path / f"writer-{n}") for n in range(WRITERS)]

    catalog = catalog_from_env(envs[0])
    assert catalog is not None
    directory = install_bundled_extensions()
    with duckdb.connect(":memory:", config=offline_config(directory)) as conn:
        attach_catalog(conn, catalog)
        conn.execute("CREATE TABLE appended (writer INTEGER, batch INTEGER, row_number BIGINT)")

    writers = [
        subprocess.Popen(
            [sys.executable, str(WRITER_SCRIPT), str(n), str(BATCHES), str(ROWS), "appended"],
            env=env,
            cwd=env["HOME"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, env in enumerate(envs)
    ]
    reports = []
    for writer in writers:
        stdout, stderr = writer.communicate(timeout=600)
        assert writer.returncode == 0, stderr[-3000:]
        reports.append(json.loads(stdout.strip().splitlines()[-1]))
    assert sorted(report["committed"] for report in reports) == [BATCHES] * WRITERS

    with duckdb.connect(":memory:", config=offline_config(directory)) as conn:
        attach_catalog(conn, catalog)
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT (writer, batch, row_number)) FROM appended"
        ).fetchone()  # type: ignore[misc]
        per_writer = conn.execute(
            "SELECT writer, count(*) FROM appended GROUP BY writer ORDER BY writer"
        ).fetchall()
        snapshots = conn.execute(f"SELECT count(*) FROM {catalog.name}.snapshots()").fetchone()[0]  # type: ignore[index]
    assert (total, distinct) == (WRITERS * BATCHES * ROWS, WRITERS * BATCHES * ROWS)
    assert per_writer == [(n, BATCHES * ROWS) for n in range(WRITERS)]
    assert snapshots >= WRITERS * BATCHES  # one snapshot per committed INSERT (plus schema changes)
