"""``FloeTranslator``: dbt resources become Dagster assets keyed ``[schema, name]`` and grouped by layer.

A Python asset written by the DuckDB I/O manager with ``key_prefix=["bronze"]`` lands in ``bronze.<name>``,
which is exactly the key a dbt source ``bronze.<name>`` gets here, so lineage joins up with no extra
mapping. A source or model that names its own key (``meta: {dagster: {asset_key: [...]}}``) keeps it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import AssetKey
from dagster_dbt import DagsterDbtTranslator

LAYERS = ("bronze", "silver", "gold")
DEFAULT_GROUP = "default"


class FloeTranslator(DagsterDbtTranslator):
    """Asset key ``[schema, name]``; group ``bronze``/``silver``/``gold`` by schema, else ``default``."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        dagster_meta = (dbt_resource_props.get("meta") or {}).get("dagster") or {}
        if dagster_meta.get("asset_key"):
            return AssetKey(dagster_meta["asset_key"])
        return AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        schema = dbt_resource_props.get("schema")
        return schema if schema in LAYERS else DEFAULT_GROUP
