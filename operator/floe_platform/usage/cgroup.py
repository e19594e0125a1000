"""Readers of the memory and CPU a cgroup has used, for cgroup v2 and v1; pure functions over a root path.

A container's own cgroup is mounted at ``/sys/fs/cgroup`` (v2: one unified directory; v1: one directory
per controller, ``memory/`` and ``cpuacct/`` or ``cpu,cpuacct/``), and it covers every process of the
container, so in a run pod it is the whole run: the run worker, the step processes and dbt.

- Peak memory: v2 ``memory.peak`` (Linux >= 5.19; older kernels have only ``memory.current``, which is
  then used as a lower bound and flagged); v1 ``memory.max_usage_in_bytes``.
- CPU time: v2 ``cpu.stat`` ``usage_usec``; v1 ``cpuacct.usage`` (nanoseconds).
- OOM kills: v2 ``memory.events`` ``oom_kill``; v1 ``memory.oom_control`` ``oom_kill``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CgroupVersion = Literal["cgroup-v2", "cgroup-v1"]
DEFAULT_ROOT = Path("/sys/fs/cgroup")
_UNLIMITED_V1 = 1 << 62  # v1 reports "no limit" as a huge page-aligned number near 2**63


@dataclass(frozen=True)
class CgroupPaths:
    """Where one cgroup's files are: v2 has one directory, v1 one per controller."""

    version: CgroupVersion
    memory: Path
    cpu: Path


@dataclass(frozen=True)
class CgroupSample:
    """One reading of a cgroup's counters."""

    version: CgroupVersion
    peak_memory_bytes: int | None
    peak_is_current: bool
    """True where the kernel has no peak counter and ``peak_memory_bytes`` is the current usage."""
    cpu_seconds: float | None
    oom_kills: int
    memory_limit_bytes: int | None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (FileNotFoundError, PermissionError, NotADirectoryError, ProcessLookupError, OSError):
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    if text is None or text == "max":
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def _read_keyed(path: Path) -> dict[str, int]:
    """A flat-keyed file such as ``cpu.stat`` or ``memory.events``: ``name value`` per line."""
    values: dict[str, int] = {}
    for line in (_read_text(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


def container_cgroup(root: Path = DEFAULT_ROOT) -> CgroupPaths | None:
    """The cgroup mounted at ``root`` (a container's own), or None where no readable one is there."""
    if (root / "cgroup.controllers").exists() and (root / "memory.current").exists():
        return CgroupPaths("cgroup-v2", root, root)
    return v1_paths(root / "memory", root)


def v1_paths(memory_dir: Path, hierarchy_root: Path) -> CgroupPaths | None:
    """The v1 memory directory and the cpuacct directory at the same relative place, if both are there."""
    if not (memory_dir / "memory.max_usage_in_bytes").exists():
        return None
    relative = memory_dir.relative_to(hierarchy_root / "memory")
    for name in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"):
        cpu_dir = hierarchy_root / name / relative
        if (cpu_dir / "cpuacct.usage").exists():
            return CgroupPaths("cgroup-v1", memory_dir, cpu_dir)
    return CgroupPaths("cgroup-v1", memory_dir, memory_dir)


def read_cgroup(paths: CgroupPaths) -> CgroupSample:
    """Read peak memory, CPU time, OOM kills and the memory limit of the cgroup at ``paths``."""
    if paths.version == "cgroup-v2":
        peak = _read_int(paths.memory / "memory.peak")
        peak_is_current = peak is None
        if peak is None:
            peak = _read_int(paths.memory / "memory.current")
        usage_usec = _read_keyed(paths.cpu / "cpu.stat").get("usage_usec")
        return CgroupSample(
            version="cgroup-v2",
            peak_memory_bytes=peak,
            peak_is_current=peak_is_current,
            cpu_seconds=usage_usec / 1e6 if usage_usec is not None else None,
            oom_kills=_read_keyed(paths.memory / "memory.events").get("oom_kill", 0),
            memory_limit_bytes=_read_int(paths.memory / "memory.max"),
        )
    usage_ns = _read_int(paths.cpu / "cpuacct.usage")
    limit = _read_int(paths.memory / "memory.limit_in_bytes")
    return CgroupSample(
        version="cgroup-v1",
        peak_memory_bytes=_read_int(paths.memory / "memory.max_usage_in_bytes"),
        peak_is_current=False,
        cpu_seconds=usage_ns / 1e9 if usage_ns is not None else None,
        oom_kills=_read_keyed(paths.memory / "memory.oom_control").get("oom_kill", 0),
        memory_limit_bytes=limit if limit is not None and limit < _UNLIMITED_V1 else None,
    )
