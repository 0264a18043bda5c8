"""The canary stage: a revision that passed its gate takes a growing share of real traffic.

    start → canary Deployment (weight of step 0) → Ready → measure every interval →
      judge: Rollback (failureLimit) | Pause (inconclusive past the limit, rejected query) |
             advance when the step's pause is over and it passed a measurement →
      after the last step: Promoting (stable rolls to the revision; the canary keeps serving
      until stable is Ready) → done: the canary is removed

Traffic: in ``replicas`` mode one Service spans both tracks and the weight is the replica
ratio (the canary takes replicas from stable, so GPU demand stays flat); in ``gatewayAPI``
mode stable keeps all its replicas and an HTTPRoute splits traffic by weight between a stable
and a canary Service. Canary pods that cannot be scheduled (no free GPUs) pause the rollout
with that reason; they never fail the model. Everything is in ``status.canary``; a restarted
operator resumes at the same step. Measurements come in through ``Observations.analysis``:
the shell runs the queries that :func:`analysis_request` asks for.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmops.analysis import Decision, MetricQueries, judge, measure, queries
from llmops.api import conditions as c
from llmops.api.common import parse_duration
from llmops.api.constants import ANNOTATION_ABORT, ANNOTATION_PROMOTE
from llmops.api.resource import LLMDeployment
from llmops.engines import get_engine
from llmops.lifecycle.conditions import timestamp
from llmops.lifecycle.context import Event, Pass, Rollout, rollout_of
from llmops.lifecycle.diagnose import Problem, diagnose_pods
from llmops.lifecycle.smoke import SMOKE_BROKEN, SMOKE_FAILED, smoke_applies, smoke_stage
from llmops.render import deployment, deployment_name
from llmops.render.evaluation import SMOKE_GATE
from llmops.render.traffic import route_patch, track_service

__all__ = ["CanaryPlan", "analysis_request", "canary_stage", "split"]

PROGRESSING, PAUSED, PROMOTING, ROLLED_BACK = "Progressing", "Paused", "Promoting", "RolledBack"


@dataclass(frozen=True)
class CanaryPlan:
    """What the canary stage wants from the rest of the pass."""

    stable_revision: str | None
    stable_replicas: int
    state: str
    problem: Problem | None = None
    requeue_after: float | None = None


def split(total: int, weight: int, mode: str) -> tuple[int, int]:
    """(stable, canary) replicas for a weight. Replicas mode keeps the sum at ``total`` (at
    least one pod each while 0 < weight < 100); Gateway API mode keeps stable whole."""
    if weight <= 0:
        return total, 0
    canary = max(1, math.ceil(total * weight / 100))
    if mode == "gatewayAPI":
        return total, canary
    if weight >= 100:
        return 0, total
    return max(1, total - canary), canary


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def _since(now: dt.datetime, value: str | None) -> float | None:
    t = _parse_time(value)
    return None if t is None else (now - t).total_seconds()


def analysis_request(
    body: Mapping[str, Any], ld: LLMDeployment | None, now: dt.datetime
) -> list[MetricQueries]:
    """The queries to run for this pass (empty when no measurement is due). Pure."""
    if ld is None or ld.spec.rollout is None or not ld.spec.rollout.analysis.metrics:
        return []
    canary = (body.get("status") or {}).get("canary") or {}
    # Paused canaries keep being measured: data coming back resumes them.
    if canary.get("state") not in (PROGRESSING, PAUSED) or canary.get("revision") != ld.spec.model.revision:
        return []
    if not canary.get("readyTime"):
        return []
    analysis = ld.spec.rollout.analysis
    interval = parse_duration(analysis.interval)
    last = canary.get("lastCheckTime") or canary.get("readyTime")
    elapsed = _since(now, last)
    if elapsed is None or elapsed < interval:
        return []
    try:
        return queries(analysis, get_engine(ld.spec.engine.type), ld.namespace, ld.name, analysis.interval)
    except ValueError:
        return []  # a spec error: canary_stage reports it


def canary_stage(p: Pass, stable: Rollout) -> CanaryPlan:
    """Run the canary of the desired revision against ``stable``; see the module docstring."""
    spec = p.ld.spec
    rollout = spec.rollout
    assert rollout is not None
    rev = spec.model.revision
    total = spec.replicas
    mode = rollout.traffic.mode
    old = dict(p.old_status.get("canary") or {})
    fresh = old.get("revision") != rev
    stable_rev = stable.revision if fresh else (old.get("stableRevision") or stable.revision)
    can: dict[str, Any] = (
        {
            "revision": rev,
            "stableRevision": stable_rev,
            "step": 0,
            "weight": rollout.steps[0].set_weight if rollout.steps else 100,
            "startTime": timestamp(p.now),
            "stepStartTime": timestamp(p.now),
            "failedChecks": 0,
            "inconclusiveChecks": 0,
            "stepChecks": 0,
            "checks": [],
            "state": PROGRESSING,
            "message": "",
        }
        if fresh
        else old
    )
    if fresh:
        p.record("CanaryStarted", rev, c.CANARY_PROGRESSING, f"canary of {rev} against stable {stable_rev}")
        p.events.append(Event("Normal", c.CANARY_PROGRESSING, f"canary of revision {rev} started"))
    p.fields["canary"] = can

    if can["state"] == ROLLED_BACK:
        p.cond(c.PROMOTED, c.FALSE, c.ROLLED_BACK, str(can.get("message") or "rolled back"))
        return CanaryPlan(stable_rev, total, ROLLED_BACK)

    gates = dict(p.old_status.get("manualGates") or {})
    annotations = p.ld.metadata.get("annotations") or {}
    if can["state"] in (PROGRESSING, PAUSED):
        abort = _gate_value(annotations, gates, ANNOTATION_ABORT, "abort", rev)
        if abort:
            p.fields["manualGates"] = {**gates, "abort": abort}
            return _rollback(
                p, can, stable_rev, total, c.ABORTED, f"aborted by annotation {ANNOTATION_ABORT}"
            )
        promote = _gate_value(annotations, gates, ANNOTATION_PROMOTE, "promote", rev)
        if promote:
            p.fields["manualGates"] = {**gates, "promote": promote}
            can.update(state=PROMOTING, message=f"promoted by annotation {ANNOTATION_PROMOTE}")
            p.record("Promoting", rev, c.MANUALLY_PROMOTED, can["message"])
    _forget_removed_gates(p, annotations, gates)

    canary_name = deployment_name(p.ld.name, "canary")
    observed = p.obs.child("Deployment", canary_name)

    if can["state"] == PROMOTING:
        return _promote(p, can, stable, stable_rev, total, observed)

    weight = int(can["weight"])
    stable_replicas, canary_replicas = split(total, weight, mode)
    _want_canary(p, canary_replicas)
    _traffic(p, weight)
    canary = rollout_of(observed, canary_replicas)
    pods = p.obs.pods_of(**{"llmops.io/track": "canary"})
    problem = diagnose_pods(pods, spec.resources.gpu.resource_name)
    deadline = rollout.progress_deadline_seconds

    smoke = smoke_stage(p, can)
    if smoke.state == "Failed":
        return _rollback(p, can, stable_rev, total, SMOKE_FAILED, smoke.message)
    if smoke.state == "Broken":
        can.update(state=PAUSED, message=smoke.message)
        p.cond(c.PROMOTED, c.FALSE, c.CANARY_PAUSED, smoke.message)
        return CanaryPlan(
            stable_rev, stable_replicas, PAUSED, Problem(SMOKE_BROKEN, smoke.message, False), 30.0
        )

    if not (canary.revision == rev and canary.complete):
        waited = _since(p.now, can.get("stepStartTime")) or 0.0
        if problem and problem.reason in (c.INSUFFICIENT_GPU, c.UNSCHEDULABLE):
            # Scarce GPUs are not the model's fault: hold, say why, never roll back for it.
            can.update(state=PAUSED, message=f"canary pods cannot be scheduled: {problem.message}")
            p.cond(c.PROMOTED, c.FALSE, c.CANARY_PAUSED, can["message"])
            return CanaryPlan(
                stable_rev, stable_replicas, PAUSED, Problem(problem.reason, can["message"], False), 30.0
            )
        if problem and problem.permanent:
            return _rollback(
                p, can, stable_rev, total, problem.reason, f"canary pods failed: {problem.message}"
            )
        if waited > deadline:
            return _rollback(
                p, can, stable_rev, total, c.PROGRESS_DEADLINE_EXCEEDED,
                f"canary pods were not ready within progressDeadlineSeconds ({deadline}s)",
            )  # fmt: skip
        can.update(
            state=PROGRESSING, message=f"waiting for {canary_replicas} canary pod(s) to load the model"
        )
        p.cond(c.PROMOTED, c.FALSE, c.CANARY_PROGRESSING, can["message"])
        return CanaryPlan(stable_rev, stable_replicas, PROGRESSING, requeue_after=10.0)

    if not can.get("readyTime"):
        can["readyTime"] = timestamp(p.now)
    if can["state"] == PAUSED and str(can.get("message", "")).startswith("canary pods cannot be scheduled"):
        can.update(state=PROGRESSING, message="")

    decision = _measure(p, can, rollout)
    if decision == Decision.ROLLBACK:
        return _rollback(p, can, stable_rev, total, c.ANALYSIS_FAILED, str(can["message"]))

    # Advance: the step's pause is over and it passed a measurement (if there are metrics).
    steps = rollout.steps
    step = int(can["step"])
    pause = steps[step].pause if step < len(steps) else None
    duration = (
        parse_duration(pause.duration) if pause and pause.duration else (0.0 if pause is None else None)
    )
    elapsed = _since(p.now, can.get("stepStartTime")) or 0.0
    measured = not rollout.analysis.metrics or int(can.get("stepChecks", 0)) > 0
    if can["state"] == PROGRESSING and duration is not None and elapsed >= duration and measured:
        if step + 1 < len(steps):
            can.update(
                step=step + 1,
                weight=steps[step + 1].set_weight,
                stepStartTime=timestamp(p.now),
                stepChecks=0,
            )
            p.record(
                "CanaryStep",
                rev,
                c.CANARY_PROGRESSING,
                f"step {step + 2}/{len(steps)}: weight {can['weight']}%",
            )
            p.events.append(Event("Normal", "CanaryStep", f"canary of {rev} at {can['weight']}%"))
            weight = int(can["weight"])
            stable_replicas, canary_replicas = split(total, weight, mode)
            p.desired = [
                d for d in p.desired if d["metadata"]["name"] != canary_name or d["kind"] != "Deployment"
            ]
            p.desired = [d for d in p.desired if d["kind"] != "HTTPRoute"]
            p.want(deployment(p.ld, track="canary", revision=rev, replicas=canary_replicas), revision=rev)
            _traffic(p, weight)
        else:
            can.update(state=PROMOTING, message="every step passed")
            p.record("Promoting", rev, c.PROMOTED_REASON, _checks_text(can))
            return _promote(p, can, stable, stable_rev, total, observed)

    if can["state"] == PAUSED:
        p.cond(c.PROMOTED, c.FALSE, c.CANARY_PAUSED, str(can["message"]))
    else:
        text = f"step {int(can['step']) + 1}/{len(steps)}: {can['weight']}% of traffic"
        if duration is None:
            text += "; paused until promoted (annotate llmops.io/promote)"
        p.cond(c.PROMOTED, c.FALSE, c.CANARY_PROGRESSING, text)
    return CanaryPlan(
        stable_rev, stable_replicas, str(can["state"]), requeue_after=_next_wakeup(p, can, rollout)
    )


def _want_canary(p: Pass, replicas: int) -> None:
    """The canary Deployment, always rendered the same way (a template change restarts pods)."""
    rev = p.ld.spec.model.revision
    gates = (SMOKE_GATE,) if smoke_applies(p) else ()
    p.want(
        deployment(p.ld, track="canary", revision=rev, replicas=replicas, readiness_gates=gates), revision=rev
    )


def _measure(p: Pass, can: dict[str, Any], rollout: Any) -> Decision | None:
    """Judge this pass's measurement, if the shell took one; update the counters in ``can``."""
    results = p.obs.analysis
    if not rollout.analysis.metrics:
        return None
    try:
        queries(
            rollout.analysis,
            get_engine(p.ld.spec.engine.type),
            p.ld.namespace,
            p.ld.name,
            rollout.analysis.interval,
        )
    except ValueError as exc:
        can.update(state=PAUSED, message=f"spec.rollout.analysis is invalid: {exc}")
        return Decision.PAUSE
    if results is None:
        return None
    checks = []
    for metric in rollout.analysis.metrics:
        canary_result, stable_result = results.get(metric.name, (None, None))
        if canary_result is None:
            continue
        checks.append(measure(metric, canary_result, stable_result if metric.compare_to_stable else None))
    verdict = judge(
        checks,
        int(can.get("failedChecks", 0)),
        int(can.get("inconclusiveChecks", 0)),
        rollout.analysis.failure_limit,
        rollout.analysis.inconclusive_limit,
    )
    can["failedChecks"] = verdict.failed_checks
    can["inconclusiveChecks"] = verdict.inconclusive_checks
    can["lastCheckTime"] = timestamp(p.now)
    can["checks"] = [
        {k: v for k, v in {"name": ch.name, "verdict": ch.verdict.value, "value": ch.value,
                           "stableValue": ch.stable_value, "message": ch.message[:500],
                           "time": timestamp(p.now)}.items() if v is not None}
        for ch in checks
    ]  # fmt: skip
    if verdict.decision == Decision.PROMOTE_STEP:
        can["stepChecks"] = int(can.get("stepChecks", 0)) + 1
        if can.get("state") == PAUSED:
            can.update(state=PROGRESSING, message="analysis has data again")
    elif verdict.decision == Decision.PAUSE:
        can.update(state=PAUSED, message=verdict.message)
        if (
            int(can["inconclusiveChecks"])
            == int(p.old_status.get("canary", {}).get("inconclusiveChecks", -1)) + 1
        ):
            p.record("CanaryPaused", can["revision"], verdict.reason, verdict.message)
    elif verdict.decision == Decision.ROLLBACK:
        can["message"] = verdict.message
    return verdict.decision


def _checks_text(can: Mapping[str, Any]) -> str:
    parts = [f"{ch['name']}={ch.get('value')}" for ch in can.get("checks") or []]
    return "last analysis: " + (", ".join(parts) if parts else "no metrics")


def _next_wakeup(p: Pass, can: Mapping[str, Any], rollout: Any) -> float:
    interval = parse_duration(rollout.analysis.interval)
    waits = [interval - (_since(p.now, can.get("lastCheckTime") or can.get("readyTime")) or 0.0)]
    step = int(can["step"])
    pause = rollout.steps[step].pause if step < len(rollout.steps) else None
    if pause and pause.duration:
        waits.append(parse_duration(pause.duration) - (_since(p.now, can.get("stepStartTime")) or 0.0))
    return max(1.0, min(waits))


def _traffic(p: Pass, weight: int) -> None:
    """Gateway API mode: per-track Services and the HTTPRoute weights."""
    rollout = p.ld.spec.rollout
    assert rollout is not None
    if rollout.traffic.mode != "gatewayAPI":
        return
    for track in ("stable", "canary"):
        p.want(track_service(p.ld, track))
    ref = rollout.traffic.http_route_ref
    assert ref is not None
    route = p.obs.referenced.get(("HTTPRoute", ref.name))
    if route is None:
        p.cond(
            c.PROMOTED,
            c.FALSE,
            "HTTPRouteNotFound",
            f"HTTPRoute {ref.name} (spec.rollout.traffic.httpRouteRef) not found",
        )
        return
    patch = route_patch(p.ld, route, weight)
    p.patches[:] = [x for x in p.patches if (x[0], x[1]) != ("HTTPRoute", ref.name)]
    if patch is not None:
        p.patches.append(("HTTPRoute", ref.name, patch))


def _promote(
    p: Pass, can: dict[str, Any], stable: Rollout, stable_rev: str | None, total: int, observed: Any
) -> CanaryPlan:
    """Stable rolls to the revision; the canary keeps serving until stable is Ready, then goes."""
    rev = p.ld.spec.model.revision
    done = stable.revision == rev and stable.complete
    if not done:
        # Keep the canary (same replicas) so that capacity never drops during promotion.
        replicas = int(((observed or {}).get("spec") or {}).get("replicas") or 1)
        _want_canary(p, replicas)
        _traffic(
            p,
            100
            if p.ld.spec.rollout and p.ld.spec.rollout.traffic.mode == "gatewayAPI"
            else int(can["weight"]),
        )
        p.cond(
            c.PROMOTED,
            c.FALSE,
            "Promoting",
            f"stable is rolling to revision {rev}; the canary serves until it is ready",
        )
        return CanaryPlan(rev, total, PROMOTING, requeue_after=10.0)
    # Promotion complete: stable serves the revision; the canary (not wanted any more) goes.
    _traffic(p, 0)
    msg = f"revision {rev} promoted after {int(can['step']) + 1} step(s); {_checks_text(can)}"
    p.cond(c.PROMOTED, c.TRUE, c.PROMOTED_REASON, msg)
    p.record("Promoted", rev, c.PROMOTED_REASON, msg)
    p.events.append(Event("Normal", c.PROMOTED_REASON, msg))
    p.fields["canary"] = None
    p.fields["lastPromotedRevision"] = rev
    return CanaryPlan(rev, total, "Promoted")


def _rollback(
    p: Pass, can: dict[str, Any], stable_rev: str | None, total: int, reason: str, message: str
) -> CanaryPlan:
    rev = can["revision"]
    text = f"revision {rev} rolled back ({reason}): {message}; stable {stable_rev} serves all traffic"
    can.update(state=ROLLED_BACK, message=text[:1000])
    p.desired = [d for d in p.desired if not _is_canary(d)]
    _traffic(p, 0)
    p.cond(c.PROMOTED, c.FALSE, c.ROLLED_BACK, text)
    p.record("RolledBack", rev, reason, text)
    p.events.append(Event("Warning", c.ROLLED_BACK, text))
    return CanaryPlan(stable_rev, total, ROLLED_BACK, Problem(reason, text, permanent=True))


def _is_canary(obj: Mapping[str, Any]) -> bool:
    labels = obj["metadata"].get("labels") or {}
    return obj["kind"] == "Deployment" and labels.get("llmops.io/track") == "canary"


def _gate_value(
    annotations: Mapping[str, str], gates: Mapping[str, Any], key: str, field: str, rev: str
) -> str | None:
    """The annotation's value if it asks to act on this revision and was not acted upon before."""
    value = str(annotations.get(key, "")).strip()
    if not value or value.lower() == "false" or gates.get(field) == value:
        return None
    return value if value.lower() == "true" or value == rev else None


def _forget_removed_gates(p: Pass, annotations: Mapping[str, str], gates: Mapping[str, Any]) -> None:
    """Keep a consumed gate value only while its annotation is still there."""
    current = p.fields.get("manualGates", gates) or {}
    keys = {"promote": ANNOTATION_PROMOTE, "abort": ANNOTATION_ABORT}
    kept = {f: v for f, v in current.items() if f in keys and v and annotations.get(keys[f])}
    p.fields["manualGates"] = kept or None
