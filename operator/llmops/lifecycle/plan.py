"""``plan()``: the pure decision of one reconcile pass.

    plan(body, observations, now) -> Plan(apply, delete, status, events, requeue_after)

It recomputes the desired children from the spec and what it observes, and the status that
describes it. It never reads the clock, the environment or the network. Children carry an
``llmops.io/applied-hash`` annotation of what was applied, so a pass only re-applies what
changed in the manifest, or a child in which another field manager took one of our fields
(a manual edit, see ownership.py); a pass with nothing to change produces no actions and
the same status.

The revision pipeline, one stage per module:

    the target (target.py: spec.model, or a retrained candidate) →
    cache (cache.py) → evaluation gate (gate.py) → for a candidate: no worse than what serves,
    approval (candidate.py) → canary (canary.py) → stable rolls to the revision (here)
    and, for the revision that serves: scheduled re-evaluation (scheduled.py), drift (drift.py),
    retrain Jobs on drift (retrain.py), status.serving and PinnedToSpec (serving.py); beside them,
    the capture store and its health (capture.py)

The stable Deployment keeps serving what it serves until the desired revision has passed the
stages before it. The pipeline stages see ``p.ld`` with spec.model set to the target; the stages
about what serves see it with the serving model (a retrained model may serve while spec.model
still names its base).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import ValidationError

from llmops.api import conditions as c
from llmops.api.delivery import DEPRECATED_TEMPLATES
from llmops.api.resource import LLMDeployment, parse
from llmops.api.spec import is_pinned_revision
from llmops.api.status import CanaryState, ConditionDict, Phase, StatusDict
from llmops.gateway.redact import InvalidPattern, compile_patterns
from llmops.gateway.sink_url import sink_url_problem
from llmops.lifecycle.autoscaling import Scaling, autoscaling_stage, scaling_of
from llmops.lifecycle.cache import cache_stage
from llmops.lifecycle.canary import CanaryPlan, canary_stage
from llmops.lifecycle.candidate import (
    CandidateGate,
    abandon_candidate,
    candidate_after_rollout,
    candidate_gate,
)
from llmops.lifecycle.capture import capture_stage
from llmops.lifecycle.conditions import set_condition
from llmops.lifecycle.context import (
    ANNOTATION_APPLIED_HASH,
    ANNOTATION_MODEL_REVISION,
    Event,
    Pass,
    Rollout,
    applied_hash,
    rollout_of,
)
from llmops.lifecycle.diagnose import (
    Problem,
    gpus_being_released,
    job_state,
    mount_verdict_due,
    track_problem,
)
from llmops.lifecycle.drift import drift_stage
from llmops.lifecycle.gate import Baseline, Gate, gate_stage
from llmops.lifecycle.observations import CHILD_KINDS, MONITORING_API, Observations
from llmops.lifecycle.ownership import drifted_fields
from llmops.lifecycle.retrain import RetrainPlan, retrain_stage
from llmops.lifecycle.scheduled import scheduled_stage
from llmops.lifecycle.serving import pin_condition, serving_status
from llmops.lifecycle.target import Target, desired_target, serving_target, spec_key, with_model
from llmops.render import (
    deployment,
    deployment_name,
    download_job,
    endpoint,
    network_policy,
    pdb,
    pod_monitor,
    prometheus_rule,
    service,
)
from llmops.render.autoscaling import ScalerMetric
from llmops.render.evaluation import COMPONENT_EVALUATION, held_out_wanted
from llmops.render.retrain import COMPONENT_RETRAIN

__all__ = ["ANNOTATION_APPLIED_HASH", "ANNOTATION_MODEL_REVISION", "Event", "Plan", "plan"]

MONITORING_CONFIGURED = "MonitoringConfigured"
DRIFT_REVERTED_KINDS = frozenset(
    {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "CronJob",
        "PodMonitor",
        "PrometheusRule",
        "HorizontalPodAutoscaler",
        "ScaledObject",
    }
)
"""Children whose fields are taken back when another manager changed them. Not Jobs (their pod
template is immutable, and a finished Job is history) nor the cache PVC (its size can only
grow, so a re-apply of a smaller size after someone grew it would fail every pass)."""
REVISION_PINNED = "RevisionPinned"


@dataclass
class Plan:
    """What one pass decided: writes to make, the new status, and when to look again."""

    apply: list[dict[str, Any]] = field(default_factory=list)
    delete: list[tuple[str, str]] = field(default_factory=list)
    """(kind, name) of children to delete."""
    patches: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    """Merge patches of referenced objects the operator does not own (the HTTPRoute weights)."""
    pod_conditions: list[tuple[str, str, str]] = field(default_factory=list)
    """Readiness-gate conditions to set True on pods: (pod name, condition type, reason)."""
    handover: list[dict[str, Any]] = field(default_factory=list)
    """Replica counts to apply, before ``apply``, under the hand-over field manager without force
    (lifecycle.autoscaling): the operator stops owning the count without resetting it."""
    drift: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """Why a child with an unchanged manifest is re-applied: the fields another manager took."""
    status: dict[str, Any] = field(default_factory=dict)
    status_changed: bool = False
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None

    @property
    def writes_objects(self) -> bool:
        """Whether the pass writes anything but its own status (deleting a child is a write)."""
        return bool(self.apply or self.delete or self.patches or self.pod_conditions or self.handover)


def plan(body: Mapping[str, Any], obs: Observations, now: dt.datetime) -> Plan:
    """Decide one pass for the LLMDeployment ``body`` given ``obs``, at time ``now``."""
    # The apiserver validated the stored status against the CRD, whose schema StatusDict mirrors.
    old_status = cast(StatusDict, dict(body.get("status") or {}))
    try:
        ld = parse(body)
    except ValidationError as exc:
        return _invalid(body, old_status, exc, now)
    if (problem := _capture_pattern_problem(ld)) is not None:
        return _refused(body, old_status, c.INVALID_CAPTURE_PATTERN, problem, now)
    if (problem := _capture_sink_problem(ld)) is not None:
        return _refused(body, old_status, c.INVALID_CAPTURE_SINK, problem, now)
    road = _road_of(ld, old_status)
    p = Pass(
        ld=with_model(ld, road.target), obs=obs, old_status=old_status, now=now, spec_model=road.spec_model
    )
    abandon_candidate(p, road.spec_model)
    outcome = _run_stages(p, road)
    _shared_children(p, autoscaling_stage(p, outcome.scaling))
    _revision_pinned(p, ld)
    _deprecated(p)
    serves = road.target if outcome.serving == road.target.revision else road.before
    with _serving_side(p, with_model(ld, serves)):
        scheduled_stage(p, outcome.stable.revision if outcome.stable.ready > 0 else None)
        drift_requeue = drift_stage(p, outcome.serving)
        retrain = retrain_stage(p, outcome.serving)
    capture_requeue = capture_stage(p)
    p.fields["serving"] = serving_status(p, outcome.serving, road.target, road.before, ld.spec.model)
    pin_condition(p, p.fields["serving"], ld.spec.model)
    _available(p, outcome)
    _progressing(p, outcome, retrain)
    _degraded(p, outcome)
    if obs.errors:
        p.cond(c.AVAILABLE, c.UNKNOWN, c.OBSERVATION_FAILED, "; ".join(obs.errors)[:1000])
    phase = _phase(outcome)
    if phase == Phase.SERVING and retrain.running:
        phase = Phase.RETRAINING
    _status_fields(p, outcome, phase)
    _announce(p, outcome, phase)
    out = Plan(patches=p.patches, pod_conditions=p.pod_conditions, handover=p.handover)
    _diff(p, out)
    out.requeue_after = _requeue_after(p, outcome, drift_requeue, capture_requeue)
    return _finish(out, old_status, {**p.fields, "history": p.history}, p.conditions, p.events)


@dataclass(frozen=True)
class _Road:
    """Where the pipeline is going this pass, and what served before it."""

    target: Target
    """spec.model, or a retrained candidate on its road, or the retrained model that serves."""
    before: Target
    """What status says the stable track served before this pass."""
    spec_model: str
    """spec.model as ``id@revision``."""


def _road_of(ld: LLMDeployment, old: StatusDict) -> _Road:
    model = ld.spec.model
    return _Road(
        target=desired_target(model, old.get("serving"), old.get("candidate")),
        before=serving_target(model, old.get("serving")),
        spec_model=spec_key(model),
    )


@contextmanager
def _serving_side(p: Pass, serving_ld: LLMDeployment) -> Iterator[None]:
    """The stages about what serves (scheduled evaluation, drift, retrain) see the serving model."""
    pipeline_ld, p.ld = p.ld, serving_ld
    try:
        yield
    finally:
        p.ld = pipeline_ld


@dataclass(frozen=True)
class _Outcome:
    """What the stages decided and what the stable track looks like after them."""

    stable: Rollout
    """The stable Deployment, judged against the replicas it should have now."""
    target: str | None
    """The revision stable is set to serve this pass (None: nothing has cleared the stages)."""
    rolled: bool
    """Stable serves ``target`` on every replica it should have."""
    lost: bool
    """The target's rollout completed and some of its replicas are not ready now (see Rollout.settled)."""
    serving: str | None
    """status.servingRevision: it changes only once the new revision is rolled out and ready."""
    cache_ok: bool
    cache_problem: Problem | None
    pod_problem: Problem | None
    gate: Gate
    canary: CanaryPlan | None
    blocking: Problem | None
    """The first permanent problem, if any: it stops progress until someone fixes it."""
    replicas: int
    """The total the spec asks for (stable and canary together); with autoscaling, the live count."""
    stable_replicas: int
    """The replicas stable should have now (fewer than ``replicas`` during a replicas-mode canary)."""
    scaling: Scaling
    """Who sets the stable replicas (spec or an autoscaler), and how many are expected."""
    candidate: CandidateGate | None = None
    """A retrained target's own checks (None for spec.model)."""


def _run_stages(p: Pass, road: _Road) -> _Outcome:
    """cache → gate → (candidate checks) → canary (when one is wanted) → the stable Deployment's
    revision and size."""
    spec, name = p.ld.spec, p.ld.name
    observed_stable = p.obs.child("Deployment", deployment_name(name, "stable"))
    scaling = scaling_of(p.ld, observed_stable)
    stable = rollout_of(observed_stable, scaling.desired)
    cache_ok, cache_problem = cache_stage(p, road.target.path)
    _keep_serving_download(p, road)
    held_out = held_out_wanted(p.ld, candidate=road.target.retrained)
    gate = gate_stage(p, stable, cache_ok, _baseline(p, road, stable), held_out)
    checks = candidate_gate(p, road.target, road.before, cache_problem, gate)
    if checks is not None and checks.rejected:
        # It will never serve; what serves stays, judged as it was (next pass targets it again).
        cache_ok, cache_problem, gate = True, None, Gate(passed=True)
    cleared = cache_ok and gate.passed and not (checks is not None and (checks.held or checks.rejected))
    target_rev = spec.model.served_revision if cleared else stable.revision
    stable_replicas = scaling.desired
    canary = None
    if cleared and _canary_wanted(p, stable):
        canary = canary_stage(p, stable, scaling.desired)
        target_rev = canary.stable_revision
        # With an autoscaler, stable keeps every replica it was given: the canary comes on top.
        stable_replicas = scaling.desired if scaling.autoscaled else canary.stable_replicas
    else:
        p.fields["canary"] = None
        if spec.rollout is None:
            p.drop_condition(c.PROMOTED)
    if target_rev is not None:
        rendered = scaling.rendered if scaling.autoscaled else stable_replicas
        stable_ld = p.ld if target_rev == spec.model.served_revision else with_model(p.ld, road.before)
        p.want(
            deployment(stable_ld, track="stable", revision=target_rev, replicas=rendered),
            revision=target_rev,
        )
    pod_problem = track_problem(spec, p.obs, "stable", p.now)
    if gpus_being_released(pod_problem, spec, p.obs):
        pod_problem = None  # a replacement under way: its pod waits for the GPU of the one it replaces
    stable = rollout_of(p.obs.child("Deployment", deployment_name(name, "stable")), stable_replicas)
    # While promoting, stable takes the canary's replicas over a few at a time: complete at a
    # step of that is not rolled out, and a replica starting at the next step is not lost.
    promoting = canary is not None and canary.state == CanaryState.PROMOTING
    rolled = stable.complete and stable.revision == target_rev and target_rev is not None and not promoting
    lost = (
        not rolled
        and not promoting
        and stable.settled
        and stable.revision == target_rev
        and target_rev is not None
        and stable.ready < stable_replicas
    )
    serving_rev = target_rev if rolled else p.old_status.get("servingRevision")
    if serving_rev is None and stable.ready > 0 and stable.revision == target_rev:
        serving_rev = target_rev  # the first revision, partly up: it already takes the traffic
    rolled_back = canary is not None and canary.state == CanaryState.ROLLED_BACK
    promoted = rolled and target_rev == spec.model.served_revision
    candidate_after_rollout(p, road.target, road.before, rolled_back, promoted)
    blocking = _first_permanent(pod_problem, cache_problem, gate.problem, canary.problem if canary else None)
    return _Outcome(
        stable=stable,
        target=target_rev,
        rolled=rolled,
        lost=lost,
        serving=serving_rev,
        cache_ok=cache_ok,
        cache_problem=cache_problem,
        pod_problem=pod_problem,
        gate=gate,
        canary=canary,
        blocking=blocking,
        replicas=scaling.desired,
        stable_replicas=stable_replicas,
        scaling=scaling,
        candidate=checks,
    )


def _baseline(p: Pass, road: _Road, stable: Rollout) -> Baseline | None:
    """A retrained candidate's gate also scores what serves on the same prompts (a paired
    comparison, spec.retrain.noWorseThan): through the production Service, which only stable
    serves while a revision is in its gate."""
    retrain = p.ld.spec.retrain
    if not road.target.retrained or retrain is None or not retrain.no_worse_than or stable.ready == 0:
        return None
    url = endpoint(p.ld.name, p.ld.namespace, p.ld.spec.service.port)
    return Baseline(url, {r.metric: r.max_drop for r in retrain.no_worse_than})


def _keep_serving_download(p: Pass, road: _Road) -> None:
    """While another revision is on the road, the serving revision's download Job stays (a finished
    Job is the cache's record that it holds the revision): if the other is dropped, nothing downloads
    again before the serving revision is the target once more."""
    before = road.before
    if before.revision != road.target.revision and before.path is None:
        p.want(download_job(with_model(p.ld, before), revision=before.hub_revision))


def _status_fields(p: Pass, o: _Outcome, phase: Phase) -> None:
    spec = p.ld.spec
    p.fields.update(
        {
            "observedGeneration": p.generation,
            "phase": phase,
            "ready": f"{o.stable.ready + _canary_ready(p, o.canary)}/{o.replicas}",
            "readyReplicas": o.stable.ready,
            "replicas": o.replicas,
            "servingRevision": o.serving,
            "desiredRevision": spec.model.served_revision,
            "endpoint": endpoint(p.ld.name, p.ld.namespace, spec.service.port),
            "model": str((p.fields.get("serving") or {}).get("model") or spec.model.id),
        }
    )


def _announce(p: Pass, o: _Outcome, phase: Phase) -> None:
    """History and Events for a new serving revision, and a Warning when the phase turns bad."""
    replicas = o.replicas
    if o.serving and o.serving != p.old_status.get("servingRevision"):
        p.events.append(Event("Normal", "Deployed", f"revision {o.serving} serves {replicas} replica(s)"))
        p.record(
            "Deployed",
            o.serving,
            c.ROLLOUT_COMPLETE if o.rolled else c.ROLLING_UPDATE,
            f"{o.stable.ready}/{replicas} replicas ready" + ("" if o.rolled else ", rolling out the rest"),
        )
    changed_to_bad = phase != p.old_status.get("phase") and phase in (Phase.FAILED, Phase.DEGRADED)
    # Replicas lost after the rollout turn Degraded for any problem their pods show (a crash, no
    # GPU for a replacement), not only a permanent one.
    bad = o.pod_problem if o.lost and o.pod_problem else o.blocking
    if changed_to_bad and bad and not any(e.reason == bad.reason for e in p.events):
        p.events.append(Event("Warning", bad.reason, bad.message))


def _requeue_after(p: Pass, o: _Outcome, drift: float | None, capture: float | None) -> float | None:
    """When to look again without an event: only for what moves with time, not with a child.

    The canary's next measurement or end of pause, the drift and capture checks, the next
    reading of a download's progress and the verdict on a pod waiting to mount its Secrets are
    due at a time. The rest of a revision's way (its
    download and evaluation Jobs, pods, Deployments, the cache PVC) moves with objects whose
    watch events trigger a pass, and the reconciler's periodic resync bounds a missed one. A
    blanket 30 s look while anything was in motion made every LLMDeployment whose pods wait for
    GPUs cost a pass every 30 s: at 1,000 of them on 16 GPUs, 33 passes and some 360 API
    requests a second at idle."""
    mount = mount_verdict_due(p.obs.pods, p.now)
    waits = [o.canary.requeue_after if o.canary else None, drift, capture, mount, *p.due]
    return min((w for w in waits if w is not None), default=None)


def _canary_wanted(p: Pass, stable: Rollout) -> bool:
    """A canary runs for a revision that passed its gate while another revision serves, and
    keeps running (promoting, or rolled back) for as long as the spec asks for that revision."""
    if p.ld.spec.rollout is None:
        return False
    rev = p.ld.spec.model.served_revision
    old = p.old_status.get("canary") or {}
    if old.get("revision") == rev and old.get("state"):
        return True
    return stable.revision is not None and stable.revision != rev


def _canary_ready(p: Pass, canary: CanaryPlan | None) -> int:
    """Ready canary pods (they serve production traffic too, in replicas mode)."""
    if canary is None or canary.state == CanaryState.PROMOTED:
        return 0
    observed = p.obs.child("Deployment", deployment_name(p.ld.name, "canary")) or {}
    return int((observed.get("status") or {}).get("readyReplicas") or 0)


def _shared_children(p: Pass, autoscaling: ScalerMetric | None) -> None:
    """Service, PDB, NetworkPolicy, and the monitoring children (recording ``autoscaling``'s metric)."""
    for child in (service(p.ld), pdb(p.ld), network_policy(p.ld)):
        p.want(child)
    if not p.ld.spec.monitoring.enabled:
        p.cond(MONITORING_CONFIGURED, c.FALSE, "MonitoringDisabled", "spec.monitoring.enabled is false")
    elif MONITORING_API in p.obs.apis:
        p.want(pod_monitor(p.ld))
        p.want(prometheus_rule(p.ld, autoscaling))
        p.cond(
            MONITORING_CONFIGURED,
            c.TRUE,
            "MonitoringConfigured",
            "PodMonitor and PrometheusRule are in place",
        )
    else:
        p.cond(
            MONITORING_CONFIGURED,
            c.FALSE,
            c.MONITORING_CRDS_MISSING,
            "the Prometheus Operator CRDs (monitoring.coreos.com/v1) are not installed, so the PodMonitor and "
            "PrometheusRule were skipped; install the Prometheus Operator or set spec.monitoring.enabled=false",
        )


def _revision_pinned(p: Pass, ld: LLMDeployment) -> None:
    rev = ld.spec.model.revision
    if is_pinned_revision(rev):
        p.cond(REVISION_PINNED, c.TRUE, "Pinned", f"revision {rev} is a commit sha")
    else:
        p.cond(
            REVISION_PINNED,
            c.FALSE,
            c.MOVING_REVISION,
            f"revision {rev!r} is a branch or tag: the weights can change under you; "
            "pin spec.model.revision to a 40-hex commit sha",
        )


def _deprecated(p: Pass) -> None:
    """The Deprecated condition: True naming each deprecated field path and its replacement;
    absent when the spec uses none (so it appears only where there is something to change)."""
    rollout = p.ld.spec.rollout
    metrics = rollout.analysis.metrics if rollout is not None else []
    uses = [
        f"spec.rollout.analysis.metrics[{i}].template {m.template!r} is deprecated: "
        f"use {DEPRECATED_TEMPLATES[m.template]!r}"
        for i, m in enumerate(metrics)
        if m.template in DEPRECATED_TEMPLATES
    ]
    if uses:
        p.cond(c.DEPRECATED, c.TRUE, c.DEPRECATED_TEMPLATE, "; ".join(uses))
    else:
        p.drop_condition(c.DEPRECATED)


def _first_permanent(*problems: Problem | None) -> Problem | None:
    return next((x for x in problems if x is not None and x.permanent), None)


def _available(p: Pass, o: _Outcome) -> None:
    stable, replicas, target = o.stable, o.replicas, o.target
    pod_problem, cache_problem = o.pod_problem, o.cache_problem
    if replicas == 0:
        p.cond(c.AVAILABLE, c.FALSE, c.SCALED_TO_ZERO, "spec.replicas is 0")
    elif stable.ready > 0:
        p.cond(
            c.AVAILABLE,
            c.TRUE,
            c.MINIMUM_REPLICAS_AVAILABLE,
            f"{stable.ready}/{replicas} replicas of revision {stable.revision} ready; the Service routes to them",
        )
    elif pod_problem:
        p.cond(c.AVAILABLE, c.FALSE, pod_problem.reason, pod_problem.message)
    elif cache_problem:
        p.cond(c.AVAILABLE, c.FALSE, cache_problem.reason, cache_problem.message)
    elif target is None:
        p.cond(
            c.AVAILABLE,
            c.FALSE,
            "NoRevisionReady",
            "no revision has passed the cache and evaluation stages yet",
        )
    else:
        p.cond(
            c.AVAILABLE,
            c.FALSE,
            c.PODS_NOT_READY,
            f"0/{replicas} replicas ready: servers are starting (loading the model can take many minutes; "
            f"the startup probe allows {p.ld.spec.engine.startup_timeout_seconds}s)",
        )


def _progressing(p: Pass, o: _Outcome, retrain: RetrainPlan) -> None:
    stable, replicas, target, rolled = o.stable, o.replicas, o.target, o.rolled
    pod_problem, blocking, gate, canary = o.pod_problem, o.blocking, o.gate, o.canary
    desired = p.ld.spec.model.served_revision
    if blocking:
        p.cond(c.PROGRESSING, c.FALSE, blocking.reason, blocking.message)
    elif canary is not None and canary.state == CanaryState.PAUSED:
        msg = str((p.fields.get("canary") or {}).get("message") or "the canary is paused")
        p.cond(c.PROGRESSING, c.FALSE, canary.problem.reason if canary.problem else c.CANARY_PAUSED, msg)
    elif o.candidate is not None and o.candidate.held and o.candidate.message:
        p.cond(c.PROGRESSING, c.FALSE, c.RETRAIN_AWAITING_APPROVAL, o.candidate.message[:1000])
    elif canary is not None and canary.state == CanaryState.ROLLED_BACK:
        # Not "NewRevision … download stage": the spec's revision was tried and rolled back, and
        # nothing moves until the spec changes.
        msg = str((p.fields.get("canary") or {}).get("message") or "the canary was rolled back")
        p.cond(
            c.PROGRESSING,
            c.FALSE,
            c.ROLLED_BACK,
            f"revision {desired} was rolled back and {stable.revision or 'nothing'} serves: {msg}"[:1000],
        )
    elif canary is not None and canary.state in (CanaryState.PROGRESSING, CanaryState.PROMOTING):
        can = p.fields.get("canary") or {}
        p.cond(
            c.PROGRESSING,
            c.TRUE,
            c.CANARY_PROGRESSING,
            f"canary of revision {desired} at {can.get('weight')}% ({canary.state.lower()})",
        )
    elif target != desired:
        stage = f"{'evaluation' if gate.running else 'download'} stage"
        if not o.cache_ok and (progress := (p.fields.get("download") or {}).get("progress")):
            stage += f" ({progress})"
        p.cond(
            c.PROGRESSING,
            c.TRUE,
            c.NEW_REVISION,
            f"revision {desired} is in its {stage} before it replaces {stable.revision or 'nothing'}",
        )
    elif o.lost and not pod_problem:
        starting = o.stable_replicas - stable.ready
        p.cond(
            c.PROGRESSING,
            c.TRUE,
            c.REPLICAS_STARTING,
            f"{stable.ready}/{o.stable_replicas} replicas of revision {target} ready; {starting} starting "
            "(added by a scale-up, or replacing pods that were lost)",
        )
    elif not rolled and not o.lost:
        p.cond(
            c.PROGRESSING,
            c.TRUE,
            c.ROLLING_UPDATE,
            f"rolling out revision {target}: {stable.ready}/{replicas} replicas ready"
            + (f"; {pod_problem.message}" if pod_problem else ""),
        )
    elif retrain.running:
        p.cond(c.PROGRESSING, c.TRUE, retrain.reason, retrain.message[:1000])
    else:
        p.cond(c.PROGRESSING, c.FALSE, c.ROLLOUT_COMPLETE, f"revision {target} is rolled out")


def _degraded(p: Pass, o: _Outcome) -> None:
    # During a replicas-mode canary stable runs fewer pods on purpose: compare with what it should run.
    stable, replicas, pod_problem, blocking = o.stable, o.stable_replicas, o.pod_problem, o.blocking
    if o.lost and pod_problem:
        p.cond(
            c.DEGRADED,
            c.TRUE,
            pod_problem.reason,
            f"{stable.ready}/{replicas} replicas of revision {stable.revision} ready: {pod_problem.message}",
        )
    elif blocking:
        p.cond(c.DEGRADED, c.TRUE, blocking.reason, blocking.message)
    else:
        p.cond(c.DEGRADED, c.FALSE, "AsExpected", "no problem detected")


def _phase(o: _Outcome) -> Phase:
    """The phase follows the desired revision through the pipeline (the conditions say what serves)."""
    replicas, stable, target, gate, canary = o.replicas, o.stable, o.target, o.gate, o.canary
    cache_ok, cache_problem, pod_problem = o.cache_ok, o.cache_problem, o.pod_problem
    serving = stable.ready > 0
    if gate.failed:
        return Phase.FAILED
    for problem in (cache_problem, pod_problem):
        if problem and problem.permanent and not serving:
            return Phase.FAILED
    if not cache_ok:
        return Phase.PENDING if cache_problem else Phase.CACHING
    if gate.running:
        return Phase.EVALUATING
    if canary is not None and canary.state == CanaryState.ROLLED_BACK:
        return Phase.ROLLED_BACK
    if canary is not None and canary.state in (
        CanaryState.PROGRESSING,
        CanaryState.PAUSED,
        CanaryState.PROMOTING,
    ):
        return Phase.CANARY
    if o.lost and pod_problem is not None:
        return Phase.DEGRADED  # a replica only starting again is not: it has no problem
    if target is None or (not serving and replicas > 0):
        return Phase.PENDING
    return Phase.SERVING


def _diff(p: Pass, out: Plan) -> None:
    wanted = set()
    handed_over = {("Deployment", h["metadata"]["name"]) for h in out.handover}
    for obj in p.desired:
        key = (obj["kind"], obj["metadata"]["name"])
        wanted.add(key)
        observed = p.obs.child(*key)
        if observed is not None and key[0] == "Job":
            # A Job is made once: its pod template is immutable, so re-applying a changed
            # rendering (a new operator version, an edited spec.placement) would be refused
            # in every pass. A change takes effect with the next Job (a new revision's).
            continue
        digest = obj["metadata"]["annotations"][ANNOTATION_APPLIED_HASH]
        if applied_hash(observed) != digest:
            out.apply.append(obj)
        elif key in handed_over:
            out.apply.append(obj)  # the apply without replicas is what releases our ownership
        elif key[0] in DRIFT_REVERTED_KINDS and (taken := drifted_fields(obj, observed, digest)):
            out.drift[key] = taken
            out.apply.append(obj)
    for key, child in p.obs.children.items():
        deleting = (child.get("metadata") or {}).get("deletionTimestamp")
        ours = any(
            ref.get("kind") == "LLMDeployment" and ref.get("controller")
            for ref in (child.get("metadata") or {}).get("ownerReferences") or []
        )
        # Only what this LLMDeployment controls: Jobs its CronJob made belong to the CronJob.
        if (
            ours
            and key[0] in CHILD_KINDS
            and key not in wanted
            and not deleting
            and not _keep_finished(child)
        ):
            out.delete.append(key)


def _keep_finished(child: Mapping[str, Any]) -> bool:
    """Finished evaluation and retrain Jobs stay (their logs are the evidence behind a verdict or a
    candidate); their ttlSecondsAfterFinished cleans them up. Unfinished ones no longer wanted go."""
    labels = (child.get("metadata") or {}).get("labels") or {}
    kept = (COMPONENT_EVALUATION, COMPONENT_RETRAIN)
    return labels.get("app.kubernetes.io/component") in kept and job_state(child)[0] in (
        "Complete",
        "Failed",
    )


def _invalid(body: Mapping[str, Any], old: StatusDict, exc: ValidationError, now: dt.datetime) -> Plan:
    # The CRD refuses almost everything at admission; what remains (e.g. an object stored
    # before a schema change) must be fixed in git, not retried.
    return _refused(body, old, c.INVALID_SPEC, f"spec is invalid: {_validation_summary(exc)}", now)


def _capture_pattern_problem(ld: LLMDeployment) -> str | None:
    """Why a capture redaction pattern cannot be used (None: they all can). CEL cannot compile
    regexes, so admission lets them through; the gateway would refuse to start with one."""
    capture = ld.spec.gateway.capture
    if capture is None:
        return None
    patterns = capture.redaction.patterns
    try:
        compile_patterns((p.name, p.regex) for p in patterns)
    except InvalidPattern as exc:
        index = next(i for i, p in enumerate(patterns) if p.name == exc.name)
        return (
            f"spec.gateway.capture.redaction.patterns[{index}] ({exc.name}): the regex `{exc.regex}` "
            f"cannot be used: {exc.error}; nothing of this spec is applied until it is fixed"
        )
    return None


def _capture_sink_problem(ld: LLMDeployment) -> str | None:
    """Why the gateway could not send to the capture sink's URL (None: it can, or no sink)."""
    capture = ld.spec.gateway.capture
    if capture is None or capture.sink is None:
        return None
    if (why := sink_url_problem(capture.sink.url)) is None:
        return None
    return (
        f"spec.gateway.capture.sink.url: the gateway cannot send to {capture.sink.url}: {why}; "
        "nothing of this spec is applied until it is fixed"
    )


def _refused(body: Mapping[str, Any], old: StatusDict, reason: str, msg: str, now: dt.datetime) -> Plan:
    """A spec the operator cannot run: nothing applied, Available and Progressing False and
    Degraded True with `reason`, phase Failed, a Warning event; what runs keeps running."""
    generation = (body.get("metadata") or {}).get("generation")
    conds = [x.copy() for x in old.get("conditions") or []]
    for type_, status in ((c.AVAILABLE, c.FALSE), (c.PROGRESSING, c.FALSE), (c.DEGRADED, c.TRUE)):
        conds = set_condition(conds, type_, status, reason, msg, generation=generation, now=now)
    fields: StatusDict = {"phase": Phase.FAILED, "observedGeneration": generation}
    return _finish(Plan(), old, fields, conds, [Event("Warning", reason, msg)])


def _finish(
    out: Plan, old: StatusDict, fields: StatusDict, conds: list[ConditionDict], events: list[Event]
) -> Plan:
    new: dict[str, Any] = {**old, **fields, "conditions": conds}
    out.status = {k: v for k, v in new.items() if v is not None}
    out.status_changed = out.status != {k: v for k, v in old.items() if v is not None}
    # Events only when something visible changed, so a steady state posts nothing.
    out.events = events if out.status_changed else []
    return out


def _validation_summary(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
