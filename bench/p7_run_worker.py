"""P7: what `floe-run-worker` costs the run it wraps.

The same workload (a process that touches 512 MiB and spins 1.5 s of CPU, timing itself) runs directly and
under the wrapper, alternating, 5 times each; the wrapper uses the process-tree source (the dearer one: a
sampler thread every 0.2 s; the cgroup source reads two files). Measured: the workload's own wall time
with and without the wrapper (the cost *to the run*), the wrapper's own CPU time and RSS while the run is
going, and the time the wrapper adds after the run (starting up, importing Dagster, writing the tags
into a real sqlite instance).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.core import Check, Figure, Outcome, Unavailable

RUNS = 5
CGROUP_ROOT = Path("/sys/fs/cgroup")
NOOP = """
import json, resource, time
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall": 0.0, "cpu": usage.ru_utime + usage.ru_stime}))
"""
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


def _run(
    command: list[str], env: dict[str, str], procs: list[Path] | None = None
) -> tuple[dict[str, float], float, float, int]:
    """Workload figures, outer wall time, the outer process's CPU minus the workload's, its RSS mid-run.

    ``procs``: cgroup.procs files to put the process in first (as a pod's PID 1 is in its cgroup).
    """

    def enter() -> None:
        for path in procs or []:
            path.write_text(str(os.getpid()))

    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True, preexec_fn=enter)  # noqa: PLW1509 - no threads here
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


def _cgroup_mode_cost(wrapper: str, env: dict[str, str], workdir: Path, teardown: float) -> float | None:
    """The cgroup source's CPU per second of run (start subtracted), or None where no cgroup can be made."""
    with _cgroup_v1(workdir) as cgroup:
        if cgroup is None:
            return None
        root, procs = cgroup
        command = [wrapper, "--usage-source", "cgroup", "--cgroup-root", str(root), "--"]
        noop = [_run([*command, sys.executable, "-c", NOOP], env, procs)[2] for _ in range(3)]
        runs = [_run([*command, sys.executable, "-c", WORKLOAD], env, procs) for _ in range(3)]
    during = statistics.median(run[2] for run in runs) - teardown - statistics.median(noop)
    return max(0.0, during) / statistics.median(run[1] for run in runs)


@contextlib.contextmanager
def _cgroup_v1(workdir: Path) -> Iterator[tuple[Path, list[Path]] | None]:
    """A fresh v1 memory+cpuacct cgroup and a root laid out as a container sees it; None where impossible."""
    name = f"floe-bench-p7-{os.getpid()}"
    made = [CGROUP_ROOT / "memory" / name, CGROUP_ROOT / "cpuacct" / name]
    try:
        for directory in made:
            directory.mkdir()
    except OSError:
        for directory in made:
            if directory.exists():
                directory.rmdir()
        yield None
        return
    root = workdir / "cgroup-root"
    root.mkdir()
    (root / "memory").symlink_to(made[0])
    (root / "cpuacct").symlink_to(made[1])
    try:
        yield root, [directory / "cgroup.procs" for directory in made]
    finally:
        for directory in made:
            directory.rmdir()


def run() -> Outcome:
    wrapper = _wrapper()
    import dagster as dg
    from dagster._core.storage.dagster_run import DagsterRun

    with tempfile.TemporaryDirectory(prefix="floe-bench-p7-") as workdir:
        home = Path(workdir) / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {**os.environ, "DAGSTER_HOME": str(home)}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        direct_inner: list[float] = []
        measured_inner: list[float] = []
        direct_wall: list[float] = []
        recorded_wall: list[float] = []
        during_cpu: list[float] = []
        noop_cpu: list[float] = []
        measured_wall: list[float] = []
        full_cpu: list[float] = []
        own_rss: list[float] = []
        direct_teardown: list[float] = []
        workload = [sys.executable, "-c", WORKLOAD]
        measuring = [wrapper, "--usage-source", "process-tree", "--"]
        with dg.DagsterInstance.from_config(str(home)) as instance:
            for index in range(RUNS):
                run_id = f"bench-p7-{index:04d}-0000-0000-000000000000"
                instance.add_run(DagsterRun(job_name="bench_p7", run_id=run_id))
                inner, wall, teardown, _ = _run(workload, env)
                direct_teardown.append(teardown)
                direct_inner.append(inner["wall"])
                direct_wall.append(wall)
                # Without a run id the wrapper only measures (no Dagster import): its cost during the run.
                inner, wall, cpu, rss = _run([*measuring, *workload], env)
                measured_inner.append(inner["wall"])
                measured_wall.append(wall)
                during_cpu.append(cpu)
                own_rss.append(rss)
                noop_cpu.append(_run([*measuring, sys.executable, "-c", NOOP], env)[2])
                command = [wrapper, "--usage-source", "process-tree", "--run-id", run_id, "--", *workload]
                _, wall, cpu, _ = _run(command, env)
                recorded_wall.append(wall)
                full_cpu.append(cpu)
            recorded = instance.get_run_by_id("bench-p7-0000-0000-0000-000000000000")
            if recorded is None or "floe/peak-memory-bytes" not in recorded.tags:
                raise RuntimeError("floe-run-worker did not record the usage tags")
        cgroup_cost = _cgroup_mode_cost(wrapper, env, Path(workdir), statistics.median(direct_teardown))
    inner_direct, inner_wrapped = statistics.median(direct_inner), statistics.median(measured_inner)
    ratio = inner_wrapped / inner_direct
    added = statistics.median(w - d for w, d in zip(recorded_wall, direct_wall, strict=True))
    start_cpu = statistics.median(noop_cpu)
    # The workload's own CPU after it reports (freeing 512 MiB at exit) shows up in every outer figure:
    # measured on the direct runs, it is taken out of the wrapped ones.
    teardown = statistics.median(direct_teardown)
    sampling = max(0.0, statistics.median(during_cpu) - teardown - start_cpu) / statistics.median(
        measured_wall
    )
    cpu_full = statistics.median(full_cpu)
    rss_mib = statistics.median(own_rss) / 1024**2
    return Outcome(
        measured=[
            Figure("workload under the wrapper", inner_wrapped, "s"),
            Figure("ratio", ratio, "x"),
            Figure("process-tree sampling", sampling * 1000, "ms CPU per s of run"),
            *(
                [Figure("cgroup source", cgroup_cost * 1000, "ms CPU per s of run")]
                if cgroup_cost is not None
                else []
            ),
            Figure("wrapper start", start_cpu, "s CPU once"),
            Figure("wrapper RSS during the run", rss_mib, "MiB"),
            Figure("writing the tags after the run", cpu_full - start_cpu, "s CPU"),
            Figure("added after the run", added, "s"),
        ],
        baseline=[Figure("workload alone", inner_direct, "s")],
        checks=[
            Check("workload ratio <= 1.02", f"{ratio:.3f}x", ratio <= 1.02),
            Check("sampling <= 1% of a core", f"{sampling:.2%}", sampling <= 0.01),
            Check("wrapper RSS <= 32 MiB", f"{rss_mib:.0f} MiB", rss_mib <= 32),
        ],
        notes=[
            f"Median of {RUNS} alternating runs each; 1-minute load average {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} CPUs at the end. The workload (512 MiB touched, 1.5 s CPU) times itself, so "
            "the ratio is the cost to the run. The wrapper's start is measured around a child that does "
            "nothing; sampling is the rest of its CPU per second of run (process-tree source, 1 s interval; "
            "the cgroup source of a run pod has no sampler and blocks in wait4, measured in a fresh v1 "
            f"cgroup: {'yes' if cgroup_cost is not None else 'not possible here'}). Writing the tags means "
            "importing Dagster after the child has exited (the run's Dagster status is already final by "
            "then): it delays the pod's exit, not the run.",
        ],
    )
