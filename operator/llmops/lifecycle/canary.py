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
from typing import Any, Literal

from llmops.analysis import Check, Decision, MetricQueries, judge, measure, queries
from llmops.api import conditions as c
from llmops.api.common import parse_duration
from llmops.api.constants import ANNOTATION_ABORT, ANNOTATION_PROMOTE
from llmops.api.delivery import RolloutSpec
from llmops.api.resource import LLMDeployment
from llmops.api.status import AnalysisCheckDict, CanaryState, CanaryStatusDict, ManualGatesDict, SmokeState
from llmops.contracts import format_timestamp, parse_timestamp
from llmops.engines import get_engine
from llmops.lifecycle.context import Event, Pass, Rollout, rollout_of
from llmops.lifecycle.diagnose import Problem, gpus_being_released, track_problem
from llmops.lifecycle.smoke import SMOKE_BROKEN, SMOKE_FAILED, smoke_applies, smoke_stage
from llmops.lifecycle.target import desired_target
from llmops.render import deployment, deployment_name
from llmops.render.evaluation import SMOKE_GATE
from llmops.render.traffic import route_patch, track_service

__all__ = ["CanaryPlan", "analysis_request", "canary_stage", "split"]


@dataclass(frozen=True)
class CanaryPlan:
    """What the canary stage wants from the rest of the pass."""

    stable_revision: str | None
    stable_replicas: int
    state: CanaryState
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


def _since(now: dt.datetime, value: str | None) -> float | None:
    """Seconds from the status timestamp ``value`` to ``now`` (None without a timestamp)."""
    return None if not value else (now - parse_timestamp(value)).total_seconds()


def analysis_request(
    body: Mapping[str, Any], ld: LLMDeployment | None, now: dt.datetime
) -> list[MetricQueries]:
    """The queries to run for this pass (empty when no measurement is due). Pure."""
    if ld is None or ld.spec.rollout is None or not ld.spec.rollout.analysis.metrics:
        return []
    status = body.get("status") or {}
    canary = status.get("canary") or {}
    # The canary's revision is the target's: spec.model's, or a retrained candidate's.
    target = desired_target(ld.spec.model, status.get("serving"), status.get("candidate"))
    # Paused canaries keep being measured: data coming back resumes them.
    if (
        canary.get("state") not in (CanaryState.PROGRESSING, CanaryState.PAUSED)
        or canary.get("revision") != target.revision
    ):
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


def canary_stage(p: Pass, stable: Rollout, total: int | None = None) -> CanaryPlan:
    """Run the canary of the desired revision against ``stable``; see the module docstring.

    ``total`` is the replica count the weights are shares of: spec.replicas, or with autoscaling
    the live count of the stable Deployment (the autoscaler's; the canary is sized from it and
    stable is never scaled down for it)."""
    run = _start_or_resume(p, stable, p.ld.spec.replicas if total is None else total)
    can = run.can
    if can["state"] == CanaryState.ROLLED_BACK:
        p.cond(c.PROMOTED, c.FALSE, c.ROLLED_BACK, str(can.get("message") or "rolled back"))
        return CanaryPlan(run.stable_rev, run.total, CanaryState.ROLLED_BACK)
    aborted = _manual_gates(run)
    if aborted is not None:
        return aborted
    observed = p.obs.child("Deployment", deployment_name(p.ld.name, "canary"))
    if can["state"] == CanaryState.PROMOTING:
        return _promote(run, observed)

    stable_replicas, canary_replicas = split(run.total, int(can["weight"]), run.rollout.traffic.mode)
    _want_canary(p, canary_replicas)
    _traffic(p, int(can["weight"]))
    held = _hold_for_smoke(run, stable_replicas) or _hold_for_pods(
        run, rollout_of(observed, canary_replicas), stable_replicas, canary_replicas
    )
    if held is not None:
        return held

    if not can.get("readyTime"):
        can["readyTime"] = format_timestamp(p.now)
    if can["state"] == CanaryState.PAUSED and str(can.get("message", "")).startswith(_UNSCHEDULABLE):
        can.update({"state": CanaryState.PROGRESSING, "message": ""})
    if _measure(p, can, run.rollout) == Decision.ROLLBACK:
        return _rollback(run, c.ANALYSIS_FAILED, str(can["message"]))
    if _step_done(p, can, run.rollout):
        if int(can["step"]) + 1 >= len(run.rollout.steps):
            can.update({"state": CanaryState.PROMOTING, "message": "every step passed"})
            p.record("Promoting", run.rev, c.PROMOTED_REASON, _checks_text(can))
            return _promote(run, observed)
        stable_replicas = _next_step(run)
    _report_progress(p, can, run.rollout)
    return CanaryPlan(
        run.stable_rev, stable_replicas, can["state"], requeue_after=_next_wakeup(p, can, run.rollout)
    )


_UNSCHEDULABLE = "canary pods cannot be scheduled"
_NO_ROOM = (c.INSUFFICIENT_GPU, c.UNSCHEDULABLE)
"""Pod reasons that mean no node has room for the pod: the cluster's state, not the model's fault."""


@dataclass(frozen=True)
class _Run:
    """One pass over one canary: what every step of :func:`canary_stage` needs."""

    p: Pass
    can: CanaryStatusDict
    """status.canary, updated in place by the steps (it is ``p.fields["canary"]``)."""
    stable: Rollout
    stable_rev: str | None
    rev: str
    total: int
    rollout: RolloutSpec


def _start_or_resume(p: Pass, stable: Rollout, total: int) -> _Run:
    """status.canary for the desired revision: resumed as it was, or started fresh."""
    spec = p.ld.spec
    rollout = spec.rollout
    assert rollout is not None
    rev = spec.model.served_revision
    old: CanaryStatusDict = {**(p.old_status.get("canary") or {})}
    fresh = old.get("revision") != rev
    stable_rev = stable.revision if fresh else (old.get("stableRevision") or stable.revision)
    can = _fresh_canary(p, rollout, rev, stable_rev) if fresh else old
    if fresh:
        p.record("CanaryStarted", rev, c.CANARY_PROGRESSING, f"canary of {rev} against stable {stable_rev}")
        p.events.append(Event("Normal", c.CANARY_PROGRESSING, f"canary of revision {rev} started"))
    p.fields["canary"] = can
    return _Run(p, can, stable, stable_rev, rev, total, rollout)


def _fresh_canary(p: Pass, rollout: RolloutSpec, rev: str, stable_rev: str | None) -> CanaryStatusDict:
    return {
        "revision": rev,
        "stableRevision": stable_rev,
        "step": 0,
        "weight": rollout.steps[0].set_weight if rollout.steps else 100,
        "startTime": format_timestamp(p.now),
        "stepStartTime": format_timestamp(p.now),
        "failedChecks": 0,
        "inconclusiveChecks": 0,
        "stepChecks": 0,
        "checks": [],
        "state": CanaryState.PROGRESSING,
        "message": "",
    }


def _manual_gates(run: _Run) -> CanaryPlan | None:
    """The abort and promote annotations, each acted on once per value; a rollback on abort."""
    p, can = run.p, run.can
    gates: ManualGatesDict = {**(p.old_status.get("manualGates") or {})}
    annotations = p.ld.metadata.get("annotations") or {}
    if can["state"] in (CanaryState.PROGRESSING, CanaryState.PAUSED):
        abort = _gate_value(annotations, gates, ANNOTATION_ABORT, "abort", run.rev)
        if abort:
            p.fields["manualGates"] = {**gates, "abort": abort}
            return _rollback(run, c.ABORTED, f"aborted by annotation {ANNOTATION_ABORT}")
        promote = _gate_value(annotations, gates, ANNOTATION_PROMOTE, "promote", run.rev)
        if promote:
            p.fields["manualGates"] = {**gates, "promote": promote}
            can.update(
                {"state": CanaryState.PROMOTING, "message": f"promoted by annotation {ANNOTATION_PROMOTE}"}
            )
            p.record("Promoting", run.rev, c.MANUALLY_PROMOTED, can["message"])
    _forget_removed_gates(p, annotations, gates)
    return None


def _hold_for_smoke(run: _Run, stable_replicas: int) -> CanaryPlan | None:
    """The smoke evaluation: a failure rolls back, a broken evaluation pauses."""
    p, can = run.p, run.can
    smoke = smoke_stage(p, can)
    if smoke.state == SmokeState.FAILED:
        return _rollback(run, SMOKE_FAILED, smoke.message)
    if smoke.state == SmokeState.BROKEN:
        can.update({"state": CanaryState.PAUSED, "message": smoke.message})
        p.cond(c.PROMOTED, c.FALSE, c.CANARY_PAUSED, smoke.message)
        problem = Problem(SMOKE_BROKEN, smoke.message, False)
        return CanaryPlan(run.stable_rev, stable_replicas, CanaryState.PAUSED, problem, 30.0)
    return None


def _hold_for_pods(
    run: _Run, canary: Rollout, stable_replicas: int, canary_replicas: int
) -> CanaryPlan | None:
    """Until every canary pod is ready: pause on scarce GPUs, roll back on broken pods or the deadline."""
    p, can = run.p, run.can
    if canary.revision == run.rev and canary.complete:
        return None
    problem = track_problem(p.ld.spec, p.obs, "canary", p.now)
    resource = p.ld.spec.resources.gpu.resource_name
    if freed := gpus_being_released(problem, p.ld.spec, p.obs):
        # The GPUs of the stable pods this step scaled away: the canary starting, not a shortage.
        why = f"{freed} {resource} of terminating pods are being released"
        return _wait_for_pods(run, stable_replicas, f"waiting for {canary_replicas} canary pod(s): {why}")
    if problem and problem.reason in _NO_ROOM:
        # Scarce GPUs are not the model's fault: hold, say why, never roll back for it.
        # "canary pods cannot be scheduled: …"
        can.update({"state": CanaryState.PAUSED, "message": f"canary {problem.message}"})
        p.cond(c.PROMOTED, c.FALSE, c.CANARY_PAUSED, can["message"])
        return CanaryPlan(
            run.stable_rev,
            stable_replicas,
            CanaryState.PAUSED,
            Problem(problem.reason, can["message"], False),
            30.0,
        )
    if problem and problem.permanent:
        return _rollback(run, problem.reason, f"canary pods failed: {problem.message}")
    deadline = run.rollout.progress_deadline_seconds
    if (_since(p.now, can.get("stepStartTime")) or 0.0) > deadline:
        why = f"canary pods were not ready within progressDeadlineSeconds ({deadline}s)"
        return _rollback(run, c.PROGRESS_DEADLINE_EXCEEDED, why)
    return _wait_for_pods(
        run, stable_replicas, f"waiting for {canary_replicas} canary pod(s) to load the model"
    )


def _wait_for_pods(run: _Run, stable_replicas: int, message: str) -> CanaryPlan:
    run.can.update({"state": CanaryState.PROGRESSING, "message": message})
    run.p.cond(c.PROMOTED, c.FALSE, c.CANARY_PROGRESSING, message)
    return CanaryPlan(run.stable_rev, stable_replicas, CanaryState.PROGRESSING, requeue_after=10.0)


def _step_pause(rollout: RolloutSpec, step: int) -> float | None:
    """Seconds the step lasts (0 without a pause), or None: paused until promoted by hand."""
    pause = rollout.steps[step].pause if step < len(rollout.steps) else None
    if pause is None:
        return 0.0
    return parse_duration(pause.duration) if pause.duration else None


def _step_done(p: Pass, can: CanaryStatusDict, rollout: RolloutSpec) -> bool:
    """The step may end: its pause is over and, with metrics, its latest measurement passed.

    ``stepChecks`` counts passing measurements in a row at this step (any other verdict resets
    it), so ``> 0`` means the most recent one passed: an earlier pass never carries a step past a
    later failure or a measurement without data.
    """
    if can["state"] != CanaryState.PROGRESSING:
        return False
    duration = _step_pause(rollout, int(can["step"]))
    elapsed = _since(p.now, can.get("stepStartTime")) or 0.0
    latest_passed = not rollout.analysis.metrics or int(can.get("stepChecks", 0)) > 0
    return duration is not None and elapsed >= duration and latest_passed


def _next_step(run: _Run) -> int:
    """Move to the next step's weight (the pod template stays the same); the stable replicas."""
    p, can, steps = run.p, run.can, run.rollout.steps
    step = int(can["step"]) + 1
    can.update(
        {
            "step": step,
            "weight": steps[step].set_weight,
            "stepStartTime": format_timestamp(p.now),
            "stepChecks": 0,
        }
    )
    p.record(
        "CanaryStep", run.rev, c.CANARY_PROGRESSING, f"step {step + 1}/{len(steps)}: weight {can['weight']}%"
    )
    p.events.append(Event("Normal", "CanaryStep", f"canary of {run.rev} at {can['weight']}%"))
    stable_replicas, canary_replicas = split(run.total, int(can["weight"]), run.rollout.traffic.mode)
    _want_canary(p, canary_replicas)
    _traffic(p, int(can["weight"]))
    return stable_replicas


def _report_progress(p: Pass, can: CanaryStatusDict, rollout: RolloutSpec) -> None:
    if can["state"] == CanaryState.PAUSED:
        p.cond(c.PROMOTED, c.FALSE, c.CANARY_PAUSED, str(can["message"]))
        return
    text = f"step {int(can['step']) + 1}/{len(rollout.steps)}: {can['weight']}% of traffic"
    if _step_pause(rollout, int(can["step"])) is None:
        text += "; paused until promoted (annotate llmops.io/promote)"
    p.cond(c.PROMOTED, c.FALSE, c.CANARY_PROGRESSING, text)


def _want_canary(p: Pass, replicas: int) -> None:
    """The canary Deployment, the one place it is rendered: only ``replicas`` varies between
    calls, so the pod template (and with it every canary pod) stays the same across steps."""
    rev = p.ld.spec.model.served_revision
    gates = (SMOKE_GATE,) if smoke_applies(p) else ()
    p.want(
        deployment(p.ld, track="canary", revision=rev, replicas=replicas, readiness_gates=gates), revision=rev
    )


def _measure(p: Pass, can: CanaryStatusDict, rollout: RolloutSpec) -> Decision | None:
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
        can.update({"state": CanaryState.PAUSED, "message": f"spec.rollout.analysis is invalid: {exc}"})
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
    can["lastCheckTime"] = format_timestamp(p.now)
    can["checks"] = [_check_status(ch, format_timestamp(p.now)) for ch in checks]
    # stepChecks: passing measurements in a row at this step; anything else resets it, so a
    # step never advances on an earlier pass after a later failure or missing data.
    can["stepChecks"] = int(can.get("stepChecks", 0)) + 1 if verdict.decision == Decision.PROMOTE_STEP else 0
    if verdict.decision == Decision.PROMOTE_STEP:
        if can.get("state") == CanaryState.PAUSED:
            can.update({"state": CanaryState.PROGRESSING, "message": "analysis has data again"})
    elif verdict.decision == Decision.PAUSE:
        can.update({"state": CanaryState.PAUSED, "message": verdict.message})
        if (
            int(can["inconclusiveChecks"])
            == int((p.old_status.get("canary") or {}).get("inconclusiveChecks", -1)) + 1
        ):
            p.record("CanaryPaused", can["revision"], verdict.reason, verdict.message)
    elif verdict.decision == Decision.ROLLBACK:
        can["message"] = verdict.message
    return verdict.decision


def _check_status(check: Check, when: str) -> AnalysisCheckDict:
    """One measurement as an entry of status.canary.checks (absent values left out)."""
    entry: AnalysisCheckDict = {"name": check.name, "verdict": check.verdict}
    if check.value is not None:
        entry["value"] = check.value
    if check.stable_value is not None:
        entry["stableValue"] = check.stable_value
    entry["message"] = check.message[:500]
    entry["time"] = when
    return entry


def _checks_text(can: CanaryStatusDict) -> str:
    parts = [f"{ch['name']}={ch.get('value')}" for ch in can.get("checks") or []]
    return "last analysis: " + (", ".join(parts) if parts else "no metrics")


def _next_wakeup(p: Pass, can: CanaryStatusDict, rollout: RolloutSpec) -> float:
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


def _promote(run: _Run, observed: Mapping[str, Any] | None) -> CanaryPlan:
    """Stable rolls to the revision and takes the canary's pods over; then the canary goes.

    GPU demand stays what the canary had, as during its steps: stable first rolls to the
    revision at the size it has (its rolling update replaces one pod at a time and surges none),
    then grows by one replica at a time. The canary gives a pod up once the new stable one is
    ready, so capacity for the revision never drops; or at once when the new stable pod cannot
    be scheduled (no GPU free but the canary's), since waiting for the canary would wait for
    ever. In Gateway API mode and with an autoscaler stable already has every replica: the
    first part is all there is.
    """
    p, can, rev, total = run.p, run.can, run.rev, run.total
    stable_dep = p.obs.child("Deployment", deployment_name(p.ld.name, "stable"))
    held = min(
        total, _spec_replicas(stable_dep, split(total, int(can["weight"]), run.rollout.traffic.mode)[0])
    )
    stable = rollout_of(stable_dep, held)
    canary_now = _spec_replicas(observed, 1)
    if not (stable.revision == rev and stable.complete and held >= total):
        short = _stable_short_of_gpus(p) if stable.revision == rev else None
        if stable.revision == rev and stable.complete:
            stable_want, canary_want = held + 1, min(canary_now, total - held)
        elif short is not None:
            stable_want, canary_want = held, max(0, min(canary_now, total - held))
        else:
            stable_want, canary_want = held, max(0, min(canary_now, total - stable.ready))
        _want_canary(p, canary_want)
        _traffic(p, 100 if run.rollout.traffic.mode == "gatewayAPI" else int(can["weight"]))
        text = _promoting_text(rev, stable, total, (canary_now, canary_want), short)
        p.cond(c.PROMOTED, c.FALSE, "Promoting", text)
        return CanaryPlan(rev, stable_want, CanaryState.PROMOTING, requeue_after=10.0)
    # Promotion complete: stable serves the revision; the canary (not wanted any more) goes.
    _traffic(p, 0)
    msg = f"revision {rev} promoted after {int(can['step']) + 1} step(s); {_checks_text(can)}"
    p.cond(c.PROMOTED, c.TRUE, c.PROMOTED_REASON, msg)
    p.record("Promoted", rev, c.PROMOTED_REASON, msg)
    p.events.append(Event("Normal", c.PROMOTED_REASON, msg))
    p.fields["canary"] = None
    p.fields["lastPromotedRevision"] = rev
    return CanaryPlan(rev, total, CanaryState.PROMOTED)


def _rollback(run: _Run, reason: str, message: str) -> CanaryPlan:
    p, can, stable_rev, total = run.p, run.can, run.stable_rev, run.total
    rev = can["revision"]
    text = f"revision {rev} rolled back ({reason}): {message}; stable {stable_rev} serves all traffic"
    can.update({"state": CanaryState.ROLLED_BACK, "message": text[:1000]})
    p.desired = [d for d in p.desired if not _is_canary(d)]
    _traffic(p, 0)
    p.cond(c.PROMOTED, c.FALSE, c.ROLLED_BACK, text)
    p.record("RolledBack", rev, reason, text)
    p.events.append(Event("Warning", c.ROLLED_BACK, text))
    return CanaryPlan(stable_rev, total, CanaryState.ROLLED_BACK, Problem(reason, text, permanent=True))


def _is_canary(obj: Mapping[str, Any]) -> bool:
    labels = obj["metadata"].get("labels") or {}
    return obj["kind"] == "Deployment" and labels.get("llmops.io/track") == "canary"


def _gate_value(
    annotations: Mapping[str, str],
    gates: ManualGatesDict,
    key: str,
    field: Literal["promote", "abort"],
    rev: str,
) -> str | None:
    """The annotation's value if it asks to act on this revision and was not acted upon before."""
    value = str(annotations.get(key, "")).strip()
    if not value or value.lower() == "false" or gates.get(field) == value:
        return None
    return value if value.lower() == "true" or value == rev else None


def _forget_removed_gates(p: Pass, annotations: Mapping[str, str], gates: ManualGatesDict) -> None:
    """Keep a consumed gate value only while its annotation is still there."""
    current = p.fields.get("manualGates", gates) or {}
    kept: ManualGatesDict = {}
    if current.get("promote") and annotations.get(ANNOTATION_PROMOTE):
        kept["promote"] = current["promote"]
    if current.get("abort") and annotations.get(ANNOTATION_ABORT):
        kept["abort"] = current["abort"]
    p.fields["manualGates"] = kept or None


def _spec_replicas(dep: Mapping[str, Any] | None, default: int) -> int:
    """The replicas a Deployment asks for (``default`` when it does not exist yet)."""
    if not dep:
        return default
    return int((dep.get("spec") or {}).get("replicas", default))


def _stable_short_of_gpus(p: Pass) -> Problem | None:
    """Why a stable pod cannot be scheduled, when it cannot (the canary holds the GPU it needs)."""
    problem = track_problem(p.ld.spec, p.obs, "stable", p.now)
    return problem if problem and problem.reason in _NO_ROOM else None


def _promoting_text(
    rev: str, stable: Rollout, total: int, canary: tuple[int, int], short: Problem | None
) -> str:
    """The Promoted condition's message while stable takes over; ``canary`` is (had, wants)."""
    had, wants = canary
    if stable.revision != rev or not stable.settled:
        text = f"stable is rolling to revision {rev}; the canary serves it meanwhile with {wants} pod(s)"
    else:
        text = (
            f"stable takes revision {rev} over from the canary one replica at a time: "
            f"{stable.ready}/{total} ready, the canary serves with {wants} pod(s)"
        )
    if short is not None:
        text += f"; stable {short.message}"
        if wants < had:
            text += ": no free GPU but the canary's, so the canary gives one up"
    return text
