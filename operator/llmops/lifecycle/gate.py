"""The evaluation gate: a new revision serves no production traffic until it passes.

    cached → staging Deployment (1 pod, no production traffic) + staging Service
           → Ready → evaluation Job (`llmops eval` against the staging Service)
           → Complete: passed, the revision may proceed
           → Failed by the Pod failure policy (exit 1): the model failed its thresholds
           → Failed otherwise (backoffLimit, deadline): the evaluation broke, not the model

The verdict is kept in ``status.evaluation`` keyed by the Job name, which hashes the revision
and the evaluation spec: a restarted operator finds the same Job, and a verdict outlives the
Job. A broken evaluation is retried by deleting its Job (the message says so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmops.api import conditions as c
from llmops.api.status import EvaluationStatusDict, MetricResultDict
from llmops.contracts import VERDICT_PASSED, format_timestamp
from llmops.lifecycle.context import Event, Pass, Rollout, rollout_of
from llmops.lifecycle.diagnose import Problem, diagnose_pods, job_pods, job_state, termination_json
from llmops.render import deployment, deployment_name
from llmops.render.evaluation import evaluation_job, evaluation_job_name, staging_endpoint, staging_service

__all__ = ["Gate", "gate_message", "gate_stage", "metric_results", "verdict_message"]


@dataclass(frozen=True)
class Gate:
    passed: bool = False
    running: bool = False
    failed: bool = False
    problem: Problem | None = None


def gate_stage(p: Pass, stable: Rollout, cache_ok: bool) -> Gate:
    """Decide whether the desired revision may go to production yet."""
    spec = p.ld.spec
    rev = spec.model.revision
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
    return _wait_for_staging(p, rev) or _evaluate(p, rev, job_name)


def _wait_for_staging(p: Pass, rev: str) -> Gate | None:
    """The staging track (one pod, no production traffic); a Gate to wait with until it is ready."""
    p.want(deployment(p.ld, track="staging", revision=rev, replicas=1), revision=rev)
    p.want(staging_service(p.ld))
    staging = rollout_of(p.obs.child("Deployment", deployment_name(p.ld.name, "staging")), 1)
    if staging.revision == rev and staging.ready >= 1:
        return None
    problem = diagnose_pods(
        p.obs.pods_of(**{"llmops.io/track": "staging"}), p.ld.spec.resources.gpu.resource_name
    )
    msg = f"waiting for the staging pod of revision {rev} to load the model"
    if problem:
        msg += f": {problem.message}"
    p.cond(c.EVALUATED, c.UNKNOWN, problem.reason if problem else "StagingNotReady", msg)
    return Gate(running=True, problem=problem)


def _evaluate(p: Pass, rev: str, job_name: str) -> Gate:
    """The evaluation Job against the staging pod, and what its end says."""
    p.want(evaluation_job(p.ld, revision=rev, endpoint=staging_endpoint(p.ld)))
    state, reason, job_message = job_state(p.obs.child("Job", job_name))
    if state in ("Missing", "Running"):
        problem = diagnose_pods(job_pods(p.obs, job_name), p.ld.spec.resources.gpu.resource_name)
        msg = f"evaluation Job {job_name} is scoring revision {rev} against the staging pod"
        if problem:
            msg += f"; its pod cannot run: {problem.message}"
        p.cond(c.EVALUATED, c.UNKNOWN, problem.reason if problem else c.EVALUATION_RUNNING, msg)
        p.fields["evaluation"] = {"revision": rev, "job": job_name}
        return Gate(running=True, problem=problem)
    summary = termination_json(p.obs, job_name)
    if state == "Complete" or reason == "PodFailurePolicy":
        return _verdict(p, rev, job_name, state == "Complete", summary)
    detail = summary.get("message") or job_message or reason
    return _broken(p, rev, job_name, f"{reason}: {detail}")


def _verdict(p: Pass, rev: str, job_name: str, completed: bool, summary: dict[str, Any]) -> Gate:
    """The model's verdict (the Job completed, or exit 1 failed it by the pod failure policy)."""
    passed = completed and summary.get("verdict", VERDICT_PASSED) == VERDICT_PASSED
    metrics = metric_results(summary)
    result: EvaluationStatusDict = {
        "revision": rev,
        "job": job_name,
        "passed": passed,
        "time": format_timestamp(p.now),
        "metrics": metrics,
    }
    p.fields["evaluation"] = result
    verdict = gate_message(rev, passed, metrics, summary)
    reason = c.EVALUATION_PASSED if passed else c.EVALUATION_FAILED
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


def _recorded(p: Pass, result: EvaluationStatusDict) -> Gate:
    rev = result.get("revision")
    passed = bool(result.get("passed"))
    message = gate_message(str(rev), passed, result.get("metrics") or [], {})
    p.fields["evaluation"] = result
    if passed:
        p.cond(c.EVALUATED, c.TRUE, c.EVALUATION_PASSED, message)
        return Gate(passed=True)
    p.cond(c.EVALUATED, c.FALSE, c.EVALUATION_FAILED, message)
    return Gate(failed=True, problem=Problem(c.EVALUATION_FAILED, message, permanent=True))


def _is_staging(obj: dict[str, Any]) -> bool:
    return (obj["metadata"].get("labels") or {}).get("llmops.io/track") == "staging"


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
        out.append(entry)
    return sorted(out, key=lambda e: e["metric"])


def gate_message(
    rev: str, passed: bool, metrics: Sequence[MetricResultDict], summary: Mapping[str, Any]
) -> str:
    """The gate's verdict: a failed revision will not serve."""
    verdict = verdict_message(rev, passed, metrics, summary)
    return verdict if passed else f"{verdict}; it will not serve"


def verdict_message(
    rev: str, passed: bool, metrics: Sequence[MetricResultDict], summary: Mapping[str, Any]
) -> str:
    """What an evaluation of ``rev`` found: passed, or which thresholds it missed."""
    if passed:
        return f"revision {rev} passed its evaluation ({len(metrics)} threshold(s))"
    failing = []
    for m in metrics:
        if m.get("passed"):
            continue
        value = m.get("value")
        shown = "no value" if value is None else f"{value:g}"
        if m.get("min") is not None and (value is None or value < m["min"]):
            failing.append(f"{m['metric']} {shown} < min {m['min']:g}")
        elif m.get("max") is not None:
            failing.append(f"{m['metric']} {shown} > max {m['max']:g}")
        else:
            failing.append(f"{m['metric']} {shown}")
    detail = "; ".join(failing) or str(summary.get("message") or "a threshold was not met")
    return f"revision {rev} failed its evaluation: {detail}"
