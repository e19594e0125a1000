"""FloeDuckDBResource and FloeDuckDBPandasIOManager against real DuckDB (and a real second process for
lock contention; dagster 1.13 materialize for the schema rules): the DUCKDB_* settings reach every
connection, lock errors are retried with jitter, and conflicting schema rules resolve in Dagster's order."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster_duckdb_pandas import DuckDBPandasIOManager

from floe_platform.dagster import resources as floe_duckdb
from floe_platform.dagster.catalog import extension_directory, offline_config
from floe_platform.dagster.resources import (
    LOCK_RETRY_MESSAGE,
    FloeDuckDBPandasIOManager,
    FloeDuckDBResource,
    backoff_delays,
    connection_config,
    current_settings,
)

SETTINGS = ("memory_limit", "threads", "temp_directory")
HOLD_LOCK = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.close()
"""


@pytest.fixture
def profile_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The DUCKDB_* variables a run pod of a 3-thread, 700MiB profile gets."""
    spill = tmp_path / "spill"
    monkeypatch.setenv("DUCKDB_MEMORY_LIMIT", "700MiB")
    monkeypatch.setenv("DUCKDB_THREADS", "3")
    monkeypatch.setenv("DUCKDB_TEMP_DIRECTORY", str(spill))
    return spill


def test_resource_connections_get_the_profiles_settings(profile_env: Path, tmp_path: Path) -> None:
    """current_setting() on a resource connection shows the DUCKDB_* values, not DuckDB's defaults."""
    resource = FloeDuckDBResource(database=str(tmp_path / "w.duckdb"))
    with resource.get_connection() as conn:
        settings = current_settings(conn, SETTINGS)
    assert settings == {"memory_limit": "700.0 MiB", "threads": "3", "temp_directory": str(profile_env)}


def test_io_manager_and_resource_share_one_configuration_for_one_file(
    profile_env: Path, tmp_path: Path
) -> None:
    """DuckDB refuses a second connection with another configuration; ours open side by side."""
    database = str(tmp_path / "w.duckdb")
    resource = FloeDuckDBResource(database=database)
    manager = FloeDuckDBPandasIOManager(database=database)
    with resource.get_connection() as first:
        second = floe_duckdb.connect(database, connection_config(manager.connection_config))
        assert current_settings(second, SETTINGS) == current_settings(first, SETTINGS)
        second.close()
        with pytest.raises(duckdb.ConnectionException):
            duckdb.connect(database, config={"threads": "1"})


def test_explicit_connection_config_wins_over_the_environment(profile_env: Path) -> None:
    """A code location's own connection_config is the highest layer, like the run's k8s config tag."""
    assert connection_config({"threads": 1})["threads"] == 1
    offline = offline_config(extension_directory({}))
    assert connection_config({}, environ={}) == {"custom_user_agent": "floe-platform", **offline}


def test_backoff_delays_are_jittered_and_bounded() -> None:
    """Full jitter: each delay lies in [0, min(cap, base * 2**n)] and two writers do not wait alike."""
    first = list(backoff_delays(8, 0.05, 1.0))
    second = list(backoff_delays(8, 0.05, 1.0))
    for attempt, delay in enumerate(first):
        assert 0 <= delay <= min(1.0, 0.05 * 2**attempt)
    assert first != second


@contextmanager
def lock_held(database: str, seconds: float) -> Iterator[None]:
    """A real second process that holds the database's write lock for ``seconds``."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, database, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def _lock_retries(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for record in caplog.records if record.msg == LOCK_RETRY_MESSAGE)


def test_lock_held_by_another_process_is_waited_out_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real second process holds the write lock for 1 s; the resource retries until it is free."""
    database = str(tmp_path / "contended.duckdb")
    with lock_held(database, seconds=1.0):
        resource = FloeDuckDBResource(database=database, max_retries=30)
        with resource.get_connection() as conn:
            conn.execute("CREATE TABLE t AS SELECT 1 AS x")
    assert _lock_retries(caplog) > 0


def test_lock_error_after_the_last_retry_is_raised(tmp_path: Path) -> None:
    """With no retries left, the IOException that names the lock reaches the caller."""
    database = str(tmp_path / "held.duckdb")
    with lock_held(database, seconds=30), pytest.raises(duckdb.IOException, match="lock"):
        floe_duckdb.connect(database, connection_config({}), max_retries=2, base_seconds=0.01)


@pytest.mark.parametrize(
    ("manager_class", "succeeds"), [(FloeDuckDBPandasIOManager, True), (DuckDBPandasIOManager, False)]
)
def test_io_manager_connections_carry_the_same_settings_as_the_resource(
    profile_env: Path, tmp_path: Path, manager_class: type[DuckDBPandasIOManager], succeeds: bool
) -> None:
    """With a resource connection open, DuckDB accepts the I/O manager's connection only if its
    configuration is identical: ours stores the frame, the stock manager (no DUCKDB_* settings) cannot."""
    import dagster as dg

    database = str(tmp_path / "io.duckdb")

    @dg.asset
    def frame() -> pd.DataFrame:
        return pd.DataFrame({"x": [1, 2, 3]})

    manager = manager_class(database=database)
    with FloeDuckDBResource(database=database).get_connection() as conn:
        result = dg.materialize([frame], resources={"io_manager": manager}, raise_on_error=False)
        assert result.success is succeeds
        if succeeds:
            assert conn.execute("SELECT sum(x) FROM public.frame").fetchone() == (6,)


def test_errors_other_than_lock_contention_are_raised_without_retrying(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A path that is a directory will not open by waiting: no retry is logged."""
    directory = tmp_path / "not-a-file.duckdb"
    directory.mkdir()
    with pytest.raises(duckdb.IOException):
        floe_duckdb.connect(str(directory), connection_config({}), max_retries=5)
    assert _lock_retries(caplog) == 0


# Schema rules in conflict -----------------------------------------------------------------------------
# Dagster's order, highest first: metadata["schema"], the I/O manager's schema, the key prefix, public.


@dg.asset(key_prefix=["from_prefix"], metadata={"schema": "from_metadata"})
def prefix_and_metadata() -> pd.DataFrame:
    return pd.DataFrame({"n": [1]})


@dg.asset(key_prefix=["from_prefix"])
def prefix_only() -> pd.DataFrame:
    return pd.DataFrame({"n": [2]})


def _tables(database: Path) -> set[str]:
    with duckdb.connect(str(database), read_only=True) as conn:
        rows = conn.execute("SELECT schema_name || '.' || table_name FROM duckdb_tables()").fetchall()
    return {row[0] for row in rows}


@pytest.mark.parametrize(
    ("manager_schema", "expected"),
    [
        (None, {"from_metadata.prefix_and_metadata", "from_prefix.prefix_only"}),
        ("from_manager", {"from_metadata.prefix_and_metadata", "from_manager.prefix_only"}),
    ],
    ids=["metadata-beats-prefix", "manager-beats-prefix"],
)
def test_conflicting_schema_rules_resolve_in_the_references_order(
    manager_schema: str | None, expected: set[str], tmp_path: Path
) -> None:
    """metadata["schema"] wins over the key prefix and over the I/O manager's schema; the I/O manager's
    schema wins over the key prefix (real dagster 1.13 materialize, real DuckDB file)."""
    database = tmp_path / "w.duckdb"
    manager = FloeDuckDBPandasIOManager(database=str(database), schema=manager_schema)
    result = dg.materialize([prefix_and_metadata, prefix_only], resources={"io_manager": manager})
    assert result.success
    assert _tables(database) == expected
