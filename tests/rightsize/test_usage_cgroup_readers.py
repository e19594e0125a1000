"""The cgroup readers, on recorded v1/v2 layouts and on a real cgroup v1 child of this machine's hierarchy.

Real component: the kernel's cgroup v1 memory and cpuacct controllers (``/sys/fs/cgroup``), where this
machine has them and the test may create a child cgroup (root); recorded samples stand in for cgroup v2,
which this machine does not mount (that test is skipped with the reason where v2 is missing).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from floe_platform.usage.cgroup import CgroupPaths, container_cgroup, read_cgroup, v1_paths
from testkit.cgroups import CGROUP_ROOT
from testkit.cgroups import child_cgroup_v1 as new_child_cgroup_v1

SAMPLES = Path(__file__).parent / "cgroup_samples"
ALLOCATE_MIB = 200
ALLOCATOR = f"""
import time
block = bytearray({ALLOCATE_MIB} * 1024 * 1024)
for offset in range(0, len(block), 4096):
    block[offset] = 1
deadline = time.process_time() + 0.3
while time.process_time() < deadline:
    pass
"""


def test_v2_sample_reads_peak_cpu_oom_and_limit() -> None:
    paths = container_cgroup(SAMPLES / "v2")
    assert paths == CgroupPaths("cgroup-v2", SAMPLES / "v2", SAMPLES / "v2")
    sample = read_cgroup(paths)
    assert sample.peak_memory_bytes == 1536 * 1024**2
    assert not sample.peak_is_current
    assert sample.cpu_seconds == pytest.approx(42.5)
    assert sample.oom_kills == 1
    assert sample.memory_limit_bytes == 2 * 1024**3


def test_v2_without_memory_peak_falls_back_to_current_and_says_so() -> None:
    paths = container_cgroup(SAMPLES / "v2-no-peak")
    assert paths is not None
    sample = read_cgroup(paths)
    assert sample.peak_memory_bytes == 700 * 1024**2
    assert sample.peak_is_current
    assert sample.memory_limit_bytes is None  # "max"
    assert sample.oom_kills == 0


def test_v1_sample_reads_max_usage_cpuacct_and_treats_huge_limit_as_none() -> None:
    paths = container_cgroup(SAMPLES / "v1")
    assert paths == CgroupPaths("cgroup-v1", SAMPLES / "v1" / "memory", SAMPLES / "v1" / "cpu,cpuacct")
    sample = read_cgroup(paths)
    assert sample.peak_memory_bytes == 768 * 1024**2
    assert sample.cpu_seconds == pytest.approx(7.25)
    assert sample.memory_limit_bytes is None
    assert sample.oom_kills == 0


def test_no_cgroup_at_root_is_none(tmp_path: Path) -> None:
    assert container_cgroup(tmp_path) is None


@pytest.fixture
def child_cgroup_v1() -> Iterator[tuple[Path, Path]]:
    """A fresh child cgroup in the v1 memory and cpuacct hierarchies, removed afterwards."""
    with new_child_cgroup_v1(f"floe-test-readers-{os.getpid()}") as cgroups:
        yield cgroups


def run_in_cgroup(procs_files: list[Path], command: list[str]) -> int:
    """Run ``command`` with its process placed in each cgroup first (cgroup.procs), return its exit code."""

    def enter() -> None:
        for procs in procs_files:
            procs.write_text(str(os.getpid()))

    return subprocess.run(command, preexec_fn=enter, check=False, timeout=60).returncode


def test_real_v1_cgroup_records_what_its_process_used(child_cgroup_v1: tuple[Path, Path]) -> None:
    """A real child allocates 200 MiB and burns 0.3 s of CPU inside a fresh cgroup; the reader sees both."""
    memory, cpuacct = child_cgroup_v1
    code = run_in_cgroup(
        [memory / "cgroup.procs", cpuacct / "cgroup.procs"], [sys.executable, "-c", ALLOCATOR]
    )
    assert code == 0
    paths = v1_paths(memory, CGROUP_ROOT)
    assert paths == CgroupPaths("cgroup-v1", memory, cpuacct)
    sample = read_cgroup(paths)
    assert sample.peak_memory_bytes is not None
    assert ALLOCATE_MIB * 1024**2 <= sample.peak_memory_bytes < (ALLOCATE_MIB + 150) * 1024**2
    assert sample.cpu_seconds is not None
    assert sample.cpu_seconds >= 0.3
    assert sample.oom_kills == 0


def test_real_v1_cgroup_counts_an_oom_kill(child_cgroup_v1: tuple[Path, Path]) -> None:
    """The same allocator under a 100 MiB limit is OOM-killed by the kernel; the reader counts the kill."""
    memory, cpuacct = child_cgroup_v1
    (memory / "memory.limit_in_bytes").write_text(str(100 * 1024**2))
    code = run_in_cgroup(
        [memory / "cgroup.procs", cpuacct / "cgroup.procs"], [sys.executable, "-c", ALLOCATOR]
    )
    assert code == -9
    sample = read_cgroup(v1_paths(memory, CGROUP_ROOT) or pytest.fail("no cgroup"))
    assert sample.oom_kills >= 1
    assert sample.memory_limit_bytes == 100 * 1024**2


def test_real_v2_cgroup_where_mounted() -> None:
    """cgroup v2 is read the same way on a real unified hierarchy; this machine may not have one."""
    if not (CGROUP_ROOT / "cgroup.controllers").exists():
        pytest.skip(
            f"{CGROUP_ROOT} is cgroup v1 on this machine (no cgroup.controllers); v2 checked on samples"
        )
    paths = container_cgroup(CGROUP_ROOT)
    assert paths is not None
    assert paths.version == "cgroup-v2"
    sample = read_cgroup(paths)
    assert sample.peak_memory_bytes is not None
    assert sample.cpu_seconds is not None
