"""8 processes append to one DuckDB file through ``FloeDuckDBResource``; every row arrives.

Runs against real DuckDB: a file takes one writing process at a time, so the others meet "Could not set
lock on file" and the resource retries them with jittered backoff. The test counts every row and reports
the retries (printed, and in the assertion message if anything is off).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from bench.p6_contention import append_concurrently

pytestmark = pytest.mark.slow  # eight writer processes

WRITERS = 8
BATCHES = 10
ROWS = 50


def test_eight_writer_processes_lose_no_row_and_retry_the_lock(tmp_path: Path) -> None:
    database = tmp_path / "shared.duckdb"
    _, retries = append_concurrently(database, WRITERS, BATCHES, ROWS, timeout=120)
    print(f"DuckDB lock retries across {WRITERS} writers: {retries}")
    with duckdb.connect(str(database), read_only=True) as connection:
        total, distinct = connection.execute(
            "SELECT count(*), count(DISTINCT (writer, batch, i)) FROM appended"
        ).fetchone()  # type: ignore[misc]
        per_writer = dict(
            connection.execute("SELECT writer, count(*) FROM appended GROUP BY writer").fetchall()
        )
    assert total == distinct == WRITERS * BATCHES * ROWS, (total, distinct, retries)
    assert per_writer == dict.fromkeys(range(WRITERS), BATCHES * ROWS)
    assert retries > 0, "no writer ever waited for the lock: the test did not produce contention"
