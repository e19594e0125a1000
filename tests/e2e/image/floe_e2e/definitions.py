"""floe_demo's definitions plus ``e2e_memory_hog``, a job whose one asset allocates past a memory limit.

The job runs in the run worker's own process (in-process executor), so the allocation is charged to the
container's main process and the kubelet reports the container as OOMKilled, which is what the run
launcher's failure message must name.
"""

import importlib

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


memory_hog_job = define_asset_job(MEMORY_HOG_JOB, selection=[memory_hog], executor_def=in_process_executor)


def demo_definitions() -> Definitions:
    """The one Definitions object of floe_demo.definitions, whatever its variable is called."""
    module = importlib.import_module("floe_demo.definitions")
    found = [value for value in vars(module).values() if isinstance(value, Definitions)]
    if len(found) != 1:
        raise LookupError(f"floe_demo.definitions holds {len(found)} Definitions objects, expected one")
    return found[0]


defs = Definitions.merge(demo_definitions(), Definitions(assets=[memory_hog], jobs=[memory_hog_job]))
