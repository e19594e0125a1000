"""Kubernetes quantities and DuckDB sizes as exact numbers.

The parser follows the grammar of Kubernetes' ``resource.Quantity`` (``<signedNumber><suffix>``, with the
binary suffixes Ki..Ei, the decimal suffixes n, u, m, "", k, M, G, T, P, E, and decimal exponents such as
``1e3``) and is checked against the official client's ``kubernetes.utils.parse_quantity`` by a property
test. It lives here, in the pure core, so that validating platform.yaml does not import the Kubernetes API
client (which costs more than a second of start-up).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, InvalidOperation

_BINARY_SUFFIXES = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_NUMBER_CHARS = frozenset("0123456789.+-")

# Suffixes people write by mistake, and what they meant.
_SUFFIX_HINTS = {
    "Gb": ("Gi", "G"),
    "GB": ("Gi", "G"),
    "gb": ("Gi", "G"),
    "g": ("Gi", "G"),
    "gi": ("Gi", "G"),
    "Mb": ("Mi", "M"),
    "MB": ("Mi", "M"),
    "mb": ("Mi", "M"),
    "mi": ("Mi", "M"),
    "Kb": ("Ki", "k"),
    "KB": ("Ki", "k"),
    "kb": ("Ki", "k"),
    "K": ("Ki", "k"),
    "ki": ("Ki", "k"),
    "Tb": ("Ti", "T"),
    "TB": ("Ti", "T"),
    "tb": ("Ti", "T"),
}


# The same grammar as a JSON-schema pattern, as controller-gen writes it for resource.Quantity fields: for
# the generated schemas (editors, values.schema.json, the CRD), where this parser cannot run.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)"
    r"|(\.[0-9]+))))?$"
)


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity; the message says what to write instead."""


def _split_number(text: str) -> tuple[str, str]:
    """Split ``text`` into its leading signed number and the rest (the suffix)."""
    end = 0
    while end < len(text) and text[end] in _NUMBER_CHARS:
        end += 1
    return text[:end], text[end:]


def _exponent_suffix(suffix: str) -> int | None:
    """The power of ten of a decimal-exponent suffix like ``e3`` or ``E-2``; None if it is not one."""
    if len(suffix) < 2 or suffix[0] not in "eE":
        return None
    digits = suffix[1:].lstrip("+-")
    if not digits.isdigit():
        return None
    return int(suffix[1:])


def _hint(text: str, number: str, suffix: str) -> str:
    if suffix in _SUFFIX_HINTS:
        binary, decimal = _SUFFIX_HINTS[suffix]
        return f"use {number}{binary} or {number}{decimal}"
    if " " in text:
        return f"remove the space: {text.replace(' ', '')}"
    return "use a number with an optional suffix such as 500m, 2, 512Mi or 4Gi"


def parse_quantity(value: str | int | float) -> Decimal:
    """Return the exact value of a Kubernetes quantity such as ``500m`` or ``4Gi``.

    Raises ``QuantityError`` with a suggestion when ``value`` is not a quantity.
    """
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a Kubernetes quantity (use a number such as 2 or 500m)")
    if isinstance(value, int | float):
        value = str(value)
    text = value.strip()
    number, suffix = _split_number(text)
    try:
        magnitude = Decimal(number)
    except InvalidOperation:
        magnitude = None
    if magnitude is None or not number:
        raise QuantityError(f"{value!r} is not a Kubernetes quantity ({_hint(text, number or '1', suffix)})")
    if suffix in _BINARY_SUFFIXES:
        return magnitude * (Decimal(1024) ** _BINARY_SUFFIXES[suffix])
    if suffix in _DECIMAL_SUFFIXES:
        return magnitude.scaleb(_DECIMAL_SUFFIXES[suffix])
    exponent = _exponent_suffix(suffix)
    if exponent is not None:
        return magnitude.scaleb(exponent)
    raise QuantityError(f"{value!r} is not a Kubernetes quantity ({_hint(text, number, suffix)})")


# DuckDB's size units (``SET memory_limit = '8GB'``): decimal KB..TB are powers of 1000 and KiB..TiB are
# powers of 1024, matched case-insensitively, with optional spaces between number and unit.
_DUCKDB_UNITS = {
    "": 1,
    "b": 1,
    "byte": 1,
    "bytes": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1024**4,
}


def parse_duckdb_size(value: str) -> int:
    """Return the number of bytes in a DuckDB size such as ``8GB`` or ``512MiB``."""
    text = value.strip()
    number, unit = _split_number(text)
    unit = unit.strip().lower()
    try:
        magnitude = Decimal(number)
    except InvalidOperation:
        magnitude = None
    if magnitude is None or magnitude < 0 or unit not in _DUCKDB_UNITS:
        raise QuantityError(
            f"{value!r} is not a DuckDB size (use a number and a unit such as 8GB, 8GiB or 512MiB)"
        )
    return int(magnitude * _DUCKDB_UNITS[unit])


def format_mib(num_bytes: int) -> str:
    """Render a byte count as whole MiB in the form both DuckDB and people read: ``8192MiB``."""
    return f"{num_bytes // 1024**2}MiB"


def format_quantity(value: Decimal, binary: bool = False) -> str:
    """The exact Kubernetes quantity text of ``value``: ``16``, ``500m``, ``48Gi``, ``10Ei``.

    One canonical form for values computed from other quantities: with ``binary`` (memory) the largest
    binary suffix that divides the value exactly, else the largest decimal suffix that does. Kubernetes
    keeps no digit below a nano, so a finer value is rounded up to whole nanos (a limit never shrinks).
    """
    if value < 0:
        raise ValueError(f"{value} is negative; quantities computed here are never below zero")
    if value == 0:
        return "0"
    if binary and value == value.to_integral_value() and value >= 1024:
        for suffix, power in sorted(_BINARY_SUFFIXES.items(), key=lambda item: -item[1]):
            count, remainder = divmod(int(value), 1024**power)
            if remainder == 0:
                return f"{count}{suffix}"
    nanos = (value * Decimal(10) ** 9).to_integral_value(rounding=ROUND_CEILING)
    for suffix, exponent in sorted(_DECIMAL_SUFFIXES.items(), key=lambda item: -item[1]):
        count, remainder = divmod(int(nanos), 10 ** (exponent + 9))
        if remainder == 0:
            return f"{count}{suffix}"
    raise AssertionError("unreachable: every whole number of nanos divides by 10**0")
