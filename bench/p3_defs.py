"""The job P3 launches: one asset tagged with a profile, the shape of a real run's launch."""

from __future__ import annotations

import dagster as dg

PROFILE_TAG = "floe/resource-profile"


@dg.asset(op_tags={PROFILE_TAG: "small"})
def bench_asset() -> int:
    return 1


defs = dg.Definitions(assets=[bench_asset], jobs=[dg.define_asset_job("bench_job", selection=[bench_asset])])
