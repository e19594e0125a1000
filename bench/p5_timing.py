"""P5: wall time of `helm template` on the chart and of `make demo`'s pipeline, each with a same-run floor.

helm: the median of 5 `helm template` runs of charts/floe-platform (CRDs included), against a one-ConfigMap
chart rendered by the same binary (what helm costs before our templates). Demo: `python -m floe_demo.run`
in a fresh work directory (cold: new DuckDB file, new DAGSTER_HOME), against a process that only imports
the code location (`floe_demo.definitions`), which every run pays.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.core import Check, Figure, Outcome, Unavailable
from testkit.helm import WITHOUT_CLUSTER

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "floe-platform"
HELM_RUNS = 5
DEMO_TIMEOUT = 600
MINIMAL_CHART = {
    "Chart.yaml": "apiVersion: v2\nname: floor\nversion: 0.1.0\n",
    "templates/configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n",
}


def _helm() -> str:
    found = shutil.which("helm") or str(ROOT / ".tools" / "bin" / "helm")
    if not Path(found).exists():
        raise Unavailable("helm not found on PATH or in .tools/bin (run `make install`)")
    return found


def _timed(command: Sequence[str], cwd: Path = ROOT, timeout: float = 120) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed: {result.stderr.strip()[-400:]}")
    return seconds


def helm_seconds(workdir: Path) -> tuple[float, float]:
    """Median seconds of `helm template` on our chart and on the one-ConfigMap chart."""
    helm = _helm()
    if not (CHART / "Chart.yaml").exists():
        raise Unavailable("charts/floe-platform does not exist yet")
    floor_chart = workdir / "floor"
    for name, text in MINIMAL_CHART.items():
        (floor_chart / name).parent.mkdir(parents=True, exist_ok=True)
        (floor_chart / name).write_text(text)
    ours = [
        _timed([helm, "template", "floe", str(CHART), "--include-crds", *WITHOUT_CLUSTER])
        for _ in range(HELM_RUNS)
    ]
    floor = [_timed([helm, "template", "floe", str(floor_chart)]) for _ in range(HELM_RUNS)]
    return statistics.median(ours), statistics.median(floor)


def demo_seconds(workdir: Path) -> tuple[float, float]:
    """Seconds of the demo pipeline (cold) and of importing its code location."""
    try:
        import floe_demo.run  # type: ignore[import-untyped]  # noqa: F401
    except ImportError as error:
        raise Unavailable(f"the demo code location is not importable: {error}") from None
    demo = _timed(
        [sys.executable, "-m", "floe_demo.run", "--workdir", str(workdir / "demo")], timeout=DEMO_TIMEOUT
    )
    imports = _timed([sys.executable, "-c", "import floe_demo.definitions"])
    return demo, imports


def run() -> Outcome:
    with tempfile.TemporaryDirectory(prefix="floe-bench-p5-") as workdir:
        helm, helm_floor = helm_seconds(Path(workdir))
        demo, imports = demo_seconds(Path(workdir))
    return Outcome(
        measured=[Figure("helm template", helm, "s"), Figure("demo pipeline", demo, "s")],
        baseline=[
            Figure("helm, one-ConfigMap chart", helm_floor, "s"),
            Figure("import definitions", imports, "s"),
        ],
        checks=[
            Check("helm <= 2 s", f"{helm:.2f} s", helm <= 2),
            Check("demo <= 60 s", f"{demo:.1f} s", demo <= 60),
        ],
        notes=[
            f"helm: median of {HELM_RUNS} runs each; ours is {helm / helm_floor:.1f}x the one-ConfigMap "
            "floor.",
            "Demo: `python -m floe_demo.run` at scale 1 in a fresh work directory (includes interpreter "
            f"start, imports and dbt's start); {demo / imports:.1f}x the bare import of the code location.",
        ],
    )
