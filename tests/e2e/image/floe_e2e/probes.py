"""The e2e jobs, importable without floe_demo (so a test can create their runs on a host without the
image's dbt manifest): ``e2e_memory_hog``, whose one asset allocates past a memory limit (and, when it
survives, reports its cgroup's limit and peak), ``e2e_report_limits``, whose one asset reports what its
container sees: the memory limit of its cgroup and the DUCKDB_* environment, and ``e2e_duckdb_query``,
which runs benchmark P4's DuckDB query in the run worker and reports its answer, its time and the memory
its cgroup saw.

The hog runs in the run worker's own process (in-process executor), so the allocation is charged to the
container's main process and the kubelet reports the container as OOMKilled, which is what the run
launcher's failure message must name.
"""

import importlib.util
import os
import resource
from pathlib import Path
from types import ModuleType

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
DUCKDB_QUERY_JOB = "e2e_duckdb_query"
# cgroup v1, then v2: the files of the container's own cgroup, as seen inside, holding its memory limit
# and the most memory it was ever charged (page cache included).
MEMORY_LIMIT_FILES = ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max")
MEMORY_PEAK_FILES = ("/sys/fs/cgroup/memory/memory.max_usage_in_bytes", "/sys/fs/cgroup/memory.peak")


def _cgroup_value(names: tuple[str, ...]) -> str:
    return next(Path(name) for name in names if Path(name).exists()).read_text().strip()


def _memory_report() -> dict[str, str]:
    """The cgroup's memory limit and peak, and this process's own peak RSS (``ru_maxrss``, KiB on Linux)."""
    return {
        "memory_limit_bytes": _cgroup_value(MEMORY_LIMIT_FILES),
        "cgroup_peak_bytes": _cgroup_value(MEMORY_PEAK_FILES),
        "process_peak_rss_bytes": str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
    }


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
    return MaterializeResult(metadata={"allocated_mib": len(blocks) * 64, **_memory_report()})


@asset(key_prefix=["e2e"], group_name="e2e")
def container_limits() -> MaterializeResult:
    """The kernel's memory limit for this container and the DUCKDB_* variables, as metadata of the run."""
    duckdb_env = {name: value for name, value in os.environ.items() if name.startswith("DUCKDB_")}
    return MaterializeResult(
        metadata={"memory_limit_bytes": _cgroup_value(MEMORY_LIMIT_FILES), "duckdb_env": duckdb_env}
    )


class DuckDBQueryConfig(Config):
    worker: str
    """Path of benchmark P4's worker (bench/duckdb_worker.py) as the pod sees it: the query is P4's own."""
    database: str
    """The DuckDB file the worker's ``generate`` wrote."""
    profile_settings: bool = True
    """False drops the DUCKDB_* variables first, so DuckDB runs on its defaults."""


def _load_worker(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("duckdb_worker", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"no Python module at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@asset(key_prefix=["e2e"], group_name="e2e")
def duckdb_query(context: AssetExecutionContext, config: DuckDBQueryConfig) -> MaterializeResult:
    """P4's out-of-core group-by and join, in this process (where a run's DuckDB resource runs it), with the
    DUCKDB_* settings the worker applies from the environment, or with DuckDB's defaults."""
    worker = _load_worker(config.worker)
    if not config.profile_settings:
        for name in [name for name in os.environ if name.startswith("DUCKDB_")]:
            del os.environ[name]
    context.log.info(f"querying {config.database} with settings {worker.settings_from_env()}")
    answer: dict[str, object] = worker.query(config.database)  # its "seconds" time the query alone
    return MaterializeResult(metadata={**answer, **_memory_report()})


report_limits_job = define_asset_job(
    REPORT_LIMITS_JOB, selection=[container_limits], executor_def=in_process_executor
)
memory_hog_job = define_asset_job(MEMORY_HOG_JOB, selection=[memory_hog], executor_def=in_process_executor)
duckdb_query_job = define_asset_job(
    DUCKDB_QUERY_JOB, selection=[duckdb_query], executor_def=in_process_executor
)

defs = Definitions(
    assets=[memory_hog, container_limits, duckdb_query],
    jobs=[memory_hog_job, report_limits_job, duckdb_query_job],
)
