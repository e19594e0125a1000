"""A job that really allocates: a DuckDB query whose result (``mib`` MiB of int64) is held in numpy.

Loaded by file by ``test_usage_recording.py`` as the code of a run worker (``dagster api execute_run``).
"""

import dagster as dg
import duckdb

ROWS_PER_MIB = 1024 * 1024 // 8


@dg.op(config_schema={"mib": int, "fail": dg.Field(bool, default_value=False)})
def allocate(context: dg.OpExecutionContext) -> int:
    rows = context.op_config["mib"] * ROWS_PER_MIB
    values = duckdb.sql(f"SELECT range AS i FROM range({rows})").fetchnumpy()["i"]
    if context.op_config["fail"]:
        raise RuntimeError("asked to fail after allocating")
    return int(values.sum())


@dg.job(executor_def=dg.in_process_executor)
def allocating_job() -> None:
    allocate()
