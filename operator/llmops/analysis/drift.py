"""Drift statistics: pure functions over histogram buckets, scores and ratings.

No I/O, no clock. The drift stage (llmops.lifecycle.drift) asks the shell for the queries built
here, and judges what comes back with these functions:

- Traffic: an engine histogram over a window, summed by `le` (`histogram_query`), arrives as
  cumulative counts keyed by `le`; `from_cumulative` turns them into `Buckets` (finite upper
  edges, de-cumulated counts, the +Inf bucket last). `compare` judges the current window against
  the reference with two statistics:

  - PSI = Σ (pᵢ - qᵢ) · ln(pᵢ / qᵢ) over bins, after ε-smoothing (`smooth`) so that an empty bin
    gives a large but finite term. The engine's buckets are first merged into at most `bins`
    bins of about equal reference mass (`coarsen`): PSI over many sparse buckets grows with
    sampling noise alone (its expectation is about (bins - 1) · (1/n + 1/m) for two samples of
    the same distribution), so 100 linear token buckets would cry wolf on a quiet day.
  - KS D = max |F_ref(e) - F_cur(e)| over the bucket edges e: the largest gap between the two
    empirical CDFs where the histograms can see it (a lower bound of the exact two-sample D).

  Below `min_samples` requests in either window the verdict is Unknown, never drift; buckets
  with different edges cannot be compared (`EdgesDiffer`: TGI's token buckets follow the token
  limits, so a change of limits makes a new reference necessary).
- Prompt content: the capture store's hashed-term histograms of two windows (`TermCounts`, one
  count per prompt per bucket its words hash to) judged by `compare_terms`: the same PSI over
  bins of equal reference mass as traffic. The buckets have no order (hashes), so `coarsen`'s
  runs are arbitrary groups of terms, which is all PSI needs: a partition.
- Quality: `quality_drop` (gate score - scheduled score, sign by the metric's direction).
- Feedback: `feedback` (negative share of the ratings in the window).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from llmops.analysis.queries import FEEDBACK_METRIC, NEGATIVE_RATINGS_REGEX
from llmops.api.constants import PROM_LABEL_DEPLOYMENT

__all__ = [
    "DEFAULT_EPSILON",
    "FEEDBACK_METRIC",
    "Buckets",
    "EdgesDiffer",
    "SignalVerdict",
    "TermCounts",
    "Verdict",
    "coarsen",
    "compare",
    "compare_terms",
    "feedback",
    "feedback_queries",
    "from_cumulative",
    "histogram_query",
    "ks_distance",
    "psi",
    "quality_drop",
    "same_edges",
    "smooth",
]

DEFAULT_EPSILON = 1e-4
"""Probability mass given to every bin before PSI's logarithm (then renormalised)."""


class Verdict(StrEnum):
    """What one signal says about the serving revision."""

    DRIFTED = "Drifted"
    """The statistic is at or above its threshold, on enough samples."""
    NO_DRIFT = "NoDrift"
    """The statistic is below its threshold, on enough samples."""
    UNKNOWN = "Unknown"
    """No verdict: too few samples, no reference, no data or an unreachable Prometheus."""


@dataclass(frozen=True)
class Buckets:
    """A histogram: finite upper edges (ascending) and per-bucket counts, one more than the
    edges (the last bucket holds what is above every edge)."""

    edges: tuple[float, ...]
    counts: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.counts) != len(self.edges) + 1:
            raise ValueError(
                f"{len(self.edges)} edges need {len(self.edges) + 1} counts, got {len(self.counts)}"
            )
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("bucket edges must be strictly increasing")

    @property
    def total(self) -> float:
        return float(sum(self.counts))


class EdgesDiffer(ValueError):
    """Two histograms with different bucket edges: they cannot be compared bucket by bucket."""


@dataclass(frozen=True)
class SignalVerdict:
    """One signal judged: the verdict and the numbers behind it."""

    signal: str
    verdict: Verdict
    value: float | None
    """PSI, the score drop, or the negative ratio."""
    threshold: float
    samples: float | None
    min_samples: int
    message: str
    ks: float | None = None
    ks_threshold: float | None = None

    @property
    def score(self) -> float | None:
        """The statistic over its threshold (1 = at the threshold; the larger of PSI and KS)."""
        if self.value is None:
            return None
        ratios = [self.value / self.threshold]
        if self.ks is not None and self.ks_threshold:
            ratios.append(self.ks / self.ks_threshold)
        return max(ratios)


def _parse_le(value: str) -> float:
    number = float(value)
    if math.isnan(number):
        raise ValueError(f"le={value!r} is not a bucket edge")
    return number


def from_cumulative(by_le: Mapping[str, float]) -> Buckets:
    """Buckets from Prometheus' cumulative `le` counts (`{"10": 3, "20": 5, "+Inf": 6}`).

    Each count is the cumulative minus the previous one, floored at 0: `increase()` extrapolates
    each series on its own, so neighbouring cumulative counts can cross. Mostly by a hair; but in
    a window that the series begin inside, Prometheus 2.x extrapolates a series towards its own
    zero point when that lies within 1.1 scrape intervals of its first sample, else by half an
    interval, so two neighbours either side of that line differ by up to 0.6 intervals' worth of
    the window (seen: one bucket of a 10 s window at 1 s scrapes came out empty, its mass in the
    one below). Without a `+Inf` bucket nothing lies above the largest edge (the open bucket is 0).
    """
    if not by_le:
        raise ValueError("no buckets")
    pairs = sorted((_parse_le(le), float(v)) for le, v in by_le.items())
    if pairs[-1][0] != math.inf:
        pairs.append((math.inf, pairs[-1][1]))
    counts = []
    previous = 0.0
    for _, cumulative in pairs:
        counts.append(max(0.0, cumulative - previous))
        previous = max(previous, cumulative)
    return Buckets(tuple(e for e, _ in pairs[:-1]), tuple(counts))


def same_edges(a: Buckets, b: Buckets) -> bool:
    return a.edges == b.edges


def _cuts(reference: Sequence[float], bins: int) -> list[int]:
    """Indices after which to cut `reference` into at most `bins` runs of about equal mass, each
    holding some: the last run is open-ended, taking in the empty buckets above the reference's
    last non-empty one (as the top decile does), because a bin the reference holds nothing of
    makes PSI's term of any current mass there explode (ε-smoothing keeps it finite, not small):
    one empty top bucket, which increase()'s extrapolation alone can produce (from_cumulative),
    would be drift. Mass above the reference's range is still judged, by KS."""
    total = sum(reference)
    cuts: list[int] = []
    if total <= 0:
        return cuts
    last = max(i for i, n in enumerate(reference) if n > 0)
    running = 0.0
    target = 1
    for i, n in enumerate(reference[:last]):
        running += n
        if running >= total * target / bins:
            cuts.append(i)
            while target < bins and running >= total * target / bins:
                target += 1
            if target >= bins:
                break
    return cuts


def _merge(counts: Sequence[float], cuts: Sequence[int]) -> tuple[float, ...]:
    out, start = [], 0
    for cut in [*cuts, len(counts) - 1]:
        out.append(float(sum(counts[start : cut + 1])))
        start = cut + 1
    return tuple(out)


def coarsen(reference: Buckets, current: Buckets, bins: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Both histograms merged into the same at most `bins` bins, cut where the reference's
    cumulative mass crosses 1/bins, 2/bins, ... (decile bins for 10). Raises EdgesDiffer."""
    if not same_edges(reference, current):
        raise EdgesDiffer("the bucket edges differ")
    if bins < 1:
        raise ValueError("bins must be >= 1")
    cuts = _cuts(reference.counts, bins)
    return _merge(reference.counts, cuts), _merge(current.counts, cuts)


def smooth(counts: Sequence[float], epsilon: float = DEFAULT_EPSILON) -> tuple[float, ...]:
    """Proportions with ε added to each and renormalised: (cᵢ/N + ε) / (1 + kε)."""
    total = float(sum(counts))
    if total <= 0:
        raise ValueError("no samples")
    k = len(counts)
    return tuple((c / total + epsilon) / (1 + k * epsilon) for c in counts)


def psi(reference: Sequence[float], current: Sequence[float], epsilon: float = DEFAULT_EPSILON) -> float:
    """Population stability index of `current` against `reference` (counts over the same bins)."""
    if len(reference) != len(current):
        raise EdgesDiffer(f"{len(reference)} reference bins against {len(current)} current bins")
    q, p = smooth(reference, epsilon), smooth(current, epsilon)
    # Equal proportions add nothing (and with ε = 0 a bin empty in both would be 0·ln(0/0)).
    return float(sum((pi - qi) * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi != qi))


def ks_distance(reference: Buckets, current: Buckets) -> float:
    """KS D at the bucket edges: max |F_ref(e) - F_cur(e)|. Raises EdgesDiffer."""
    if not same_edges(reference, current):
        raise EdgesDiffer("the bucket edges differ")
    n_ref, n_cur = reference.total, current.total
    if n_ref <= 0 or n_cur <= 0:
        raise ValueError("no samples")
    d = 0.0
    f_ref = f_cur = 0.0
    for a, b in zip(reference.counts[:-1], current.counts[:-1], strict=True):
        f_ref += a / n_ref
        f_cur += b / n_cur
        d = max(d, abs(f_ref - f_cur))
    return d


def compare(
    signal: str,
    reference: Buckets,
    current: Buckets,
    *,
    psi_threshold: float,
    ks_threshold: float,
    min_samples: int,
    bins: int,
    epsilon: float = DEFAULT_EPSILON,
) -> SignalVerdict:
    """Judge `current` against `reference`: Drifted when PSI or KS D reaches its threshold, with
    at least `min_samples` requests in both windows. Raises EdgesDiffer."""
    if not same_edges(reference, current):
        raise EdgesDiffer(
            f"{signal}: the bucket edges changed ({len(reference.edges)} edges up to "
            f"{_edge(reference)} in the reference, {len(current.edges)} up to {_edge(current)} now)"
        )
    samples = min(reference.total, current.total)
    if samples < min_samples:
        message = (
            f"{signal}: {reference.total:.0f} requests in the reference and {current.total:.0f} in the "
            f"current window, fewer than minSamples {min_samples}: no verdict"
        )
        return SignalVerdict(
            signal, Verdict.UNKNOWN, None, psi_threshold, samples, min_samples, message, None, ks_threshold
        )
    ref_bins, cur_bins = coarsen(reference, current, bins)
    value = psi(ref_bins, cur_bins, epsilon)
    d = ks_distance(reference, current)
    drifted = value >= psi_threshold or d >= ks_threshold
    verdict = Verdict.DRIFTED if drifted else Verdict.NO_DRIFT
    psi_cmp = ">=" if value >= psi_threshold else "<"
    ks_cmp = ">=" if d >= ks_threshold else "<"
    message = (
        f"{signal}: PSI {value:.3f} {psi_cmp} {psi_threshold:g}, KS {d:.3f} {ks_cmp} {ks_threshold:g} "
        f"({current.total:.0f} requests against {reference.total:.0f} in the reference)"
    )
    return SignalVerdict(
        signal, verdict, value, psi_threshold, samples, min_samples, message, d, ks_threshold
    )


@dataclass(frozen=True)
class TermCounts:
    """A window's hashed-term histogram from the capture store (GET /v1/terms)."""

    counts: tuple[int, ...]
    """Per bucket, the prompts with a word hashed there."""
    prompts: int
    """Prompts in the window."""

    def as_buckets(self) -> Buckets:
        # Unit edges stand for the bucket numbers: the buckets have no order, only identities.
        return Buckets(tuple(float(i) for i in range(1, len(self.counts))), tuple(map(float, self.counts)))


def compare_terms(
    reference: TermCounts,
    current: TermCounts,
    *,
    psi_threshold: float,
    min_samples: int,
    bins: int,
    epsilon: float = DEFAULT_EPSILON,
) -> SignalVerdict:
    """Judge the prompts' term distribution of `current` against `reference`: Drifted when PSI
    reaches its threshold, with at least `min_samples` prompts in both windows. Raises
    EdgesDiffer when the two were hashed into different numbers of buckets."""
    signal = "prompts"
    if len(reference.counts) != len(current.counts):
        raise EdgesDiffer(f"{len(reference.counts)} reference buckets against {len(current.counts)} current")
    samples = float(min(reference.prompts, current.prompts))
    if samples < min_samples or not sum(reference.counts) or not sum(current.counts):
        message = (
            f"{signal}: {reference.prompts} captured prompts in the reference and {current.prompts} in "
            f"the current window, fewer than minSamples {min_samples}: no verdict"
        )
        return SignalVerdict(signal, Verdict.UNKNOWN, None, psi_threshold, samples, min_samples, message)
    ref_bins, cur_bins = coarsen(reference.as_buckets(), current.as_buckets(), bins)
    value = psi(ref_bins, cur_bins, epsilon)
    drifted = value >= psi_threshold
    message = (
        f"{signal}: PSI {value:.3f} {'>=' if drifted else '<'} {psi_threshold:g} over the terms of "
        f"{current.prompts} captured prompts against {reference.prompts} in the reference"
    )
    verdict = Verdict.DRIFTED if drifted else Verdict.NO_DRIFT
    return SignalVerdict(signal, verdict, value, psi_threshold, samples, min_samples, message)


def _edge(b: Buckets) -> str:
    return f"{b.edges[-1]:g}" if b.edges else "none"


def histogram_query(
    bucket_metric: str, selector: str, window: str, *, at: float | None = None, offset: str | None = None
) -> str:
    """`sum by (le) (increase(<bucket>{selector}[window] [offset o] [@ at]))`: the requests per
    cumulative bucket over one window, summed over the pods `selector` matches."""
    rng = f"{bucket_metric}{{{selector}}}[{window}]"
    if offset:
        rng += f" offset {offset}"
    if at is not None:
        rng += f" @ {at:.3f}"
    return f"sum by (le) (increase({rng}))"


def feedback_queries(namespace: str, name: str, revision: str, window: str) -> tuple[str, str]:
    """(negative ratings, all ratings) over the window of the answers `revision` produced.

    `revision` is the label the gateway takes from the rated answer's signed request ID, so a
    rating that reaches another pod, or arrives after a rollout, still counts for the revision
    that answered. No negative rating reads 0; no rating at all reads no data (Unknown).
    """
    base = f'namespace="{namespace}",{PROM_LABEL_DEPLOYMENT}="{name}",revision="{revision}"'
    negative = f'sum(increase({FEEDBACK_METRIC}{{{base},rating=~"{NEGATIVE_RATINGS_REGEX}"}}[{window}]))'
    total = f"sum(increase({FEEDBACK_METRIC}{{{base}}}[{window}]))"
    return f"({negative} or vector(0))", total


def quality_drop(gate_score: float, scheduled_score: float, *, higher_is_better: bool) -> float:
    """How much worse the scheduled score is than the gate's (negative: it got better)."""
    return gate_score - scheduled_score if higher_is_better else scheduled_score - gate_score


def feedback(negative: float, total: float, *, max_ratio: float, min_samples: int) -> SignalVerdict:
    """The negative share of the ratings in the window against `max_ratio`."""
    if total < min_samples:
        message = (
            f"feedback: {total:.0f} ratings in the window, fewer than minSamples {min_samples}: no verdict"
        )
        return SignalVerdict("feedback", Verdict.UNKNOWN, None, max_ratio, total, min_samples, message)
    ratio = max(0.0, min(1.0, negative / total))
    drifted = ratio >= max_ratio
    message = (
        f"feedback: {ratio:.1%} negative ({negative:.0f}/{total:.0f} ratings) "
        f"{'>=' if drifted else '<'} {max_ratio:.1%}"
    )
    verdict = Verdict.DRIFTED if drifted else Verdict.NO_DRIFT
    return SignalVerdict("feedback", verdict, ratio, max_ratio, total, min_samples, message)
