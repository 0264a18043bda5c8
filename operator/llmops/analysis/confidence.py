"""Verdicts with confidence: rates judged on the bound of their interval, paired comparisons.

Pure functions of counts, no I/O. The evaluation program (`llmops eval`) uses them to judge its
thresholds and to compare two revisions on the same prompts; the lifecycle uses
`comparison_verdict` to turn a report's comparison into a gate verdict.

**Rates.** A metric that is a proportion over prompts (each prompt scores 0 or 1: exactMatch,
errorRate, …; `llmops.api.metric_names.RATE_METRICS`) is estimated by k successes out of n. Its
threshold is judged on the Wilson score interval at confidence level c (two-sided, z = Φ⁻¹(1 -
(1 - c)/2), 1.96 at 95%)::

    centre ± half = (k + z²/2 ± z·√(k(n-k)/n + z²/4)) / (n + z²)

A `min` threshold passes when the lower bound ≥ min, a `max` threshold when the upper bound ≤ max:
the sample must *show* the bound, not merely land on the right side of it. Each bound has a
smallest sample that could ever show it, reached when every prompt is perfect (k = n for a min,
k = 0 for a max): n ≥ z²·t/(1 - t) for `min t`, n ≥ z²·(1 - t)/t for `max t` (`min_samples`).
Below it the verdict is `InsufficientSamples` (never a pass, never a silent failure). More
generally a bound the interval misses is `Failed` when the observed rate is itself on the wrong
side of the threshold (or on it), and `InsufficientSamples` when it is on the right side: the
sample is consistent with a pass but too small to show it, and the verdict says how many prompts
a result at the observed rate would need (`samples_at_rate`). A bound of exactly
`min 1` or `max 0` ("every prompt", "no prompt") cannot be shown by any interval: it is read as a
claim about the dataset itself and judged on the count (every prompt right, no prompt failed). At 95%, showing
errorRate ≤ 0.01 takes 381 prompts; six prompts with no error give an upper bound of 0.39.

**Paired comparison.** Two revisions answer the same prompts. Per prompt the candidate wins (better
than the baseline), loses or ties. The test is the exact sign test on the untied prompts: under
"no difference" the losses among wins + losses follow Binomial(wins + losses, ½). For 0/1 scores
this is the exact McNemar test (wins and losses are its discordant pairs); for graded scores
(tokenF1, rougeL) it is the paired sign test. The p-value is one-sided: the probability of at
least this many losses if the candidate were no worse. The verdict against a tolerance `maxDrop`
(how far the metric may move in its bad direction):

- `NotWorse`: the observed drop is within maxDrop;
- `Worse`: the drop exceeds maxDrop and chance does not explain it (p < 1 - confidence);
- `Inconclusive`: the drop exceeds maxDrop but could be chance at this sample size.

Neither `Worse` nor `Inconclusive` lets a candidate through. `NotWorse` is an observation, not a
proof of non-inferiority: the absolute thresholds, judged on their bounds, carry the proof.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from statistics import NormalDist
from typing import Any, Final

from llmops.api.metric_names import HIGHER_IS_BETTER

__all__ = [
    "DEFAULT_CONFIDENCE",
    "FAILED",
    "INCONCLUSIVE",
    "INSUFFICIENT_SAMPLES",
    "NOT_WORSE",
    "PASSED",
    "WORSE",
    "ComparisonVerdict",
    "PairedComparison",
    "RateJudgement",
    "compare_paired",
    "comparison_verdict",
    "format_rate",
    "judge_rate",
    "min_samples",
    "samples_at_rate",
    "sign_test",
    "wilson_interval",
    "z_score",
]

DEFAULT_CONFIDENCE: Final = 0.95

# Verdicts of one threshold on a rate (the same words as the evaluation summary's).
PASSED: Final = "Passed"
FAILED: Final = "Failed"
INSUFFICIENT_SAMPLES: Final = "InsufficientSamples"

# Verdicts of a paired comparison.
NOT_WORSE: Final = "NotWorse"
WORSE: Final = "Worse"
INCONCLUSIVE: Final = "Inconclusive"


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


@cache
def z_score(confidence: float) -> float:
    """The two-sided normal quantile of a confidence level: 1.96 at 0.95."""
    _check_confidence(confidence)
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def wilson_interval(successes: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of successes/n; (0, 1) when n is 0 (nothing is known)."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return 0.0, 1.0
    z = z_score(confidence)
    z2 = z * z
    centre = successes + z2 / 2
    half = z * math.sqrt(successes * (n - successes) / n + z2 / 4)
    low, high = (centre - half) / (n + z2), (centre + half) / (n + z2)
    # Exact ends where the formula is exact but floating point is not (k = 0 or k = n).
    if successes == 0:
        low = 0.0
    if successes == n:
        high = 1.0
    return max(0.0, low), min(1.0, high)


def min_samples(threshold: float, *, upper: bool, confidence: float = DEFAULT_CONFIDENCE) -> int | None:
    """The fewest prompts with which a perfect result shows the bound; None if no number can.

    `upper=False` is a `min` threshold (every prompt a success: k = n), `upper=True` a `max`
    threshold (no success: k = 0). A `min` of 1 or more, or a `max` of 0 or less, cannot be shown.
    """
    z2 = z_score(confidence) ** 2
    if upper:
        if threshold <= 0:
            return None
        if threshold >= 1:
            return 1
        n = max(1, math.ceil(z2 * (1 - threshold) / threshold))
    else:
        if threshold >= 1:
            return None
        if threshold <= 0:
            return 1
        n = max(1, math.ceil(z2 * threshold / (1 - threshold)))
    # The closed form is exact; floating point may put it one off either way.
    while n > 1 and _perfect_shows(threshold, n - 1, upper, confidence):
        n -= 1
    while not _perfect_shows(threshold, n, upper, confidence):
        n += 1
    return n


def _perfect_shows(threshold: float, n: int, upper: bool, confidence: float) -> bool:
    """Whether n perfect prompts show the bound (no success under a max, all under a min)."""
    if upper:
        return wilson_interval(0, n, confidence)[1] <= threshold
    return wilson_interval(n, n, confidence)[0] >= threshold


@dataclass(frozen=True, slots=True)
class RateJudgement:
    """A rate's threshold judged on its interval: the verdict and the numbers behind it."""

    verdict: str
    value: float | None
    n: int
    lower: float
    upper: float
    required: int | None = None
    """Prompts needed to show the threshold at all (set when the verdict is InsufficientSamples)."""
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict == PASSED


def format_rate(x: float) -> str:
    """A rate or bound for a message: 0.39, 0.00, 1.00, and two significant digits below 0.1
    (0.014, 0.0025), so that a bound just above a small threshold does not print as equal to it."""
    return f"{x:.2f}" if abs(round(x, 6)) >= 0.1 or x == 0 else f"{x:.2g}"


_fmt = format_rate


def _bound_at_rate(rate: float, n: int, upper: bool, confidence: float) -> float:
    """The Wilson bound of n prompts at exactly `rate` (k = rate·n, not rounded)."""
    z = z_score(confidence)
    z2 = z * z
    centre = rate * n + z2 / 2
    half = z * math.sqrt(rate * (1 - rate) * n + z2 / 4)
    return (centre + half) / (n + z2) if upper else (centre - half) / (n + z2)


_MAX_SAMPLES = 10**12


def samples_at_rate(
    rate: float, threshold: float, *, upper: bool, confidence: float = DEFAULT_CONFIDENCE
) -> int | None:
    """The fewest prompts at which a result at `rate` would show the bound; None if none would.

    For a perfect rate (0 under a max, 1 over a min) this is `min_samples`. A rate on the wrong
    side of the threshold, or on it, never shows it.
    """
    if (upper and not rate < threshold) or (not upper and not rate > threshold):
        return None

    def shows(m: int) -> bool:
        bound = _bound_at_rate(rate, m, upper, confidence)
        return bound <= threshold if upper else bound >= threshold

    high = 1
    while not shows(high):
        high *= 2
        if high > _MAX_SAMPLES:
            return None
    low = high // 2  # shows(low) is false (or low is 0)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if shows(mid) else (mid, high)
    return high


def judge_rate(
    metric: str,
    successes: int,
    n: int,
    *,
    low: float | None = None,
    high: float | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> RateJudgement:
    """Judge a threshold's `min` (low) and `max` (high) on the Wilson bounds of successes/n.

    A bound the interval does not meet is a failure when the observed rate itself is on the wrong
    side of it (or on it); otherwise the sample is too small: InsufficientSamples, with the prompts
    that a result at the observed rate would need (for a perfect result, `min_samples`).
    """
    if low is None and high is None:
        raise ValueError("a threshold needs min, max or both")
    lower, upper = wilson_interval(successes, n, confidence)
    value = successes / n if n else None
    level = f"{confidence:.0%}"
    shown = "not measured" if value is None else _fmt(value)
    problems: list[str] = []
    needs: list[tuple[int, bool]] = []  # (prompts, whether the observed result is perfect)
    failed = False
    for threshold, is_max in ((low, False), (high, True)):
        if threshold is None:
            continue
        if (not is_max and threshold >= 1) or (is_max and threshold <= 0):
            # "Every prompt" / "no prompt": no interval can show a rate of 1 or 0, so it is a
            # claim about this dataset, judged on the count.
            misses = successes if is_max else n - successes
            if misses:
                failed = True
                word = (
                    f"> max {threshold:g} ({misses} of {n} prompts)"
                    if is_max
                    else (f"< min {threshold:g} ({misses} of {n} prompts missed)")
                )
                problems.append(f"{metric} {shown} {word}")
            continue
        bound = upper if is_max else lower
        if (bound <= threshold) if is_max else (bound >= threshold):
            continue
        name, sign = ("upper", "≤") if is_max else ("lower", "≥")
        problems.append(
            f"{metric} {shown} ({level} {name} bound {_fmt(bound)} at n={n}) cannot show {sign} {threshold:g}"
        )
        need = (
            None if value is None else samples_at_rate(value, threshold, upper=is_max, confidence=confidence)
        )
        if need is None:
            failed = True
        else:
            needs.append((max(need, n + 1), successes == (0 if is_max else n)))
    if not problems:
        return RateJudgement(PASSED, value, n, lower, upper, reason="ok")
    reason = "; ".join(problems)
    if failed or not needs:
        return RateJudgement(FAILED, value, n, lower, upper, reason=reason)
    required = max(x for x, _ in needs)
    perfect = all(p for _, p in needs)
    reason += f": needs ≥ {required} prompts" if perfect else f": needs about {required} prompts at this rate"
    return RateJudgement(INSUFFICIENT_SAMPLES, value, n, lower, upper, required, reason)


# ---------------------------------------------------------------------------------- comparisons


def sign_test(wins: int, losses: int) -> float:
    """One-sided exact p-value of at least `losses` losses among wins + losses under Binomial(·, ½).

    With 0/1 outcomes this is the exact McNemar test (wins and losses are the discordant pairs).
    """
    if wins < 0 or losses < 0:
        raise ValueError(f"wins and losses must not be negative, got {wins}, {losses}")
    trials = wins + losses
    if trials == 0:
        return 1.0
    tail = sum(math.comb(trials, k) for k in range(losses, trials + 1))
    return float(min(1.0, tail / 2**trials))


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """One metric of a candidate against a baseline on the same prompts."""

    metric: str
    candidate: float | None
    baseline: float | None
    n: int
    wins: int
    losses: int
    test: str
    """`mcnemar` (0/1 scores) or `sign` (graded scores)."""
    p_value: float

    @property
    def delta(self) -> float | None:
        if self.candidate is None or self.baseline is None:
            return None
        return self.candidate - self.baseline

    def as_dict(self) -> dict[str, Any]:
        """The report's form (values rounded to 6 significant digits)."""
        return {
            "candidate": _round(self.candidate),
            "baseline": _round(self.baseline),
            "delta": _round(self.delta),
            "n": self.n,
            "wins": self.wins,
            "losses": self.losses,
            "test": self.test,
            "pValue": _round(self.p_value),
        }


def _round(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.6g}")


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def compare_paired(metric: str, pairs: list[tuple[float, float]], *, binary: bool) -> PairedComparison:
    """Compare per-prompt (candidate, baseline) scores of `metric`; a win is better in the metric's
    direction (`HIGHER_IS_BETTER`)."""
    higher = HIGHER_IS_BETTER.get(metric, True)
    wins = losses = 0
    for cand, base in pairs:
        if cand == base:
            continue
        if (cand > base) == higher:
            wins += 1
        else:
            losses += 1
    return PairedComparison(
        metric=metric,
        candidate=_mean([c for c, _ in pairs]),
        baseline=_mean([b for _, b in pairs]),
        n=len(pairs),
        wins=wins,
        losses=losses,
        test="mcnemar" if binary else "sign",
        p_value=sign_test(wins, losses),
    )


@dataclass(frozen=True, slots=True)
class MetricComparisonVerdict:
    """One metric's comparison judged against its tolerance."""

    metric: str
    verdict: str
    drop: float | None
    max_drop: float
    message: str


@dataclass(frozen=True, slots=True)
class ComparisonVerdict:
    """The comparison as a whole: NotWorse only if every compared metric is NotWorse."""

    verdict: str
    message: str
    metrics: list[MetricComparisonVerdict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict == NOT_WORSE


def _number(entry: Mapping[str, Any], key: str) -> float | None:
    value = entry.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def judge_comparison(
    metric: str, entry: Mapping[str, Any] | None, max_drop: float, confidence: float = DEFAULT_CONFIDENCE
) -> MetricComparisonVerdict:
    """One report comparison entry ({candidate, baseline, delta, wins, losses, pValue, …}) against maxDrop."""
    _check_confidence(confidence)
    if max_drop < 0:
        raise ValueError(f"maxDrop of {metric} must not be negative, got {max_drop}")
    if not entry:
        return MetricComparisonVerdict(metric, INCONCLUSIVE, None, max_drop, f"{metric} was not compared")
    cand, base, delta = _number(entry, "candidate"), _number(entry, "baseline"), _number(entry, "delta")
    if delta is None and cand is not None and base is not None:
        delta = cand - base
    if delta is None:
        return MetricComparisonVerdict(
            metric, INCONCLUSIVE, None, max_drop, f"{metric} has no value on one side of the comparison"
        )
    drop = -delta if HIGHER_IS_BETTER.get(metric, True) else delta
    wins, losses = int(entry.get("wins") or 0), int(entry.get("losses") or 0)
    p = _number(entry, "pValue")
    p = sign_test(wins, losses) if p is None else p
    test = "McNemar" if entry.get("test") == "mcnemar" else "sign test"
    numbers = (
        f"{metric} {_fmt(base or 0.0)} → {_fmt(cand or 0.0)} ({'+' if delta >= 0 else '-'}{_fmt(abs(delta))}; "
        f"{losses} prompt(s) lost, {wins} won, n={entry.get('n', '?')}, {test} p={p:.2g})"
    )
    if drop <= max_drop:
        return MetricComparisonVerdict(
            metric, NOT_WORSE, drop, max_drop, f"{numbers} within maxDrop {max_drop:g}"
        )
    if p < 1 - confidence:
        return MetricComparisonVerdict(
            metric, WORSE, drop, max_drop, f"{numbers}: worse by {_fmt(drop)}, beyond maxDrop {max_drop:g}"
        )
    return MetricComparisonVerdict(
        metric,
        INCONCLUSIVE,
        drop,
        max_drop,
        f"{numbers}: a drop of {_fmt(drop)} beyond maxDrop {max_drop:g} that chance could explain "
        f"at this sample size (p ≥ {1 - confidence:.2g}); more prompts would settle it",
    )


def comparison_verdict(
    comparison: Mapping[str, Mapping[str, Any]],
    tolerances: Mapping[str, float],
    confidence: float = DEFAULT_CONFIDENCE,
) -> ComparisonVerdict:
    """A report's `comparison` section judged against per-metric maxDrop tolerances.

    `comparison` is the summary's `comparison` (`{"baseline": …, "metrics": {name: entry}}`) or its
    `metrics` mapping alone. Only the metrics named in `tolerances` are judged (a tolerance for a metric the report did not
    compare is Inconclusive). Worse wins over Inconclusive, which wins over NotWorse; the message
    lists the metrics that did not pass, or all of them when every one did.
    """
    if not tolerances:
        return ComparisonVerdict(NOT_WORSE, "no metric to compare")
    inner = comparison.get("metrics")
    if isinstance(inner, Mapping):
        comparison = inner
    judged = [
        judge_comparison(metric, comparison.get(metric), float(max_drop), confidence)
        for metric, max_drop in sorted(tolerances.items())
    ]
    for verdict in (WORSE, INCONCLUSIVE):
        bad = [m for m in judged if m.verdict == verdict]
        if bad:
            word = "worse than the baseline" if verdict == WORSE else "not shown to be no worse"
            return ComparisonVerdict(verdict, f"{word}: " + "; ".join(m.message for m in bad), judged)
    return ComparisonVerdict(
        NOT_WORSE, "no worse than the baseline: " + "; ".join(m.message for m in judged), judged
    )
