"""The demo code location: `dagster code-server start -m floe_demo.definitions` serves ``defs``.

Bronze Python assets -> dbt silver and gold models, plus partitioned assets, one column-selecting asset, a
blob (an artifact that is not a table) and assets that record the DuckDB settings they really ran with.
``main_job`` runs in one pod on `transform`; ``per_step_job`` runs each step in its own pod, on the profile
its op tag names. Tables live in the shared catalog the run pod's env names (FLOE_CATALOG_*), else in
``DUCKDB_DATABASE``; the blob goes to FLOE_BLOB_PATH (S3 on the cluster).
"""

from __future__ import annotations

import os

import dagster as dg
from dagster_dbt import DbtCliResource

from floe_demo import assets
from floe_demo.project import dbt_executable, dbt_project
from floe_demo.transform import dbt_models
from floe_platform.dagster.executor import profile_k8s_job_executor
from floe_platform.dagster.resources import FloeDuckDBPandasIOManager, FloeDuckDBResource, blob_io_manager
from floe_platform.dagster.smoke import smoke_test_job

DEFAULT_WAREHOUSE = "/tmp/floe-warehouse.duckdb"
DEFAULT_BLOB_DIR = "/tmp/floe-blobs"
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
        "blob": blob_io_manager(local_dir=DEFAULT_BLOB_DIR),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable()),
        "demo_scale": assets.DemoScale(scale=scale or int(os.environ.get(SCALE_ENV, "1"))),
    }


PYTHON_ASSETS = [
    assets.customers,
    assets.orders,
    assets.events,
    assets.regions,
    assets.customer_regions,
    assets.order_amount_histogram,
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
# Per-step profiles: each step its own Job and pod, the light Python step on `small`, dbt on `transform`
# (their op tags). Needs the chart value dagster.stepJobs.enabled; the bronze tables come from main_job.
PER_STEP_ASSETS = [assets.small_step_duckdb_settings]
per_step_job = dg.define_asset_job(
    "per_step_job",
    selection=dg.AssetSelection.assets(*PER_STEP_ASSETS, dbt_models),
    executor_def=profile_k8s_job_executor,
    description="A light Python step on the small profile and the dbt models on transform, one pod each.",
)
daily_schedule = dg.ScheduleDefinition(job=main_job, cron_schedule="0 6 * * *")

defs = dg.Definitions(
    assets=[*UNPARTITIONED_ASSETS, *PER_STEP_ASSETS, *PARTITIONED_ASSETS],
    jobs=[main_job, per_step_job, smoke_test_job],  # smoke_test_job: what `helm test` runs
    schedules=[daily_schedule],
    resources=build_resources(),
)
