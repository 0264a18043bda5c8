"""judge(): one measurement's checks and the counters so far → PromoteStep, Continue, Rollback or Pause.

Flagger's threshold (the failureLimit-th failed measurement rolls back) and Argo Rollouts'
inconclusiveLimit (that many inconclusive measurements are tolerated, the next one pauses).
"""

from __future__ import annotations

import pytest

from llmops.analysis import QUERY_REJECTED, Check, Decision, Outcome, Verdict, judge
from llmops.api import conditions as c

OK = Check("error-ratio", Outcome.PASS, 0.001, None, "0.001 <= max 0.05")
OK2 = Check("latency-p95", Outcome.PASS, 0.2, 0.2, "canary 0.2 <= 1.5 x stable 0.2 = 0.3")
BAD = Check("error-ratio", Outcome.FAIL, 0.0712, None, "0.0712 above max 0.05")
SLOW = Check("latency-p95", Outcome.FAIL, 0.327, 0.0646, "canary 0.327 above 1.5 x stable 0.0646 = 0.0969")
NODATA = Check(
    "latency-p95", Outcome.INCONCLUSIVE, None, None, "no data for the canary: the query returned no series"
)
DOWN = Check("error-ratio", Outcome.INCONCLUSIVE, None, None, "Prometheus unreachable: connection refused")
REJECTED = Check(
    "custom", Outcome.ERROR, None, None, "Prometheus rejected the canary query: bad_data: 1:5: parse error"
)

# (id, checks, failed so far, inconclusive so far, failure limit, inconclusive limit, expected)
CASES: list[tuple[str, list[Check], int, int, int, int, Verdict]] = [
    ("all pass", [OK, OK2], 0, 0, 2, 3,
     Verdict(Decision.PROMOTE_STEP, 0, 0, c.CANARY_PROGRESSING,
             "all 2 checks passed: error-ratio: 0.001 <= max 0.05; latency-p95: canary 0.2 <= 1.5 x stable 0.2 = 0.3")),
    ("no metrics", [], 0, 0, 2, 3,
     Verdict(Decision.PROMOTE_STEP, 0, 0, c.CANARY_PROGRESSING, "no analysis metrics: nothing to judge")),
    ("counters are kept on a pass", [OK], 1, 2, 2, 3,
     Verdict(Decision.PROMOTE_STEP, 1, 2, c.CANARY_PROGRESSING, "all 1 checks passed: error-ratio: 0.001 <= max 0.05")),
    # -- failures: the failure_limit-th rolls back
    ("first failure of two", [BAD, OK2], 0, 0, 2, 3,
     Verdict(Decision.CONTINUE, 1, 0, c.ANALYSIS_FAILED, "1/2 failed measurements: error-ratio: 0.0712 above max 0.05")),
    ("second failure of two", [BAD, OK2], 1, 0, 2, 3,
     Verdict(Decision.ROLLBACK, 2, 0, c.ANALYSIS_FAILED,
             "2/2 failed measurements, rolling back: error-ratio: 0.0712 above max 0.05")),
    ("failure limit 1", [OK, SLOW], 0, 0, 1, 3,
     Verdict(Decision.ROLLBACK, 1, 0, c.ANALYSIS_FAILED,
             "1/1 failed measurements, rolling back: latency-p95: canary 0.327 above 1.5 x stable 0.0646 = 0.0969")),
    ("two failing metrics count once, both named", [BAD, SLOW], 0, 0, 3, 3,
     Verdict(Decision.CONTINUE, 1, 0, c.ANALYSIS_FAILED,
             "1/3 failed measurements: error-ratio: 0.0712 above max 0.05; "
             "latency-p95: canary 0.327 above 1.5 x stable 0.0646 = 0.0969")),
    ("a failure outranks missing data", [BAD, NODATA], 0, 3, 2, 3,
     Verdict(Decision.CONTINUE, 1, 3, c.ANALYSIS_FAILED, "1/2 failed measurements: error-ratio: 0.0712 above max 0.05")),
    ("a failure outranks a rejected query", [REJECTED, SLOW], 1, 0, 2, 3,
     Verdict(Decision.ROLLBACK, 2, 0, c.ANALYSIS_FAILED,
             "2/2 failed measurements, rolling back: latency-p95: canary 0.327 above 1.5 x stable 0.0646 = 0.0969")),
    ("the limit reached earlier still rolls back", [OK], 2, 0, 2, 3,
     Verdict(Decision.ROLLBACK, 2, 0, c.ANALYSIS_FAILED,
             "2/2 failed measurements, rolling back: the failure limit was already reached")),
    ("a lowered limit rolls back", [NODATA], 1, 0, 1, 3,
     Verdict(Decision.ROLLBACK, 1, 1, c.ANALYSIS_FAILED,
             "1/1 failed measurements, rolling back: the failure limit was already reached")),
    # -- inconclusive: inconclusive_limit of them are tolerated, the next one pauses
    ("first inconclusive", [OK, NODATA], 0, 0, 2, 3,
     Verdict(Decision.CONTINUE, 0, 1, c.ANALYSIS_INCONCLUSIVE,
             "inconclusive measurement 1 of 3 tolerated: latency-p95: no data for the canary: the query returned no series")),
    ("last tolerated", [DOWN, NODATA], 0, 2, 2, 3,
     Verdict(Decision.CONTINUE, 0, 3, c.ANALYSIS_INCONCLUSIVE,
             "inconclusive measurement 3 of 3 tolerated: error-ratio: Prometheus unreachable: connection refused; "
             "latency-p95: no data for the canary: the query returned no series")),
    ("past the limit", [DOWN], 0, 3, 2, 3,
     Verdict(Decision.PAUSE, 0, 4, c.ANALYSIS_INCONCLUSIVE,
             "paused, not promoting without data: 4 inconclusive measurements, more than the 3 tolerated: "
             "error-ratio: Prometheus unreachable: connection refused")),
    ("limit 0 pauses on the first", [NODATA], 0, 0, 2, 0,
     Verdict(Decision.PAUSE, 0, 1, c.ANALYSIS_INCONCLUSIVE,
             "paused, not promoting without data: 1 inconclusive measurements, more than the 0 tolerated: "
             "latency-p95: no data for the canary: the query returned no series")),
    ("data back after a pause moves on", [OK], 0, 4, 2, 3,
     Verdict(Decision.PROMOTE_STEP, 0, 4, c.CANARY_PROGRESSING, "all 1 checks passed: error-ratio: 0.001 <= max 0.05")),
    # -- a rejected query pauses at once
    ("rejected query", [OK, REJECTED], 0, 0, 2, 3,
     Verdict(Decision.PAUSE, 0, 1, QUERY_REJECTED,
             "paused: fix the analysis query in spec.rollout.analysis: "
             "custom: Prometheus rejected the canary query: bad_data: 1:5: parse error")),
    ("rejected outranks missing data", [NODATA, REJECTED], 0, 0, 2, 3,
     Verdict(Decision.PAUSE, 0, 1, QUERY_REJECTED,
             "paused: fix the analysis query in spec.rollout.analysis: "
             "custom: Prometheus rejected the canary query: bad_data: 1:5: parse error")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("checks", "failed", "inconclusive", "failure_limit", "inconclusive_limit", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_judge(
    checks: list[Check],
    failed: int,
    inconclusive: int,
    failure_limit: int,
    inconclusive_limit: int,
    expected: Verdict,
) -> None:
    assert judge(checks, failed, inconclusive, failure_limit, inconclusive_limit) == expected


def test_never_promotes_without_data() -> None:
    """Whatever the counters, a measurement with an inconclusive or error check never says PromoteStep."""
    for checks in ([NODATA], [DOWN, OK], [REJECTED], [OK, OK2, NODATA]):
        for so_far in range(6):
            for limit in range(4):
                decision = judge(checks, 0, so_far, 2, limit).decision
                assert decision in (Decision.CONTINUE, Decision.PAUSE), (checks, so_far, limit)


def test_rollback_within_the_failure_limit() -> None:
    """A canary failing every measurement is rolled back at exactly the failure_limit-th measurement."""
    for limit in (1, 2, 5):
        failed, decisions = 0, []
        while not decisions or decisions[-1] is not Decision.ROLLBACK:
            verdict = judge([BAD], failed, 0, limit, 3)
            failed = verdict.failed_checks
            decisions.append(verdict.decision)
        assert decisions == [Decision.CONTINUE] * (limit - 1) + [Decision.ROLLBACK]


@pytest.mark.parametrize(("failure_limit", "inconclusive_limit", "failed", "inconclusive"), [
    (0, 3, 0, 0), (2, -1, 0, 0), (2, 3, -1, 0), (2, 3, 0, -1),
])  # fmt: skip
def test_nonsense_limits_are_refused(
    failure_limit: int, inconclusive_limit: int, failed: int, inconclusive: int
) -> None:
    with pytest.raises(ValueError, match="failure_limit must be >= 1"):
        judge([OK], failed, inconclusive, failure_limit, inconclusive_limit)
