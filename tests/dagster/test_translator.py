"""FloeTranslator on dbt resource properties, and the lineage it gives the demo's real dbt manifest
(parsed by real dbt-core; Python assets and dbt models join with no hand-written mapping)."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from floe_platform.dagster.translator import FloeTranslator


def _props(schema: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"schema": schema, "name": name, "resource_type": "model", "meta": {}, **extra}


@pytest.mark.parametrize(
    ("schema", "group"),
    [("bronze", "bronze"), ("silver", "silver"), ("gold", "gold"), ("ops", "default"), ("main", "default")],
)
def test_asset_key_is_schema_and_name_and_group_is_the_layer(schema: str, group: str) -> None:
    translator = FloeTranslator()
    assert translator.get_asset_key(_props(schema, "orders")) == dg.AssetKey([schema, "orders"])
    assert translator.get_group_name(_props(schema, "orders")) == group


def test_a_source_that_names_its_own_asset_key_keeps_it() -> None:
    props = _props("bronze", "orders", meta={"dagster": {"asset_key": ["orders"]}})
    assert FloeTranslator().get_asset_key(props) == dg.AssetKey(["orders"])


@pytest.fixture(scope="module")
def demo_graph() -> Any:
    from floe_demo.project import ensure_manifest

    ensure_manifest()
    from floe_demo.definitions import defs

    return defs.resolve_asset_graph()


@pytest.mark.slow
def test_dbt_models_depend_on_the_python_assets_that_write_their_sources(demo_graph: Any) -> None:
    """Each schema rule's Python asset is the upstream of the silver model that reads its table."""
    parents = {
        model: {
            key.to_user_string() for key in demo_graph.get(dg.AssetKey.from_user_string(model)).parent_keys
        }
        for model in ("silver/stg_customers", "silver/stg_orders", "silver/stg_events")
    }
    assert parents == {
        "silver/stg_customers": {"bronze/customers"},
        "silver/stg_orders": {"orders"},
        "silver/stg_events": {"events"},
    }
    gold = demo_graph.get(dg.AssetKey(["gold", "customer_revenue"]))
    assert gold.group_name == "gold"
    assert {key.to_user_string() for key in gold.parent_keys} == {"silver/stg_customers", "silver/stg_orders"}


@pytest.mark.slow
def test_dbt_models_ask_for_the_transform_profile_and_main_job_retries(demo_graph: Any) -> None:
    """The launcher picks `transform` from the dbt op's tag; main_job retries each step 3 times."""
    from floe_demo.definitions import daily_schedule, defs
    from floe_platform.dagster.profiles import PROFILE_TAG

    dbt_assets_def = defs.resolve_assets_def(dg.AssetKey(["gold", "customer_revenue"]))
    assert dbt_assets_def.op.tags[PROFILE_TAG] == "transform"
    job = defs.resolve_job_def("main_job")
    assert job.op_retry_policy is not None
    assert job.op_retry_policy.max_retries == 3
    assert daily_schedule.cron_schedule == "0 6 * * *"
