"""A fresh child cgroup in the v1 memory and cpuacct hierarchies, for tests that read real cgroup files.

Skips (with the reason) where the machine has no v1 memory/cpuacct controllers or the cgroupfs is not
writable (no root); removes the child cgroups afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CGROUP_ROOT = Path("/sys/fs/cgroup")


@contextmanager
def child_cgroup_v1(name: str) -> Iterator[tuple[Path, Path]]:
    """The (memory, cpuacct) directories of a new child cgroup called ``name``."""
    memory, cpuacct = CGROUP_ROOT / "memory" / name, CGROUP_ROOT / "cpuacct" / name
    if not (CGROUP_ROOT / "memory" / "memory.max_usage_in_bytes").exists():
        pytest.skip(f"no cgroup v1 memory controller at {CGROUP_ROOT}/memory on this machine")
    if not (CGROUP_ROOT / "cpuacct" / "cpuacct.usage").exists():
        pytest.skip(f"no cgroup v1 cpuacct controller at {CGROUP_ROOT}/cpuacct on this machine")
    try:
        memory.mkdir()
        cpuacct.mkdir()
    except OSError as error:
        _remove(memory, cpuacct)
        pytest.skip(f"cannot create a child cgroup ({error.strerror}); needs root and a writable cgroupfs")
    try:
        yield memory, cpuacct
    finally:
        _remove(memory, cpuacct)


def _remove(*cgroups: Path) -> None:
    for cgroup in cgroups:
        if cgroup.exists():
            cgroup.rmdir()
