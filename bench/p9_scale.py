"""P9: the operator's scale curve on the real control plane: 10, 100, 500 and 1000 FloePlatforms x 5 profiles.

For each count a fresh namespace (the chart's operator RBAC, the operator's ServiceAccount token) and a
fresh ``floe operator``: the time from the first FloePlatform create to the PodTemplate watch event that
completes the set, the operator's peak RSS, and the requests the server served per FloePlatform. A bare
client creating the same templates runs just before, on the same server, so that load on the machine falls
on both. The plot (time and RSS against count) goes to ``docs/p9-scale-curve.png`` when the full curve ran.
``FLOE_BENCH_P9_COUNTS`` overrides the counts (comma-separated).
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.core import Check, Figure, Outcome
from bench.environments import ApiServerEnvironment, per_platform, real_control_plane, total
from bench.p1_convergence import MB, PROFILES, bare_client_seconds, operator_converge, specs
from testkit.platforms import expected_templates

COUNTS = (10, 100, 500, 1000)
COUNTS_VARIABLE = "FLOE_BENCH_P9_COUNTS"
ROOT = Path(__file__).resolve().parent.parent
PLOT = ROOT / "docs" / "p9-scale-curve.png"
LINEAR_SLACK = 1.5  # per-platform time at the largest count may be at most this times the 100-count one


@dataclass(frozen=True)
class Point:
    platforms: int
    operator_seconds: float
    bare_seconds: float
    peak_rss: int
    requests_per_platform: float
    breakdown: str

    @property
    def per_platform_ms(self) -> float:
        return 1000 * self.operator_seconds / self.platforms


def counts() -> tuple[int, ...]:
    value = os.environ.get(COUNTS_VARIABLE)
    return tuple(int(part) for part in value.split(",")) if value else COUNTS


def measure_point(environment: ApiServerEnvironment, platforms: int, workdir: Path) -> Point:
    wanted = specs(platforms, PROFILES)
    templates = list(expected_templates(wanted, "bench").values())
    with environment.side(f"bare{platforms}") as side:
        bare = bare_client_seconds(side, templates)
    with environment.side(f"op{platforms}") as side:
        converge = operator_converge(side, wanted, workdir)
    return Point(
        platforms,
        converge.seconds,
        bare,
        converge.peak_rss,
        total(converge.requests) / platforms,
        per_platform(converge.requests, platforms),
    )


def measure_curve(environment: ApiServerEnvironment, sizes: tuple[int, ...], workdir: Path) -> list[Point]:
    points = []
    for platforms in sizes:
        points.append(measure_point(environment, platforms, workdir))
        print(f"P9: {points[-1]}", file=sys.stderr, flush=True)  # a long curve shows its progress
    return points


def write_plot(points: list[Point], path: Path) -> None:
    """Time (operator and bare client) and operator peak RSS against the number of FloePlatforms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [point.platforms for point in points]
    figure, (time_axes, rss_axes) = plt.subplots(1, 2, figsize=(10, 4))
    time_axes.plot(x, [p.operator_seconds for p in points], "o-", label="floe operator")
    time_axes.plot(x, [p.bare_seconds for p in points], "s--", label="bare client, same templates")
    time_axes.set_xlabel(f"FloePlatforms (x {PROFILES} profiles)")
    time_axes.set_ylabel("seconds to converge")
    time_axes.legend()
    rss_axes.plot(x, [p.peak_rss / MB for p in points], "o-", color="tab:red")
    rss_axes.axhline(150, color="grey", linestyle=":", label="150 MB target")
    rss_axes.set_xlabel(f"FloePlatforms (x {PROFILES} profiles)")
    rss_axes.set_ylabel("operator peak RSS (MB)")
    rss_axes.legend()
    figure.suptitle("P9: floe operator on kube-apiserver (real control plane, kwok nodes)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def outcome(points: list[Point], plot: Path | None) -> Outcome:
    result = Outcome(measured=[], baseline=[], checks=[], notes=[])
    for point in points:
        result.measured.append(
            Figure(
                f"{point.platforms} FloePlatforms: {point.operator_seconds:.1f} s, "
                f"{point.requests_per_platform:.2f} requests each, peak RSS",
                point.peak_rss / MB,
                "MB",
            )
        )
        result.baseline.append(Figure(f"{point.platforms}: bare client", point.bare_seconds, "s"))
        result.notes.append(
            f"{point.platforms}: {point.per_platform_ms:.0f} ms per FloePlatform (bare "
            f"{1000 * point.bare_seconds / point.platforms:.0f} ms); requests: {point.breakdown}."
        )
    reference = next((p for p in points if p.platforms == 100), points[0])
    largest = points[-1]
    growth = largest.per_platform_ms / reference.per_platform_ms
    result.checks.append(
        Check(
            f"time per FloePlatform at {largest.platforms} <= {LINEAR_SLACK}x that at {reference.platforms}",
            f"{growth:.2f}x",
            growth <= LINEAR_SLACK,
        )
    )
    worst = max(points, key=lambda p: p.peak_rss)
    result.checks.append(
        Check(
            "RSS <= 150 MB", f"{worst.peak_rss / MB:.0f} MB at {worst.platforms}", worst.peak_rss <= 150 * MB
        )
    )
    if plot is not None:
        result.notes.append(f"Plot: {plot.relative_to(ROOT) if plot.is_relative_to(ROOT) else plot}.")
    return result


def run() -> Outcome:
    sizes = counts()
    with tempfile.TemporaryDirectory(prefix="floe-bench-p9-") as directory:
        workdir = Path(directory)
        with real_control_plane(workdir) as environment:  # Unavailable without Go: reported as such
            points = measure_curve(environment, sizes, workdir)
    plot = PLOT if sizes == COUNTS else Path(tempfile.gettempdir()) / "floe-p9-scale-curve.png"
    write_plot(points, plot)
    return outcome(points, plot)
