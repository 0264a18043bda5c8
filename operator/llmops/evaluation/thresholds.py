"""Thresholds and verdicts: which metric values pass the gate.

Thresholds arrive as JSON, the same shape as `spec.evaluation.thresholds` in the LLMDeployment:
``[{"metric": "exactMatch", "min": 0.8}, {"metric": "latencyP95", "max": 2.0}]``. Each names one
of `METRIC_NAMES` and has `min`, `max` or both (inclusive bounds). A metric may appear once.

A metric that could not be measured (value None) fails its threshold: a gate must not open on
missing evidence.

A rate (`RATE_METRICS`: a proportion over prompts) is judged on the bound of its Wilson interval at
the sample size, not on its value (`llmops.analysis.confidence`): a `min` passes when the lower
bound reaches it, a `max` when the upper bound does. Too few samples to ever show the bound is its
own outcome, `InsufficientSamples`, with the number of prompts needed. Other metrics (graded scores,
latencies) are judged on their value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmops.analysis.confidence import (
    DEFAULT_CONFIDENCE,
    FAILED,
    INSUFFICIENT_SAMPLES,
    PASSED,
    RateJudgement,
    judge_rate,
)
from llmops.api.metric_names import METRIC_NAMES, RATE_METRICS

__all__ = [
    "FAILED",
    "INSUFFICIENT_SAMPLES",
    "PASSED",
    "Threshold",
    "ThresholdError",
    "Verdict",
    "judge",
    "parse_thresholds",
]


class ThresholdError(ValueError):
    """The thresholds are not valid; the message says which entry and why."""


@dataclass(frozen=True, slots=True)
class Threshold:
    """Inclusive bounds on one metric; at least one of min and max is set."""

    metric: str
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """A metric's value against its threshold."""

    threshold: Threshold
    value: float | None
    passed: bool
    reason: str
    outcome: str = ""
    """Passed, Failed or InsufficientSamples (derived from `passed` when not given)."""
    rate: RateJudgement | None = None
    """The interval behind a rate's verdict."""

    def __post_init__(self) -> None:
        if not self.outcome:
            object.__setattr__(self, "outcome", PASSED if self.passed else FAILED)


def _bound(entry: Mapping[str, Any], key: str, index: int) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ThresholdError(f"thresholds[{index}].{key} must be a finite number, got {value!r}")
    return float(value)


def parse_thresholds(text: str) -> list[Threshold]:
    """Parse the JSON list of thresholds; raises ThresholdError naming the bad entry."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ThresholdError(f"thresholds are not valid JSON: {e}") from None
    if not isinstance(data, list):
        raise ThresholdError("thresholds must be a JSON list of {metric, min?, max?} objects")
    result: list[Threshold] = []
    seen: set[str] = set()
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise ThresholdError(f"thresholds[{i}] must be an object")
        unknown = sorted(set(entry) - {"metric", "min", "max"})
        if unknown:
            raise ThresholdError(f"thresholds[{i}] has unknown field(s) {', '.join(map(repr, unknown))}")
        metric = entry.get("metric")
        if metric not in METRIC_NAMES:
            raise ThresholdError(f"thresholds[{i}].metric {metric!r} is not one of {', '.join(METRIC_NAMES)}")
        if metric in seen:
            raise ThresholdError(f"thresholds[{i}]: metric {metric!r} appears more than once")
        seen.add(metric)
        low, high = _bound(entry, "min", i), _bound(entry, "max", i)
        if low is None and high is None:
            raise ThresholdError(f"thresholds[{i}] ({metric}) needs 'min', 'max' or both")
        if low is not None and high is not None and low > high:
            raise ThresholdError(f"thresholds[{i}] ({metric}): min {low} is greater than max {high}")
        result.append(Threshold(metric=metric, min=low, max=high))
    return result


def judge(
    thresholds: list[Threshold],
    values: Mapping[str, float | None],
    counts: Mapping[str, tuple[int, int]] | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> list[Verdict]:
    """Judge each threshold, in threshold order: a rate with its (successes, n) in `counts` on its
    interval at `confidence`, anything else on its value."""
    verdicts = []
    for t in thresholds:
        value = values.get(t.metric)
        counted = (counts or {}).get(t.metric)
        if t.metric in RATE_METRICS and counted is not None and counted[1] > 0:
            r = judge_rate(t.metric, *counted, low=t.min, high=t.max, confidence=confidence)
            verdicts.append(Verdict(t, r.value, r.passed, r.reason, r.verdict, r))
        elif value is None:
            verdicts.append(Verdict(t, None, False, "not measured"))
        elif t.min is not None and value < t.min:
            verdicts.append(Verdict(t, value, False, f"{value:.4g} < min {t.min:g}"))
        elif t.max is not None and value > t.max:
            verdicts.append(Verdict(t, value, False, f"{value:.4g} > max {t.max:g}"))
        else:
            verdicts.append(Verdict(t, value, True, "ok"))
    return verdicts
