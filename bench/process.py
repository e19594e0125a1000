"""Run a process and measure it: wall time, the kernel's peak RSS, and an optional memory limit.

The peak comes from ``wait4``'s ``ru_maxrss`` (what ``/usr/bin/time -v`` prints), which the kernel tracks
exactly, so a short spike between two samples is not missed. Sampling with psutil is used only to stand in
for a pod's memory limit: when RSS crosses it the process is killed, as the OOM killer would kill the pod.
(A cgroup also counts page cache, which the kernel reclaims before it kills; RSS is the part it cannot.)
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped]  # no stubs in the lock

SAMPLE_SECONDS = 0.02


@dataclass(frozen=True)
class ProcessRun:
    returncode: int
    seconds: float
    peak_rss_bytes: int
    oom_killed: bool
    peak_dir_bytes: int
    stdout: str
    stderr: str


class _Sampler(threading.Thread):
    """Polls the process's RSS (killing it above ``limit``) and the size of ``watched_dir``."""

    def __init__(self, pid: int, limit: int | None, watched_dir: Path | None) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.limit = limit
        self.watched_dir = watched_dir
        self.killed = False
        self.peak_dir_bytes = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_SECONDS):
            try:
                rss = self.process.memory_info().rss
            except psutil.Error:
                return
            if self.limit is not None and rss > self.limit:
                self.killed = True
                self.process.kill()
                return
            if self.watched_dir is not None:
                self.peak_dir_bytes = max(self.peak_dir_bytes, directory_bytes(self.watched_dir))


def directory_bytes(directory: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue  # DuckDB deletes spill files while we walk
    return total


def run_measured(
    command: Sequence[str],
    env: Mapping[str, str],
    memory_limit_bytes: int | None = None,
    watched_dir: Path | None = None,
    cwd: Path | None = None,
) -> ProcessRun:
    """Run ``command`` to the end; kill it if its RSS passes ``memory_limit_bytes``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=dict(env), stdout=out, stderr=err, cwd=cwd)
        sampler = _Sampler(process.pid, memory_limit_bytes, watched_dir)
        sampler.start()
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen.wait
        sampler.done.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        return ProcessRun(
            returncode=process.returncode,
            seconds=seconds,
            peak_rss_bytes=usage.ru_maxrss * 1024,
            oom_killed=sampler.killed,
            peak_dir_bytes=sampler.peak_dir_bytes,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


class TreeMemory(threading.Thread):
    """Peak RSS of a long-running process and its children, sampled while it runs (e.g. the operator)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak_bytes = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_SECONDS * 5):
            try:
                members = [self.process, *self.process.children(recursive=True)]
                rss = sum(member.memory_info().rss for member in members)
            except psutil.Error:
                return
            self.peak_bytes = max(self.peak_bytes, rss)

    def stop(self) -> int:
        self.done.set()
        self.join()
        return self.peak_bytes
