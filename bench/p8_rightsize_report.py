"""P8: `floe rightsize` over 10,000 recorded runs.

A fresh sqlite DAGSTER_HOME gets 10,000 runs of 50 jobs on 5 profiles, each tagged as the launcher and
`floe-run-worker` tag a run (profile, requests and limits, peak memory, CPU and wall time, some OOM
kills). Measured: the whole command as a user runs it (`floe rightsize --format json`, a new process:
interpreter, imports, reading the instance, the report), the in-process read + report, and the pure
statistics alone; baseline: Dagster's own read of the same runs (``get_run_records``), which the report
cannot beat.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.core import Check, Figure, Outcome

RUNS = 10_000
JOBS = 50
PROFILES = {"xs": "1Gi", "s": "2Gi", "m": "4Gi", "l": "8Gi", "xl": "16Gi"}
PLATFORM = "infrastructure:\n  resource_profiles:\n" + "".join(
    f"    {name}:\n      requests: {{cpu: 500m, memory: 512Mi}}\n"
    f"      limits: {{cpu: '2', memory: {memory}}}\n"
    for name, memory in PROFILES.items()
)
TARGET_SECONDS = 10.0
TARGET_RATIO = 1.5


def _fill(home: Path) -> float:
    """Write the runs; returns seconds taken (not part of the measurement).

    The instance creates its own schema; the rows go in through sqlite3 in one transaction, with each run
    body serialized by Dagster itself, because 10,000 ``add_run`` calls commit 10,000 times (minutes on a
    loaded machine) and the benchmark is about reading.
    """
    import datetime as dt
    import sqlite3

    import dagster as dg
    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
    from dagster._serdes import serialize_value

    rng = random.Random(7)
    started = time.perf_counter()
    names = list(PROFILES)
    with dg.DagsterInstance.from_config(str(home)):
        pass
    now = dt.datetime.now(tz=dt.UTC).replace(tzinfo=None)
    run_rows: list[tuple[str, ...]] = []
    tag_rows: list[tuple[str, str, str]] = []
    for index in range(RUNS):
        job = index % JOBS
        profile = names[job % len(names)]
        typical = (job + 1) * 80 * 1024**2
        oom = rng.random() < 0.01
        tags = {
            "floe/resource-profile": profile,
            "floe/memory-limit": PROFILES[profile],
            "floe/cpu-request": "500m",
            "floe/cpu-limit": "2",
            "floe/usage-source": "cgroup-v2",
            "floe/peak-memory-bytes": str(int(typical * rng.uniform(0.7, 1.3))),
            "floe/cpu-seconds": f"{rng.uniform(10, 100):.3f}",
            "floe/wall-seconds": f"{rng.uniform(60, 200):.3f}",
        }
        if oom:
            tags["floe/oom-killed"] = "true"
        status = DagsterRunStatus.FAILURE if oom else DagsterRunStatus.SUCCESS
        run_id = f"{index:08d}-0000-0000-0000-000000000000"
        run = DagsterRun(job_name=f"job_{job:02d}", run_id=run_id, tags=tags, status=status)
        created = str(now - dt.timedelta(seconds=RUNS - index))
        run_rows.append((run_id, run.job_name, status.value, serialize_value(run), created, created))
        tag_rows.extend((run_id, key, value) for key, value in tags.items())
    with sqlite3.connect(home / "history" / "runs.db") as db:
        db.executemany(
            "INSERT INTO runs (run_id, pipeline_name, status, run_body, create_timestamp, update_timestamp) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            run_rows,
        )
        db.executemany('INSERT INTO run_tags (run_id, "key", value) VALUES (?, ?, ?)', tag_rows)
    return time.perf_counter() - started


def _floe() -> str:
    return shutil.which("floe") or str(Path(sys.executable).parent / "floe")


def run() -> Outcome:
    from floe_platform import rightsize
    from floe_platform.config import load_platform_text
    from floe_platform.dagster.run_history import open_instance, read_runs

    with tempfile.TemporaryDirectory(prefix="floe-bench-p8-") as workdir:
        home = Path(workdir) / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        platform = Path(workdir) / "platform.yaml"
        platform.write_text(PLATFORM)
        fill_seconds = _fill(home)

        started = time.perf_counter()
        command = [
            _floe(),
            "rightsize",
            "--dagster-home",
            str(home),
            "--since",
            "30d",
            "--platform",
            str(platform),
            "--format",
            "json",
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        end_to_end = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"floe rightsize failed: {done.stderr.strip()[-400:]}")
        jobs = json.loads(done.stdout)["jobs"]

        profiles = rightsize.profiles_from_platform(load_platform_text(PLATFORM))
        with open_instance(str(home)) as instance:
            started = time.perf_counter()
            records = instance.get_run_records()
            dagster_read = time.perf_counter() - started
            started = time.perf_counter()
            runs = read_runs(instance, 30 * 86400)
            reports = rightsize.summarize(runs, profiles)
            rightsize.format_table(reports)
            in_process = time.perf_counter() - started
        started = time.perf_counter()
        rightsize.format_table(rightsize.summarize(runs, profiles))
        pure = time.perf_counter() - started
    if len(jobs) != JOBS or sum(job["runs"] for job in jobs) != RUNS or len(records) != RUNS:
        raise RuntimeError(f"expected {RUNS} runs of {JOBS} jobs, the report has {len(jobs)} jobs")
    return Outcome(
        measured=[
            Figure("floe rightsize (new process)", end_to_end, "s"),
            Figure("read + report in-process", in_process, "s"),
            Figure("statistics alone", pure * 1000, "ms"),
        ],
        baseline=[Figure("Dagster get_run_records", dagster_read, "s")],
        checks=[
            Check(
                f"end to end <= {TARGET_SECONDS:.0f} s", f"{end_to_end:.2f} s", end_to_end <= TARGET_SECONDS
            ),
            Check(
                f"read + report <= {TARGET_RATIO}x Dagster's read",
                f"{in_process / dagster_read:.2f}x",
                in_process <= TARGET_RATIO * dagster_read,
            ),
        ],
        notes=[
            f"{RUNS:,} runs, {JOBS} jobs, 5 profiles, sqlite instance (writing them took "
            f"{fill_seconds:.0f} s, not measured). End to end includes starting Python and "
            "importing Dagster, which dominates on a loaded machine (an empty instance costs most of it).",
        ],
    )
