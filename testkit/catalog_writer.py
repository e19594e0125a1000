"""``python testkit/catalog_writer.py WRITER BATCHES ROWS TABLE``: one writer appending to a catalog table.

A stand-in for one run pod appending to a shared table: it attaches the catalog the env names (as every
run pod does) and commits ``BATCHES`` INSERTs of ``ROWS`` rows each, every row tagged (writer, batch, row).
DuckLake commits through the metadata database; when two commits collide, DuckLake retries the commit
itself (``ducklake_max_retry_count``), so the writer never re-sends a batch. It prints one JSON line: the
batches it committed and the seconds it took. Imports DuckDB and floe's catalog module only (no Dagster),
so that eight of them start quickly.
"""

from __future__ import annotations

import json
import sys
import time

import duckdb

from floe_platform.dagster.catalog import (
    attach_catalog,
    catalog_from_env,
    extension_directory,
    install_bundled_extensions,
    offline_config,
)


def main() -> int:
    writer, batches, rows = (int(arg) for arg in sys.argv[1:4])
    table = sys.argv[4]
    catalog = catalog_from_env()
    if catalog is None:
        raise SystemExit("catalog_writer: FLOE_CATALOG_METADATA is not set")
    directory = install_bundled_extensions(extension_directory())
    started = time.perf_counter()
    committed = 0
    with duckdb.connect(":memory:", config=offline_config(directory)) as conn:
        attach_catalog(conn, catalog)
        for batch in range(batches):
            conn.execute(
                f"INSERT INTO {table} SELECT ?, ?, range FROM range(?)",
                [writer, batch, rows],
            )
            committed += 1
    print(json.dumps({"writer": writer, "committed": committed, "seconds": time.perf_counter() - started}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
