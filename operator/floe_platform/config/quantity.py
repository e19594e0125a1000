"""Kubernetes quantities and DuckDB sizes as exact numbers.

The parser follows the grammar of Kubernetes' ``resource.Quantity`` (``<signedNumber><suffix>``, with the
binary suffixes Ki..Ei, the decimal suffixes n, u, m, "", k, M, G, T, P, E, and decimal exponents such as
``1e3``) and is checked against the official client's ``kubernetes.utils.parse_quantity`` by a property
test. It lives here, in the pure core, so that validating platform.yaml does not import the Kubernetes API
client (which costs more than a second of start-up).
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal

_BINARY_SUFFIXES = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

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
# CPU written as words: what to write instead, as a suffix after the number.
_CPU_WORDS = {
    "core": "",
    "cores": "",
    "cpu": "",
    "cpus": "",
    "millicore": "m",
    "millicores": "m",
    "mcpu": "m",
}

MAX_QUANTITY_LENGTH = 64
"""Longest quantity text accepted; also bounds the CRD's CEL cost. No real quantity is close."""
MAX_EXPONENT = 18
"""Largest decimal exponent (``1e18``, like the E suffix); bigger ones only spell overflow."""
MAX_QUANTITY = Decimal(2**62)
"""Largest value (4Ei): Kubernetes keeps quantities in int64, and DuckDB settings are derived from them."""
MAX_QUANTITY_TEXT = "4Ei"

# One grammar, used as it stands by this parser (``re.fullmatch``) and by the generated schemas (the CRD,
# platform.schema.json): the grammar of resource.Quantity, narrowed to what platform.yaml accepts. ASCII
# digits only, no sign but an optional '+', a whole decimal exponent of at most two digits (bounded again
# by MAX_EXPONENT below), no surrounding spaces. ``$`` is safe here: fullmatch, Go and ECMAScript regexps
# all refuse a trailing newline.
QUANTITY_PATTERN = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?(0?[0-9]|1[0-8])))?$"
)
_QUANTITY = re.compile(QUANTITY_PATTERN)
_BIG_EXPONENT = re.compile(r"\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)[eE][+-]?[0-9]+")
_LEADING_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity; the message says what to write instead."""


def shown(value: object, limit: int = 40) -> str:
    """``repr`` of a value for a message: escaped, and cut short so that a huge input makes a short line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 4]}...{text[-1]}"


def _split_number(text: str) -> tuple[str, str]:
    """Split ``text`` into its leading (ASCII) signed number and the rest (the suffix)."""
    match = _LEADING_NUMBER.match(text)
    end = match.end() if match else 0
    return text[:end], text[end:]


def _valid(candidate: str) -> bool:
    return _QUANTITY.fullmatch(candidate) is not None and _magnitude(candidate) <= MAX_QUANTITY


def _suggestions(text: str) -> list[str]:
    """Quantities the writer of ``text`` probably meant, each one itself valid."""
    compact = "".join(text.split())
    number, suffix = _split_number(compact)
    number = number.lstrip("+-") or "1"
    candidates = [compact]
    if suffix in _SUFFIX_HINTS:
        candidates = [f"{number}{unit}" for unit in _SUFFIX_HINTS[suffix]]
    elif suffix.lower() in _CPU_WORDS:
        candidates = [f"{number}{_CPU_WORDS[suffix.lower()]}"]
    return [candidate for candidate in candidates if _valid(candidate)]


def _hint(text: str) -> str:
    suggestions = _suggestions(text)
    if suggestions and text.strip() != text:
        return f"remove the surrounding spaces: {suggestions[0]}"
    if suggestions and " " in text and len(suggestions) == 1 and suggestions[0] == "".join(text.split()):
        return f"remove the space: {suggestions[0]}"
    if suggestions:
        return "use " + " or ".join(suggestions)
    if _BIG_EXPONENT.fullmatch(text):
        return f"exponents go from e-{MAX_EXPONENT} to e{MAX_EXPONENT}, and values up to {MAX_QUANTITY_TEXT}"
    return "use a number with an optional suffix such as 500m, 2, 512Mi or 4Gi"


def _magnitude(text: str) -> Decimal:
    """The value of text that matches QUANTITY_PATTERN (the exponent is at most two digits, so cheap)."""
    number, suffix = _split_number(text)
    magnitude = Decimal(number)
    if suffix in _BINARY_SUFFIXES:
        return magnitude * (Decimal(1024) ** _BINARY_SUFFIXES[suffix])
    if suffix in _DECIMAL_SUFFIXES:
        return magnitude.scaleb(_DECIMAL_SUFFIXES[suffix])
    return magnitude.scaleb(int(suffix[1:]))


def parse_quantity(value: str | int) -> Decimal:
    """Return the exact value of a Kubernetes quantity such as ``500m`` or ``4Gi``.

    Raises ``QuantityError`` with a suggestion when ``value`` is not a quantity platform.yaml accepts:
    not the grammar, negative, or above MAX_QUANTITY.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise QuantityError(f"{shown(value)} is not a Kubernetes quantity (use a number such as 2 or 500m)")
    if isinstance(value, int):
        # Checked before str(): Python refuses to print ints of more than 4300 digits.
        if value.bit_length() > 64:
            raise QuantityError(f"{shown(value)} is above {MAX_QUANTITY_TEXT}, the largest quantity accepted")
        value = str(value)
    if len(value) > MAX_QUANTITY_LENGTH:
        raise QuantityError(f"{shown(value)} is longer than {MAX_QUANTITY_LENGTH} characters; use a suffix")
    if value.startswith("-") and _QUANTITY.fullmatch(value[1:]):
        raise QuantityError(f"{shown(value)} is negative; resources and sizes must be zero or more")
    if not _QUANTITY.fullmatch(value):
        raise QuantityError(f"{shown(value)} is not a Kubernetes quantity ({_hint(value)})")
    magnitude = _magnitude(value)
    if magnitude > MAX_QUANTITY:
        raise QuantityError(f"{shown(value)} is above {MAX_QUANTITY_TEXT}, the largest quantity accepted")
    return magnitude


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


_DUCKDB_SIZE = re.compile(r"([0-9]+(\.[0-9]*)?|\.[0-9]+) ?([A-Za-z]*)")
"""DuckDB's size syntax, ASCII only: a number, at most one space, a unit. No surrounding spaces, since the
value is written into the pod's environment as given."""


def parse_duckdb_size(value: str) -> int:
    """Return the number of bytes in a DuckDB size such as ``8GB`` or ``512MiB``."""
    match = _DUCKDB_SIZE.fullmatch(value) if len(value) <= MAX_QUANTITY_LENGTH else None
    unit = match.group(3).lower() if match else ""
    if match is None or unit not in _DUCKDB_UNITS:
        raise QuantityError(
            f"{shown(value)} is not a DuckDB size (use a number and a unit such as 8GB, 8GiB or 512MiB)"
        )
    return int(Decimal(match.group(1)) * _DUCKDB_UNITS[unit])


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
