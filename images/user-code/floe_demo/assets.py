"""Bronze Python assets, partitioned assets and a column-selecting asset, stored by the DuckDB I/O manager.

The four schema rules of the DuckDB I/O manager, one asset each (highest priority first):
``metadata["schema"]`` (orders -> bronze.orders), the I/O manager's ``schema`` (events, through the
``bronze_io_manager``), ``key_prefix`` (customers -> bronze.customers) and the default (regions ->
public.regions).
"""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from floe_demo import data
from floe_platform.dagster.profiles import PROFILE_TAG
from floe_platform.dagster.resources import FloeDuckDBResource, current_settings

PARTITION_START = "2024-01-01"
PARTITION_END = "2024-01-04"  # exclusive: three daily partitions in the demo


class DemoScale(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The one size parameter of the demo data: 1 for `make demo`, larger for benchmarks."""

    scale: int = 1


@dg.asset(key_prefix=["bronze"], group_name="bronze", kinds={"python", "duckdb"})
def customers(demo_scale: DemoScale) -> pd.DataFrame:
    """Customers; stored in bronze.customers by the key_prefix rule."""
    return data.customers(demo_scale.scale)


@dg.asset(metadata={"schema": "bronze"}, group_name="bronze", kinds={"python", "duckdb"})
def orders(demo_scale: DemoScale) -> pd.DataFrame:
    """Orders; stored in bronze.orders by the metadata["schema"] rule."""
    return data.orders(demo_scale.scale)


@dg.asset(io_manager_key="bronze_io_manager", group_name="bronze", kinds={"python", "duckdb"})
def events(demo_scale: DemoScale) -> pd.DataFrame:
    """Click-stream events; stored in bronze.events by the I/O manager's schema rule."""
    return data.events(demo_scale.scale)


@dg.asset(group_name="bronze", kinds={"python", "duckdb"})
def regions() -> pd.DataFrame:
    """Region lookup; stored in public.regions by the default rule."""
    return pd.DataFrame({"region": list(data.REGIONS), "name": ["United States", "Europe", "Asia Pacific"]})


@dg.asset(
    ins={
        "customers": dg.AssetIn(key=["bronze", "customers"], metadata={"columns": ["customer_id", "region"]})
    },
    group_name="silver",
    kinds={"python", "duckdb"},
)
def customer_regions(customers: pd.DataFrame) -> pd.DataFrame:
    """Customers per region, loading only the two columns it needs from bronze.customers."""
    return customers.groupby("region", as_index=False).agg(customers=("customer_id", "count"))


@dg.asset(io_manager_key="blob", group_name="gold", kinds={"python", "s3"})
def order_amount_histogram(orders: pd.DataFrame) -> dict[str, list[float]]:
    """A histogram of order amounts: an artifact, not a table, kept by the ``blob`` I/O manager (S3)."""
    counts, edges = np.histogram(orders["amount"].to_numpy(), bins=10)
    return {"counts": [float(count) for count in counts], "edges": [float(edge) for edge in edges]}


region_partitions = dg.StaticPartitionsDefinition(list(data.REGIONS))
daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITION_START, end_date=PARTITION_END)
date_region_partitions = dg.MultiPartitionsDefinition(
    {"date": daily_partitions, "region": dg.StaticPartitionsDefinition(["US", "EU"])}
)


@dg.asset(
    partitions_def=region_partitions,
    metadata={"partition_expr": "region", "schema": "bronze"},
    group_name="bronze",
    kinds={"python", "duckdb"},
)
def regional_sales(context: dg.AssetExecutionContext, demo_scale: DemoScale) -> pd.DataFrame:
    """Daily sales of one region (static partitions US/EU/APAC)."""
    return data.regional_sales(demo_scale.scale, context.partition_key)


@dg.asset(
    partitions_def=daily_partitions,
    metadata={"partition_expr": "event_date", "schema": "bronze"},
    group_name="bronze",
    kinds={"python", "duckdb"},
)
def daily_events(context: dg.AssetExecutionContext, demo_scale: DemoScale) -> pd.DataFrame:
    """One day of events (daily partitions)."""
    return data.day_of_events(demo_scale.scale, dt.date.fromisoformat(context.partition_key))


@dg.asset(
    partitions_def=date_region_partitions,
    metadata={"partition_expr": {"date": "event_date", "region": "region"}, "schema": "bronze"},
    group_name="bronze",
    kinds={"python", "duckdb"},
)
def regional_daily_events(context: dg.AssetExecutionContext, demo_scale: DemoScale) -> pd.DataFrame:
    """One day of one region's events (date x region partitions)."""
    keys = context.partition_key.keys_by_dimension
    return data.day_of_events(demo_scale.scale, dt.date.fromisoformat(keys["date"]), keys["region"])


@dg.asset(group_name="default", kinds={"python", "duckdb"})
def python_duckdb_settings(
    context: dg.AssetExecutionContext, duckdb: FloeDuckDBResource
) -> dg.MaterializeResult:  # type: ignore[type-arg]
    """What DuckDB really runs with in a Python asset: proves the profile's DUCKDB_* settings reached it."""
    settings = _record_duckdb_settings(duckdb, "ops.python_duckdb_settings")
    context.log.info("DuckDB settings in this run: %s", settings)
    return dg.MaterializeResult(metadata=settings)


@dg.asset(group_name="per_step", kinds={"python", "duckdb"}, op_tags={PROFILE_TAG: "small"})
def small_step_duckdb_settings(
    context: dg.AssetExecutionContext, duckdb: FloeDuckDBResource
) -> dg.MaterializeResult:  # type: ignore[type-arg]
    """A light Python step of ``per_step_job``: its own pod on the `small` profile records what DuckDB
    runs with there (the dbt step of the same run gets the `transform` profile's settings)."""
    settings = _record_duckdb_settings(duckdb, "ops.small_step_duckdb_settings")
    context.log.info("DuckDB settings in this step: %s", settings)
    return dg.MaterializeResult(metadata=settings)


def _record_duckdb_settings(duckdb: FloeDuckDBResource, table: str) -> dict[str, str]:
    with duckdb.get_connection() as conn:
        settings = current_settings(conn, ["memory_limit", "threads", "temp_directory"])
        conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
        conn.execute(
            f"CREATE OR REPLACE TABLE {table} AS SELECT ? AS memory_limit, ? AS threads, ? AS temp_directory",
            [settings["memory_limit"], settings["threads"], settings["temp_directory"]],
        )
    return settings
