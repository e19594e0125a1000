"""The job `helm test` launches through the webserver: it proves that a run starts in its own pod on the
default profile, outlives a run-monitoring poll, and ends in SUCCESS.

Add ``smoke_test_job`` to your Definitions (the demo code location does) so that `helm test` can run it in
your code location; ``seconds`` keeps it running past the daemon's run-monitoring poll, which is when a
run launcher without the right permissions fails runs.
"""

# No `from __future__ import annotations`: Dagster reads the op's config class from its annotation.

import os
import time

import dagster as dg

SMOKE_TEST_JOB = "floe_smoke_test"


class SmokeTestConfig(dg.Config):
    seconds: float = 0.0
    """How long the run stays in progress."""


@dg.op
def stay_running(context: dg.OpExecutionContext, config: SmokeTestConfig) -> None:
    duckdb = {name: value for name, value in os.environ.items() if name.startswith("DUCKDB_")}
    context.log.info(f"smoke test run: DuckDB settings {duckdb or 'none'}; running {config.seconds:g} s")
    time.sleep(config.seconds)


@dg.job(name=SMOKE_TEST_JOB, description="A tiny run for `helm test`: sleeps for `seconds`, then succeeds.")
def smoke_test_job() -> None:
    stay_running()
