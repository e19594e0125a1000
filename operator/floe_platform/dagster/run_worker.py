"""``floe-run-worker -- dagster api execute_run ...``: run the real run worker as a child, record its usage.

The run pod's container command is this wrapper (the launcher sets ``command``; dagster-k8s passes the
run worker's own command line as ``args``). It starts the child, forwards SIGTERM/SIGINT to it, waits,
reads what the run used and writes it as run tags through the DagsterInstance the child was given, then
exits with the child's exit code (``128 + N`` when the child was killed by signal N, as a shell reports).

Where the usage comes from (``--usage-source``, default ``auto``):

- ``cgroup``: the container's own cgroup at ``/sys/fs/cgroup`` (v2 or v1). It covers every process of the
  container, so the whole run; the peak is the container's lifetime peak, which starts with this wrapper.
- ``process-tree``: the child and its descendants, sampled from ``/proc`` every second (plus the kernel's
  per-process high-water marks and ``wait4``'s figures); used where the run has no cgroup of its own.
- ``auto``: ``cgroup`` inside Kubernetes (``KUBERNETES_SERVICE_HOST`` is set, so the container is this
  run's pod) when one is readable, else ``process-tree``.

While the child runs, only the standard library and ``floe_platform.usage`` are loaded (about 13 MiB, no
Dagster); Dagster is imported after the child has exited and the figures have been read.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from floe_platform.usage.cgroup import DEFAULT_ROOT, CgroupPaths, container_cgroup, read_cgroup
from floe_platform.usage.process_tree import DEFAULT_INTERVAL, TreeSampler
from floe_platform.usage.tags import RunUsage, usage_tags

SOURCES = ("auto", "cgroup", "process-tree")
RUN_WORKER_COMMAND = ["floe-run-worker", "--"]
"""The run container's ``command`` the launcher sets; dagster-k8s's ``args`` (the run worker) follow."""
_API_COMMANDS = ("execute_run", "resume_run")
_NO_PEAK = "memory.peak missing (kernel < 5.19): current usage at exit"


@dataclass(frozen=True)
class Measured:
    exit_code: int
    usage: RunUsage


def choose_cgroup(source: str, root: Path = DEFAULT_ROOT) -> CgroupPaths | None:
    """The cgroup to read, or None for the process tree."""
    if source == "process-tree":
        return None
    found = container_cgroup(root)
    if source == "cgroup":
        if found is None:
            raise SystemExit(f"floe-run-worker: --usage-source cgroup, but no readable cgroup at {root}")
        return found
    return found if os.environ.get("KUBERNETES_SERVICE_HOST") else None


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def measure(
    command: Sequence[str], cgroup: CgroupPaths | None, interval: float = DEFAULT_INTERVAL
) -> Measured:
    """Run ``command`` to completion and measure it; signals to this process are passed on to it."""
    started = time.perf_counter()
    before = read_cgroup(cgroup) if cgroup else None
    child = subprocess.Popen(list(command))
    previous = {
        sig: signal.signal(sig, lambda number, _frame: child.send_signal(number))
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    sampler = None if cgroup else TreeSampler(child.pid, interval)
    if sampler:
        sampler.start()
    try:
        while True:
            try:
                _, status, rusage = os.wait4(child.pid, 0)
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
                continue
    finally:
        if sampler:
            sampler.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    child.returncode = _exit_code(status)
    wall = time.perf_counter() - started
    killed_by_kill = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    if cgroup and before:
        after = read_cgroup(cgroup)
        cpu = (
            after.cpu_seconds - before.cpu_seconds
            if after.cpu_seconds is not None and before.cpu_seconds is not None
            else None
        )
        usage = RunUsage(
            source=after.version,
            peak_memory_bytes=after.peak_memory_bytes,
            cpu_seconds=cpu,
            wall_seconds=wall,
            oom_killed=after.oom_kills > before.oom_kills,
            exit_code=child.returncode,
            note="memory.peak missing (kernel < 5.19): current usage at exit"
            if after.peak_is_current
            else None,
        )
    else:
        assert sampler is not None
        usage = RunUsage(
            source="process-tree",
            peak_memory_bytes=max(sampler.peak_bytes, rusage.ru_maxrss * 1024),
            cpu_seconds=rusage.ru_utime + rusage.ru_stime,
            wall_seconds=wall,
            exit_code=child.returncode,
            # Without a cgroup of its own there is no OOM counter to read; a SIGKILL alone is not an OOM.
            note="killed by SIGKILL" if killed_by_kill else None,
        )
    return Measured(child.returncode, usage)


def run_identity(command: Sequence[str]) -> tuple[str, Any] | None:
    """The run id and instance ref in a ``dagster api execute_run|resume_run <args>`` command line."""
    for index, word in enumerate(command[:-1]):
        if word in _API_COMMANDS and index > 0 and command[index - 1] == "api":
            from dagster._grpc.types import ExecuteRunArgs, ResumeRunArgs
            from dagster._serdes import deserialize_value

            args: Any = deserialize_value(command[index + 1], (ExecuteRunArgs, ResumeRunArgs))
            return str(args.run_id), args.instance_ref
    return None


def write_usage(run_id: str, instance_ref: Any, usage: RunUsage) -> None:
    """Add the usage tags to the run, through the instance the run worker used (else DAGSTER_HOME's)."""
    from dagster import DagsterInstance

    instance = DagsterInstance.from_ref(instance_ref) if instance_ref is not None else DagsterInstance.get()
    with instance:
        instance.add_run_tags(run_id, usage_tags(usage))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="floe-run-worker",
        description="Run a Dagster run worker as a child and record what it used in the run's tags.",
    )
    parser.add_argument(
        "--usage-source", choices=SOURCES, default=os.environ.get("FLOE_USAGE_SOURCE", "auto")
    )
    parser.add_argument("--cgroup-root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--run-id", help="run to tag (default: read from the dagster api command line)")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL, help="process-tree sampling, s")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the run worker's command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the run worker's command after --, e.g. -- dagster api execute_run ...")
    try:
        measured = measure(command, choose_cgroup(args.usage_source, args.cgroup_root), args.interval)
    except OSError as error:  # the run worker could not start: 127/126, as a shell would exit
        print(f"floe-run-worker: cannot start {command[0]!r}: {error.strerror or error}", file=sys.stderr)
        return 127 if isinstance(error, FileNotFoundError) else 126
    try:
        identity = run_identity(command)
        if args.run_id:
            identity = (args.run_id, identity[1] if identity else None)
        if identity is None:
            print(
                "floe-run-worker: no run id in the command and no --run-id; usage not recorded",
                file=sys.stderr,
            )
        else:
            write_usage(identity[0], identity[1], measured.usage)
    except Exception as error:  # recording must never change the run's outcome
        print(f"floe-run-worker: could not record usage: {type(error).__name__}: {error}", file=sys.stderr)
    return measured.exit_code


if __name__ == "__main__":
    sys.exit(main())
