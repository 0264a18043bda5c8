"""A retrained candidate's road: the same stages as any revision, plus two of its own.

A retrain run that reports a model (retrain.py) makes it ``status.candidate``; target.py then points
the pipeline at it. On the way:

    Evaluating        cache (download of the Hub repo@revision, or the path already on the
                      model cache) → evaluation gate, exactly as a spec revision
      → Rejected      the download failed, the gate failed, or it is worse than what serves
                      (spec.retrain.noWorseThan against status.serving.scores: CandidateWorse, with
                      the numbers)
    AwaitingApproval  spec.retrain.approval Manual: held after the gate, before the canary, until
                      the annotation llmops.io/approve-retrain names this run (an older run's value
                      does nothing; a run that does not exist is named in the condition)
    Rolling           canary (or a plain rolling update) like any revision
      → Promoted      stable serves it: status.serving says so, with origin = the run
      → Rejected      its canary rolled back
    Abandoned         spec.model changed meanwhile: spec wins

A rejected candidate never serves: the serving revision is untouched and the next pass targets
it again. Every step is in status.history and an Event, under the run ID, so that
``kubectl describe`` tells the story from the drift numbers to the promotion.

:func:`comparison_verdict` is the one place that turns a gate report into a verdict against the
serving revision: the paired comparison the evaluation Job computed when it could score the
serving revision on the same prompts (the gate passes it the production Service as its
baseline), else the two gate scores. With a held-out set of corrections (spec.evaluation.heldOut),
:func:`held_out_verdict` judges that set's paired comparison by the same rules: a candidate that
loses on either never serves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from llmops.analysis.confidence import DEFAULT_CONFIDENCE, NOT_WORSE, WORSE
from llmops.analysis.confidence import comparison_verdict as paired_comparison
from llmops.api import conditions as c
from llmops.api.constants import ANNOTATION_APPROVE
from llmops.api.delivery import NoWorseThan
from llmops.api.status import AdapterStatusDict, CandidateStatusDict, ComparisonDict, MetricResultDict
from llmops.lifecycle.context import Event, Pass
from llmops.lifecycle.diagnose import Problem
from llmops.lifecycle.gate import Gate
from llmops.lifecycle.target import ACTIVE_CANDIDATE_STATES, Target

__all__ = [
    "CANDIDATE",
    "CandidateGate",
    "ComparisonVerdict",
    "abandon_candidate",
    "candidate_after_rollout",
    "candidate_gate",
    "comparison_verdict",
    "held_out_verdict",
    "new_candidate",
]

CANDIDATE = c.CANDIDATE
EVALUATING, AWAITING, ROLLING = "Evaluating", "AwaitingApproval", "Rolling"
PROMOTED, REJECTED, ABANDONED = "Promoted", "Rejected", "Abandoned"


@dataclass(frozen=True)
class CandidateGate:
    """What the candidate's own checks decided this pass."""

    held: bool = False
    """Passed its gate but may not roll yet (Manual approval pending)."""
    rejected: bool = False
    """It will never serve; the serving revision stays."""
    message: str = ""


@dataclass(frozen=True)
class ComparisonVerdict:
    """The candidate against the serving revision, per compared metric."""

    passed: bool
    entries: list[ComparisonDict]
    message: str
    reason: str = c.CANDIDATE_WORSE
    """Why it did not pass: CandidateWorse, or CandidateNotShownNoWorse (a paired drop chance could explain)."""


def new_candidate(run: str, target: Target, spec_model: str) -> CandidateStatusDict:
    """status.candidate for what run ``run`` reported, at the start of its road."""
    cand: CandidateStatusDict = {
        "run": run,
        "model": target.model,
        "revision": target.revision,
        "specModel": spec_model,
        "state": EVALUATING,
        "reason": c.RETRAIN_SUCCEEDED,
        "message": f"{target.text} from run {run} enters the cache and evaluation stages",
    }
    if target.path:
        cand["path"] = target.path
    if (adapter := target.adapter_status()) is not None:
        cand["adapter"] = cast(AdapterStatusDict, adapter)
    return cand


def _current(p: Pass) -> CandidateStatusDict:
    """status.candidate as this pass updates it (in place: it is ``p.fields["candidate"]``)."""
    if "candidate" not in p.fields:
        p.fields["candidate"] = cast(CandidateStatusDict, dict(p.old_status.get("candidate") or {}))
    return p.fields["candidate"] or {}


def _move(
    p: Pass, cand: CandidateStatusDict, state: str, reason: str, message: str, *, warn: bool = False
) -> None:
    """Change the candidate's state: condition, history (under its run) and an Event."""
    cand.update({"state": state, "reason": reason, "message": message[:1000]})
    status = {PROMOTED: c.TRUE, REJECTED: c.FALSE, ABANDONED: c.FALSE}.get(state, c.UNKNOWN)
    p.cond(CANDIDATE, status, reason, f"run {cand.get('run')}: {message}"[:1000])
    p.record(f"Candidate{state}", cand.get("revision"), reason, f"run {cand.get('run')}: {message}"[:1000])
    p.events.append(
        Event("Warning" if warn else "Normal", reason, f"run {cand.get('run')}: {message}"[:1000])
    )


def _reject(p: Pass, cand: CandidateStatusDict, serving: Target, reason: str, why: str) -> CandidateGate:
    message = f"{why.removesuffix('; it will not serve')}; it will not serve, {serving.text} keeps serving"
    _move(p, cand, REJECTED, reason, message, warn=True)
    # The Evaluated condition described the candidate's gate; what serves is what it is about now.
    p.cond(
        c.EVALUATED, c.TRUE, c.EVALUATION_PASSED, f"{serving.text} serves; the rejected candidate does not"
    )
    return CandidateGate(rejected=True, message=message)


def candidate_gate(
    p: Pass, target: Target, serving: Target, cache_problem: Problem | None, gate: Gate
) -> CandidateGate | None:
    """After cache and gate, for a retrained target: reject, hold for approval, or let it roll."""
    cand = _current(p)
    if (
        not target.retrained
        or cand.get("run") != target.origin
        or cand.get("state") not in ACTIVE_CANDIDATE_STATES
    ):
        return None
    state = cand.get("state")
    if state == EVALUATING:
        if cache_problem is not None and cache_problem.permanent:
            return _reject(p, cand, serving, cache_problem.reason, cache_problem.message)
        if gate.failed:
            why = gate.problem.message if gate.problem else "it failed its evaluation"
            return _reject(
                p, cand, serving, gate.problem.reason if gate.problem else c.EVALUATION_FAILED, why
            )
        if not gate.passed:
            p.cond(
                CANDIDATE,
                c.UNKNOWN,
                c.CANDIDATE_EVALUATING,
                f"run {cand.get('run')}: {target.text} is in its cache and evaluation stages",
            )
            return CandidateGate(held=True)
        verdict = _compare(p, target)
        cand["comparison"] = verdict.entries
        if not verdict.passed:
            return _reject(p, cand, serving, verdict.reason, verdict.message)
        if _approval(p) == "Auto":
            _move(
                p,
                cand,
                ROLLING,
                c.CANDIDATE_APPROVED,
                f"{target.text} passed its gate ({verdict.message}); approval Auto",
            )
            return CandidateGate()
        _move(p, cand, AWAITING, c.RETRAIN_AWAITING_APPROVAL, _awaiting_text(cand, target, verdict.message))
        state = AWAITING
    if state == AWAITING:
        return _await_approval(p, cand, target)
    return CandidateGate()


def _approval(p: Pass) -> str:
    retrain = p.ld.spec.retrain
    return retrain.approval if retrain is not None else "Manual"


def _awaiting_text(cand: CandidateStatusDict, target: Target, compared: str) -> str:
    return (
        f"{target.text} passed its gate ({compared}); it waits for approval before its canary: "
        f"annotate {ANNOTATION_APPROVE}={cand.get('run')}"
    )


def _await_approval(p: Pass, cand: CandidateStatusDict, target: Target) -> CandidateGate:
    """Manual approval: the annotation must name this run; other values are explained, not acted on."""
    run = str(cand.get("run"))
    value = str((p.ld.metadata.get("annotations") or {}).get(ANNOTATION_APPROVE, "")).strip()
    if value == run:
        _move(
            p,
            cand,
            ROLLING,
            c.CANDIDATE_APPROVED,
            f"{target.text} approved by annotation {ANNOTATION_APPROVE}={run}",
        )
        return CandidateGate()
    # The message it got on arrival: the comparison's numbers and which run to name.
    waiting = str(cand.get("message") or _awaiting_text(cand, target, "no worse than what serves"))
    if value and _earlier_run(value, run):
        p.cond(
            CANDIDATE,
            c.UNKNOWN,
            c.RETRAIN_AWAITING_APPROVAL,
            f"run {run}: {ANNOTATION_APPROVE}={value} names an earlier run and approves nothing; {waiting}"[
                :1000
            ],
        )
    elif value:
        p.cond(
            CANDIDATE,
            c.UNKNOWN,
            c.APPROVAL_UNKNOWN_RUN,
            f"run {run}: {ANNOTATION_APPROVE}={value} names no retrain run of this LLMDeployment; {waiting}"[
                :1000
            ],
        )
    else:
        p.cond(CANDIDATE, c.UNKNOWN, c.RETRAIN_AWAITING_APPROVAL, f"run {run}: {waiting}"[:1000])
    return CandidateGate(held=True, message=waiting)


def _earlier_run(value: str, run: str) -> bool:
    """``value`` is the ID of a run before ``run`` (``<name>-retrain-<n>`` with a smaller n)."""
    stem, _, number = run.rpartition("-")
    other_stem, _, other = value.rpartition("-")
    return other_stem == stem and other.isdigit() and number.isdigit() and int(other) < int(number)


def candidate_after_rollout(
    p: Pass, target: Target, serving: Target, rolled_back: bool, promoted: bool
) -> bool:
    """A Rolling candidate after the canary or rolling update: promoted or rejected. True if rejected."""
    cand = _current(p)
    if not target.retrained or cand.get("run") != target.origin or cand.get("state") != ROLLING:
        return False
    if rolled_back:
        why = str((p.fields.get("canary") or {}).get("message") or "its canary was rolled back")
        _reject(p, cand, serving, c.ROLLED_BACK, why)
        return True
    if promoted:
        _move(p, cand, PROMOTED, c.CANDIDATE_PROMOTED, f"{target.text} serves all traffic")
    else:
        p.cond(
            CANDIDATE, c.UNKNOWN, c.CANDIDATE_APPROVED, f"run {cand.get('run')}: {target.text} is rolling out"
        )
    return False


def abandon_candidate(p: Pass, spec_model: str) -> None:
    """spec.model changed while a candidate was on its road: spec wins, the candidate is dropped."""
    cand = _current(p)
    if cand.get("state") in ACTIVE_CANDIDATE_STATES and cand.get("specModel") != spec_model:
        _move(
            p,
            cand,
            ABANDONED,
            c.SPEC_CHANGED,
            f"spec.model changed to {spec_model} (was {cand.get('specModel')}): spec wins, the candidate is dropped",
        )
    if not cand:
        p.fields["candidate"] = None
        p.drop_condition(CANDIDATE)


def _compare(p: Pass, target: Target) -> ComparisonVerdict:
    retrain = p.ld.spec.retrain
    rules = retrain.no_worse_than if retrain is not None else []
    report = p.fields.get("evaluation") or p.old_status.get("evaluation") or {}
    if report.get("revision") != target.revision:
        report = {}
    scores = (p.old_status.get("serving") or {}).get("scores") or []
    verdict = comparison_verdict(report, scores, rules)
    held = held_out_verdict(report, rules)
    if held is None:
        return verdict
    entries = [*verdict.entries, *held.entries]
    if not verdict.passed:
        return ComparisonVerdict(False, entries, verdict.message, verdict.reason)
    message = f"{verdict.message}; {held.message}"
    return ComparisonVerdict(held.passed, entries, message if held.passed else held.message, held.reason)


def held_out_verdict(report: Mapping[str, Any], rules: Sequence[NoWorseThan]) -> ComparisonVerdict | None:
    """The candidate against the serving revision on the held-out corrections: the same
    spec.retrain.noWorseThan rules, for the metrics the held-out set compared (None when its gate
    compared none: no held-out set, or no serving revision to score)."""
    held = report.get("heldOut") or {}
    compared = {str(e.get("metric")) for e in held.get("comparison") or []}
    applicable = [r for r in rules if r.metric in compared]
    if not applicable:
        return None
    judged = _paired_verdict({**held, "confidence": report.get("confidence")}, [], applicable)
    entries: list[ComparisonDict] = [{**e, "set": "heldOut"} for e in judged.entries]
    n = held.get("records")
    return ComparisonVerdict(
        judged.passed, entries, f"held-out corrections (n={n}): {judged.message}", judged.reason
    )


def _worse_direction(result: Mapping[str, Any]) -> float:
    """+1 when a lower value is worse (a ``min`` threshold), -1 when a higher one is (``max``)."""
    return 1.0 if result.get("min") is not None or result.get("max") is None else -1.0


def comparison_verdict(
    report: Mapping[str, Any], serving_scores: Sequence[MetricResultDict], rules: Sequence[NoWorseThan]
) -> ComparisonVerdict:
    """The candidate's gate report against the serving revision: the one place that decides
    whether a candidate is no worse than what serves (spec.retrain.noWorseThan).

    ``report`` is the gate report as recorded (status.evaluation of the candidate's revision).
    When it carries a paired ``comparison`` (the evaluation Job scored the serving revision on the
    same prompts), the paired test decides (llmops.analysis.confidence): a drop beyond ``maxDrop``
    that is significant is CandidateWorse, one that chance could explain is
    CandidateNotShownNoWorse; either way the candidate does not serve. Without one (the serving
    revision could not be reached), the two gate scores are compared: the drop, in the direction
    of the metric's threshold, may not exceed ``maxDrop``; a metric the serving revision has no
    score for cannot be compared and does not block (the message says so).
    """
    if report.get("comparison") and rules:
        return _paired_verdict(report, serving_scores, rules)
    return _score_verdict(report, serving_scores, rules)


def _paired_verdict(
    report: Mapping[str, Any], serving_scores: Sequence[MetricResultDict], rules: Sequence[NoWorseThan]
) -> ComparisonVerdict:
    paired = {str(e.get("metric")): e for e in report.get("comparison") or []}
    # A compacted report keeps only deltas and counts: the values then come from the gate scores.
    mine = {m.get("metric"): m.get("value") for m in report.get("metrics") or []}
    theirs = {m.get("metric"): m.get("value") for m in serving_scores}
    level = report.get("confidence")
    judged = paired_comparison(
        paired,
        {r.metric: r.max_drop for r in rules},
        float(level) if isinstance(level, int | float) else DEFAULT_CONFIDENCE,
    )
    entries: list[ComparisonDict] = []
    for m in judged.metrics:
        entry = paired.get(m.metric) or {}
        entries.append(
            {
                "metric": m.metric,
                "value": entry.get("candidate", mine.get(m.metric)),
                "serving": entry.get("baseline", theirs.get(m.metric)),
                "drop": None if m.drop is None else round(m.drop, 6),
                "maxDrop": m.max_drop,
                "passed": m.verdict == NOT_WORSE,
            }
        )
    reason = c.CANDIDATE_WORSE if judged.verdict == WORSE else c.CANDIDATE_NOT_SHOWN_NO_WORSE
    return ComparisonVerdict(judged.passed, entries, f"paired on the same prompts: {judged.message}", reason)


def _score_verdict(
    report: Mapping[str, Any], serving_scores: Sequence[MetricResultDict], rules: Sequence[NoWorseThan]
) -> ComparisonVerdict:
    mine = {m.get("metric"): m for m in report.get("metrics") or []}
    theirs = {m.get("metric"): m for m in serving_scores}
    entries: list[ComparisonDict] = []
    parts: list[str] = []
    for rule in rules:
        cand, serving = mine.get(rule.metric), theirs.get(rule.metric)
        value = cand.get("value") if cand else None
        base = serving.get("value") if serving else None
        entry: ComparisonDict = {
            "metric": rule.metric,
            "value": value,
            "serving": base,
            "maxDrop": rule.max_drop,
        }
        if base is None:
            entry.update({"drop": None, "passed": True})
            parts.append(f"{rule.metric}: serving revision has no gate score to compare with")
        elif value is None:
            entry.update({"drop": None, "passed": False})
            parts.append(f"{rule.metric}: the candidate has no score (serving {base:g})")
        else:
            drop = round((base - value) * _worse_direction(cand or serving or {}), 6)
            entry.update({"drop": drop, "passed": drop <= rule.max_drop})
            parts.append(
                f"{rule.metric} {value:g} vs serving {base:g}: {_change(drop)} (maxDrop {rule.max_drop:g})"
            )
        entries.append(entry)
    passed = all(e.get("passed") for e in entries)
    message = "; ".join(parts) if parts else "no spec.retrain.noWorseThan rule to compare with what serves"
    return ComparisonVerdict(passed, entries, message)


def _change(drop: float) -> str:
    if drop > 0:
        return f"worse by {drop:g}"
    return f"better by {-drop:g}" if drop < 0 else "the same"
