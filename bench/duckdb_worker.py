"""The DuckDB workload of P4, run as its own process so that its peak RSS is its own.

``generate`` writes the data set into a DuckDB file; ``query`` runs an out-of-core aggregation plus a join
over it and prints one JSON line. ``query`` applies the DUCKDB_* variables the way a run pod's DuckDB
resource does (SET memory_limit / threads / temp_directory) and leaves DuckDB's defaults where they are
unset, so the same script measures both the profile's settings and DuckDB's defaults.

Amounts are integers so that the checksum is exact whatever order the threads add them in.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import duckdb

EVENT_ROW_BYTES = 24  # key, amount, ts: three BIGINT columns
DIM_ROW_BYTES = 16  # key, weight: two BIGINT columns
QUERY = """
WITH per_key AS (
    SELECT key, count(*) AS n, sum(amount) AS total, max(ts) AS last_ts FROM events GROUP BY key
)
SELECT count(*) AS groups, sum(p.n) AS rows, sum(p.total * d.weight) AS checksum, max(p.last_ts) AS last_ts
FROM per_key AS p JOIN dims AS d USING (key)
"""


def generate(database: str, rows: int, keys: int) -> None:
    with duckdb.connect(database) as connection:
        connection.execute(
            "CREATE TABLE events AS SELECT (hash(i) % $keys)::BIGINT AS key, (hash(i + 1) % 1000)::BIGINT "
            "AS amount, i AS ts FROM range($rows) AS r(i)",
            {"keys": keys, "rows": rows},
        )
        connection.execute(
            "CREATE TABLE dims AS SELECT k AS key, (hash(k) % 97)::BIGINT AS weight "
            "FROM range($keys) AS r(k)",
            {"keys": keys},
        )


def settings_from_env() -> dict[str, str]:
    """DuckDB settings named by DUCKDB_* variables, as the project's DuckDB resource reads them."""
    names = {
        "memory_limit": "DUCKDB_MEMORY_LIMIT",
        "threads": "DUCKDB_THREADS",
        "temp_directory": "DUCKDB_TEMP_DIRECTORY",
    }
    return {setting: os.environ[variable] for setting, variable in names.items() if variable in os.environ}


def query(database: str) -> dict[str, Any]:
    started = time.perf_counter()
    with duckdb.connect(database, read_only=True) as connection:
        for setting, value in settings_from_env().items():
            connection.execute(f"SET {setting} = '{value}'")
        applied = {
            name: str(connection.execute(f"SELECT current_setting('{name}')").fetchone()[0])  # type: ignore[index]
            for name in ("memory_limit", "threads", "temp_directory")
        }
        groups, rows, checksum, last_ts = connection.execute(QUERY).fetchone()  # type: ignore[misc]
    return {
        "groups": int(groups),
        "rows": int(rows),
        "checksum": str(checksum),
        "last_ts": int(last_ts),
        "seconds": time.perf_counter() - started,
        "settings": applied,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["generate", "query"])
    parser.add_argument("database")
    parser.add_argument("--rows", type=int, default=0)
    parser.add_argument("--keys", type=int, default=0)
    arguments = parser.parse_args()
    if arguments.action == "generate":
        generate(arguments.database, arguments.rows, arguments.keys)
    else:
        print(json.dumps(query(arguments.database)), flush=True)


if __name__ == "__main__":
    main()
