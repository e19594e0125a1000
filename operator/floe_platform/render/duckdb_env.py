"""DuckDB settings that fit inside a pod's limits.

DuckDB's ``memory_limit`` bounds its buffer manager, not the process: a limit-bound aggregation peaks at
about 1.4x that limit (a 60M-row group-by peaked at 0.96 GB RSS under a 700MB limit), and Python, Arrow
and dbt need room besides. So the derived limit leaves a third of the pod's memory, and at least 512Mi,
for everything else; below 1Gi it is half.

===================  ==========================================================
DUCKDB_MEMORY_LIMIT  limit - max(limit / 3, min(512Mi, limit / 2)), whole MiB
DUCKDB_THREADS       whole CPUs in the CPU limit, at least 1
DUCKDB_TEMP_DIRECTORY  /tmp/duckdb (an emptyDir volume of temp_volume_size)
===================  ==========================================================

Values given explicitly always win.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal

from floe_platform.config.quantity import format_mib

MEMORY_LIMIT = "DUCKDB_MEMORY_LIMIT"
THREADS = "DUCKDB_THREADS"
TEMP_DIRECTORY = "DUCKDB_TEMP_DIRECTORY"
DUCKDB_ENV_NAMES = (MEMORY_LIMIT, THREADS, TEMP_DIRECTORY)
DEFAULT_TEMP_DIRECTORY = "/tmp/duckdb"
_MIB = 1024**2
_MIN_HEADROOM = 512 * _MIB


def derived_memory_limit(memory_limit_bytes: int) -> str:
    """DuckDB's memory_limit for a pod limited to ``memory_limit_bytes``; always below that limit."""
    headroom = max(memory_limit_bytes / 3, min(_MIN_HEADROOM, memory_limit_bytes / 2))
    usable = max(int(memory_limit_bytes - headroom), _MIB)
    return format_mib(usable)


def derived_threads(cpu_limit_cores: Decimal) -> str:
    """Whole CPUs in the CPU limit, at least one."""
    return str(max(1, math.floor(cpu_limit_cores)))


def duckdb_env(
    memory_limit_bytes: int, cpu_limit_cores: Decimal, explicit: Mapping[str, str]
) -> dict[str, str]:
    """The three DUCKDB_* variables: explicit values where given, derived from the limits otherwise."""
    derived = {
        MEMORY_LIMIT: derived_memory_limit(memory_limit_bytes),
        THREADS: derived_threads(cpu_limit_cores),
        TEMP_DIRECTORY: DEFAULT_TEMP_DIRECTORY,
    }
    return {name: explicit.get(name, value) for name, value in derived.items()}
