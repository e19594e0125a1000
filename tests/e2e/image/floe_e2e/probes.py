"""The e2e jobs, importable without floe_demo (so a test can create their runs on a host without the
image's dbt manifest): ``e2e_memory_hog``, whose one asset allocates past a memory limit, and
``e2e_report_limits``, whose one asset reports what its container sees: the memory limit of its cgroup and
the DUCKDB_* environment.

The hog runs in the run worker's own process (in-process executor), so the allocation is charged to the
container's main process and the kubelet reports the container as OOMKilled, which is what the run
launcher's failure message must name.
"""

import os
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    Config,
    Definitions,
    MaterializeResult,
    asset,
    define_asset_job,
    in_process_executor,
)

MIB = 1024 * 1024
MEMORY_HOG_JOB = "e2e_memory_hog"
REPORT_LIMITS_JOB = "e2e_report_limits"
# cgroup v1, then v2: the file holding the memory limit of the container's own cgroup, as seen inside.
MEMORY_LIMIT_FILES = ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max")


class AllocationConfig(Config):
    mebibytes: int = 4096
    """How much to allocate and touch; more than the profile's memory limit provokes the OOM kill."""


@asset(key_prefix=["e2e"], group_name="e2e")
def memory_hog(context: AssetExecutionContext, config: AllocationConfig) -> MaterializeResult:
    """Keeps ``mebibytes`` of written (so resident) memory alive, 64 MiB at a time."""
    blocks: list[bytes] = []
    for allocated in range(0, config.mebibytes, 64):
        blocks.append(b"\x01" * (64 * MIB))
        if allocated % 512 == 0:
            context.log.info(f"allocated {allocated + 64} MiB")
    return MaterializeResult(metadata={"allocated_mib": len(blocks) * 64})


@asset(key_prefix=["e2e"], group_name="e2e")
def container_limits() -> MaterializeResult:
    """The kernel's memory limit for this container and the DUCKDB_* variables, as metadata of the run."""
    limit_file = next(Path(name) for name in MEMORY_LIMIT_FILES if Path(name).exists())
    duckdb_env = {name: value for name, value in os.environ.items() if name.startswith("DUCKDB_")}
    return MaterializeResult(
        metadata={"memory_limit_bytes": limit_file.read_text().strip(), "duckdb_env": duckdb_env}
    )


report_limits_job = define_asset_job(
    REPORT_LIMITS_JOB, selection=[container_limits], executor_def=in_process_executor
)
memory_hog_job = define_asset_job(MEMORY_HOG_JOB, selection=[memory_hog], executor_def=in_process_executor)

defs = Definitions(assets=[memory_hog, container_limits], jobs=[memory_hog_job, report_limits_job])
