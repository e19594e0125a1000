"""One writer process of the DuckDB contention test and benchmark: append batches through the project's
DuckDB resource.

Usage: ``python -m testkit.duckdb_writer DATABASE WRITER BATCHES ROWS START_FILE``. Waits for START_FILE
so that all writers begin together, opens a new connection per batch (as a Dagster asset does per
materialization), and prints ``{"writer": .., "retries": ..}``: the lock retries ``FloeDuckDBResource``
made.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from floe_platform.dagster.resources import LOCK_RETRY_MESSAGE, LOGGER, FloeDuckDBResource

HOLD_SECONDS = 0.01  # keep the file a moment, as a real transformation would


class RetryCount(logging.Handler):
    """Counts the lock retries the resource logs in this process."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == LOCK_RETRY_MESSAGE:
            self.count += 1


def main(database: str, writer: int, batches: int, rows: int, start_file: str) -> None:
    while not Path(start_file).exists():
        time.sleep(0.005)
    retries = RetryCount()
    LOGGER.addHandler(retries)
    LOGGER.propagate = False  # the count is the output; the warnings themselves would flood stderr
    resource = FloeDuckDBResource(database=database, max_retries=20)
    for batch in range(batches):
        with resource.get_connection() as connection:
            connection.execute(
                "INSERT INTO appended SELECT $writer, $batch, i FROM range($rows) AS r(i)",
                {"writer": writer, "batch": batch, "rows": rows},
            )
            time.sleep(HOLD_SECONDS)
    print(json.dumps({"writer": writer, "retries": retries.count}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
