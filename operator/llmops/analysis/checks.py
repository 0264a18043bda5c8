"""One analysis metric measured once: the canary's (and stable's) query results against the bounds.

`measure` is the single place where a threshold is compared (STYLE: no pasted threshold code).
Its rules, in order:

1. Canary result: `Error(rejected)` → Error (Prometheus' message quoted); `Error(unreachable)` →
   Inconclusive; `NoData` → Inconclusive. Never a pass without a number.
2. thresholdRange: pass when min <= value <= max (both inclusive, either optional); outside → Fail.
   An absolute bound needs no stable value, so it fails even when the stable query has no data.
3. compareToStable: pass when canary <= stable * maxRatio. The stable result maps like the canary's
   (rejected → Error, unreachable or NoData → Inconclusive). When stable <= 0 a ratio means nothing
   (any positive canary value is an infinite ratio of a zero baseline): the check passes when the
   canary is not above stable (0 against 0), and is Inconclusive otherwise — an absolute bound on
   such a metric belongs in thresholdRange.
4. Everything held → Pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmops.analysis.results import Error, MetricResults, NoData, Result, Value
from llmops.api.delivery import AnalysisMetric, AnalysisSpec, ThresholdRange
from llmops.api.status import AnalysisCheck, Outcome

__all__ = ["Check", "Outcome", "measure", "measure_all"]


@dataclass(frozen=True)
class Check:
    """The result of one analysis metric in one measurement."""

    name: str
    """The analysis metric's name."""
    verdict: Outcome
    value: float | None = None
    """The canary's value (None without data)."""
    stable_value: float | None = None
    """The stable track's value, for compareToStable (None when not compared or without data)."""
    message: str = ""
    """Why, with the numbers and the bound: e.g. `0.0712 above max 0.05`."""

    def to_status(self, time: str) -> AnalysisCheck:
        """This check as status.canary.checks[] (time: RFC 3339, from the caller's clock)."""
        return AnalysisCheck(
            name=self.name,
            verdict=self.verdict.value,
            value=self.value,
            stable_value=self.stable_value,
            message=self.message,
            time=time,
        )


def _num(value: float) -> str:
    """A number as it appears in messages: 4 significant digits."""
    return f"{value:.4g}"


def _range_text(tr: ThresholdRange) -> str:
    if tr.min is not None and tr.max is not None:
        return f"in [{_num(tr.min)}, {_num(tr.max)}]"
    if tr.max is not None:
        return f"<= max {_num(tr.max)}"
    assert tr.min is not None  # the model requires min, max or both
    return f">= min {_num(tr.min)}"


def _range_violation(value: float, tr: ThresholdRange) -> str | None:
    if tr.min is not None and value < tr.min:
        return f"{_num(value)} below min {_num(tr.min)}"
    if tr.max is not None and value > tr.max:
        return f"{_num(value)} above max {_num(tr.max)}"
    return None


def _without_number(result: Error | NoData, whose: str) -> tuple[Outcome, str]:
    """Verdict and message for a result that carries no number (whose: "canary", "stable track")."""
    if isinstance(result, Error) and result.kind == "rejected":
        return Outcome.ERROR, f"Prometheus rejected the {whose} query: {result.message}"
    if isinstance(result, Error):
        return Outcome.INCONCLUSIVE, f"Prometheus unreachable: {result.message}"
    return Outcome.INCONCLUSIVE, f"no data for the {whose}: {result.reason}"


def measure(metric: AnalysisMetric, canary: Result, stable: Result | None) -> Check:
    """Judge one analysis metric from its query results (see the module docstring for the rules).

    `stable` is the stable track's result, required when the metric has compareToStable (ValueError
    otherwise: the caller ran the wrong queries) and ignored when it has not.
    """
    if metric.compare_to_stable is not None and stable is None:
        raise ValueError(f"analysis metric {metric.name!r} compares to stable but no stable result was given")
    if not isinstance(canary, Value):
        verdict, text = _without_number(canary, "canary")
        return Check(metric.name, verdict, message=text)
    value = canary.value
    cmp = metric.compare_to_stable
    # The stable value is reported whenever it was measured, also next to a range failure.
    stable_value = stable.value if cmp is not None and isinstance(stable, Value) else None
    passed: list[str] = []
    tr = metric.threshold_range
    if tr is not None:
        violation = _range_violation(value, tr)
        if violation is not None:
            return Check(metric.name, Outcome.FAIL, value, stable_value, violation)
        passed.append(f"{_num(value)} {_range_text(tr)}")
    if cmp is None:
        return Check(metric.name, Outcome.PASS, value, None, "; ".join(passed))
    assert stable is not None  # checked above
    if not isinstance(stable, Value):
        verdict, text = _without_number(stable, "stable track")
        return Check(metric.name, verdict, value, None, text)
    base, ratio = stable.value, cmp.max_ratio
    if base <= 0:
        if value > base:
            text = (
                f"stable is {_num(base)}, so canary {_num(value)} cannot be judged by a ratio "
                "(bound it with thresholdRange)"
            )
            return Check(metric.name, Outcome.INCONCLUSIVE, value, base, text)
        passed.append(f"canary {_num(value)} <= stable {_num(base)}")
        return Check(metric.name, Outcome.PASS, value, base, "; ".join(passed))
    limit = base * ratio
    if value > limit:
        text = f"canary {_num(value)} above {_num(ratio)} x stable {_num(base)} = {_num(limit)}"
        return Check(metric.name, Outcome.FAIL, value, base, text)
    passed.append(f"canary {_num(value)} <= {_num(ratio)} x stable {_num(base)} = {_num(limit)}")
    return Check(metric.name, Outcome.PASS, value, base, "; ".join(passed))


def measure_all(analysis: AnalysisSpec, results: Sequence[MetricResults]) -> list[Check]:
    """`measure` for every metric of spec.rollout.analysis, given the results of `queries()` in the
    same order (as `PromClient.query_all` returns them). ValueError if they do not line up, e.g.
    when the spec changed between querying and judging."""
    names = [m.name for m in analysis.metrics]
    if names != [r.name for r in results]:
        raise ValueError(f"results for {[r.name for r in results]} do not match the analysis metrics {names}")
    return [measure(metric, r.canary, r.stable) for metric, r in zip(analysis.metrics, results, strict=True)]
