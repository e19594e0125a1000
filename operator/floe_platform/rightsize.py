"""Right-sizing: from what runs used to the profile each job should have. Pure: imports only ``config``.

Input is a list of ``RunRecord`` (one per run, read from a Dagster instance by
``floe_platform.dagster.run_history``) and the profiles that exist (from platform.yaml, or from the limits
the runs recorded). Output is one ``JobReport`` per job (and per asset selection of an asset job), with
the suggestion, rendered as a table, JSON, or a platform.yaml diff.

How the suggestion is computed (docs/rightsize.md):

1. Each measured run contributes its peak memory; a run that was OOM-killed contributes at least its
   memory limit (it needed more than that, and its own peak may be missing).
2. ``needed = p95 of the peaks x (1 + headroom)`` (nearest-rank p95: the smallest peak that 95 % of the
   runs are at or under).
3. The suggestion is the existing profile with the smallest memory limit that is >= ``needed`` (ties:
   smaller CPU request, then name). If none is that large: "none fits: add one with limits.memory >=
   X", X being ``needed`` rounded up to 256 MiB (below 4 GiB) or to a whole GiB.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from floe_platform.config import ConfigError, PlatformConfig, load_platform_text
from floe_platform.config.quantity import QuantityError, parse_quantity

DEFAULT_HEADROOM = 0.20
NEAR_OOM_FRACTION = 0.90
"""A job whose max peak reaches this share of its limit (or that was OOM-killed) is near OOM."""
OVER_PROVISIONED_FRACTION = 0.50
"""A job whose needed memory (p95 with headroom) is at most this share of its limit is over-provisioned."""
ROUND_TO = 256 * 1024**2
MI = 1024**2
GI = 1024**3

Verdict = Literal["near-oom", "over-provisioned", "ok", "no usage"]


@dataclass(frozen=True)
class Profile:
    """A profile as right-sizing sees it: its name, memory limit and CPU request."""

    name: str
    memory_limit_bytes: int
    cpu_request_cores: float | None = None


@dataclass(frozen=True)
class RunRecord:
    """One run: which job (and asset selection), its profile and limits, and what it used."""

    run_id: str
    job: str
    selection: tuple[str, ...]
    """Asset keys of an asset job's run that selected a subset; empty for the whole job."""
    status: str
    created: float
    profile: str | None
    memory_limit_bytes: int | None
    cpu_request_cores: float | None
    peak_memory_bytes: int | None
    cpu_seconds: float | None
    wall_seconds: float | None
    oom_killed: bool = False
    usage_source: str | None = None


@dataclass(frozen=True)
class Suggestion:
    profile: str | None
    needed_bytes: int | None
    text: str


@dataclass
class JobReport:
    job: str
    selection: tuple[str, ...]
    runs: int
    measured: int
    profiles: dict[str, int]
    current_profile: str | None
    memory_limit_bytes: int | None
    peak_p50_bytes: int | None
    peak_p95_bytes: int | None
    peak_max_bytes: int | None
    cpu_p95_cores: float | None
    cpu_request_cores: float | None
    oom_kills: int
    suggestion: Suggestion
    verdict: Verdict
    sources: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        if not self.selection:
            return self.job
        return f"{self.job} [{', '.join(self.selection)}]"


class RightsizeError(Exception):
    """Input right-sizing cannot use; the message is one sentence with the fix."""


# Inputs: window, profiles.

_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_WINDOW_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_window(text: str) -> float:
    """``30m``, ``12h``, ``7d``, ``2w`` -> seconds."""
    match = _WINDOW.match(text)
    if not match or float(match.group(1)) <= 0:
        raise RightsizeError(f"--since: {text!r} is not a window; use a number and s, m, h, d or w, e.g. 7d")
    return float(match.group(1)) * _WINDOW_SECONDS[match.group(2)]


def parse_memory(value: str | None) -> int | None:
    """A Kubernetes memory quantity as bytes, None if absent or unreadable."""
    if value is None:
        return None
    try:
        return int(parse_quantity(value))
    except QuantityError:
        return None


def parse_cpu(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(parse_quantity(value))
    except QuantityError:
        return None


def profiles_from_platform(config: PlatformConfig) -> list[Profile]:
    """Every profile of a platform.yaml."""
    return sorted(
        (
            Profile(name, profile.limits.memory_bytes(), float(profile.requests.cpu_cores()))
            for name, profile in config.infrastructure.resource_profiles.items()
        ),
        key=_profile_order,
    )


def profiles_from_runs(runs: Iterable[RunRecord]) -> list[Profile]:
    """The profiles the runs were launched on, each with the limit its latest run recorded."""
    latest: dict[str, RunRecord] = {}
    for run in runs:
        if run.profile and run.memory_limit_bytes is not None:
            seen = latest.get(run.profile)
            if seen is None or run.created >= seen.created:
                latest[run.profile] = run
    return sorted(
        (Profile(name, run.memory_limit_bytes or 0, run.cpu_request_cores) for name, run in latest.items()),
        key=_profile_order,
    )


def _profile_order(profile: Profile) -> tuple[int, float, str]:
    return (profile.memory_limit_bytes, profile.cpu_request_cores or 0.0, profile.name)


# Statistics and the suggestion.


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values: the smallest value with ``fraction`` at or under."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def effective_peak(run: RunRecord) -> int | None:
    """The run's peak; an OOM-killed run needed at least its limit."""
    if run.oom_killed:
        candidates = [v for v in (run.peak_memory_bytes, run.memory_limit_bytes) if v is not None]
        return max(candidates) if candidates else None
    return run.peak_memory_bytes


def round_up(num_bytes: int) -> int:
    """Up to a size people write: a multiple of 256 MiB below 4 GiB, of 1 GiB from there."""
    step = ROUND_TO if num_bytes < 4 * GI else GI
    return -(-num_bytes // step) * step


def suggest(p95_bytes: int | None, profiles: Sequence[Profile], headroom: float) -> Suggestion:
    """The smallest profile whose memory limit holds ``p95 x (1 + headroom)``."""
    if p95_bytes is None:
        return Suggestion(None, None, "no usage recorded")
    needed = math.ceil(p95_bytes * (1 + headroom))
    for profile in sorted(profiles, key=_profile_order):
        if profile.memory_limit_bytes >= needed:
            return Suggestion(profile.name, needed, profile.name)
    quantity = format_quantity(round_up(needed))
    return Suggestion(None, needed, f"none fits: add one with limits.memory >= {quantity}")


def _group_key(run: RunRecord) -> tuple[str, tuple[str, ...]]:
    return run.job, run.selection


def summarize(
    runs: Iterable[RunRecord], profiles: Sequence[Profile], headroom: float = DEFAULT_HEADROOM
) -> list[JobReport]:
    """One report per job and asset selection, sorted by label."""
    if headroom < 0:
        raise RightsizeError(f"--headroom: {headroom} is negative; give a fraction such as 0.2 (20 %)")
    groups: dict[tuple[str, tuple[str, ...]], list[RunRecord]] = defaultdict(list)
    for run in runs:
        groups[_group_key(run)].append(run)
    reports = [
        _job_report(job, selection, group, profiles, headroom) for (job, selection), group in groups.items()
    ]
    return sorted(reports, key=lambda report: report.label)


def _job_report(
    job: str, selection: tuple[str, ...], runs: list[RunRecord], profiles: Sequence[Profile], headroom: float
) -> JobReport:
    runs.sort(key=lambda run: run.created)
    latest = runs[-1]
    peaks = sorted(peak for peak in (effective_peak(run) for run in runs) if peak is not None)
    cores = sorted(
        run.cpu_seconds / run.wall_seconds for run in runs if run.cpu_seconds is not None and run.wall_seconds
    )
    counts: dict[str, int] = defaultdict(int)
    for run in runs:
        counts[run.profile or "(none)"] += 1
    p95 = int(percentile(peaks, 0.95)) if peaks else None
    suggestion = suggest(p95, profiles, headroom)
    limit = latest.memory_limit_bytes
    oom_kills = sum(run.oom_killed for run in runs)
    return JobReport(
        job=job,
        selection=selection,
        runs=len(runs),
        measured=len(peaks),
        profiles=dict(sorted(counts.items())),
        current_profile=latest.profile,
        memory_limit_bytes=limit,
        peak_p50_bytes=int(percentile(peaks, 0.50)) if peaks else None,
        peak_p95_bytes=p95,
        peak_max_bytes=peaks[-1] if peaks else None,
        cpu_p95_cores=percentile(cores, 0.95) if cores else None,
        cpu_request_cores=latest.cpu_request_cores,
        oom_kills=oom_kills,
        suggestion=suggestion,
        verdict=verdict(peaks[-1] if peaks else None, suggestion.needed_bytes, limit, oom_kills),
        sources=sorted({run.usage_source for run in runs if run.usage_source}),
    )


def verdict(max_peak: int | None, needed: int | None, limit: int | None, oom_kills: int) -> Verdict:
    if oom_kills:
        return "near-oom"
    if max_peak is None or needed is None:
        return "no usage"
    if limit is None:
        return "ok"
    if max_peak >= NEAR_OOM_FRACTION * limit:
        return "near-oom"
    if needed <= OVER_PROVISIONED_FRACTION * limit:
        return "over-provisioned"
    return "ok"


# Output.


def format_bytes(num_bytes: int | None) -> str:
    if num_bytes is None:
        return "-"
    if num_bytes >= GI:
        return f"{num_bytes / GI:.2f}Gi"
    return f"{num_bytes / MI:.0f}Mi"


def format_quantity(num_bytes: int) -> str:
    """A byte count as an exact Kubernetes quantity (whole Gi where it is one, else whole Mi, rounded up)."""
    if num_bytes % GI == 0:
        return f"{num_bytes // GI}Gi"
    return f"{-(-num_bytes // MI)}Mi"


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


TABLE_HEADER = (
    "job",
    "runs",
    "profile",
    "peak p50",
    "p95",
    "max",
    "limit",
    "cpu p95/req",
    "OOM",
    "verdict",
    "suggested",
)


def table_rows(reports: Sequence[JobReport], label_width: int = 48) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for report in reports:
        profiles = ", ".join(
            f"{name}x{count}" if len(report.profiles) > 1 else name for name, count in report.profiles.items()
        )
        rows.append(
            (
                _shorten(report.label, label_width),
                f"{report.runs}"
                if report.measured == report.runs
                else f"{report.runs} ({report.measured} measured)",
                profiles,
                format_bytes(report.peak_p50_bytes),
                format_bytes(report.peak_p95_bytes),
                format_bytes(report.peak_max_bytes),
                format_bytes(report.memory_limit_bytes),
                f"{_cores(report.cpu_p95_cores)}/{_cores(report.cpu_request_cores)}",
                str(report.oom_kills),
                report.verdict,
                report.suggestion.text,
            )
        )
    return rows


def format_table(reports: Sequence[JobReport], headroom: float = DEFAULT_HEADROOM) -> str:
    """The report as an aligned text table, with a one-line legend."""
    rows: list[tuple[str, ...]] = [TABLE_HEADER, *table_rows(reports)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(TABLE_HEADER))]
    numeric = {1, 3, 4, 5, 6, 7, 8}
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("")
    lines.append(
        f"peak memory per run; suggested = smallest profile whose limits.memory >= p95 x {1 + headroom:.2f}; "
        "cpu = average cores used (CPU time / wall time) p95 / requested cores"
    )
    return "\n".join(lines) + "\n"


def to_json(reports: Sequence[JobReport], headroom: float = DEFAULT_HEADROOM) -> str:
    jobs = []
    for report in reports:
        item: dict[str, Any] = asdict(report)
        item["label"] = report.label
        item["selection"] = list(report.selection)
        jobs.append(item)
    return json.dumps({"headroom": headroom, "jobs": jobs}, indent=2) + "\n"


# --write: the change, as a diff and a snippet; never applied silently.


def tag_snippet(reports: Sequence[JobReport]) -> str:
    """The run/job tags that move each job to its suggested profile, as Python to paste."""
    lines = []
    for report in reports:
        target = report.suggestion.profile
        if target is None and report.suggestion.needed_bytes is not None:
            target = added_profile_name(report.suggestion.needed_bytes)  # once --write has added it
        if target is None or target == report.current_profile:
            continue
        where = f"job {report.job!r}" + (
            f", assets {', '.join(report.selection)}" if report.selection else ""
        )
        lines.append(
            f"# {where}: {report.current_profile} -> {target} "
            f"(p95 peak {format_bytes(report.peak_p95_bytes)}, "
            f"limit {format_bytes(report.memory_limit_bytes)})"
        )
        lines.append(f'tags={{"floe/resource-profile": "{target}"}}')
    return "\n".join(lines) + ("\n" if lines else "")


def added_profile_name(needed_bytes: int) -> str:
    """The name ``--write`` gives the profile it adds for a job needing ``needed_bytes``."""
    return f"rightsized-{format_quantity(round_up(needed_bytes)).lower()}"


def added_profiles(reports: Sequence[JobReport], profiles: Sequence[Profile]) -> dict[str, int]:
    """Name -> memory limit of the profiles to add for the jobs no profile fits (one per size)."""
    sizes = sorted(
        {
            round_up(r.suggestion.needed_bytes)
            for r in reports
            if r.suggestion.profile is None and r.suggestion.needed_bytes
        }
    )
    taken = {profile.name for profile in profiles}
    added: dict[str, int] = {}
    for size in sizes:
        name = added_profile_name(size)
        if name not in taken:
            added[name] = size
    return added


def with_added_profiles(
    text: str, filename: str, reports: Sequence[JobReport], profiles: Sequence[Profile]
) -> str:
    """platform.yaml ``text`` with the profiles added that the jobs no profile fits need (unchanged if none).

    Each added profile copies the requests and CPU limit of the largest existing profile, with
    limits.memory raised (its DuckDB settings are derived from the limits by the renderer). Inserted as text
    at the end of the ``resource_profiles`` block, so the user's comments and layout stay as they are; the
    result is validated before it is shown.
    """
    added = added_profiles(reports, profiles)
    if not added:
        return text
    config = _parse(text, filename)
    largest_name = max(
        config.infrastructure.resource_profiles.items(), key=lambda item: item[1].limits.memory_bytes()
    )[0]
    largest = config.infrastructure.resource_profiles[largest_name]
    lines = text.splitlines(keepends=True)
    start, indent = _block_start(lines, filename)
    end = start + 1
    while end < len(lines) and (
        not lines[end].strip() or _indent(lines[end]) > indent or lines[end].lstrip().startswith("#")
    ):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    child = " " * (indent + 2)
    new_lines = []
    for name, size in added.items():
        memory = format_quantity(size)
        request_memory = largest.requests.memory if largest.requests.memory_bytes() <= size else memory
        new_lines += [
            f"{child}{name}:  # added by floe rightsize (copy of {largest_name}, limits.memory raised)\n",
            f'{child}  requests: {{cpu: "{largest.requests.cpu}", memory: "{request_memory}"}}\n',
            f'{child}  limits: {{cpu: "{largest.limits.cpu}", memory: "{memory}"}}\n',
        ]
    if end > 0 and not lines[end - 1].endswith("\n"):
        lines[end - 1] += "\n"
    changed = [*lines[:end], *new_lines, *lines[end:]]
    _parse("".join(changed), filename)  # never show a change that would not validate
    return "".join(changed)


def unified_diff(old: str, new: str, filename: str) -> str:
    """``old`` -> ``new`` as a unified diff ('' when equal), for ``patch -p1`` (``-p0``: absolute path)."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            filename if filename.startswith("/") else f"a/{filename}",
            filename if filename.startswith("/") else f"b/{filename}",
        )
    )


def _parse(text: str, filename: str) -> PlatformConfig:
    try:
        return load_platform_text(text, filename)
    except ConfigError as error:
        raise RightsizeError("; ".join(error.lines)) from None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block_start(lines: Sequence[str], filename: str) -> tuple[int, int]:
    for index, line in enumerate(lines):
        if line.strip().startswith("resource_profiles:"):
            return index, _indent(line)
    raise RightsizeError(f"{filename}: no resource_profiles block to add a profile to")
