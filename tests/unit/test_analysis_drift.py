"""Drift statistics (llmops.analysis.drift): PSI and KS on hand-computed buckets, ε-smoothing,
empty buckets, coarsening, different edges, minimum samples, feedback and quality arithmetic."""

from __future__ import annotations

import math
import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmops.analysis.drift import (
    Buckets,
    EdgesDiffer,
    SignalVerdict,
    Verdict,
    coarsen,
    compare,
    feedback,
    feedback_queries,
    from_cumulative,
    histogram_query,
    ks_distance,
    psi,
    quality_drop,
    smooth,
)
from llmops.gateway.feedback import NEGATIVE_RATINGS

EDGES = (10.0, 20.0, 30.0)


def buckets(*counts: float, edges: tuple[float, ...] = EDGES) -> Buckets:
    return Buckets(edges, tuple(float(c) for c in counts))


# ------------------------------------------------------------------------------ from_cumulative


def test_cumulative_le_counts_are_de_cumulated_in_edge_order() -> None:
    got = from_cumulative({"+Inf": 6, "20": 5, "10": 3, "30": 5.5})
    assert got == Buckets((10.0, 20.0, 30.0), (3.0, 2.0, 0.5, 0.5))
    assert got.total == 6.0


def test_crossing_extrapolated_counts_are_floored_at_zero() -> None:
    # increase() extrapolates each bucket series on its own: a higher bucket can come out a hair lower.
    got = from_cumulative({"10": 3.02, "20": 3.0, "+Inf": 4.0})
    assert got.counts == (3.02, 0.0, pytest.approx(0.98))


def test_without_an_inf_bucket_the_last_edge_closes_the_histogram() -> None:
    assert from_cumulative({"10": 1, "20": 4}) == Buckets((10.0, 20.0), (1.0, 3.0, 0.0))


@pytest.mark.parametrize("bad", [{}, {"NaN": 1.0}, {"ten": 1.0}, {"10": 1.0, "1e+01": 1.0}])
def test_bad_buckets_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        from_cumulative(bad)


def test_buckets_check_their_shape() -> None:
    with pytest.raises(ValueError, match="3 edges need 4 counts"):
        Buckets(EDGES, (1.0, 2.0))
    with pytest.raises(ValueError, match="strictly increasing"):
        Buckets((20.0, 10.0), (1.0, 1.0, 1.0))


# ------------------------------------------------------------------------------------------- PSI


def test_psi_by_hand() -> None:
    # q = (0.5, 0.5), p = (0.25, 0.75): (0.25-0.5)·ln(0.5) + (0.75-0.5)·ln(1.5) = 0.25·ln 3.
    assert psi([50, 50], [25, 75], epsilon=0) == pytest.approx(0.25 * math.log(3))
    assert psi([50, 50], [25, 75], epsilon=0) == pytest.approx(0.274653072)


def test_psi_is_symmetric_and_zero_for_the_same_shape() -> None:
    assert psi([10, 30, 60], [20, 60, 120]) == pytest.approx(0.0, abs=1e-12)
    assert psi([50, 50], [25, 75]) == pytest.approx(psi([25, 75], [50, 50]))


def test_epsilon_smoothing_keeps_an_empty_bucket_finite() -> None:
    # Without ε the reference's empty second bucket would give ln(p/0) = ∞.
    # q = (1.01/1.02, 0.01/1.02), p = (0.51/1.02, 0.51/1.02) = (0.5, 0.5).
    q0, q1 = 1.01 / 1.02, 0.01 / 1.02
    by_hand = (0.5 - q0) * math.log(0.5 / q0) + (0.5 - q1) * math.log(0.5 / q1)
    assert psi([100, 0], [50, 50], epsilon=0.01) == pytest.approx(by_hand)
    assert psi([100, 0], [50, 50], epsilon=0.01) == pytest.approx(2.262313979)
    assert math.isfinite(psi([100, 0], [0, 100]))


def test_smoothing_is_a_distribution() -> None:
    p = smooth([3, 0, 1], epsilon=0.1)
    assert sum(p) == pytest.approx(1.0)
    assert p == pytest.approx(((0.75 + 0.1) / 1.3, 0.1 / 1.3, (0.25 + 0.1) / 1.3))
    with pytest.raises(ValueError, match="no samples"):
        smooth([0, 0])


def test_buckets_empty_in_both_windows_add_nothing() -> None:
    assert psi([50, 0, 50], [25, 0, 75], epsilon=0) == pytest.approx(psi([50, 50], [25, 75], epsilon=0))


def test_psi_needs_the_same_bins() -> None:
    with pytest.raises(EdgesDiffer):
        psi([1, 2], [1, 2, 3])


# -------------------------------------------------------------------------------------- coarsen


def test_coarsen_cuts_at_equal_reference_mass() -> None:
    edges = tuple(float(e) for e in range(1, 11))
    ref = Buckets(edges, (10,) * 10 + (0,))
    cur = Buckets(edges, (0,) * 8 + (50, 50, 0))
    assert coarsen(ref, cur, 5) == ((20, 20, 20, 20, 20), (0, 0, 0, 0, 100))


def test_coarsen_merges_an_empty_reference_tail_into_the_last_bin() -> None:
    # The last bin is open-ended, as the top decile is: a bin the reference holds nothing of would
    # make PSI's ε-smoothed term of any current mass there huge. KS judges mass above the
    # reference's range (test_mass_above_the_reference_is_drift_by_ks).
    ref, cur = buckets(0, 0, 100, 0), buckets(0, 0, 50, 50)
    assert coarsen(ref, cur, 10) == ((100,), (100,))
    edges = tuple(float(e) for e in range(1, 11))
    ref = Buckets(edges, (10,) * 5 + (0,) * 6)
    cur = Buckets(edges, (10,) * 10 + (0,))
    assert coarsen(ref, cur, 10) == ((10, 10, 10, 10, 10), (10, 10, 10, 10, 60))


@given(
    st.lists(st.integers(min_value=0, max_value=50), min_size=2, max_size=40).filter(any),
    st.integers(min_value=1, max_value=20),
)
def test_every_coarse_bin_holds_reference_mass(counts: list[int], bins: int) -> None:
    edges = tuple(float(e) for e in range(1, len(counts)))
    ref = Buckets(edges, tuple(float(c) for c in counts))
    ref_bins, _ = coarsen(ref, ref, bins)
    assert 1 <= len(ref_bins) <= bins
    assert all(n > 0 for n in ref_bins)
    assert sum(ref_bins) == sum(counts)


def test_mass_above_the_reference_is_drift_by_ks() -> None:
    # Prompts of 103-200 words against a reference of 1-102: one bin for PSI, D = 1 at edge 102.4.
    rng = random.Random(3)
    ref, cur = _sample(rng, 400, 1, 102), _sample(rng, 400, 103, 200)
    verdict = compare("inputLength", ref, cur, psi_threshold=0.2, ks_threshold=0.2, min_samples=100, bins=10)
    assert verdict.verdict == Verdict.DRIFTED
    assert verdict.ks == pytest.approx(1.0)


# A reference recorded by a CI run (2026-12-03, test_drifted_while_serving): prompts of 20-120
# words, its first window straddling the first request. Prometheus 2.42's increase() extrapolates
# each bucket series on its own: towards its zero point when that is within 1.1 scrape intervals
# of the first sample, else half an interval. The le=112.64 series fell on one side and le=122.88
# on the other, so the two came out equal and the bucket between them empty.
_RECORDED_REFERENCE = (0, 4.665, 74.175, 75.321, 62.285, 62.078, 65.492, 54.456, 44.657, 62.971, 105.093)


def test_a_reference_with_an_empty_top_bucket_is_no_drift_for_the_same_traffic() -> None:
    edges = tuple(10.24 * (k + 1) for k in range(100))
    ref = Buckets(edges, tuple(float(c) for c in _RECORDED_REFERENCE) + (0.0,) * 90)
    cur = _sample(random.Random(11), 680, 20, 120)
    verdict = compare("inputLength", ref, cur, psi_threshold=0.2, ks_threshold=0.2, min_samples=150, bins=10)
    assert verdict.verdict == Verdict.NO_DRIFT, verdict.message


def test_coarsen_refuses_different_edges() -> None:
    with pytest.raises(EdgesDiffer):
        coarsen(buckets(1, 1, 1, 1), buckets(1, 1, 1, 1, edges=(10.0, 20.0, 40.0)), 10)


def _sample(rng: random.Random, n: int, low: int, high: int) -> Buckets:
    """n requests with input lengths uniform in [low, high] in TGI's 100 linear buckets of limit 1024."""
    edges = tuple(10.24 * (k + 1) for k in range(100))
    counts = [0.0] * 101
    for _ in range(n):
        counts[min(100, math.ceil(rng.randint(low, high) / 10.24) - 1)] += 1
    return Buckets(edges, tuple(counts))


def test_coarsening_is_what_keeps_psi_quiet_on_sparse_buckets() -> None:
    # Two samples of one wide distribution: over 100 sparse buckets PSI is mostly noise, about
    # (k - 1)·(1/n + 1/m); over 10 bins of equal reference mass it is ten times smaller.
    rng = random.Random(7)
    a, b = _sample(rng, 300, 1, 1024), _sample(rng, 300, 1, 1024)
    raw = psi(a.counts, b.counts)
    binned = psi(*coarsen(a, b, 10))
    assert raw > 0.2  # would cry wolf at the usual threshold
    assert binned < 0.1


# ------------------------------------------------------------------------------------------- KS


def test_ks_by_hand() -> None:
    # CDFs at the edges 10, 20, 30: (0.1, 0.3, 0.6) against (0.4, 0.7, 0.9).
    assert ks_distance(buckets(10, 20, 30, 40), buckets(40, 30, 20, 10)) == pytest.approx(0.4)


def test_ks_of_the_same_shape_is_zero_and_of_disjoint_mass_is_one() -> None:
    assert ks_distance(buckets(1, 2, 3, 4), buckets(2, 4, 6, 8)) == pytest.approx(0.0)
    assert ks_distance(buckets(100, 0, 0, 0), buckets(0, 0, 0, 100)) == pytest.approx(1.0)


def test_ks_refuses_different_edges_and_empty_windows() -> None:
    with pytest.raises(EdgesDiffer):
        ks_distance(buckets(1, 1, 1, 1), Buckets((10.0,), (1.0, 1.0)))
    with pytest.raises(ValueError, match="no samples"):
        ks_distance(buckets(0, 0, 0, 0), buckets(1, 1, 1, 1))


# -------------------------------------------------------------------------------------- compare


def judge(ref: Buckets, cur: Buckets, min_samples: int = 100) -> SignalVerdict:
    return compare(
        "inputLength", ref, cur, psi_threshold=0.2, ks_threshold=0.2, min_samples=min_samples, bins=10
    )


def test_a_shift_is_drifted_with_both_numbers_in_the_message() -> None:
    got = compare(
        "inputLength",
        buckets(50, 50, 0, 0),
        buckets(25, 75, 0, 0),
        psi_threshold=0.2,
        ks_threshold=0.3,
        min_samples=100,
        bins=10,
    )
    assert got.verdict is Verdict.DRIFTED
    assert got.value == pytest.approx(psi([50, 50], [25, 75]))
    assert got.ks == pytest.approx(0.25)
    assert got.samples == 100
    assert (
        got.message
        == "inputLength: PSI 0.275 >= 0.2, KS 0.250 < 0.3 (100 requests against 100 in the reference)"
    )
    assert got.score == pytest.approx(got.value / 0.2)


def test_ks_alone_can_make_drift() -> None:
    # A shift inside one coarse bin escapes PSI but not KS at the bucket edges.
    got = compare(
        "inputLength",
        buckets(500, 500, 0, 0),
        buckets(500, 500, 0, 0),
        psi_threshold=0.2,
        ks_threshold=0.2,
        min_samples=100,
        bins=1,
    )
    assert got.verdict is Verdict.NO_DRIFT and got.value == pytest.approx(0.0)
    moved = compare(
        "inputLength",
        buckets(500, 500, 0, 0),
        buckets(200, 800, 0, 0),
        psi_threshold=0.2,
        ks_threshold=0.2,
        min_samples=100,
        bins=1,
    )
    assert moved.value == pytest.approx(0.0)  # one bin: PSI cannot see it
    assert moved.verdict is Verdict.DRIFTED and moved.ks == pytest.approx(0.3)
    assert moved.score == pytest.approx(1.5)


def test_the_same_distribution_is_no_drift() -> None:
    got = judge(buckets(30, 30, 30, 10), buckets(31, 29, 30, 10))
    assert got.verdict is Verdict.NO_DRIFT
    assert got.message.startswith("inputLength: PSI 0.001 < 0.2, KS 0.010 < 0.2")


def test_below_min_samples_is_unknown_never_drift() -> None:
    got = judge(buckets(100, 0, 0, 0), buckets(0, 0, 0, 99), min_samples=100)
    assert got.verdict is Verdict.UNKNOWN
    assert got.value is None and got.score is None
    assert got.samples == 99
    assert got.message == (
        "inputLength: 100 requests in the reference and 99 in the current window, "
        "fewer than minSamples 100: no verdict"
    )


def test_different_edges_cannot_be_compared() -> None:
    # TGI's token buckets are limit/100 wide: new token limits, new edges.
    with pytest.raises(EdgesDiffer, match="the bucket edges changed"):
        judge(buckets(50, 50, 0, 0), buckets(50, 50, 0, 0, edges=(20.0, 40.0, 60.0)))


# ----------------------------------------------------------------------------- feedback, quality


def test_feedback_ratio_on_synthetic_counts() -> None:
    drifted = feedback(30, 100, max_ratio=0.2, min_samples=50)
    assert (drifted.verdict, drifted.value, drifted.samples) == (Verdict.DRIFTED, 0.3, 100)
    assert drifted.message == "feedback: 30.0% negative (30/100 ratings) >= 20.0%"
    calm = feedback(10, 100, max_ratio=0.2, min_samples=50)
    assert (calm.verdict, calm.value) == (Verdict.NO_DRIFT, 0.1)
    at_threshold = feedback(20, 100, max_ratio=0.2, min_samples=50)
    assert at_threshold.verdict is Verdict.DRIFTED
    quiet = feedback(5, 10, max_ratio=0.2, min_samples=50)
    assert (quiet.verdict, quiet.value) == (Verdict.UNKNOWN, None)
    assert quiet.message == "feedback: 10 ratings in the window, fewer than minSamples 50: no verdict"


def test_quality_drop_follows_the_metric_direction() -> None:
    assert quality_drop(0.9, 0.8, higher_is_better=True) == pytest.approx(0.1)
    assert quality_drop(0.8, 0.9, higher_is_better=True) == pytest.approx(-0.1)
    assert quality_drop(1.0, 1.5, higher_is_better=False) == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------- PromQL


def test_histogram_queries() -> None:
    sel = 'namespace="ns",llmops_deployment="m"'
    assert histogram_query("tgi_request_input_length_bucket", sel, "1h") == (
        'sum by (le) (increase(tgi_request_input_length_bucket{namespace="ns",llmops_deployment="m"}[1h]))'
    )
    assert histogram_query("b", sel, "1h", offset="7d") == f"sum by (le) (increase(b{{{sel}}}[1h] offset 7d))"
    assert histogram_query("b", sel, "1h", at=1700000000) == (
        f"sum by (le) (increase(b{{{sel}}}[1h] @ 1700000000.000))"
    )
    negative, total = feedback_queries("prod", "chat", "r1", "1h")
    rated = 'namespace="prod",llmops_deployment="chat",revision="r1"'
    assert (
        negative == f'(sum(increase(llmops_feedback_total{{{rated},rating=~"down|1|2"}}[1h])) or vector(0))'
    )
    assert total == f"sum(increase(llmops_feedback_total{{{rated}}}[1h]))"


def test_feedback_queries_count_as_negative_exactly_the_ratings_the_gateway_calls_negative() -> None:
    """The drift signal and the gateway must agree on the label values (they once did not: the
    query asked for rating="negative", a value the gateway never writes)."""
    negative, _ = feedback_queries("ns", "n", "r", "1h")
    (alternatives,) = re.findall(r'rating=~"([^"]*)"', negative)
    assert tuple(alternatives.split("|")) == NEGATIVE_RATINGS
