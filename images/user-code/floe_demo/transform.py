"""The dbt models as Dagster assets; they run on the `transform` resource profile."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from floe_demo.project import dbt_project
from floe_platform.dagster.profiles import PROFILE_TAG
from floe_platform.dagster.translator import FloeTranslator

TRANSFORM_PROFILE = "transform"


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=FloeTranslator(),
    op_tags={PROFILE_TAG: TRANSFORM_PROFILE},
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """`dbt build` of the selected models; DuckDB settings come from the DUCKDB_* env (profiles.yml)."""
    yield from dbt.cli(["build"], context=context).stream()
