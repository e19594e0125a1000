"""Eight run pods append to one catalog table at the same time: no row is lost and none is duplicated;
two runs replacing one table at once: one replacement lands whole, the other is refused whole.

Real: PostgreSQL 15 (Debian's server) as DuckLake's metadata database, open-source LocalStack S3 for the
data files, DuckDB 1.5.5 with the bundled ducklake/postgres/httpfs extensions, and eight separate writer
processes (``testkit/catalog_writer.py``) started together, each with only the PodTemplate's env.

What DuckLake guarantees, and this test pins down: every INSERT is a snapshot committed in one PostgreSQL
transaction; concurrent appends to the same table do not conflict logically, and a commit that loses the
race for the next snapshot id is retried by DuckLake itself, so each batch lands exactly once.

That the writers really ran at the same time is checked, not assumed: each waits after its ATTACH until
all are attached (a barrier of files), reports the wall-clock interval of every INSERT, and the test
asserts that the eight insert phases share a common instant and that INSERTs of different writers were in
flight together. The data files are checked on S3: every Parquet file the catalog lists for the table is
an object under the catalog's data prefix in the bucket.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest

from floe_platform.dagster.catalog import (
    attach_catalog,
    catalog_from_env,
    install_bundled_extensions,
    offline_config,
)
from testkit.lakehouse import create_bucket, keys_under, lakehouse_platform_yaml, run_pod_env
from testkit.postgres import PASSWORD, Postgres
from testkit.waiting import wait_until

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

    barrier = tmp_path / "barrier"
    barrier.mkdir()
    writers = _start_writers(envs, str(BATCHES), str(ROWS), "appended", str(barrier))
    _release_when_all_reached(writers, barrier, "ready", "go")
    reports = _reports(writers)
    assert sorted(report["committed"] for report in reports) == [BATCHES] * WRITERS
    inserts = {report["writer"]: [tuple(span) for span in report["inserts"]] for report in reports}
    phases = [(spans[0][0], spans[-1][1]) for spans in inserts.values()]
    assert max(start for start, _ in phases) < min(end for _, end in phases)  # all eight inserting at once
    assert _most_writers_in_flight(inserts) >= 2

    with duckdb.connect(":memory:", config=offline_config(directory)) as conn:
        attach_catalog(conn, catalog)
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT (writer, batch, row_number)) FROM appended"
        ).fetchone()  # type: ignore[misc]
        per_writer = conn.execute(
            "SELECT writer, count(*) FROM appended GROUP BY writer ORDER BY writer"
        ).fetchall()
        snapshots = conn.execute(f"SELECT count(*) FROM {catalog.name}.snapshots()").fetchone()[0]  # type: ignore[index]
        listed = [
            row[0]
            for row in conn.execute(f"FROM ducklake_list_files('{catalog.name}', 'appended')").fetchall()
        ]
    assert (total, distinct) == (WRITERS * BATCHES * ROWS, WRITERS * BATCHES * ROWS)
    assert per_writer == [(n, BATCHES * ROWS) for n in range(WRITERS)]
    assert snapshots >= WRITERS * BATCHES  # one snapshot per committed INSERT (plus schema changes)
    # Every INSERT of 1000 rows wrote one Parquet file (DuckLake inlines only tiny inserts), and the files
    # the catalog lists are exactly the objects under the catalog's data prefix in the bucket.
    assert len(listed) == WRITERS * BATCHES
    on_s3 = {f"s3://{bucket}/{key}" for key in keys_under(localstack_endpoint, bucket, "lake/")}
    assert set(listed) == on_s3
    assert all(path.startswith(f"s3://{bucket}/lake/") and path.endswith(".parquet") for path in listed)


def _any_exited(writers: list[subprocess.Popen[str]]) -> bool:
    return any(writer.poll() is not None for writer in writers)


def _most_writers_in_flight(inserts: dict[int, list[tuple[float, float]]]) -> int:
    """The largest number of different writers with an INSERT in flight at one instant."""
    most = 0
    for spans in inserts.values():
        for instant, _ in spans:
            busy = {writer for writer, theirs in inserts.items() if any(s <= instant < e for s, e in theirs)}
            most = max(most, len(busy))
    return most


def _start_writers(envs: list[dict[str, str]], *args: str) -> list[subprocess.Popen[str]]:
    """One writer process per env; ``args`` follow the writer's number (see testkit/catalog_writer.py)."""
    return [
        subprocess.Popen(
            [sys.executable, str(WRITER_SCRIPT), str(n), *args],
            env=env,
            cwd=env["HOME"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, env in enumerate(envs)
    ]


def _release_when_all_reached(
    writers: list[subprocess.Popen[str]], barrier: Path, stage: str, go: str
) -> None:
    reached = [barrier / f"{stage}-{n}" for n in range(len(writers))]
    arrived = wait_until(lambda: all(path.exists() for path in reached) or _any_exited(writers), 300, 0.05)
    assert arrived, f"the writers did not all reach {stage!r} within 300 s"
    assert not _any_exited(writers), f"a writer ended before {stage!r}"
    (barrier / go).touch()


def _reports(writers: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    reports = []
    for writer in writers:
        stdout, stderr = writer.communicate(timeout=600)
        assert writer.returncode == 0, stderr[-3000:]
        reports.append(json.loads(stdout.strip().splitlines()[-1]))
    return reports


def test_two_runs_replacing_one_table_at_once_leave_one_whole_replacement(
    postgres_server: Postgres, localstack_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers each DELETE every row and INSERT their own in one transaction, both open at once (a
    barrier before COMMIT). DuckLake refuses one COMMIT as a conflict; the table holds exactly the other's
    rows, nothing of the refused one and nothing of the old ones, and one snapshot was added."""
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    database = f"catalog_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(database)
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    create_bucket(localstack_endpoint, bucket)
    platform_yaml = lakehouse_platform_yaml(postgres_server, localstack_endpoint, database, bucket)
    envs = [run_pod_env(platform_yaml, "transform", tmp_path / f"replacer-{n}") for n in range(2)]
    catalog = catalog_from_env(envs[0])
    assert catalog is not None
    directory = install_bundled_extensions()
    with duckdb.connect(":memory:", config=offline_config(directory)) as conn:
        attach_catalog(conn, catalog)
        conn.execute(
            "CREATE TABLE replaced AS SELECT -1 AS writer, 0 AS batch, range AS row_number "
            f"FROM range({ROWS})"
        )
        before = conn.execute(f"SELECT max(snapshot_id) FROM {catalog.name}.snapshots()").fetchone()[0]  # type: ignore[index]

    barrier = tmp_path / "barrier"
    barrier.mkdir()
    replacers = _start_writers(envs, "1", str(ROWS), "replaced", str(barrier), "replace")
    _release_when_all_reached(replacers, barrier, "staged", "commit")
    outcomes = {report["writer"]: report["outcome"] for report in _reports(replacers)}

    committed = [writer for writer, outcome in outcomes.items() if outcome == "committed"]
    refused = [outcome for outcome in outcomes.values() if outcome.startswith("refused: ")]
    assert len(committed) == 1, outcomes
    assert len(refused) == 1, outcomes
    assert "Transaction conflict" in refused[0]
    with duckdb.connect(":memory:", config=offline_config(directory)) as conn:
        attach_catalog(conn, catalog)
        rows = conn.execute("SELECT writer, count(*) FROM replaced GROUP BY writer").fetchall()
        after = conn.execute(f"SELECT max(snapshot_id) FROM {catalog.name}.snapshots()").fetchone()[0]  # type: ignore[index]
    assert rows == [(committed[0], ROWS)]
    assert after == before + 1
