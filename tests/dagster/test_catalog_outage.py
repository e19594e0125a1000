"""The catalog's database or its S3 goes away in the middle of a run: the step fails with a message that
names the table and the catalog, and nothing half-written is visible afterwards.

Real: PostgreSQL 15 (Debian's server) and open-source LocalStack, each an instance of this module's own so
that stopping it (by pid) disturbs no other test; DuckDB 1.5.5 with the bundled extensions; dagster 1.13
in-process with ``FloeDuckDBPandasIOManager``, whose every output is one transaction, and with
``FloeDuckDBResource.transaction``, which makes an asset's statements one. The outage is real: the asset's
own code stops the server while its step runs, before the I/O manager writes or between two statements.
dbt (dbt-core with dbt-duckdb, the demo's models, in a stand-in run pod) runs with a server already down.
What "nothing visible" means here: no new snapshot in DuckLake's metadata (read from PostgreSQL alone,
which needs no S3) and no table that the failed step would have created.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd  # type: ignore[import-untyped]
import pytest
from dagster._core.storage.db_io_manager import TableSlice

from floe_platform.dagster.catalog import (
    CatalogSettings,
    CatalogUnavailable,
    attach_catalog,
    catalog_from_env,
    install_bundled_extensions,
    offline_config,
)
from floe_platform.dagster.resources import FloeDuckDbClient, FloeDuckDBPandasIOManager, FloeDuckDBResource
from testkit.lakehouse import create_bucket, lakehouse_platform_yaml, run_pod, run_pod_env
from testkit.localstack import LocalStack
from testkit.postgres import PASSWORD, Postgres

pytestmark = pytest.mark.slow  # an own LocalStack (about 20 s to start) and PostgreSQL

_STOP: list[LocalStack | Postgres] = []
ROWS_ON_S3 = 10_000
"""DuckLake keeps a few rows inline in its metadata database instead of writing a Parquet file; an output
this large goes to S3."""


@dg.asset(key_prefix=["bronze"])
def steady() -> pd.DataFrame:
    return pd.DataFrame({"n": [1, 2, 3]})


@dg.asset(key_prefix=["bronze"])
def steady_again() -> pd.DataFrame:
    """Writes bronze.steady's table again (same schema.table), after stopping a server mid-step."""
    _STOP[0].stop()
    return pd.DataFrame({"n": range(ROWS_ON_S3)})


@dg.asset(key_prefix=["bronze"])
def brand_new() -> pd.DataFrame:
    _STOP[0].stop()
    return pd.DataFrame({"n": range(ROWS_ON_S3)})


@dg.asset
def two_statements(warehouse: FloeDuckDBResource) -> None:
    """Writes one table in two statements through the DuckDB resource; a server stops between them."""
    with warehouse.transaction("bronze.two_statements") as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS bronze")
        conn.execute(f"CREATE TABLE bronze.two_statements AS SELECT range AS n FROM range({ROWS_ON_S3})")
        _STOP[0].stop()
        conn.execute(f"INSERT INTO bronze.two_statements SELECT range AS n FROM range({ROWS_ON_S3})")


def _new_lakehouse(
    monkeypatch: pytest.MonkeyPatch, postgres: Postgres, endpoint: str, home: Path
) -> tuple[str, CatalogSettings]:
    """A new catalog (database and bucket) as a platform.yaml, with this process's env pointing at it."""
    database = f"catalog_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    create_bucket(endpoint, bucket)
    platform_yaml = lakehouse_platform_yaml(postgres, endpoint, database, bucket)
    for name, value in run_pod_env(platform_yaml, "transform", home).items():
        if name.startswith(("FLOE_", "PG")):
            monkeypatch.setenv(name, value)
    catalog = catalog_from_env()
    assert catalog is not None
    return platform_yaml, catalog


def _use_catalog_env(
    monkeypatch: pytest.MonkeyPatch, postgres: Postgres, endpoint: str, home: Path
) -> CatalogSettings:
    return _new_lakehouse(monkeypatch, postgres, endpoint, home)[1]


def _metadata_only(catalog: CatalogSettings) -> tuple[int, set[str]]:
    """The latest snapshot id and the tables, from DuckLake's metadata alone (no S3 read)."""
    with duckdb.connect(":memory:", config=offline_config(install_bundled_extensions())) as conn:
        attach_catalog(conn, catalog)
        snapshot = conn.execute(f"SELECT max(snapshot_id) FROM {catalog.name}.snapshots()").fetchone()[0]  # type: ignore[index]
        tables = {
            f"{schema}.{table}"
            for schema, table in conn.execute(
                "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()"
            ).fetchall()
        }
    return int(snapshot), tables


def _materialize(asset: dg.AssetsDefinition) -> dg.ExecuteInJobResult:
    return dg.materialize(
        [asset],
        resources={"io_manager": FloeDuckDBPandasIOManager(database=":memory:")},
        raise_on_error=False,
    )


def _failure(result: dg.ExecuteInJobResult) -> str:
    failures = [event for event in result.all_events if event.is_step_failure]
    assert failures, "the step should have failed"
    error = failures[0].step_failure_data.error
    assert error is not None
    return error.message + "".join(cause.message for cause in [error.cause] if cause is not None)


def _write_then_stop(context: dg.OutputContext, table: TableSlice, server: Postgres) -> None:
    """The I/O manager's transaction: data files written, then the metadata database stops, then COMMIT."""
    with FloeDuckDbClient.connect(context, table) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS bronze")
        conn.execute("CREATE TABLE bronze.half_written AS SELECT range AS n FROM range(100000)")
        server.stop()


@pytest.fixture
def own_localstack(tmp_path: Path) -> Iterator[LocalStack]:
    instance = LocalStack(tmp_path / "localstack")
    instance.workdir.mkdir()
    instance.start()
    try:
        yield instance
    finally:
        _STOP.clear()
        instance.stop()


@pytest.fixture
def own_postgres() -> Iterator[Postgres]:
    server = Postgres().start()
    try:
        yield server
    finally:
        _STOP.clear()
        server.remove()


def test_s3_down_mid_step_fails_clearly_and_leaves_the_table_as_it_was(
    own_localstack: LocalStack, postgres_server: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = _use_catalog_env(monkeypatch, postgres_server, own_localstack.endpoint, tmp_path / "pod")
    assert _materialize(steady).success
    before = _metadata_only(catalog)
    assert "bronze.steady" in before[1]

    _STOP[:] = [own_localstack]
    again = dg.AssetsDefinition.from_op(
        steady_again.op, keys_by_output_name={"result": dg.AssetKey(["bronze", "steady"])}
    )
    result = _materialize(again)
    assert not result.success
    message = _failure(result)
    assert "writing bronze.steady to catalog 'lake'" in message
    assert "failed and was rolled back" in message

    assert _metadata_only(catalog) == before  # no new snapshot: the DELETE and INSERT were never committed


def test_s3_down_before_a_new_table_is_written_leaves_no_table(
    own_localstack: LocalStack, postgres_server: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = _use_catalog_env(monkeypatch, postgres_server, own_localstack.endpoint, tmp_path / "pod")
    before = _metadata_only(catalog)
    _STOP[:] = [own_localstack]
    result = _materialize(brand_new)
    assert not result.success
    assert "writing bronze.brand_new to catalog 'lake'" in _failure(result)
    snapshot, tables = _metadata_only(catalog)
    assert "bronze.brand_new" not in tables  # not even the empty CREATE TABLE of the type handler
    assert snapshot == before[0]


def test_catalog_database_down_at_the_step_fails_with_the_catalog_named(
    own_postgres: Postgres, localstack_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = _use_catalog_env(monkeypatch, own_postgres, localstack_endpoint, tmp_path / "pod")
    _STOP[:] = [own_postgres]
    result = _materialize(brand_new)
    assert not result.success
    message = _failure(result)
    assert "cannot attach the catalog 'lake'" in message
    assert f"port={own_postgres.port}" in message
    assert PASSWORD not in message
    own_postgres.start()
    assert "bronze.brand_new" not in _metadata_only(catalog)[1]


def test_catalog_database_down_before_commit_rolls_the_write_back(
    own_postgres: Postgres, localstack_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL stops after the data files are written and before COMMIT: the write is rolled back."""
    catalog = _use_catalog_env(monkeypatch, own_postgres, localstack_endpoint, tmp_path / "pod")
    before = _metadata_only(catalog)
    context = dg.build_output_context(resource_config={"database": ":memory:", "connection_config": {}})
    table = TableSlice(table="half_written", schema="bronze", database=None)
    with pytest.raises(CatalogUnavailable) as failure:
        _write_then_stop(context, table, own_postgres)
    assert "writing bronze.half_written to catalog 'lake'" in str(failure.value)
    assert "failed and was rolled back" in str(failure.value)
    own_postgres.start()
    snapshot, tables = _metadata_only(catalog)
    assert "bronze.half_written" not in tables
    assert snapshot == before[0]


def _fails_in_the_resource_transaction(stopping: LocalStack | Postgres) -> str:
    """Materialize ``two_statements`` through the DuckDB resource, ``stopping`` stopped between its two
    statements; the run must fail, naming the table and the catalog. Its failure message."""
    _STOP[:] = [stopping]
    result = dg.materialize(
        [two_statements],
        resources={"warehouse": FloeDuckDBResource(database=":memory:")},
        raise_on_error=False,
    )
    assert not result.success
    message = _failure(result)
    assert "writing bronze.two_statements to catalog 'lake'" in message
    return message


def test_s3_down_in_a_resource_transaction_fails_clearly_and_keeps_neither_statement(
    own_localstack: LocalStack, postgres_server: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An asset writing through ``FloeDuckDBResource.transaction``: its first statement's Parquet files are
    on S3 when S3 stops; the second fails, and the first is rolled back with it."""
    catalog = _use_catalog_env(monkeypatch, postgres_server, own_localstack.endpoint, tmp_path / "pod")
    before = _metadata_only(catalog)
    assert "failed and was rolled back" in _fails_in_the_resource_transaction(own_localstack)
    assert _metadata_only(catalog) == before  # no snapshot, no table: the CREATE went with the INSERT


def test_catalog_database_down_in_a_resource_transaction_keeps_neither_statement(
    own_postgres: Postgres, localstack_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same asset with PostgreSQL stopping between the statements: nothing is committed."""
    catalog = _use_catalog_env(monkeypatch, own_postgres, localstack_endpoint, tmp_path / "pod")
    before = _metadata_only(catalog)
    assert PASSWORD not in _fails_in_the_resource_transaction(own_postgres)
    own_postgres.start()
    assert _metadata_only(catalog) == before


def test_a_dbt_step_with_the_catalog_database_or_s3_down_fails_and_leaves_no_half_built_model(
    own_localstack: LocalStack, own_postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stand-in run pods (testkit/run_pod.py, the PodTemplate's env only): bronze, then the demo's dbt
    models with PostgreSQL stopped, then with S3 stopped. Each dbt step fails and says where; no silver or
    gold table appears, not even an empty or temporary one. With S3 down, the one model that reads nothing
    from S3 (ops.dbt_duckdb_settings) still builds, as dbt build goes on with independent models."""
    platform_yaml, catalog = _new_lakehouse(
        monkeypatch, own_postgres, own_localstack.endpoint, tmp_path / "t"
    )
    bronze = run_pod(platform_yaml, "bronze", tmp_path / "bronze")
    assert bronze["success"], bronze["failures"] or bronze["stderr"][-3000:]
    before = _metadata_only(catalog)
    assert before[1] == {"bronze.customers", "bronze.orders", "bronze.events"}

    own_postgres.stop()
    database_down = run_pod(platform_yaml, "dbt", tmp_path / "dbt-database-down")
    own_postgres.start()
    assert not database_down["success"]
    (failure,) = database_down["failures"]
    assert "Failed to attach DuckLake" in failure
    assert f"port={own_postgres.port} dbname=catalog_" in failure  # the catalog's metadata database
    assert PASSWORD not in failure
    assert _metadata_only(catalog) == before

    own_localstack.stop()
    s3_down = run_pod(platform_yaml, "dbt", tmp_path / "dbt-s3-down")
    assert not s3_down["success"]
    (failure,) = s3_down["failures"]
    for model in ("stg_customers", "stg_events", "stg_orders"):
        assert f"Runtime Error in model {model}" in failure
    assert "Could not connect to server" in failure
    snapshot, tables = _metadata_only(catalog)  # PostgreSQL alone: S3 is still down
    assert tables == before[1] | {"ops.dbt_duckdb_settings"}
    assert snapshot > before[0]  # the ops model's commits
