"""``python testkit/catalog_writer.py WRITER BATCHES ROWS TABLE [BARRIER [replace]]``: one writer appending
to (or replacing) a catalog table.

A stand-in for one run pod appending to a shared table: it attaches the catalog the env names (as every
run pod does) and commits ``BATCHES`` INSERTs of ``ROWS`` rows each, every row tagged (writer, batch, row).
DuckLake commits through the metadata database; when two commits collide, DuckLake retries the commit
itself (``ducklake_max_retry_count``), so the writer never re-sends a batch.

With a BARRIER folder, the writer creates ``ready-WRITER`` there once attached and waits for ``go`` before
its first INSERT, so that writers that took different times to start insert at the same time.

It prints one JSON line: the batches it committed, the seconds it took, and the wall-clock start and end
(``time.time()``) of each INSERT, its commit included. Imports DuckDB and floe's catalog module only (no
Dagster), so that eight of them start quickly.

``replace`` instead replaces the table's rows as a run rewriting a table does, in one transaction: DELETE
every row, INSERT ``ROWS`` rows of its own, then create ``staged-WRITER`` and wait for ``commit`` in the
barrier folder before COMMIT, so that two replacers hold their transactions open at the same time. It
prints whether its COMMIT went through or the error that refused it (rolled back).
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import suppress
from pathlib import Path

import duckdb

from floe_platform.dagster.catalog import (
    attach_catalog,
    catalog_from_env,
    extension_directory,
    install_bundled_extensions,
    offline_config,
)

BARRIER_TIMEOUT = 300


def wait_at_barrier(barrier: Path, writer: int, stage: str = "ready", go: str = "go") -> None:
    (barrier / f"{stage}-{writer}").touch()
    deadline = time.monotonic() + BARRIER_TIMEOUT
    while not (barrier / go).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"catalog_writer {writer}: no {go!r} in {barrier} within {BARRIER_TIMEOUT}s")
        time.sleep(0.005)


def replace(conn: duckdb.DuckDBPyConnection, writer: int, rows: int, table: str, barrier: Path) -> str:
    """One run's replacement of ``table``, committed once every replacer has staged its own."""
    conn.execute("BEGIN TRANSACTION")
    conn.execute(f"DELETE FROM {table}")
    conn.execute(f"INSERT INTO {table} SELECT ?, 0, range FROM range(?)", [writer, rows])
    wait_at_barrier(barrier, writer, "staged", "commit")
    try:
        conn.execute("COMMIT")
    except duckdb.Error as error:
        with suppress(duckdb.Error):  # a refused COMMIT has usually ended the transaction already
            conn.execute("ROLLBACK")
        return f"refused: {error}"
    return "committed"


def main() -> int:
    writer, batches, rows = (int(arg) for arg in sys.argv[1:4])
    table = sys.argv[4]
    barrier = Path(sys.argv[5]) if len(sys.argv) > 5 else None
    catalog = catalog_from_env()
    if catalog is None:
        raise SystemExit("catalog_writer: FLOE_CATALOG_METADATA is not set")
    directory = install_bundled_extensions(extension_directory())
    if sys.argv[6:] == ["replace"] and barrier is not None:
        with duckdb.connect(":memory:", config=offline_config(directory)) as conn:
            attach_catalog(conn, catalog)
            print(json.dumps({"writer": writer, "outcome": replace(conn, writer, rows, table, barrier)}))
        return 0
    started = time.perf_counter()
    committed = 0
    inserts: list[tuple[float, float]] = []
    with duckdb.connect(":memory:", config=offline_config(directory)) as conn:
        attach_catalog(conn, catalog)
        if barrier is not None:
            wait_at_barrier(barrier, writer)
        for batch in range(batches):
            begun = time.time()
            conn.execute(
                f"INSERT INTO {table} SELECT ?, ?, range FROM range(?)",
                [writer, batch, rows],
            )
            inserts.append((begun, time.time()))
            committed += 1
    seconds = time.perf_counter() - started
    print(json.dumps({"writer": writer, "committed": committed, "seconds": seconds, "inserts": inserts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
