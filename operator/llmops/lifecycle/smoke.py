"""The canary's smoke evaluation: a few samples of the evaluation dataset, scored on the canary
pods before they receive any production traffic.

Canary pods carry a readiness gate (``llmops.io/smoke-evaluation``): the kubelet keeps them out
of the Service's endpoints until the operator sets that pod condition True. A ``<name>-smoke``
Service publishes the not-yet-ready pods, a Job runs ``llmops eval --max-samples N`` against it,
judged on the metrics' values (not their confidence bounds, which the gate established on the
whole dataset and a few samples never could), and only when it passes does the operator open the gate on each canary pod (and on every canary
pod created later for the same revision). A failing smoke evaluation rolls the canary back; a
broken one pauses it. Needs ``spec.evaluation`` (its dataset and thresholds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from llmops.api.status import CanaryStatusDict, SmokeState
from llmops.lifecycle.context import Event, Pass
from llmops.lifecycle.diagnose import (
    evaluation_broken_cause,
    evaluation_judged,
    job_state,
    termination_json,
)
from llmops.render.evaluation import (
    SMOKE_GATE,
    evaluation_job,
    smoke_endpoint,
    smoke_job_name,
    smoke_service,
)

__all__ = ["SMOKE_BROKEN", "SMOKE_FAILED", "Smoke", "smoke_applies", "smoke_stage"]

SMOKE_FAILED = "SmokeEvaluationFailed"
SMOKE_BROKEN = "SmokeEvaluationBroken"


@dataclass(frozen=True)
class Smoke:
    state: SmokeState | Literal["NotNeeded", "Waiting"]
    """A SmokeState, or NotNeeded, or Waiting (no canary pod has its containers ready yet)."""
    message: str = ""


def smoke_applies(p: Pass) -> bool:
    rollout = p.ld.spec.rollout
    return bool(rollout and rollout.smoke_evaluation.enabled and p.ld.spec.evaluation is not None)


def _containers_ready(pod: Mapping[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "ContainersReady" and c.get("status") == "True" for c in conds)


def _gate_open(pod: Mapping[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == SMOKE_GATE and c.get("status") == "True" for c in conds)


def smoke_stage(p: Pass, can: CanaryStatusDict) -> Smoke:
    """Advance the smoke evaluation of the canary revision; record its outcome in ``can``."""
    if not smoke_applies(p):
        return Smoke("NotNeeded")
    rollout = p.ld.spec.rollout
    assert rollout is not None
    rev = str(can["revision"])
    pods = [
        pod
        for pod in p.obs.pods_of(**{"llmops.io/track": "canary"})
        if not (pod.get("metadata") or {}).get("deletionTimestamp")
    ]
    if can.get("smoke") == SmokeState.PASSED:
        _open_gates(p, pods)
        return Smoke(SmokeState.PASSED)
    if can.get("smoke") == SmokeState.FAILED:
        return Smoke(SmokeState.FAILED, str(can.get("message", "")))

    p.want(smoke_service(p.ld))
    if not any(_containers_ready(pod) for pod in pods):
        return Smoke("Waiting", "waiting for a canary pod to load the model before its smoke evaluation")
    name = smoke_job_name(p.ld, rev)
    p.want(
        evaluation_job(
            p.ld,
            revision=rev,
            endpoint=smoke_endpoint(p.ld),
            max_samples=rollout.smoke_evaluation.samples,
            name=name,
            # A few samples cannot show a rate's bound; the gate did, on the whole dataset. The
            # smoke check asks whether these pods answer like the gated revision did.
            judge_on_value=True,
        )
    )
    state, reason, job_message = job_state(p.obs.child("Job", name))
    if state in ("Missing", "Running"):
        can["smoke"] = SmokeState.RUNNING
        return Smoke(
            SmokeState.RUNNING, f"smoke evaluation {name} is scoring the canary before it gets traffic"
        )
    summary = termination_json(p.obs, name)
    if state == "Complete":
        can["smoke"] = SmokeState.PASSED
        msg = f"smoke evaluation of {rev} passed ({summary.get('message') or 'all thresholds'}): the canary gets traffic"
        p.record("SmokeEvaluationPassed", rev, "SmokeEvaluationPassed", msg)
        p.events.append(Event("Normal", "SmokeEvaluationPassed", msg))
        _open_gates(p, pods)
        return Smoke(SmokeState.PASSED)
    if evaluation_judged(reason, job_message, summary):
        can["smoke"] = SmokeState.FAILED
        return Smoke(
            SmokeState.FAILED, f"smoke evaluation of {rev} failed: {summary.get('message') or job_message}"
        )
    can["smoke"] = SmokeState.BROKEN
    cause = evaluation_broken_cause(reason, job_message, summary)
    return Smoke(
        SmokeState.BROKEN,
        f"the smoke evaluation of {rev} could not be done ({cause}); fix it and delete Job {name}, "
        "or decide by hand (annotate llmops.io/promote or llmops.io/abort)",
    )


def _open_gates(p: Pass, pods: list[Mapping[str, Any]]) -> None:
    for pod in pods:
        if _containers_ready(pod) and not _gate_open(pod):
            p.pod_conditions.append((str(pod["metadata"]["name"]), SMOKE_GATE, "SmokeEvaluationPassed"))
