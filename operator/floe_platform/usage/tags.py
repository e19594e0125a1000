"""The run tags that record what a run used, and how they are read back. Pure: plain dicts in and out.

Written once per run, when its run worker exits (``floe run-worker``) or, for in-process runs, when the
run ends. All values are strings (Dagster tags): bytes and seconds as plain numbers, so reports can parse
them without knowing units.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

PROFILE_TAG = "floe/resource-profile"
"""Same name as ``floe_platform.dagster.profiles.PROFILE_TAG`` (a test keeps them equal)."""
MEMORY_LIMIT_TAG = "floe/memory-limit"
"""Same name as ``floe_platform.dagster.profiles.MEMORY_LIMIT_TAG``: the effective limit, a quantity."""
MEMORY_REQUEST_TAG = "floe/memory-request"
CPU_REQUEST_TAG = "floe/cpu-request"
CPU_LIMIT_TAG = "floe/cpu-limit"
USAGE_SOURCE_TAG = "floe/usage-source"
PEAK_MEMORY_TAG = "floe/peak-memory-bytes"
CPU_SECONDS_TAG = "floe/cpu-seconds"
WALL_SECONDS_TAG = "floe/wall-seconds"
OOM_TAG = "floe/oom-killed"
EXIT_CODE_TAG = "floe/run-worker-exit-code"
USAGE_NOTE_TAG = "floe/usage-note"

UsageSource = Literal["cgroup-v2", "cgroup-v1", "process-tree"]
USAGE_SOURCES: tuple[UsageSource, ...] = ("cgroup-v2", "cgroup-v1", "process-tree")


@dataclass(frozen=True)
class RunUsage:
    """What one run used, as measured by the recorder."""

    source: UsageSource
    peak_memory_bytes: int | None
    cpu_seconds: float | None
    wall_seconds: float
    oom_killed: bool = False
    exit_code: int | None = None
    note: str | None = None


def usage_tags(usage: RunUsage) -> dict[str, str]:
    """The tags of one recorded usage (unknown values are left out, not written as zero)."""
    tags = {USAGE_SOURCE_TAG: usage.source, WALL_SECONDS_TAG: f"{usage.wall_seconds:.3f}"}
    if usage.peak_memory_bytes is not None:
        tags[PEAK_MEMORY_TAG] = str(usage.peak_memory_bytes)
    if usage.cpu_seconds is not None:
        tags[CPU_SECONDS_TAG] = f"{usage.cpu_seconds:.3f}"
    if usage.oom_killed:
        tags[OOM_TAG] = "true"
    if usage.exit_code is not None:
        tags[EXIT_CODE_TAG] = str(usage.exit_code)
    if usage.note:
        tags[USAGE_NOTE_TAG] = usage.note
    return tags


def resource_tags(requests: Mapping[str, object], limits: Mapping[str, object]) -> dict[str, str]:
    """The profile's effective requests and limits as tags (the launcher writes these at launch)."""
    pairs = (
        (MEMORY_LIMIT_TAG, limits.get("memory")),
        (CPU_LIMIT_TAG, limits.get("cpu")),
        (MEMORY_REQUEST_TAG, requests.get("memory")),
        (CPU_REQUEST_TAG, requests.get("cpu")),
    )
    return {tag: str(value) for tag, value in pairs if value is not None}


def read_usage(tags: Mapping[str, str]) -> RunUsage | None:
    """The usage recorded in a run's tags, or None if none was (or it cannot be parsed)."""
    source = tags.get(USAGE_SOURCE_TAG)
    if source not in USAGE_SOURCES:
        return None
    try:
        peak = int(tags[PEAK_MEMORY_TAG]) if PEAK_MEMORY_TAG in tags else None
        cpu = float(tags[CPU_SECONDS_TAG]) if CPU_SECONDS_TAG in tags else None
        wall = float(tags.get(WALL_SECONDS_TAG, "0"))
        exit_code = int(tags[EXIT_CODE_TAG]) if EXIT_CODE_TAG in tags else None
    except ValueError:
        return None
    return RunUsage(
        source=source,  # type: ignore[arg-type]  # checked against USAGE_SOURCES above
        peak_memory_bytes=peak,
        cpu_seconds=cpu,
        wall_seconds=wall,
        oom_killed=tags.get(OOM_TAG) == "true",
        exit_code=exit_code,
        note=tags.get(USAGE_NOTE_TAG),
    )
