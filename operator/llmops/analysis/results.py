"""What one Prometheus query gave: a number, no data, or an error (the adapter's vocabulary).

`llmops.prom` produces these; `measure` consumes them. They live in the pure core so that the
core never imports the adapter (STYLE: "Unknown is not False": a failed read is an `Error`,
an empty answer is `NoData`, and neither is ever mistaken for a value).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["Error", "ErrorKind", "MetricResults", "NoData", "Result", "Value", "Vector", "VectorResult"]

ErrorKind = Literal["unreachable", "rejected"]
"""unreachable: no usable answer (connection refused, timeout, 5xx); asking again may work.
rejected: Prometheus refused the query itself (400 bad_data, 422 execution) or its result is not
one number; asking again will not help until the query is fixed."""


@dataclass(frozen=True)
class Value:
    """The query returned exactly one finite number."""

    value: float


@dataclass(frozen=True)
class NoData:
    """The query ran but gave no number: no series, NaN (e.g. 0/0 without traffic) or ±Inf."""

    reason: str


@dataclass(frozen=True)
class Error:
    """The query did not run, or ran into something only a fix can change."""

    message: str
    """What went wrong; for `rejected`, Prometheus' own error text, quoted verbatim."""
    kind: ErrorKind


@dataclass(frozen=True)
class Vector:
    """The query returned several series, each told apart by one label (`le` for histogram
    buckets): label value → finite number."""

    values: Mapping[str, float]


Result = Value | NoData | Error
VectorResult = Vector | NoData | Error


@dataclass(frozen=True)
class MetricResults:
    """One analysis metric's query results in one measurement: an observation for the lifecycle."""

    name: str
    """The analysis metric's name."""
    canary: Result
    stable: Result | None
    """None when the metric has no compareToStable (no stable query was run)."""
