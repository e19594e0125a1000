"""`python -m bench [P1 P4 ...]`: run benchmarks (all by default), print the table, write bench/results/."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.core import Result, run_benchmark, to_markdown, write_results
from bench.registry import BENCHMARKS

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    known = [benchmark.key for benchmark in BENCHMARKS]
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("keys", nargs="*", metavar="KEY", help=f"benchmarks to run, of {', '.join(known)}")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where latest.json and latest.md go")
    arguments = parser.parse_args(argv)
    wanted = [key.upper() for key in arguments.keys] or known
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(known)}")
    results: list[Result] = []
    for benchmark in BENCHMARKS:
        if benchmark.key in wanted:
            print(f"{benchmark.key}: {benchmark.title} ...", file=sys.stderr, flush=True)
            results.append(run_benchmark(benchmark))
            print(f"{benchmark.key}: {results[-1].status} in {results[-1].seconds:.0f} s", file=sys.stderr)
    json_path, markdown_path = write_results(results, arguments.results)
    print(to_markdown(results))
    print(f"written: {json_path}, {markdown_path}", file=sys.stderr)
    return 1 if any(result.status == "failed" for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
