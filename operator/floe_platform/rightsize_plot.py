"""``floe rightsize --plot FILE.png``: one bar per job, its peak memory against its limit (matplotlib, Agg).

Each bar is the job's max peak; a black tick marks its memory limit and a dot its p95 peak. Colour tells
the verdict: near OOM (red), over-provisioned (blue), fine (grey). Needs the ``report`` extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from floe_platform.rightsize import GI, JobReport, RightsizeError, format_quantity, round_up

COLOURS = {"near-oom": "#d62728", "over-provisioned": "#1f77b4", "ok": "#9e9e9e", "no usage": "#e0e0e0"}
LABELS = {
    "near-oom": "near OOM (max peak >= 90% of limit, or OOM-killed)",
    "over-provisioned": "over-provisioned (p95 + headroom <= 50% of limit)",
    "ok": "fits",
    "no usage": "no usage recorded",
}


def write_plot(reports: Sequence[JobReport], path: Path, label_width: int = 40) -> None:
    """Write the chart of ``reports`` to ``path`` (PNG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        raise RightsizeError(
            "--plot needs matplotlib: install floe-platform[report] (pip install 'floe-platform[report]')"
        ) from None
    labels = [r.label if len(r.label) <= label_width else r.label[: label_width - 1] + "…" for r in reports]
    positions = list(range(len(reports)))
    height = max(3.0, 0.5 * len(reports) + 2.0)
    figure, axes = plt.subplots(figsize=(10, height), dpi=100)
    peaks = [(r.peak_max_bytes or 0) / GI for r in reports]
    axes.barh(positions, peaks, color=[COLOURS[r.verdict] for r in reports], height=0.6)
    for y, report in zip(positions, reports, strict=True):
        limit = (report.memory_limit_bytes or 0) / GI
        if limit:
            axes.plot([limit, limit], [y - 0.4, y + 0.4], color="black", linewidth=2.5)
        if report.peak_p95_bytes:
            axes.plot([report.peak_p95_bytes / GI], [y], "o", color="black", markersize=4)
        axes.annotate(
            f"  max {(report.peak_max_bytes or 0) / GI:.2f} / limit {limit:.3g} Gi → {_short(report)}",
            (max(limit, (report.peak_max_bytes or 0) / GI), y),
            va="center",
            fontsize=7.5,
            color="#333333",
        )
    axes.set_yticks(positions, labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("memory (GiB): bar = max peak, dot = p95 peak, tick = limit")
    axes.set_title("floe rightsize: peak memory against the profile's limit, per job")
    right = max([*(p for p in peaks), *((r.memory_limit_bytes or 0) / GI for r in reports), 0.1])
    axes.set_xlim(0, right * 1.9)
    used = [verdict for verdict in COLOURS if any(r.verdict == verdict for r in reports)]
    axes.legend(
        handles=[Patch(color=COLOURS[v], label=LABELS[v]) for v in used],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.18),
        ncol=max(1, len(used)),
        fontsize=8,
        frameon=False,
    )
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    try:
        figure.savefig(path, format="png")
    except OSError as error:
        raise RightsizeError(f"--plot: cannot write {path}: {error.strerror or error}") from None
    finally:
        plt.close(figure)


def _short(report: JobReport) -> str:
    suggestion = report.suggestion
    if suggestion.profile is None and suggestion.needed_bytes is not None:
        return f"none fits: add >= {format_quantity(round_up(suggestion.needed_bytes))}"
    return suggestion.text
