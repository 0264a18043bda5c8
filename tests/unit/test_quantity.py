"""Quantities read as the apiserver reads them. The expected values are what apimachinery's
resource.ParseQuantity (v0.36.3) gave for the same strings (q.AsDec()); a differential run of
300,000 random strings against it disagreed only where the API's pattern refuses too (below)."""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmops.api.common import QUANTITY
from llmops.api.quantity import cpu_millis, parse_quantity, quantity_bytes

FROM_KUBERNETES = {
    "8Gi": "8589934592",
    "500m": "0.500",
    "1e3": "1000",
    "+.5Gi": "536870912.000000000",
    "1.e3": "1000",
    "12E-1": "1.2",
    "0.1n": "0.000000001",  # nine decimals, rounded away from zero
    "-0.1n": "-0.000000001",
    "007": "7",
    "1.5k": "1500",
    "2E": "2000000000000000000",
    "8.Gi": "8589934592",
    "1Ei": "1152921504606846976",
    "3Ti": "3298534883328",
    "0.000001u": "0.000000001",
    "123456789.123456789": "123456789.123456789",
    "-2.5Mi": "-2621440",
    "1e-9": "0.000000001",
}


@pytest.mark.parametrize(("text", "value"), sorted(FROM_KUBERNETES.items()))
def test_a_quantity_has_the_value_kubernetes_gives_it(text: str, value: str) -> None:
    assert parse_quantity(text) == Fraction(Decimal(value))


@pytest.mark.parametrize(
    "text",
    [
        "1e1.5",  # Kubernetes refuses a fractional exponent (controller-gen's pattern admits it)
        "8K",  # k is the decimal kilo; Ki the binary one
        "8gi",
        "",
        " 8Gi",
        "8 Gi",
        "1e",
        "0x10",
        "1_000",
        # Kubernetes reads these as 0 or as huge numbers; the API's pattern refuses them
        "Gi",
        "e3",
        "1e1000",
    ],
)
def test_what_is_not_a_quantity_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_quantity(text)
    assert not re.fullmatch(QUANTITY, text.removeprefix("-"))


def test_integers_are_quantities_and_booleans_are_not() -> None:
    assert parse_quantity(8) == 8
    with pytest.raises(ValueError):
        parse_quantity(True)


def test_bytes_and_millicores_round_up_as_value_and_milli_value_do() -> None:
    assert quantity_bytes("1500m") == 2 and quantity_bytes("0.1") == 1 and quantity_bytes("8Gi") == 8 << 30
    assert cpu_millis("0.5") == 500 and cpu_millis("1.0001") == 1001 and cpu_millis(4) == 4000
    assert cpu_millis("100u") == 1


@given(st.from_regex(QUANTITY, fullmatch=True))
def test_every_quantity_the_api_admits_is_read(text: str) -> None:
    assert parse_quantity(text) >= 0
