"""What a benchmark returns, how a run of several is recorded, and the table it prints.

Each benchmark is a plain function returning an ``Outcome``: the figures it measured, a baseline measured in
the same run (these machines are shared and noisy, so speed is judged as a ratio), and checks against its
targets. A benchmark that cannot run here raises ``Unavailable``; one that breaks raises anything else. Both
end up in the table as such, never hidden.
"""

from __future__ import annotations

import datetime
import json
import platform
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

Status = Literal["met", "not met", "failed", "unavailable"]


class Unavailable(Exception):
    """The benchmark cannot run on this machine or tree (a missing piece); the message says which."""


@dataclass(frozen=True)
class Figure:
    label: str
    value: float
    unit: str

    def text(self) -> str:
        number = f"{self.value:.3g}" if abs(self.value) < 1000 else f"{self.value:,.0f}"
        return f"{self.label} {number} {self.unit}".strip()


@dataclass(frozen=True)
class Check:
    """One target: what it asks, the value it was judged on, and whether that value meets it."""

    target: str
    actual: str
    met: bool


@dataclass
class Outcome:
    measured: list[Figure]
    baseline: list[Figure]
    checks: list[Check]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Benchmark:
    key: str
    title: str
    target: str
    run: Callable[[], Outcome]


@dataclass
class Result:
    key: str
    title: str
    target: str
    status: Status
    seconds: float
    measured: list[Figure] = field(default_factory=list)
    baseline: list[Figure] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def run_benchmark(benchmark: Benchmark) -> Result:
    """Run one benchmark; turn its outcome, or why it did not produce one, into a ``Result``."""
    started = time.perf_counter()
    result = Result(benchmark.key, benchmark.title, benchmark.target, "failed", 0.0)
    try:
        outcome = benchmark.run()
    except Unavailable as reason:
        result.status = "unavailable"
        result.notes = [str(reason)]
    except Exception as error:  # a broken benchmark is a result too
        result.notes = [f"{type(error).__name__}: {error}", *_last_frames(error)]
    else:
        result.status = "met" if outcome.checks and all(c.met for c in outcome.checks) else "not met"
        result.measured, result.baseline = outcome.measured, outcome.baseline
        result.checks, result.notes = outcome.checks, outcome.notes
    result.seconds = time.perf_counter() - started
    return result


def _last_frames(error: BaseException) -> list[str]:
    frames = traceback.extract_tb(error.__traceback__)[-2:]
    return [f"at {Path(frame.filename).name}:{frame.lineno} in {frame.name}" for frame in frames]


def machine() -> dict[str, str | int]:
    import os

    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count() or 0,
        "system": f"{platform.system()} {platform.release()}",
    }


def to_json(results: Sequence[Result]) -> str:
    document = {
        "finished": datetime.datetime.now(tz=datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "results": [asdict(result) for result in results],
    }
    return json.dumps(document, indent=2) + "\n"


def to_markdown(results: Sequence[Result]) -> str:
    """The results table, then each benchmark's notes."""
    lines = [
        "| | Benchmark | Measured | Baseline (same run) | Target | Result |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        measured = "<br>".join(figure.text() for figure in result.measured) or "-"
        baseline = "<br>".join(figure.text() for figure in result.baseline) or "-"
        verdict = _verdict(result)
        lines.append(
            f"| {result.key} | {result.title} | {measured} | {baseline} | {result.target} | {verdict} |"
        )
    for result in results:
        if result.notes:
            lines.append("")
            lines.append(f"**{result.key}** ({result.seconds:.0f} s): " + " ".join(result.notes))
    return "\n".join(lines) + "\n"


def _verdict(result: Result) -> str:
    if result.status in ("met", "not met"):
        checks = "; ".join(f"{c.target}: {c.actual} {'met' if c.met else 'NOT met'}" for c in result.checks)
        return f"**{result.status}** ({checks})"
    return f"**{result.status}**"


def write_results(results: Sequence[Result], directory: Path, stem: str = "latest") -> tuple[Path, Path]:
    """Write <stem>.json and <stem>.md atomically (a half-written file would read as a result)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in ((f"{stem}.json", to_json(results)), (f"{stem}.md", to_markdown(results))):
        target = directory / name
        partial = directory / f"{name}.tmp"
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)
        written.append(target)
    return written[0], written[1]
