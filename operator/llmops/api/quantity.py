"""Kubernetes quantities ("8Gi", "500m", "1e3", 8) as exact numbers, read as the apiserver reads
them (apimachinery's resource.ParseQuantity): an optional sign, digits with an optional decimal
point, then one binary suffix (Ki to Ei), one decimal suffix (n, u, m, k to E) or a decimal
exponent (e3, E-2).

Two readers need them: the capture store reads its size cap from a flag the spec's quantity
becomes, and the GPU diagnosis compares the CPU and memory pods request with what nodes have.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

__all__ = ["MAX_EXPONENT", "cpu_millis", "format_bytes", "format_cpu", "parse_quantity", "quantity_bytes"]

MAX_EXPONENT = 999
"""The largest decimal exponent read (1e999). Kubernetes reads larger ones; the API's quantity
pattern allows three digits, so nothing it admits is refused here."""

_QUANTITY = re.compile(
    r"(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<suffix>[KMGTPE]i|[numkMGTPE])|[eE](?P<exponent>[+-]?[0-9]+))?"
)
_BINARY_SUFFIXES = ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
"""2^10 to 2^60, in order."""
_DECIMAL_EXPONENTS = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_SUFFIXES: dict[str, Fraction] = {
    **{suffix: Fraction(10) ** exponent for suffix, exponent in _DECIMAL_EXPONENTS.items()},
    **{suffix: Fraction(2 ** (10 * (i + 1))) for i, suffix in enumerate(_BINARY_SUFFIXES)},
}


def parse_quantity(value: int | str) -> Fraction:
    """The exact value of a quantity; ValueError naming the value when it is not one."""
    if isinstance(value, bool):  # a bool is an int to Python, never a quantity to Kubernetes
        raise ValueError(f"not a quantity like 8Gi, 500m or 1e3: {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    match = _QUANTITY.fullmatch(value)
    if not match:
        raise ValueError(f"not a quantity like 8Gi, 500m or 1e3: {value!r}")
    number = Fraction(match["number"])  # Fraction reads "8.", ".5" and "1.25" exactly
    if match["exponent"] is not None:
        exponent = int(match["exponent"])
        if abs(exponent) > MAX_EXPONENT:
            raise ValueError(f"the exponent of {value!r} is beyond ±{MAX_EXPONENT}")
        scale = Fraction(10) ** exponent
    else:
        scale = _SUFFIXES[match["suffix"] or ""]
    return _nano_away_from_zero(-number * scale if match["sign"] == "-" else number * scale)


def _nano_away_from_zero(value: Fraction) -> Fraction:
    """A quantity keeps nine decimals: ParseQuantity rounds a finer one away from zero ("0.1n" is
    1n)."""
    nanos = value * 10**9
    whole = math.ceil(abs(nanos))
    return Fraction(whole if nanos >= 0 else -whole, 10**9)


def quantity_bytes(value: int | str) -> int:
    """Whole bytes in a quantity, rounded up as resource.Quantity.Value() rounds ("1500m" is 2)."""
    return math.ceil(parse_quantity(value))


def cpu_millis(value: int | str) -> int:
    """Millicores in a CPU quantity, rounded up as resource.Quantity.MilliValue() rounds."""
    return math.ceil(parse_quantity(value) * 1000)


def format_bytes(count: int) -> str:
    """Bytes as a quantity a spec would write: exact in the largest binary unit that divides them
    (65664Mi), else in Gi to one decimal from 1Gi up (30.5Gi), else in bytes."""
    for suffix in reversed(_BINARY_SUFFIXES):
        size = int(_SUFFIXES[suffix])
        if count and count % size == 0:
            return f"{count // size}{suffix}"
    if count >= 2**30:
        return f"{count / 2**30:.1f}Gi"
    return str(count)


def format_cpu(millis: int) -> str:
    """Millicores as a CPU quantity: whole cores when they are (4), else millicores (500m)."""
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"
