"""Verdicts with confidence: Wilson bounds, the smallest sample that can show a threshold, the exact
McNemar / sign test, and the mapping of a report's comparison to a gate verdict."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmops.analysis.confidence import (
    FAILED,
    INCONCLUSIVE,
    INSUFFICIENT_SAMPLES,
    NOT_WORSE,
    PASSED,
    WORSE,
    compare_paired,
    comparison_verdict,
    judge_rate,
    min_samples,
    samples_at_rate,
    sign_test,
    wilson_interval,
    z_score,
)


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I,
        # method 3 (Wilson score, no continuity correction), 95%.
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (29, 29, 0.8830, 1.0),
        # The user report: six prompts, no error.
        (0, 6, 0.0, 0.3903),
    ],
)
def test_wilson_interval_matches_published_values(k: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_z_of_common_levels() -> None:
    assert z_score(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert z_score(0.99) == pytest.approx(2.575829, abs=1e-6)
    with pytest.raises(ValueError, match="confidence"):
        z_score(1.0)


def test_no_samples_know_nothing_and_bad_counts_are_refused() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_interval(3, 2)


@pytest.mark.parametrize(
    ("threshold", "upper", "confidence", "expected"),
    [
        (0.01, True, 0.95, 381),  # errorRate <= 0.01: z² · 99 = 380.3
        (0.05, True, 0.95, 73),
        (0.01, True, 0.99, 657),
        (0.8, False, 0.95, 16),  # exactMatch >= 0.8: z² · 4 = 15.4
        (0.9, False, 0.95, 35),
        (1.0, True, 0.95, 1),  # max 1 holds for any rate
        (0.0, False, 0.95, 1),
        (0.0, True, 0.95, None),  # no interval shows a rate of 0 or 1
        (1.0, False, 0.95, None),
    ],
)
def test_min_samples(threshold: float, upper: bool, confidence: float, expected: int | None) -> None:
    assert min_samples(threshold, upper=upper, confidence=confidence) == expected


@given(
    threshold=st.floats(min_value=0.001, max_value=0.999),
    upper=st.booleans(),
    confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_min_samples_is_the_smallest_perfect_sample_that_shows_the_bound(
    threshold: float, upper: bool, confidence: float
) -> None:
    n = min_samples(threshold, upper=upper, confidence=confidence)
    assert n is not None

    def shows(m: int) -> bool:
        low, high = wilson_interval(0 if upper else m, m, confidence)
        return high <= threshold if upper else low >= threshold

    assert shows(n)
    assert n == 1 or not shows(n - 1)


@given(n=st.integers(min_value=1, max_value=2000), data=st.data())
def test_wilson_contains_the_estimate_and_narrows_with_n(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=0, max_value=n))
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0
    # Four times the sample, the same rate: a narrower interval.
    low4, high4 = wilson_interval(4 * k, 4 * n)
    assert high4 - low4 < high - low


def test_the_user_report_is_insufficient_samples_with_the_numbers() -> None:
    j = judge_rate("errorRate", 0, 6, high=0.01)
    assert (j.verdict, j.n, j.required, j.passed) == (INSUFFICIENT_SAMPLES, 6, 381, False)
    assert j.reason == "errorRate 0.00 (95% upper bound 0.39 at n=6) cannot show ≤ 0.01: needs ≥ 381 prompts"


@pytest.mark.parametrize(
    ("k", "n", "low", "high", "verdict"),
    [
        (0, 400, None, 0.01, PASSED),  # upper bound 0.0095
        (
            1,
            400,
            None,
            0.01,
            INSUFFICIENT_SAMPLES,
        ),  # 0.0025 is below 0.01, but 400 cannot show it (677 would)
        (5, 400, None, 0.01, FAILED),  # 0.0125: the observation itself misses
        (0, 380, None, 0.01, INSUFFICIENT_SAMPLES),
        (3, 6, None, 0.01, FAILED),  # lower bound 0.19 > 0.01: a failure shown even at n=6
        (20, 20, 0.8, None, PASSED),  # lower bound 0.839
        (15, 15, 0.8, None, INSUFFICIENT_SAMPLES),  # 16 needed
        (6, 20, 0.8, None, FAILED),
        (10, 10, 1.0, None, PASSED),  # min 1: "every prompt", judged on the count
        (9, 10, 1.0, None, FAILED),
        (0, 3, None, 0.0, PASSED),  # max 0: "no prompt"
        (1, 3, None, 0.0, FAILED),
        (50, 100, 0.3, 0.7, PASSED),  # both bounds: 0.40 to 0.60
        (5, 10, 0.3, 0.7, INSUFFICIENT_SAMPLES),  # 0.24 to 0.76 around 0.5: consistent, not shown
        (8, 10, 0.3, 0.7, FAILED),  # 0.8 > 0.7
    ],
)
def test_judge_rate(k: int, n: int, low: float | None, high: float | None, verdict: str) -> None:
    assert judge_rate("m", k, n, low=low, high=high).verdict == verdict


@given(
    n=st.integers(min_value=1, max_value=500),
    threshold=st.floats(min_value=0.001, max_value=0.999),
    data=st.data(),
)
def test_a_rate_passes_only_when_its_bound_does_and_too_few_is_never_a_pass(
    n: int, threshold: float, data: st.DataObject
) -> None:
    k = data.draw(st.integers(min_value=0, max_value=n))
    j = judge_rate("errorRate", k, n, high=threshold)
    assert j.passed == (wilson_interval(k, n)[1] <= threshold)
    need = min_samples(threshold, upper=True)
    assert need is not None
    if n < need:
        assert not j.passed
    if j.passed:
        return
    if k / n >= threshold:  # the observation itself misses: a failure, whatever the size
        assert j.verdict == FAILED and j.required is None
        return
    # Consistent with a pass but not shown: too few prompts, and how many a result like it needs.
    assert j.verdict == INSUFFICIENT_SAMPLES
    assert j.required is not None and j.required > n and j.required >= need
    if k == 0:
        assert j.required == need and f"needs ≥ {need} prompts" in j.reason
    else:
        assert f"needs about {j.required} prompts at this rate" in j.reason


@given(
    rate=st.floats(min_value=0.0, max_value=1.0),
    threshold=st.floats(min_value=0.001, max_value=0.999),
    upper=st.booleans(),
)
def test_samples_at_rate_is_the_smallest_size_whose_bound_meets_the_threshold(
    rate: float, threshold: float, upper: bool
) -> None:
    need = samples_at_rate(rate, threshold, upper=upper)
    if (upper and rate >= threshold) or (not upper and rate <= threshold):
        assert need is None
        return
    if need is None:  # too close to the threshold for any practical size
        return
    z2 = z_score(0.95) ** 2

    def bound(m: int) -> float:
        centre, half = rate * m + z2 / 2, math.sqrt(z2) * math.sqrt(rate * (1 - rate) * m + z2 / 4)
        return (centre + half) / (m + z2) if upper else (centre - half) / (m + z2)

    assert (bound(need) <= threshold) if upper else (bound(need) >= threshold)
    if need > 1:
        assert (bound(need - 1) > threshold) if upper else (bound(need - 1) < threshold)
    if rate in (0.0, 1.0) and (rate == 0.0) == upper:
        assert need == min_samples(threshold, upper=upper)


# ------------------------------------------------------------------------------- paired tests


@pytest.mark.parametrize(
    ("wins", "losses", "p"),
    [
        (0, 9, 2**-9),  # every discordant prompt lost: exact McNemar, one-sided
        (3, 10, 378 / 8192),  # P(X >= 10 | Bin(13, 1/2)) = (286 + 78 + 13 + 1) / 2^13
        (5, 5, 638 / 1024),  # P(X >= 5 | Bin(10, 1/2))
        (9, 0, 1.0),
        (0, 0, 1.0),  # no discordant prompt: no evidence of a difference
    ],
)
def test_sign_test_exact_values(wins: int, losses: int, p: float) -> None:
    assert sign_test(wins, losses) == pytest.approx(p, rel=1e-12)


@given(st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=60))
def test_sign_test_is_a_probability_that_falls_with_more_losses(wins: int, losses: int) -> None:
    p = sign_test(wins, losses)
    assert 0.0 < p <= 1.0
    assert sign_test(wins, losses + 1) <= p
    # The two tails of the same binomial cover it (with the shared point counted twice).
    point = math.comb(wins + losses, losses) / 2 ** (wins + losses)
    assert p + sign_test(losses, wins) == pytest.approx(1.0 + point)


def test_compare_paired_counts_wins_in_the_metrics_direction() -> None:
    exact = compare_paired("exactMatch", [(1, 0), (0, 1), (0, 1), (1, 1)], binary=True)
    assert (exact.wins, exact.losses, exact.n, exact.test) == (1, 2, 4, "mcnemar")
    assert exact.delta == pytest.approx(-0.25)
    # errorRate: lower is better, so a candidate error where the baseline had none is a loss.
    errors = compare_paired("errorRate", [(1, 0), (0, 0), (0, 0)], binary=True)
    assert (errors.wins, errors.losses) == (0, 1)
    f1 = compare_paired("tokenF1", [(0.5, 0.4), (0.2, 0.3), (0.7, 0.7)], binary=False)
    assert (f1.wins, f1.losses, f1.test) == (1, 1, "sign")


def _entry(cand: float, base: float, wins: int, losses: int, n: int = 100) -> dict:
    return {
        "candidate": cand,
        "baseline": base,
        "delta": cand - base,
        "n": n,
        "wins": wins,
        "losses": losses,
        "test": "mcnemar",
        "pValue": sign_test(wins, losses),
    }


@pytest.mark.parametrize(
    ("entry", "max_drop", "verdict", "says"),
    [
        (_entry(0.90, 0.90, 0, 0), 0.01, NOT_WORSE, "within maxDrop 0.01"),
        (_entry(0.895, 0.90, 2, 2), 0.01, NOT_WORSE, "within maxDrop"),
        (_entry(0.80, 0.90, 0, 10), 0.01, WORSE, "worse by 0.10, beyond maxDrop 0.01"),
        (_entry(0.88, 0.90, 1, 3), 0.01, INCONCLUSIVE, "that chance could explain"),
        (_entry(0.97, 0.90, 7, 0), 0.0, NOT_WORSE, "+0.07"),
    ],
)
def test_a_comparison_entry_against_its_tolerance(
    entry: dict, max_drop: float, verdict: str, says: str
) -> None:
    got = comparison_verdict({"exactMatch": entry}, {"exactMatch": max_drop})
    assert got.verdict == verdict and says in got.message
    assert got.passed == (verdict == NOT_WORSE)


def test_comparison_verdict_worse_wins_and_missing_metrics_are_inconclusive() -> None:
    report = {
        "exactMatch": _entry(0.80, 0.90, 0, 10),
        "errorRate": {**_entry(0.02, 0.0, 0, 2), "delta": 0.02},  # lower is better: +0.02 is a drop
    }
    got = comparison_verdict(report, {"exactMatch": 0.01, "errorRate": 0.05, "refusalRate": 0.0})
    assert got.verdict == WORSE
    assert got.message.startswith("worse than the baseline: exactMatch 0.90 → 0.80 (-0.10; 10 prompt(s) lost")
    by_metric = {m.metric: m.verdict for m in got.metrics}
    assert by_metric == {"exactMatch": WORSE, "errorRate": NOT_WORSE, "refusalRate": INCONCLUSIVE}
    only_missing = comparison_verdict(report, {"refusalRate": 0.0})
    assert (only_missing.verdict, only_missing.message) == (
        INCONCLUSIVE,
        "not shown to be no worse: refusalRate was not compared",
    )
    assert comparison_verdict(report, {}).verdict == NOT_WORSE
    # The summary's whole section works as well as its metrics.
    whole = {"baseline": "http://serving", "metrics": report}
    assert comparison_verdict(whole, {"exactMatch": 0.01}).verdict == WORSE
    with pytest.raises(ValueError, match="maxDrop of exactMatch must not be negative"):
        comparison_verdict(report, {"exactMatch": -0.1})
