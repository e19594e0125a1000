"""``python testkit/run_pod.py STEP``: one stand-in run pod of the demo code location.

Each step is what one Dagster run pod does, in a process of its own, with only the env the test gives it
(``testkit.lakehouse.run_pod_env``): the tables it reads and writes are those of the catalog that env
names. The last line of stdout is a JSON result.

- ``bronze``: materialize the bronze Python assets and the blob asset (one run);
- ``dbt``: materialize the dbt silver and gold models, which read bronze through the catalog (the next run);
- ``read-gold``: row counts and revenue of the gold tables;
- ``blob``: load the blob asset's value through its I/O manager.
"""

from __future__ import annotations

import json
import sys
from typing import Any

BRONZE = ("bronze/customers", "orders", "events", "order_amount_histogram")


def materialize(selection: list[Any]) -> dict[str, Any]:
    import dagster as dg

    from floe_demo import project  # type: ignore[import-untyped]

    project.ensure_manifest()  # the image prepares it at build time; a clean checkout parses it once here
    from floe_demo import definitions

    all_assets = [*definitions.UNPARTITIONED_ASSETS, *definitions.PARTITIONED_ASSETS]
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            all_assets,
            selection=selection,
            resources=definitions.build_resources(),
            instance=instance,
            raise_on_error=False,
        )
    failures = [
        f"{event.step_key}: {event.step_failure_data.error.message.strip()}"
        for event in result.all_events
        if event.is_step_failure and event.step_failure_data.error is not None
    ]
    materialized = sorted(
        str(event.asset_key.to_user_string())
        for event in result.all_events
        if event.is_step_materialization and event.asset_key is not None
    )
    return {"success": result.success, "materialized": materialized, "failures": failures}


def bronze() -> dict[str, Any]:
    import dagster as dg

    return materialize([dg.AssetKey.from_user_string(key) for key in BRONZE])


def dbt() -> dict[str, Any]:
    from floe_demo.project import ensure_manifest  # type: ignore[import-untyped]

    ensure_manifest()  # before transform: its @dbt_assets reads the manifest at import
    from floe_demo.transform import dbt_models  # type: ignore[import-untyped]

    return materialize([dbt_models])


def read_gold() -> dict[str, Any]:
    from floe_platform.dagster.resources import connect_to_warehouse, connection_config

    with connect_to_warehouse(":memory:", connection_config()) as conn:
        customers, revenue = conn.execute(
            "SELECT count(*), sum(revenue) FROM gold.customer_revenue"
        ).fetchone()  # type: ignore[misc]
        activity = conn.execute("SELECT count(*) FROM gold.region_activity").fetchone()[0]  # type: ignore[index]
        orders = conn.execute("SELECT count(*), sum(amount) FROM bronze.orders").fetchone()
        database = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
    return {
        "database": database,
        "customer_revenue_rows": customers,
        "revenue": float(revenue),
        "region_activity_rows": activity,
        "bronze_orders": [orders[0], float(orders[1])] if orders else None,
    }


def blob() -> dict[str, Any]:
    import dagster as dg

    from floe_demo import definitions

    with dg.DagsterInstance.ephemeral() as instance:
        value = definitions.defs.load_asset_value(dg.AssetKey("order_amount_histogram"), instance=instance)
    return {"histogram": value}


STEPS = {"bronze": bronze, "dbt": dbt, "read-gold": read_gold, "blob": blob}


def main() -> int:
    result = STEPS[sys.argv[1]]()
    print(json.dumps(result, default=str), flush=True)
    return 0 if result.get("success", True) else 1


if __name__ == "__main__":
    sys.exit(main())
