"""P7: what `floe-run-worker` costs the run it wraps.

The same workload (a process that touches 512 MiB and spins 1.5 s of CPU, timing itself) runs directly and
under the wrapper, alternating, 5 times each; the wrapper uses the process-tree source (the dearer one: a
sampler thread every 0.2 s; the cgroup source reads two files). Measured: the workload's own wall time
with and without the wrapper (the cost *to the run*), the wrapper's own CPU time and RSS while the run is
going, and the time the wrapper adds after the run (starting up, importing Dagster, writing the tags
into a real sqlite instance).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.core import Check, Figure, Outcome, Unavailable

RUNS = 5
WORKLOAD = """
import json, resource, time
started = time.perf_counter()
block = bytearray(512 * 1024 * 1024)
for offset in range(0, len(block), 4096):
    block[offset] = 1
deadline = time.process_time() + 1.5
while time.process_time() < deadline:
    pass
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall": time.perf_counter() - started, "cpu": usage.ru_utime + usage.ru_stime}))
"""


def _wrapper() -> str:
    found = shutil.which("floe-run-worker") or str(Path(sys.executable).parent / "floe-run-worker")
    if not Path(found).exists():
        raise Unavailable("floe-run-worker is not installed (run `make install`)")
    return found


def _status_kib(pid: int, field: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith(f"{field}:")), 0)


def _run(command: list[str], env: dict[str, str]) -> tuple[dict[str, float], float, float, int]:
    """Workload figures, outer wall time, the outer process's CPU minus the workload's, its RSS mid-run."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    time.sleep(0.8)
    rss_kib = _status_kib(process.pid, "VmRSS")
    _, status, rusage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    assert process.stdout is not None
    inner = json.loads(process.stdout.read().strip().splitlines()[-1])
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command[0]} exited {os.waitstatus_to_exitcode(status)}")
    total_cpu = rusage.ru_utime + rusage.ru_stime
    return inner, wall, total_cpu - inner["cpu"], rss_kib * 1024


def run() -> Outcome:
    wrapper = _wrapper()
    from dagster._core.storage.dagster_run import DagsterRun

    import dagster as dg

    with tempfile.TemporaryDirectory(prefix="floe-bench-p7-") as workdir:
        home = Path(workdir) / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {**os.environ, "DAGSTER_HOME": str(home)}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        direct_inner: list[float] = []
        wrapped_inner: list[float] = []
        direct_wall: list[float] = []
        wrapped_wall: list[float] = []
        during_cpu: list[float] = []
        full_cpu: list[float] = []
        own_rss: list[float] = []
        with dg.DagsterInstance.from_config(str(home)) as instance:
            for index in range(RUNS):
                run_id = f"bench-p7-{index:04d}-0000-0000-000000000000"
                instance.add_run(DagsterRun(job_name="bench_p7", run_id=run_id))
                workload = [sys.executable, "-c", WORKLOAD]
                inner, wall, _, _ = _run(workload, env)
                direct_inner.append(inner["wall"])
                direct_wall.append(wall)
                # Without a run id the wrapper only measures (no Dagster import): its cost during the run.
                inner, _, cpu, rss = _run([wrapper, "--usage-source", "process-tree", "--", *workload], env)
                wrapped_inner.append(inner["wall"])
                during_cpu.append(cpu)
                own_rss.append(rss)
                command = [wrapper, "--usage-source", "process-tree", "--run-id", run_id, "--", *workload]
                inner, wall, cpu, _ = _run(command, env)
                wrapped_inner.append(inner["wall"])
                wrapped_wall.append(wall)
                full_cpu.append(cpu)
            recorded = instance.get_run_by_id("bench-p7-0000-0000-0000-000000000000")
            if recorded is None or "floe/peak-memory-bytes" not in recorded.tags:
                raise RuntimeError("floe-run-worker did not record the usage tags")
    inner_direct, inner_wrapped = statistics.median(direct_inner), statistics.median(wrapped_inner)
    ratio = inner_wrapped / inner_direct
    added = statistics.median(w - d for w, d in zip(wrapped_wall, direct_wall, strict=True))
    cpu_during, cpu_full = statistics.median(during_cpu), statistics.median(full_cpu)
    rss_mib = statistics.median(own_rss) / 1024**2
    share = cpu_during / 1.5
    return Outcome(
        measured=[
            Figure("workload under wrapper", inner_wrapped, "s"),
            Figure("ratio", ratio, "x"),
            Figure("wrapper CPU while the run goes (incl. its start)", cpu_during, "s"),
            Figure("wrapper CPU incl. writing the tags", cpu_full, "s"),
            Figure("wrapper RSS during the run", rss_mib, "MiB"),
            Figure("added after the run", added, "s"),
        ],
        baseline=[Figure("workload alone", inner_direct, "s")],
        checks=[
            Check("workload ratio <= 1.02", f"{ratio:.3f}x", ratio <= 1.02),
            Check("wrapper CPU during the run <= 5% of the run's", f"{share:.1%}", share <= 0.05),
            Check("wrapper RSS <= 32 MiB", f"{rss_mib:.0f} MiB", rss_mib <= 32),
        ],
        notes=[
            f"Median of {RUNS} alternating runs each. The workload times itself, so the ratio is the cost to "
            "the run; the wrapper's CPU while the run goes is its own start (Python, ~13 MiB imports) plus "
            "the 0.2 s sampler; the time added after the run is importing Dagster after the child has "
            "exited, to write the tags (the run's Dagster status is already final by then).",
        ],
    )
