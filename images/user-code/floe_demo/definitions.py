"""The demo code location: `dagster code-server start -m floe_demo.definitions` serves ``defs``.

Bronze Python assets -> dbt silver and gold models, plus partitioned assets, one column-selecting asset and
two assets that record the DuckDB settings they really ran with. The warehouse is ``DUCKDB_DATABASE``.
"""

from __future__ import annotations

import os

import dagster as dg
from dagster_dbt import DbtCliResource

from floe_demo import assets
from floe_demo.project import dbt_executable, dbt_project
from floe_demo.transform import dbt_models
from floe_platform.dagster.resources import FloeDuckDBPandasIOManager, FloeDuckDBResource
from floe_platform.dagster.smoke import smoke_test_job

DEFAULT_WAREHOUSE = "/tmp/floe-warehouse.duckdb"
SCALE_ENV = "FLOE_DEMO_SCALE"


def warehouse_path() -> str:
    return os.environ.get("DUCKDB_DATABASE", DEFAULT_WAREHOUSE)


def build_resources(warehouse: str | None = None, scale: int | None = None) -> dict[str, object]:
    """The resources of the code location; callers may give their own warehouse and scale."""
    database = warehouse or warehouse_path()
    return {
        "io_manager": FloeDuckDBPandasIOManager(database=database),
        "bronze_io_manager": FloeDuckDBPandasIOManager(database=database, schema="bronze"),
        "duckdb": FloeDuckDBResource(database=database),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable()),
        "demo_scale": assets.DemoScale(scale=scale or int(os.environ.get(SCALE_ENV, "1"))),
    }


PYTHON_ASSETS = [
    assets.customers,
    assets.orders,
    assets.events,
    assets.regions,
    assets.customer_regions,
    assets.python_duckdb_settings,
]
PARTITIONED_ASSETS = [assets.regional_sales, assets.daily_events, assets.regional_daily_events]
UNPARTITIONED_ASSETS = [*PYTHON_ASSETS, dbt_models]

main_job = dg.define_asset_job(
    "main_job",
    selection=dg.AssetSelection.assets(*UNPARTITIONED_ASSETS),
    op_retry_policy=dg.RetryPolicy(max_retries=3),
    description="Bronze Python assets, then the dbt silver and gold models (on the transform profile).",
)
daily_schedule = dg.ScheduleDefinition(job=main_job, cron_schedule="0 6 * * *")

defs = dg.Definitions(
    assets=[*UNPARTITIONED_ASSETS, *PARTITIONED_ASSETS],
    jobs=[main_job, smoke_test_job],  # smoke_test_job: what `helm test` runs
    schedules=[daily_schedule],
    resources=build_resources(),
)
