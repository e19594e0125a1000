"""Right-sizing in `make demo`: each in-process run is tagged with its profile, measured, and reported.

A run pod records its usage through ``floe-run-worker`` (its container's cgroup). The demo runs in this
process instead, so each ``dg.materialize`` is measured here (``InProcessMeasurement``: this process and
its children, e.g. dbt, source ``process-tree``) and tagged the way the launcher and the recorder tag a
run pod's run; `floe rightsize` then reads them like any other runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dagster as dg

from floe_platform import rightsize
from floe_platform.config import load_platform
from floe_platform.dagster.run_history import run_record
from floe_platform.usage.process_tree import InProcessMeasurement
from floe_platform.usage.tags import PROFILE_TAG, resource_tags, usage_tags


def profile_tags(platform_file: Path, profile_name: str) -> dict[str, str]:
    """The tags the launcher writes on a run of ``profile_name``: the profile, its requests and limits."""
    profile = load_platform(platform_file).infrastructure.resource_profiles[profile_name]
    requests = profile.requests.model_dump()
    limits = profile.limits.model_dump()
    return {PROFILE_TAG: profile_name, **resource_tags(requests, limits)}


def measured_materialize(
    *args: Any, instance: dg.DagsterInstance, tags: dict[str, str], **kwargs: Any
) -> Any:
    """``dg.materialize`` measured and tagged as a run pod's run would be (also when it fails)."""
    with InProcessMeasurement() as measurement:
        result = dg.materialize(*args, instance=instance, tags=tags, **kwargs)
    assert measurement.usage is not None
    instance.add_run_tags(result.run_id, usage_tags(measurement.usage))
    return result


def rightsizing_table(instance: dg.DagsterInstance, run_ids: Iterable[str], platform_file: Path) -> str:
    """`floe rightsize`'s table for the given runs, with the profiles of ``platform_file``."""
    records = instance.get_run_records(filters=dg.RunsFilter(run_ids=list(run_ids)))
    runs = [run_record(r.dagster_run, r.create_timestamp.timestamp()) for r in records]
    profiles = rightsize.profiles_from_platform(load_platform(platform_file))
    return rightsize.format_table(rightsize.summarize(runs, profiles))
