"""floe_demo's definitions plus the e2e jobs of ``floe_e2e.probes`` (the OOM case and the limits report)."""

import importlib

from dagster import Definitions

from floe_e2e import probes
from floe_e2e.probes import DUCKDB_QUERY_JOB, MEMORY_HOG_JOB, REPORT_LIMITS_JOB

__all__ = ["DUCKDB_QUERY_JOB", "MEMORY_HOG_JOB", "REPORT_LIMITS_JOB", "defs"]


def demo_definitions() -> Definitions:
    """The one Definitions object of floe_demo.definitions, whatever its variable is called."""
    module = importlib.import_module("floe_demo.definitions")
    found = [value for value in vars(module).values() if isinstance(value, Definitions)]
    if len(found) != 1:
        raise LookupError(f"floe_demo.definitions holds {len(found)} Definitions objects, expected one")
    return found[0]


defs = Definitions.merge(demo_definitions(), probes.defs)
