"""Read the runs of a Dagster instance as ``rightsize.RunRecord``s: the only Dagster side of right-sizing."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import DagsterInstance
from dagster._core.storage.dagster_run import DagsterRun, RunsFilter

from floe_platform.rightsize import RightsizeError, RunRecord, parse_cpu, parse_memory
from floe_platform.usage.tags import (
    CPU_REQUEST_TAG,
    MEMORY_LIMIT_TAG,
    OOM_TAG,
    PROFILE_TAG,
    read_usage,
)


@contextmanager
def open_instance(dagster_home: str | None) -> Iterator[DagsterInstance]:
    """The instance at ``dagster_home`` (else ``DAGSTER_HOME``); ``RightsizeError`` if there is none."""
    home = dagster_home or os.environ.get("DAGSTER_HOME")
    if not home:
        raise RightsizeError(
            "no Dagster instance: set DAGSTER_HOME or pass --dagster-home DIR (the directory of dagster.yaml)"
        )
    if not Path(home).is_dir():
        where = "--dagster-home" if dagster_home else "DAGSTER_HOME"
        raise RightsizeError(f"{where}: {home} is not a directory; give the directory of dagster.yaml")
    try:
        instance = DagsterInstance.from_config(str(Path(home).resolve()))
    except Exception as error:
        raise RightsizeError(f"cannot read the Dagster instance at {home}: {_one_line(error)}") from None
    with instance:
        yield instance


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _selection(run: DagsterRun) -> tuple[str, ...]:
    """The assets a run of an asset job selected; for ``materialize``'s ephemeral job, the steps it ran."""
    if run.asset_selection:
        return tuple(sorted(key.to_user_string() for key in run.asset_selection))
    if run.job_name.startswith("__") and run.step_keys_to_execute:
        return tuple(sorted(run.step_keys_to_execute))
    return ()


def run_record(run: DagsterRun, created: float) -> RunRecord:
    """One run as right-sizing sees it (its job, asset selection, profile, limits and recorded usage)."""
    tags = run.tags
    usage = read_usage(tags)
    selection = _selection(run)
    return RunRecord(
        run_id=run.run_id,
        job=run.job_name,
        selection=selection,
        status=run.status.value,
        created=created,
        profile=tags.get(PROFILE_TAG),
        memory_limit_bytes=parse_memory(tags.get(MEMORY_LIMIT_TAG)),
        cpu_request_cores=parse_cpu(tags.get(CPU_REQUEST_TAG)),
        peak_memory_bytes=usage.peak_memory_bytes if usage else None,
        cpu_seconds=usage.cpu_seconds if usage else None,
        wall_seconds=usage.wall_seconds if usage else None,
        oom_killed=tags.get(OOM_TAG) == "true",
        usage_source=usage.source if usage else None,
    )


def read_runs(instance: DagsterInstance, since_seconds: float, now: float | None = None) -> list[RunRecord]:
    """Every run created in the last ``since_seconds`` that was launched on a profile."""
    import datetime as dt

    cutoff = dt.datetime.fromtimestamp((now or time.time()) - since_seconds, tz=dt.UTC)
    try:
        records = instance.get_run_records(filters=RunsFilter(created_after=cutoff))
    except Exception as error:
        raise RightsizeError(f"cannot read the runs of the Dagster instance: {_one_line(error)}") from None
    runs = [run_record(record.dagster_run, record.create_timestamp.timestamp()) for record in records]
    return [run for run in runs if run.profile is not None]
