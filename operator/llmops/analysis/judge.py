"""One measurement's checks → what the canary does next: the single `judge()`.

A measurement is all analysis metrics measured once (every analysis interval). It counts as
exactly one of: failed (any check Fail), inconclusive (no Fail, but some check Error or
Inconclusive), or passed (every check Pass; vacuously so with no metrics). The counters are
cumulative over one canary, as Flagger's `failedChecks` and Argo Rollouts' AnalysisRun counts
are; the caller resets them when a new canary starts.

- Failed: `failed + 1`; at `failed >= failureLimit` → Rollback (Flagger's `threshold`: the
  failureLimit-th failed measurement rolls back), else Continue (hold the step, measure again).
  Failures are evidence: once the limit is reached, every later measurement says Rollback too.
- Inconclusive: `inconclusive + 1`; past the limit (`inconclusive > inconclusiveLimit`, Argo
  Rollouts' "tolerated" count) → Pause, else Continue. Absence of evidence is not evidence:
  a later measurement that passes moves on again, so Pause holds only while data is missing.
  A rejected query (Error) pauses at once, whatever the limit: asking again cannot help.
- Passed → PromoteStep: the current step may proceed once its pause is over.

A fail outranks an error, an error outranks an inconclusive: one measurement's classification
uses its worst check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from llmops.analysis.checks import Check, Outcome
from llmops.api import conditions as c

__all__ = ["QUERY_REJECTED", "Decision", "Verdict", "judge"]

QUERY_REJECTED = "AnalysisQueryRejected"
"""Reason when Prometheus rejects an analysis query (a spec error; the message quotes Prometheus)."""


class Decision(StrEnum):
    """What the canary state machine does after one measurement."""

    PROMOTE_STEP = "PromoteStep"
    """Every check passed: the current step may proceed (to the next weight, or to promotion after
    the last step) once its pause is over."""
    CONTINUE = "Continue"
    """No verdict yet (a failure or an inconclusive measurement within its limit): hold the
    current step and measure again after the interval."""
    ROLLBACK = "Rollback"
    """failureLimit failed measurements: remove the canary; stable stays."""
    PAUSE = "Pause"
    """Too many measurements without data, or a rejected query: hold the current step, and say
    why in a condition. Never promotes."""


@dataclass(frozen=True)
class Verdict:
    """The decision with the updated counters (status.canary.failedChecks/inconclusiveChecks)."""

    decision: Decision
    failed_checks: int
    inconclusive_checks: int
    reason: str
    """CamelCase reason for the condition (llmops.api.conditions, or QUERY_REJECTED)."""
    message: str
    """Names each failing/inconclusive metric with its value and bound; no timestamps or pod names."""


def _details(checks: Sequence[Check], outcome: Outcome) -> str:
    return "; ".join(f"{check.name}: {check.message}" for check in checks if check.verdict is outcome)


def judge(
    checks: Sequence[Check],
    failed_so_far: int,
    inconclusive_so_far: int,
    failure_limit: int,
    inconclusive_limit: int,
) -> Verdict:
    """Classify one measurement and decide (see the module docstring for the rules)."""
    if failure_limit < 1 or inconclusive_limit < 0 or failed_so_far < 0 or inconclusive_so_far < 0:
        raise ValueError("failure_limit must be >= 1; inconclusive_limit and the counters >= 0")
    outcomes = {check.verdict for check in checks}
    failing = _details(checks, Outcome.FAIL)
    failed = failed_so_far + (1 if failing else 0)
    unsure = not failing and bool(outcomes & {Outcome.ERROR, Outcome.INCONCLUSIVE})
    inconclusive = inconclusive_so_far + (1 if unsure else 0)

    def verdict(decision: Decision, reason: str, message: str) -> Verdict:
        return Verdict(decision, failed, inconclusive, reason, message)

    failures = f"{failed}/{failure_limit} failed measurements"
    if failed >= failure_limit:
        # Also when this measurement did not fail: the limit was reached before (or was lowered).
        why = failing or "the failure limit was already reached"
        return verdict(Decision.ROLLBACK, c.ANALYSIS_FAILED, f"{failures}, rolling back: {why}")
    if failing:
        return verdict(Decision.CONTINUE, c.ANALYSIS_FAILED, f"{failures}: {failing}")
    if Outcome.ERROR in outcomes:
        rejected = _details(checks, Outcome.ERROR)
        message = f"paused: fix the analysis query in spec.rollout.analysis: {rejected}"
        return verdict(Decision.PAUSE, QUERY_REJECTED, message)
    if unsure:
        missing = _details(checks, Outcome.INCONCLUSIVE)
        if inconclusive > inconclusive_limit:
            counts = f"{inconclusive} inconclusive measurements, more than the {inconclusive_limit} tolerated"
            message = f"paused, not promoting without data: {counts}: {missing}"
            return verdict(Decision.PAUSE, c.ANALYSIS_INCONCLUSIVE, message)
        counts = f"inconclusive measurement {inconclusive} of {inconclusive_limit} tolerated"
        return verdict(Decision.CONTINUE, c.ANALYSIS_INCONCLUSIVE, f"{counts}: {missing}")
    if not checks:
        return verdict(Decision.PROMOTE_STEP, c.CANARY_PROGRESSING, "no analysis metrics: nothing to judge")
    passed = _details(checks, Outcome.PASS)
    return verdict(Decision.PROMOTE_STEP, c.CANARY_PROGRESSING, f"all {len(checks)} checks passed: {passed}")
