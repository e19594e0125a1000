"""Peak memory of a process tree where the run has no cgroup of its own (local runs, `make demo`).

The tree is a root process and its descendants, found through ``/proc/<pid>/task/<tid>/children``. A
sampler thread sums their resident set sizes every ``interval`` seconds (default 1 s); the peak is the
larger of the highest sum seen and the highest single-process high-water mark (``VmHWM``, which the
kernel keeps per process, so a spike shorter than the interval in any one process is still caught). The
sum of peaks taken at different times would overstate, so it is not used.

Readers take the ``/proc`` root as an argument so they can be tested on recorded files.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from pathlib import Path

from floe_platform.usage.tags import RunUsage

PROC = Path("/proc")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
DEFAULT_INTERVAL = 1.0
"""Seconds between samples: about 0.4 % of a core at 1 s (P7); spikes of one process are caught anyway."""


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii")
    except OSError:
        return None


def children(pid: int, proc: Path = PROC) -> list[int]:
    """The direct children of ``pid`` (every thread's list; empty once it has exited)."""
    found: list[int] = []
    tasks = proc / str(pid) / "task"
    try:
        task_ids = [entry.name for entry in tasks.iterdir()]
    except OSError:
        return found
    for tid in task_ids:
        text = _read(tasks / tid / "children")
        found.extend(int(part) for part in (text or "").split())
    return found


def tree(pid: int, proc: Path = PROC) -> list[int]:
    """``pid`` and every descendant still alive."""
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        queue.extend(children(current, proc))
    return pids


def status_kib(pid: int, field: str, proc: Path = PROC) -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` such as ``VmRSS`` or ``VmHWM``, in KiB."""
    for line in (_read(proc / str(pid) / "status") or "").splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None


def rss_bytes(pid: int, proc: Path = PROC) -> int:
    """Resident set size of one process (0 once it has exited)."""
    statm = (_read(proc / str(pid) / "statm") or "").split()
    return int(statm[1]) * PAGE_SIZE if len(statm) > 1 else 0


def reset_peak(pid: int | str = "self", proc: Path = PROC) -> bool:
    """Reset the process's ``VmHWM`` to its current RSS (``clear_refs`` 5, Linux >= 4.0); False if not."""
    try:
        (proc / str(pid) / "clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


class TreeSampler:
    """Samples a process tree's memory on a daemon thread between ``start()`` and ``stop()``."""

    def __init__(self, pid: int, interval: float = DEFAULT_INTERVAL, proc: Path = PROC) -> None:
        self.pid = pid
        self.interval = interval
        self.proc = proc
        self.peak_sum_bytes = 0
        self.peak_single_bytes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="floe-usage-sampler", daemon=True)

    def sample(self) -> None:
        """One sample: the tree's summed RSS and each member's high-water mark."""
        total = 0
        for member in tree(self.pid, self.proc):
            total += rss_bytes(member, self.proc)
            hwm = status_kib(member, "VmHWM", self.proc)
            if hwm is not None:
                self.peak_single_bytes = max(self.peak_single_bytes, hwm * 1024)
        self.peak_sum_bytes = max(self.peak_sum_bytes, total)
        self.samples += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling (after one last sample, taken by the caller while the tree still exists)."""
        self._stop.set()
        self._thread.join()

    @property
    def peak_bytes(self) -> int:
        return max(self.peak_sum_bytes, self.peak_single_bytes)


IN_PROCESS_INTERVAL = 0.2
"""Local in-process runs last seconds and start short-lived children (dbt): sample them more often."""


class InProcessMeasurement:
    """Measures a run executed inside this process (``dg.materialize``, `make demo`), as a context manager.

    Resets this process's high-water mark on entry, samples this process and its children while the run
    executes, and on exit holds the ``RunUsage``: CPU from ``getrusage`` (this process, all threads, plus
    children reaped meanwhile), wall time, and the tree's peak as ``TreeSampler`` defines it.
    """

    def __init__(self, interval: float = IN_PROCESS_INTERVAL, proc: Path = PROC) -> None:
        self.interval = interval
        self.proc = proc
        self.usage: RunUsage | None = None

    def __enter__(self) -> InProcessMeasurement:
        reset_peak("self", self.proc)
        self._sampler = TreeSampler(os.getpid(), self.interval, self.proc)
        self._cpu_before = _cpu_seconds()
        self._started = time.perf_counter()
        self._sampler.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._sampler.sample()
        self._sampler.stop()
        self.usage = RunUsage(
            source="process-tree",
            peak_memory_bytes=self._sampler.peak_bytes,
            cpu_seconds=_cpu_seconds() - self._cpu_before,
            wall_seconds=time.perf_counter() - self._started,
        )


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
