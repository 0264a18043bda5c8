"""measure(): one analysis metric's query results against thresholdRange and compareToStable.

A table over every branch: the verdict, the values kept, and the message (which quotes the
number and the bound, or Prometheus' error).
"""

from __future__ import annotations

from typing import Any

import pytest

from llmops.analysis import Check, Error, MetricResults, NoData, Outcome, Result, Value, measure, measure_all
from llmops.api.delivery import AnalysisMetric, AnalysisSpec
from llmops.api.status import AnalysisCheck

REJECTED = Error(
    'bad_data: invalid parameter "query": 1:5: parse error: unclosed left parenthesis', "rejected"
)
DOWN = Error("cannot query Prometheus at http://prom:9090: connection refused", "unreachable")
EMPTY = NoData("the query returned no series")


def metric(**fields: Any) -> AnalysisMetric:
    return AnalysisMetric.model_validate({"name": "m", "template": "tgi-latency-p95", **fields})


MAX = {"thresholdRange": {"max": 0.05}}
MIN = {"thresholdRange": {"min": 10}}
BOTH = {"thresholdRange": {"min": 1, "max": 2}}
RATIO = {"compareToStable": {"maxRatio": 1.5}}
MAX_AND_RATIO = {"thresholdRange": {"max": 1.0}, "compareToStable": {"maxRatio": 1.5}}

# (id, metric fields, canary, stable, verdict, value, stable_value, message)
CASES: list[tuple[str, dict[str, Any], Result, Result | None, Outcome, float | None, float | None, str]] = [
    # -- the canary's result carries no number
    ("canary rejected", MAX, REJECTED, None, Outcome.ERROR, None, None,
     f"Prometheus rejected the canary query: {REJECTED.message}"),
    ("canary unreachable", MAX, DOWN, None, Outcome.INCONCLUSIVE, None, None,
     f"Prometheus unreachable: {DOWN.message}"),
    ("canary no data", MAX, EMPTY, None, Outcome.INCONCLUSIVE, None, None,
     "no data for the canary: the query returned no series"),
    ("canary no data, stable has data", RATIO, EMPTY, Value(0.2), Outcome.INCONCLUSIVE, None, None,
     "no data for the canary: the query returned no series"),
    # -- thresholdRange, inclusive at both ends
    ("under max", MAX, Value(0.01), None, Outcome.PASS, 0.01, None, "0.01 <= max 0.05"),
    ("at max", MAX, Value(0.05), None, Outcome.PASS, 0.05, None, "0.05 <= max 0.05"),
    ("over max", MAX, Value(0.0712), None, Outcome.FAIL, 0.0712, None, "0.0712 above max 0.05"),
    ("at min", MIN, Value(10), None, Outcome.PASS, 10, None, "10 >= min 10"),
    ("under min", MIN, Value(9.5), None, Outcome.FAIL, 9.5, None, "9.5 below min 10"),
    ("inside both", BOTH, Value(1.5), None, Outcome.PASS, 1.5, None, "1.5 in [1, 2]"),
    ("below both", BOTH, Value(0.5), None, Outcome.FAIL, 0.5, None, "0.5 below min 1"),
    ("above both", BOTH, Value(2.5), None, Outcome.FAIL, 2.5, None, "2.5 above max 2"),
    ("range ignores a stable result", MAX, Value(0.01), Value(99), Outcome.PASS, 0.01, None, "0.01 <= max 0.05"),
    # -- compareToStable: canary <= stable * maxRatio
    ("ratio under", RATIO, Value(0.2), Value(0.2), Outcome.PASS, 0.2, 0.2,
     "canary 0.2 <= 1.5 x stable 0.2 = 0.3"),
    ("ratio at the limit", RATIO, Value(0.3), Value(0.2), Outcome.PASS, 0.3, 0.2,
     "canary 0.3 <= 1.5 x stable 0.2 = 0.3"),
    ("ratio over", RATIO, Value(0.327), Value(0.0646), Outcome.FAIL, 0.327, 0.0646,
     "canary 0.327 above 1.5 x stable 0.0646 = 0.0969"),
    ("stable rejected", RATIO, Value(0.2), REJECTED, Outcome.ERROR, 0.2, None,
     f"Prometheus rejected the stable track query: {REJECTED.message}"),
    ("stable unreachable", RATIO, Value(0.2), DOWN, Outcome.INCONCLUSIVE, 0.2, None,
     f"Prometheus unreachable: {DOWN.message}"),
    ("stable no data", RATIO, Value(0.2), NoData("the value is NaN"), Outcome.INCONCLUSIVE, 0.2, None,
     "no data for the stable track: the value is NaN"),
    # -- a zero (or negative) stable value: no ratio can be formed
    ("zero against zero", RATIO, Value(0), Value(0), Outcome.PASS, 0, 0, "canary 0 <= stable 0"),
    ("positive against zero", RATIO, Value(0.01), Value(0), Outcome.INCONCLUSIVE, 0.01, 0,
     "stable is 0, so canary 0.01 cannot be judged by a ratio (bound it with thresholdRange)"),
    ("against negative", RATIO, Value(-1), Value(-2), Outcome.INCONCLUSIVE, -1, -2,
     "stable is -2, so canary -1 cannot be judged by a ratio (bound it with thresholdRange)"),
    # -- both bounds: the range fails on its own, the ratio is checked after it
    ("range fails, stable missing", MAX_AND_RATIO, Value(1.2), EMPTY, Outcome.FAIL, 1.2, None,
     "1.2 above max 1"),
    ("range fails, stable kept", MAX_AND_RATIO, Value(1.2), Value(1.0), Outcome.FAIL, 1.2, 1.0,
     "1.2 above max 1"),
    ("range passes, ratio fails", MAX_AND_RATIO, Value(0.9), Value(0.5), Outcome.FAIL, 0.9, 0.5,
     "canary 0.9 above 1.5 x stable 0.5 = 0.75"),
    ("range passes, stable missing", MAX_AND_RATIO, Value(0.9), EMPTY, Outcome.INCONCLUSIVE, 0.9, None,
     "no data for the stable track: the query returned no series"),
    ("both pass", MAX_AND_RATIO, Value(0.6), Value(0.5), Outcome.PASS, 0.6, 0.5,
     "0.6 <= max 1; canary 0.6 <= 1.5 x stable 0.5 = 0.75"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "canary", "stable", "verdict", "value", "stable_value", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_measure(
    fields: dict[str, Any],
    canary: Result,
    stable: Result | None,
    verdict: Outcome,
    value: float | None,
    stable_value: float | None,
    message: str,
) -> None:
    assert measure(metric(**fields), canary, stable) == Check("m", verdict, value, stable_value, message)


def test_compare_to_stable_without_a_stable_result_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="'m' compares to stable but no stable result"):
        measure(metric(**RATIO), Value(1), None)


def test_check_becomes_the_status_entry() -> None:
    check = measure(metric(**RATIO), Value(0.327), Value(0.0646))
    entry = check.to_status("2026-01-02T03:04:05Z")
    assert entry == AnalysisCheck(
        name="m",
        verdict="Fail",
        value=0.327,
        stable_value=0.0646,
        message="canary 0.327 above 1.5 x stable 0.0646 = 0.0969",
        time="2026-01-02T03:04:05Z",
    )
    assert entry.model_dump(exclude_none=True)["stableValue"] == 0.0646


def test_measure_all_follows_the_spec_order() -> None:
    spec = AnalysisSpec()  # error-ratio (max 0.05), latency-p95 (compareToStable 1.5)
    results = [
        MetricResults("error-ratio", Value(0.01), None),
        MetricResults("latency-p95", Value(0.4), Value(0.2)),
    ]
    assert measure_all(spec, results) == [
        Check("error-ratio", Outcome.PASS, 0.01, None, "0.01 <= max 0.05"),
        Check("latency-p95", Outcome.FAIL, 0.4, 0.2, "canary 0.4 above 1.5 x stable 0.2 = 0.3"),
    ]


def test_measure_all_refuses_results_of_another_spec() -> None:
    with pytest.raises(ValueError, match=r"results for \['error-ratio'\] do not match"):
        measure_all(AnalysisSpec(), [MetricResults("error-ratio", Value(0.01), None)])
