"""Kubernetes quantities and DuckDB sizes (pure core), cross-checked against the real parsers."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.utils import parse_quantity as official_parse_quantity

from floe_platform.config.quantity import QuantityError, parse_duckdb_size, parse_quantity

SUFFIXES = ["", "m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti", "e3", "E-2", "n", "u"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1000m", Decimal(1)),
        ("4Gi", Decimal(4 * 1024**3)),
        ("12Gi", Decimal(12 * 1024**3)),
        ("8000m", Decimal(8)),
        ("0.5", Decimal("0.5")),
        ("1e3", Decimal(1000)),
        (2, Decimal(2)),
    ],
)
def test_known_quantities_have_their_exact_value(text: str | int, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


@given(
    number=st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False),
    suffix=st.sampled_from(SUFFIXES),
)
def test_parser_agrees_with_the_official_kubernetes_client(number: Decimal, suffix: str) -> None:
    text = f"{number}{suffix}"
    assert parse_quantity(text) == official_parse_quantity(text)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("4Gb", "use 4Gi or 4G"),
        ("12GB", "use 12Gi or 12G"),
        ("4 Gi", "remove the space: 4Gi"),
        ("lots", "use a number"),
        ("", "use a number"),
        ("1.2.3", "use a number"),
    ],
)
def test_non_quantities_are_rejected_with_a_suggestion(text: str, hint: str) -> None:
    with pytest.raises(QuantityError, match="is not a Kubernetes quantity") as error:
        parse_quantity(text)
    assert hint in str(error.value)


@pytest.mark.parametrize("text", ["8GB", "8GiB", "512MiB", "700MB", "1.5GB", "100 MB", "2TB", "4096KiB"])
def test_duckdb_sizes_match_what_duckdb_itself_applies(text: str) -> None:
    """Runs against real DuckDB, which reports memory_limit in binary units truncated to one decimal."""
    with duckdb.connect() as connection:
        connection.execute(f"SET memory_limit = '{text}'")
        applied = connection.execute("SELECT current_setting('memory_limit')").fetchone()
    assert applied is not None
    assert applied[0] == _as_duckdb_prints(parse_duckdb_size(text))


def _as_duckdb_prints(num_bytes: int) -> str:
    for power, unit in ((4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
        if num_bytes >= 1024**power:
            tenths = num_bytes * 10 // 1024**power
            return f"{tenths // 10}.{tenths % 10} {unit}"
    return f"{num_bytes} bytes"


@pytest.mark.parametrize("text", ["8Gb!", "eight GB", "8 PB", "-1GB", "GB"])
def test_non_duckdb_sizes_are_rejected(text: str) -> None:
    with pytest.raises(QuantityError, match="is not a DuckDB size"):
        parse_duckdb_size(text)
