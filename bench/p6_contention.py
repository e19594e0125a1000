"""P6: 8 writer processes appending to one DuckDB file through FloeDuckDBResource, at a size for bench.

The fault test does the same with 4000 rows; here every writer appends 100 batches, each on a new
connection (as an asset materialization opens one). Baseline: one writer appending all the batches alone,
the same rows with no lock to wait for. Checked: every row arrives, once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from bench.core import Check, Figure, Outcome

WRITERS = 8
BATCHES = 100
ROWS = 1000
ROOT = Path(__file__).resolve().parent.parent


def append_concurrently(
    database: Path,
    writers: int,
    batches: int,
    rows: int,
    *,
    settle_seconds: float = 0.0,
    timeout: float = 900,
) -> tuple[float, int]:
    """Start ``writers`` processes that each append ``batches`` of ``rows`` to ``database`` through
    FloeDuckDBResource, all at once; return the seconds they took and their lock retries in total.

    ``settle_seconds`` lets every writer import dagster before the clock starts.
    """
    with duckdb.connect(str(database)) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS appended (writer INTEGER, batch INTEGER, i BIGINT)")
    start = database.with_suffix(".start")
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "testkit.duckdb_writer", *map(str, (database, n, batches, rows, start))],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(writers)
    ]
    time.sleep(settle_seconds)
    started = time.perf_counter()
    start.touch()
    retries = 0
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        if process.returncode != 0:
            raise RuntimeError(f"a writer failed: {err.strip()[-2000:]}")
        retries += int(json.loads(out.strip().splitlines()[-1])["retries"])
    return time.perf_counter() - started, retries


def _append(workdir: Path, writers: int, batches: int) -> tuple[float, int, int]:
    """Seconds for ``writers`` processes to append ``batches`` each; total lock retries; rows counted."""
    database = workdir / f"contention-{writers}.duckdb"
    seconds, retries = append_concurrently(database, writers, batches, ROWS, settle_seconds=3)
    with duckdb.connect(str(database), read_only=True) as connection:
        distinct = connection.execute("SELECT count(DISTINCT (writer, batch, i)) FROM appended").fetchone()
    return seconds, retries, int(distinct[0]) if distinct else 0


def run() -> Outcome:
    expected = WRITERS * BATCHES * ROWS
    with tempfile.TemporaryDirectory(prefix="floe-bench-p6-") as workdir:
        alone, _, alone_rows = _append(Path(workdir), 1, WRITERS * BATCHES)
        together, retries, rows = _append(Path(workdir), WRITERS, BATCHES)
    return Outcome(
        measured=[
            Figure(f"{WRITERS} writers", together, "s"),
            Figure("lock retries", retries, ""),
            Figure("rows", rows, ""),
        ],
        baseline=[Figure("1 writer, same batches", alone, "s")],
        checks=[
            Check(f"all {expected:,} rows, once", f"{rows:,}", rows == expected),
            Check("baseline complete too", f"{alone_rows:,}", alone_rows == expected),
        ],
        notes=[
            f"{WRITERS} processes x {BATCHES} batches x {ROWS} rows, a new connection per batch; "
            f"{together / alone:.1f}x the single writer's time; {retries} lock retries with jittered "
            "exponential backoff (max 20 per connection).",
        ],
    )
