"""Every benchmark, in table order. Each module is imported only when its benchmark runs, so a missing piece
(say, the operator) makes that one benchmark unavailable instead of breaking the others."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from bench.core import Benchmark, Outcome


def _lazy(module: str) -> Callable[[], Outcome]:
    def run() -> Outcome:
        outcome: Outcome = importlib.import_module(f"bench.{module}").run()
        return outcome

    return run


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        "P1",
        "Operator convergence: 200 FloePlatforms x 5 profiles (emulator and kube-apiserver)",
        "time ratio vs bare client <= 1.5; operator RSS <= 150 MB",
        _lazy("p1_convergence"),
    ),
    Benchmark(
        "P2",
        "Reconcile latency: PATCH profile -> PodTemplate, 100 changes (emulator and kube-apiserver)",
        "p95 <= 300 ms",
        _lazy("p2_latency"),
    ),
    Benchmark(
        "P3", "Launch overhead: ProfileK8sRunLauncher vs K8sRunLauncher", "ratio <= 1.10", _lazy("p3_launch")
    ),
    Benchmark(
        "P4",
        "DuckDB inside a 1Gi profile: out-of-core group-by + join",
        "finishes, peak RSS <= 1Gi, data >= 3x DUCKDB_MEMORY_LIMIT",
        _lazy("p4_duckdb"),
    ),
    Benchmark("P5", "helm template and the demo pipeline", "helm <= 2 s; demo <= 60 s", _lazy("p5_timing")),
    Benchmark(
        "P6",
        "DuckDB contention: 8 writer processes, one file, 800k rows",
        "every row arrives once",
        _lazy("p6_contention"),
    ),
    Benchmark(
        "P7",
        "floe-run-worker: what recording a run's usage costs the run",
        "workload ratio <= 1.02; sampling <= 1% of a core; RSS <= 32 MiB",
        _lazy("p7_run_worker"),
    ),
    Benchmark(
        "P8",
        "floe rightsize over 10,000 recorded runs",
        "end to end <= 10 s; read + report <= 1.5x Dagster's own read",
        _lazy("p8_rightsize_report"),
    ),
    Benchmark(
        "P9",
        "Operator scale curve on kube-apiserver: 10-1000 FloePlatforms x 5 profiles",
        "time per FloePlatform at 1000 <= 1.5x that at 100; RSS <= 150 MB",
        _lazy("p9_scale"),
    ),
)
