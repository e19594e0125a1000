"""The `make bench` harness reports every outcome, including broken and unavailable benchmarks (pure Python;
the benchmarks themselves run only in `make bench`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.core import (
    Benchmark,
    Check,
    Figure,
    Outcome,
    Unavailable,
    run_benchmark,
    to_markdown,
    write_results,
)
from bench.duckdb_worker import DIM_ROW_BYTES, EVENT_ROW_BYTES
from bench.p2_latency import percentile
from bench.p4_duckdb import data_shape, profile_env
from floe_platform.config.quantity import parse_duckdb_size


def _outcome(met: bool) -> Outcome:
    return Outcome([Figure("t", 1.0, "s")], [Figure("floor", 0.5, "s")], [Check("t <= 2 s", "1 s", met)])


def _raise(error: Exception) -> Outcome:
    raise error


def test_status_follows_the_checks_and_errors_are_reported_not_hidden() -> None:
    results = [
        run_benchmark(Benchmark("A", "met", "-", lambda: _outcome(True))),
        run_benchmark(Benchmark("B", "missed", "-", lambda: _outcome(False))),
        run_benchmark(Benchmark("C", "missing piece", "-", lambda: _raise(Unavailable("no operator")))),
        run_benchmark(Benchmark("D", "broken", "-", lambda: _raise(RuntimeError("boom")))),
    ]
    assert [result.status for result in results] == ["met", "not met", "unavailable", "failed"]
    table = to_markdown(results)
    assert "| C | missing piece |" in table
    assert "no operator" in table
    assert "RuntimeError: boom" in table


def test_results_are_written_as_json_and_markdown(tmp_path: Path) -> None:
    results = [run_benchmark(Benchmark("A", "met", "-", lambda: _outcome(True)))]
    json_path, markdown_path = write_results(results, tmp_path)
    assert json.loads(json_path.read_text())["results"][0]["status"] == "met"
    assert "**met**" in markdown_path.read_text()


def test_unknown_benchmark_key_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["P99"])
    assert "unknown benchmark P99" in capsys.readouterr().err


def test_nearest_rank_percentiles() -> None:
    values = [float(value) for value in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99)) == (50, 95, 99)


def test_p4_data_is_at_least_three_times_the_derived_duckdb_limit() -> None:
    memory_limit, env = profile_env()
    duckdb_bytes = parse_duckdb_size(env["DUCKDB_MEMORY_LIMIT"])
    rows, keys = data_shape(duckdb_bytes)
    assert duckdb_bytes < memory_limit
    assert rows * EVENT_ROW_BYTES + keys * DIM_ROW_BYTES >= 3 * duckdb_bytes
