"""The evaluation gate: a new revision serves no production traffic until it passes.

    cached → staging Deployment (1 pod, no production traffic) + staging Service
           → Ready → evaluation Job (`llmops eval` against the staging Service)
           → Complete: passed, the revision may proceed
           → Failed by the Pod failure policy on exit 1: the model failed its thresholds, or
             the dataset is too small to show one (InsufficientSamples: never a pass)
           → Failed by the Pod failure policy on exit 3 (a bad dataset line or threshold: not
             retried), or otherwise (backoffLimit, deadline): the evaluation broke, not the model

Rates (exactMatch, errorRate, …) are judged by the Job on the bound of their confidence
interval; ``status.evaluation.metrics`` keeps each one's sample size and bounds, and the
Evaluated condition says them, e.g. "errorRate 0.00 (95% upper bound 0.39 at n=6) cannot show
≤ 0.01: needs ≥ 381 prompts".

With spec.evaluation.heldOut, a retrained candidate's gate (or every gate, ``gates: All``) also
scores the held-out feedback corrections: ``status.evaluation.heldOut`` keeps that set's verdict,
scores, sample count and (for a candidate) its paired comparison with the serving revision; fewer
corrections than minRecords is InsufficientSamples, never a pass.

The verdict is kept in ``status.evaluation`` keyed by the Job name, which hashes the revision
and the evaluation spec: a restarted operator finds the same Job, and a verdict outlives the
Job. A broken evaluation is retried by deleting its Job (the message says so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmops.analysis.confidence import format_rate
from llmops.api import conditions as c
from llmops.api.status import EvaluationStatusDict, MetricResultDict
from llmops.contracts import VERDICT_INSUFFICIENT_SAMPLES, VERDICT_PASSED, format_timestamp
from llmops.lifecycle.context import Event, Pass, Rollout, rollout_of
from llmops.lifecycle.diagnose import (
    Problem,
    diagnose_pods,
    evaluation_broken_cause,
    evaluation_judged,
    job_pods,
    job_state,
    pods_not_created,
    termination_json,
    track_problem,
)
from llmops.render import deployment, deployment_name
from llmops.render.evaluation import evaluation_job, evaluation_job_name, staging_endpoint, staging_service

__all__ = [
    "Baseline",
    "Gate",
    "evaluation_result",
    "gate_message",
    "gate_stage",
    "held_out_result",
    "held_out_words",
    "metric_results",
    "verdict_message",
]


@dataclass(frozen=True)
class Gate:
    passed: bool = False
    running: bool = False
    failed: bool = False
    problem: Problem | None = None


@dataclass(frozen=True)
class Baseline:
    """What a paired comparison scores the revision against: the serving revision, on the same prompts."""

    url: str
    """The production Service (stable serves it all while a revision is in its gate)."""
    max_drop: Mapping[str, float]
    """Per-metric tolerances (spec.retrain.noWorseThan)."""


def gate_stage(
    p: Pass, stable: Rollout, cache_ok: bool, baseline: Baseline | None = None, held_out: bool = False
) -> Gate:
    """Decide whether the desired revision may go to production yet (with ``baseline``, the Job
    also compares it with what serves, prompt by prompt; with ``held_out``, it also scores the
    held-out corrections)."""
    spec = p.ld.spec
    rev = spec.model.served_revision
    if spec.evaluation is None:
        p.drop_condition(c.EVALUATED)
        p.fields["evaluation"] = None
        return Gate(passed=True)
    if stable.revision == rev:
        # What already serves is not re-gated (scheduled evaluations watch it instead).
        if not any(x.get("type") == c.EVALUATED for x in p.conditions):
            p.cond(
                c.EVALUATED, c.TRUE, c.EVALUATION_SKIPPED, f"revision {rev} was serving before it was gated"
            )
        return Gate(passed=True)
    job_name = evaluation_job_name(p.ld, rev)
    recorded = p.old_status.get("evaluation") or {}
    if recorded.get("job") == job_name and recorded.get("passed") is not None:
        return _recorded(p, recorded)
    if not cache_ok:
        p.cond(
            c.EVALUATED, c.UNKNOWN, "WaitingForCache", f"revision {rev} is evaluated once it is in the cache"
        )
        return Gate()
    return _wait_for_staging(p, rev) or _evaluate(p, rev, job_name, baseline, held_out)


def _wait_for_staging(p: Pass, rev: str) -> Gate | None:
    """The staging track (one pod, no production traffic); a Gate to wait with until it is ready."""
    p.want(deployment(p.ld, track="staging", revision=rev, replicas=1), revision=rev)
    p.want(staging_service(p.ld))
    staging = rollout_of(p.obs.child("Deployment", deployment_name(p.ld.name, "staging")), 1)
    if staging.revision == rev and staging.ready >= 1:
        return None
    problem = track_problem(p.ld.spec, p.obs, "staging", p.now)
    msg = f"waiting for the staging pod of revision {rev} to load the model"
    if problem:
        msg += f": {problem.message}"
    p.cond(c.EVALUATED, c.UNKNOWN, problem.reason if problem else "StagingNotReady", msg)
    return Gate(running=True, problem=problem)


def _evaluate(p: Pass, rev: str, job_name: str, baseline: Baseline | None, held_out: bool) -> Gate:
    """The evaluation Job against the staging pod, and what its end says."""
    p.want(
        evaluation_job(
            p.ld,
            revision=rev,
            endpoint=staging_endpoint(p.ld),
            baseline_url=baseline.url if baseline else None,
            max_drop=baseline.max_drop if baseline else None,
            held_out=held_out,
        )
    )
    state, reason, job_message = job_state(p.obs.child("Job", job_name))
    if state in ("Missing", "Running"):
        problem = diagnose_pods(job_pods(p.obs, job_name), p.ld.spec.resources.gpu.resource_name, now=p.now)
        if problem is None:
            problem, due = pods_not_created(p.obs.child("Job", job_name), p.obs, p.now)
            if due is not None:
                p.due.append(due)
        msg = f"evaluation Job {job_name} is scoring revision {rev} against the staging pod"
        if problem:
            msg += f"; its pod cannot run: {problem.message}"
        p.cond(c.EVALUATED, c.UNKNOWN, problem.reason if problem else c.EVALUATION_RUNNING, msg)
        p.fields["evaluation"] = {"revision": rev, "job": job_name}
        return Gate(running=True, problem=problem)
    summary = termination_json(p.obs, job_name)
    if state == "Complete" or evaluation_judged(reason, job_message, summary):
        return _verdict(p, rev, job_name, state == "Complete", summary)
    return _broken(p, rev, job_name, evaluation_broken_cause(reason, job_message, summary))


def _verdict(p: Pass, rev: str, job_name: str, completed: bool, summary: dict[str, Any]) -> Gate:
    """The model's verdict (the Job completed, or exit 1 failed it by the pod failure policy)."""
    passed = completed and summary.get("verdict", VERDICT_PASSED) == VERDICT_PASSED
    result = evaluation_result(rev, job_name, passed, summary, p.now)
    p.fields["evaluation"] = result
    words = {**summary, "heldOut": result["heldOut"]} if "heldOut" in result else summary
    verdict = gate_message(rev, passed, result["metrics"], words)
    reason = _reason(result)
    p.record("Evaluated", rev, reason, verdict)
    p.events.append(Event("Normal" if passed else "Warning", reason, verdict))
    # The verdict is in: release the staging GPUs (the stable rollout may need them).
    p.desired = [d for d in p.desired if not _is_staging(d)]
    return _recorded(p, result)


def _broken(p: Pass, rev: str, job_name: str, why: str) -> Gate:
    """The Job failed without a verdict on the model: the evaluation itself broke."""
    msg = (
        f"the evaluation of revision {rev} could not be done ({why}); this says nothing about "
        f"the model. Fix the cause, then delete Job {job_name} to run it again"
    )
    if (p.old_status.get("evaluation") or {}).get("broken") != msg:
        p.record("EvaluationBroken", rev, c.EVALUATION_JOB_FAILED, msg)
        p.events.append(Event("Warning", c.EVALUATION_JOB_FAILED, msg))
    p.cond(c.EVALUATED, c.FALSE, c.EVALUATION_JOB_FAILED, msg)
    p.fields["evaluation"] = {"revision": rev, "job": job_name, "broken": msg}
    # Keep the failed Job (it marks the attempt as done) but release the staging GPUs.
    p.desired = [d for d in p.desired if not _is_staging(d)]
    return Gate(failed=True, problem=Problem(c.EVALUATION_JOB_FAILED, msg, permanent=True))


def _reason(result: EvaluationStatusDict) -> str:
    if result.get("passed"):
        return c.EVALUATION_PASSED
    if result.get("verdict") == VERDICT_INSUFFICIENT_SAMPLES:
        return c.INSUFFICIENT_SAMPLES
    return c.EVALUATION_FAILED


def _recorded(p: Pass, result: EvaluationStatusDict) -> Gate:
    rev = result.get("revision")
    passed = bool(result.get("passed"))
    message = gate_message(str(rev), passed, result.get("metrics") or [], result)
    p.fields["evaluation"] = result
    reason = _reason(result)
    if passed:
        p.cond(c.EVALUATED, c.TRUE, reason, message)
        return Gate(passed=True)
    p.cond(c.EVALUATED, c.FALSE, reason, message)
    return Gate(failed=True, problem=Problem(reason, message, permanent=True))


def _is_staging(obj: dict[str, Any]) -> bool:
    return (obj["metadata"].get("labels") or {}).get("llmops.io/track") == "staging"


def evaluation_result(
    rev: str, job_name: str, passed: bool, summary: Mapping[str, Any], now: Any
) -> EvaluationStatusDict:
    """status.evaluation (or status.scheduledEvaluation) from a Job's summary."""
    result: EvaluationStatusDict = {
        "revision": rev,
        "job": job_name,
        "passed": passed,
        "time": format_timestamp(now),
        "metrics": metric_results(summary),
    }
    verdict = summary.get("verdict")
    if isinstance(verdict, str) and verdict in _VERDICTS:
        result["verdict"] = verdict
    if isinstance(summary.get("confidence"), int | float):
        result["confidence"] = float(summary["confidence"])
    counts = summary.get("counts")
    if isinstance(counts, dict):
        kept = {k: int(v) for k, v in counts.items() if k in _COUNTS and isinstance(v, int)}
        if kept:
            result["counts"] = kept
    if paired := _paired(summary.get("comparison")):
        result["comparison"] = paired
    if isinstance(summary.get("heldOut"), dict):
        result["heldOut"] = held_out_result(summary["heldOut"])
    return result


_HELD_OUT_SCORE_FIELDS = {
    "value": "value", "n": "samples", "min": "min", "max": "max", "passed": "passed",
    "verdict": "verdict", "lower": "lower", "upper": "upper",
}  # fmt: skip


def held_out_result(section: Mapping[str, Any]) -> dict[str, Any]:
    """status.evaluation.heldOut from the report's ``heldOut`` section."""
    out: dict[str, Any] = {}
    if section.get("verdict") in _VERDICTS:
        out["verdict"] = section["verdict"]
    for src, dst in (("records", "records"), ("minRecords", "minRecords"), ("skipped", "skipped")):
        if isinstance(section.get(src), int):
            out[dst] = section[src]
    if isinstance(section.get("message"), str):
        out["message"] = section["message"][:1000]
    scores = []
    for name, m in sorted((section.get("metrics") or {}).items())[:8]:
        if isinstance(m, dict):
            kept = {dst: m[src] for src, dst in _HELD_OUT_SCORE_FIELDS.items() if m.get(src) is not None}
            scores.append({"metric": str(name), **kept})
    out["metrics"] = scores
    if paired := _paired(section.get("comparison")):
        out["comparison"] = paired[:8]
    return out


def held_out_words(held: Mapping[str, Any]) -> str:
    """The held-out set in a few words: its verdict, size and scores."""
    scores = ", ".join(
        f"{m['metric']} {format_rate(m['value'])}"
        for m in held.get("metrics") or []
        if isinstance(m.get("value"), int | float)
    )
    head = f"held-out corrections: {held.get('verdict', 'scored')}, n={held.get('records', 0)}"
    return f"{head} ({scores})" if scores else head


_PAIRED_FIELDS = ("candidate", "baseline", "delta", "n", "wins", "losses", "pValue", "test")


def _paired(comparison: Any) -> list[dict[str, Any]]:
    """The report's paired comparison (``{"metrics": {name: entry}}``) as status entries."""
    metrics = comparison.get("metrics") if isinstance(comparison, dict) else None
    if not isinstance(metrics, dict):
        return []
    out = []
    for name, entry in sorted(metrics.items())[:32]:
        if isinstance(entry, dict):
            kept = {k: entry[k] for k in _PAIRED_FIELDS if isinstance(entry.get(k), int | float | str)}
            out.append({"metric": str(name), **kept})
    return out


_VERDICTS = ("Passed", "Failed", VERDICT_INSUFFICIENT_SAMPLES)
_COUNTS = ("samples", "errors", "retried", "retries")
# A summary's key → status.evaluation.metrics[] key, for the numbers behind a rate's verdict.
_RATE_FIELDS = {"n": "samples", "lower": "lower", "upper": "upper", "required": "requiredSamples"}


def metric_results(summary: Mapping[str, Any]) -> list[MetricResultDict]:
    """The thresholded metrics of a summary, as status.evaluation.metrics."""
    out: list[MetricResultDict] = []
    for name, m in (summary.get("metrics") or {}).items():
        if not isinstance(m, dict) or "passed" not in m:
            continue
        entry: MetricResultDict = {"metric": name, "value": m.get("value"), "passed": bool(m["passed"])}
        if m.get("min") is not None:
            entry["min"] = m["min"]
        if m.get("max") is not None:
            entry["max"] = m["max"]
        if m.get("verdict") in _VERDICTS:
            entry["verdict"] = m["verdict"]
        for src, dst in _RATE_FIELDS.items():
            if isinstance(m.get(src), int | float) and not isinstance(m.get(src), bool):
                entry[dst] = m[src]  # type: ignore[literal-required]
        out.append(entry)
    return sorted(out, key=lambda e: e["metric"])


def gate_message(
    rev: str, passed: bool, metrics: Sequence[MetricResultDict], summary: Mapping[str, Any]
) -> str:
    """The gate's verdict: a failed revision will not serve."""
    verdict = verdict_message(rev, passed, metrics, summary)
    return verdict if passed else f"{verdict}; it will not serve"


def _shown(value: float | None) -> str:
    return "no value" if value is None else format_rate(value)


def _metric_words(m: MetricResultDict, level: str) -> str:
    """One threshold's numbers: the value, and for a rate its bound and sample size."""
    value, name = m.get("value"), m["metric"]
    low, high = m.get("min"), m.get("max")
    if "samples" in m and ("lower" in m or "upper" in m):
        words = []
        n = m["samples"]
        if low is not None:
            lower = m.get("lower", 0.0)
            verb = "≥" if lower >= low else "cannot show ≥"
            words.append(
                f"{name} {_shown(value)} ({level} lower bound {_shown(lower)} at n={n}) {verb} {low:g}"
            )
        if high is not None:
            upper = m.get("upper", 1.0)
            verb = "≤" if upper <= high else "cannot show ≤"
            words.append(
                f"{name} {_shown(value)} ({level} upper bound {_shown(upper)} at n={n}) {verb} {high:g}"
            )
        text = "; ".join(words)
        if m.get("verdict") == VERDICT_INSUFFICIENT_SAMPLES:
            need = m.get("requiredSamples")
            perfect = value in ((0.0 if high is not None else 1.0), None)
            if not need:
                text += ": more prompts are needed"
            else:
                text += (
                    f": needs ≥ {need} prompts" if perfect else f": needs about {need} prompts at this rate"
                )
        return text
    shown = "no value" if value is None else f"{value:g}"
    if m.get("passed"):
        return f"{name} {shown}"
    if low is not None and (value is None or value < low):
        return f"{name} {shown} < min {low:g}"
    if high is not None:
        return f"{name} {shown} > max {high:g}"
    return f"{name} {shown}"


def verdict_message(
    rev: str, passed: bool, metrics: Sequence[MetricResultDict], summary: Mapping[str, Any]
) -> str:
    """What an evaluation of ``rev`` found: passed (with its rates' bounds), which thresholds it
    missed, or that its dataset is too small to show them (and how to proceed)."""
    confidence = summary.get("confidence")
    level = f"{confidence:.0%}" if isinstance(confidence, int | float) else "95%"
    held = summary.get("heldOut") if isinstance(summary.get("heldOut"), dict) else None
    held_text = f"; {held_out_words(held)}" if held else ""
    if passed:
        rates = [_metric_words(m, level) for m in metrics if "samples" in m]
        shown = f": {'; '.join(rates)}" if rates else ""
        return f"revision {rev} passed its evaluation ({len(metrics)} threshold(s)){shown}{held_text}"
    failing = [m for m in metrics if not m.get("passed")]
    if not failing and held and held.get("verdict") == VERDICT_INSUFFICIENT_SAMPLES:
        return (
            f"revision {rev} cannot be judged on its held-out set: {held.get('message') or held_out_words(held)}; "
            "wait for more corrections, or lower spec.evaluation.heldOut.corrections.minRecords"
        )
    if not failing and held and held.get("verdict") == "Failed":
        return f"revision {rev} failed its evaluation on the held-out corrections: {held.get('message')}"
    detail = "; ".join(_metric_words(m, level) for m in failing)
    detail = detail or str(summary.get("message") or "a threshold was not met")
    if summary.get("verdict") == VERDICT_INSUFFICIENT_SAMPLES:
        return (
            f"revision {rev} cannot be judged on this dataset: {detail}. A pass needs the bound of "
            "each rate's interval to meet its threshold: add prompts to the dataset, or loosen the "
            "threshold (or lower spec.evaluation.confidence)"
        )
    return f"revision {rev} failed its evaluation: {detail}"
