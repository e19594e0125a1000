"""Derived DuckDB settings always fit inside the profile's limits (pure core, property-tested)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from floe_platform.config.quantity import parse_duckdb_size
from floe_platform.render.duckdb_env import derived_memory_limit, derived_threads, duckdb_env

MIB = 1024**2


@given(memory_limit=st.integers(min_value=64 * MIB, max_value=4 * 1024**4))
def test_derived_memory_limit_is_below_the_pod_limit_with_room_for_duckdb_overshoot(
    memory_limit: int,
) -> None:
    derived = parse_duckdb_size(derived_memory_limit(memory_limit))
    assert 0 < derived < memory_limit
    # DuckDB's process peaks at about 1.4x its buffer limit (FACTS.md): that must still fit.
    assert derived * 1.4 <= memory_limit


@given(millicores=st.integers(min_value=1, max_value=512_000))
def test_derived_threads_fit_within_the_cpu_limit(millicores: int) -> None:
    cores = Decimal(millicores) / 1000
    threads = int(derived_threads(cores))
    assert threads >= 1
    assert threads <= max(1, cores)


@pytest.mark.parametrize(
    ("limit", "expected"),
    [(12 * 1024 * MIB, "8192MiB"), (1024 * MIB, "512MiB"), (2048 * MIB, "1365MiB"), (512 * MIB, "256MiB")],
)
def test_derived_memory_limit_leaves_a_third_and_at_least_512mi(limit: int, expected: str) -> None:
    assert derived_memory_limit(limit) == expected


def test_explicit_values_win_over_derived_ones() -> None:
    env = duckdb_env(12 * 1024 * MIB, Decimal(8), {"DUCKDB_THREADS": "4", "OTHER": "x"})
    assert env == {
        "DUCKDB_MEMORY_LIMIT": "8192MiB",
        "DUCKDB_THREADS": "4",
        "DUCKDB_TEMP_DIRECTORY": "/tmp/duckdb",
    }
