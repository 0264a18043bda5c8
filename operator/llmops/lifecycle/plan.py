"""``plan()``: the pure decision of one reconcile pass.

    plan(body, observations, now) -> Plan(apply, delete, status, events, requeue_after)

It recomputes the desired children from the spec and what it observes, and the status that
describes it. It never reads the clock, the environment or the network. Children carry an
``llmops.io/applied-hash`` annotation of what was applied, so a pass only re-applies what
changed and a pass with nothing to change produces no actions and the same status.

The revision pipeline (issue 3's part of the lifecycle): the stable Deployment keeps serving
what it serves until the desired revision is in the cache; then it rolls to it. Later stages
(evaluation, canary) slot in as gates between "cached" and "rolled to stable".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from llmops.api import conditions as c
from llmops.api.resource import LLMDeployment, parse
from llmops.api.spec import is_pinned_revision
from llmops.api.status import HISTORY_LIMIT, Phase
from llmops.lifecycle.conditions import set_condition, timestamp
from llmops.lifecycle.diagnose import Problem, diagnose_pods, job_state
from llmops.lifecycle.observations import MONITORING_API, Observations
from llmops.render import (
    deployment,
    deployment_name,
    download_job,
    endpoint,
    network_policy,
    pdb,
    pod_monitor,
    prometheus_rule,
    pvc,
    pvc_name,
    service,
)

__all__ = ["ANNOTATION_APPLIED_HASH", "ANNOTATION_MODEL_REVISION", "Event", "Plan", "plan"]

ANNOTATION_APPLIED_HASH = "llmops.io/applied-hash"
"""Hash of the manifest last applied to a child: equal hash, nothing to apply."""
ANNOTATION_MODEL_REVISION = "llmops.io/model-revision"
"""The full model revision a Deployment serves (the label holds a shortened form)."""
MONITORING_CONFIGURED = "MonitoringConfigured"
REVISION_PINNED = "RevisionPinned"
# Kinds the operator deletes when no longer desired (never Pods: their controllers own them).
_MANAGED_KINDS = frozenset(
    {
        "Deployment",
        "Service",
        "PersistentVolumeClaim",
        "Job",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "PodMonitor",
        "PrometheusRule",
    }
)
_RESYNC_WHILE_BUSY = 30.0


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post about the LLMDeployment."""

    type: str
    reason: str
    message: str


@dataclass
class Plan:
    """What one pass decided: writes to make, the new status, and when to look again."""

    apply: list[dict[str, Any]] = field(default_factory=list)
    delete: list[tuple[str, str]] = field(default_factory=list)
    """(kind, name) of children to delete."""
    status: dict[str, Any] = field(default_factory=dict)
    status_changed: bool = False
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None


def manifest_hash(obj: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _stamp(obj: dict[str, Any], *, revision: str | None = None) -> dict[str, Any]:
    """Annotate a rendered child with its hash (and the model revision for Deployments)."""
    meta = obj["metadata"]
    annotations = dict(meta.get("annotations") or {})
    if revision is not None:
        annotations[ANNOTATION_MODEL_REVISION] = revision
    meta["annotations"] = annotations
    annotations[ANNOTATION_APPLIED_HASH] = manifest_hash(obj)
    return obj


def _applied_hash(obj: Mapping[str, Any] | None) -> str | None:
    if not obj:
        return None
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_APPLIED_HASH)


def served_revision(dep: Mapping[str, Any] | None) -> str | None:
    """The model revision an observed Deployment is set to serve."""
    if not dep:
        return None
    return ((dep.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_MODEL_REVISION)


@dataclass(frozen=True)
class _Rollout:
    """The observed state of one track's Deployment."""

    exists: bool
    revision: str | None
    ready: int
    complete: bool
    """Every pod runs the current template and is ready; no old pod is left."""


def _rollout(dep: Mapping[str, Any] | None, replicas: int) -> _Rollout:
    if not dep:
        return _Rollout(False, None, 0, False)
    st = dep.get("status") or {}
    ready = int(st.get("readyReplicas") or 0)
    current = int(st.get("observedGeneration") or 0) >= int(dep["metadata"].get("generation") or 0)
    complete = (
        current
        and int(st.get("updatedReplicas") or 0) == replicas
        and int(st.get("replicas") or 0) == replicas
        and ready == replicas
    )
    return _Rollout(True, served_revision(dep), ready, complete)


def _job_message(obs: Observations, job_name: str) -> str:
    """The termination message of the Job's latest failed pod, if any."""
    msgs = []
    for pod in obs.pods:
        if (pod.get("metadata", {}).get("labels") or {}).get("batch.kubernetes.io/job-name") != job_name:
            continue
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated") or {}
            if term.get("exitCode", 0) != 0 and term.get("message"):
                msgs.append(str(term["message"]).strip())
    if not msgs:
        return ""
    try:
        err = json.loads(msgs[-1])
        return str(err.get("error") or msgs[-1])
    except ValueError:
        return msgs[-1][:300]


def plan(body: Mapping[str, Any], obs: Observations, now: dt.datetime) -> Plan:
    """Decide one pass for the LLMDeployment ``body`` given ``obs``, at time ``now``."""
    meta = body.get("metadata") or {}
    generation = meta.get("generation")
    old_status: dict[str, Any] = dict(body.get("status") or {})
    conds: list[dict[str, Any]] = [dict(x) for x in old_status.get("conditions") or []]
    out = Plan()

    def cond(type_: str, status: str, reason: str, message: str) -> None:
        nonlocal conds
        conds = set_condition(conds, type_, status, reason, message, generation=generation, now=now)

    try:
        ld = parse(body)
    except ValidationError as exc:
        # The CRD refuses almost everything at admission; what remains (e.g. an object stored
        # before a schema change) must be fixed in git, not retried.
        msg = f"spec is invalid: {_validation_summary(exc)}"
        cond(c.AVAILABLE, c.FALSE, c.INVALID_SPEC, msg)
        cond(c.PROGRESSING, c.FALSE, c.INVALID_SPEC, msg)
        cond(c.DEGRADED, c.TRUE, c.INVALID_SPEC, msg)
        return _finish(
            out,
            old_status,
            {"phase": Phase.FAILED.value, "observedGeneration": generation},
            conds,
            [Event("Warning", c.INVALID_SPEC, msg)],
            now,
        )

    spec, name, ns = ld.spec, ld.name, ld.namespace
    desired_rev = spec.model.revision
    replicas = spec.replicas
    stable_name = deployment_name(name, "stable")
    stable = _rollout(obs.child("Deployment", stable_name), replicas)
    desired: list[dict[str, Any]] = []
    events: list[Event] = []

    # ---- the model cache: a download Job per revision fills the shared PVC.
    cache_ok, cache_problem = _cache(ld, obs, desired, cond)

    # ---- which revision the stable track serves: the desired one once it is cached.
    target_rev = desired_rev if cache_ok else stable.revision
    if target_rev is not None:
        desired.append(
            _stamp(
                deployment(ld, track="stable", revision=target_rev, replicas=replicas), revision=target_rev
            )
        )

    # ---- the shared children.
    for child in (service(ld), pdb(ld), network_policy(ld)):
        if child is not None:
            desired.append(_stamp(child))
    monitoring_wanted = spec.monitoring.enabled
    if monitoring_wanted and MONITORING_API in obs.apis:
        desired += [_stamp(x) for x in (pod_monitor(ld), prometheus_rule(ld)) if x is not None]
        cond(
            MONITORING_CONFIGURED,
            c.TRUE,
            "MonitoringConfigured",
            "PodMonitor and PrometheusRule are in place",
        )
    elif monitoring_wanted:
        cond(
            MONITORING_CONFIGURED,
            c.FALSE,
            c.MONITORING_CRDS_MISSING,
            "the Prometheus Operator CRDs (monitoring.coreos.com/v1) are not installed, so the PodMonitor and "
            "PrometheusRule were skipped; install the Prometheus Operator or set spec.monitoring.enabled=false",
        )
    else:
        cond(MONITORING_CONFIGURED, c.FALSE, "MonitoringDisabled", "spec.monitoring.enabled is false")

    if is_pinned_revision(desired_rev):
        cond(REVISION_PINNED, c.TRUE, "Pinned", f"revision {desired_rev} is a commit sha")
    else:
        cond(
            REVISION_PINNED,
            c.FALSE,
            c.MOVING_REVISION,
            f"revision {desired_rev!r} is a branch or tag: the weights can change under you; "
            "pin spec.model.revision to a 40-hex commit sha",
        )

    _diff(desired, obs, out)

    # ---- status: what serves, is it available, what is moving.
    server_pods = obs.pods_of(**{"llmops.io/track": "stable"})
    pod_problem = diagnose_pods(server_pods, spec.resources.gpu.resource_name)
    rolled = stable.complete and stable.revision == target_rev and target_rev is not None
    # The serving revision changes only when the new one is fully rolled out and ready.
    serving_rev = target_rev if rolled else old_status.get("servingRevision")

    if replicas == 0:
        cond(c.AVAILABLE, c.FALSE, c.SCALED_TO_ZERO, "spec.replicas is 0")
    elif stable.ready > 0:
        cond(
            c.AVAILABLE,
            c.TRUE,
            c.MINIMUM_REPLICAS_AVAILABLE,
            f"{stable.ready}/{replicas} replicas ready; the Service routes to them",
        )
    elif pod_problem:
        cond(c.AVAILABLE, c.FALSE, pod_problem.reason, pod_problem.message)
    elif cache_problem:
        cond(c.AVAILABLE, c.FALSE, cache_problem.reason, cache_problem.message)
    elif target_rev is None:
        cond(c.AVAILABLE, c.FALSE, c.DOWNLOADING, "waiting for the model download before starting servers")
    else:
        cond(
            c.AVAILABLE,
            c.FALSE,
            c.PODS_NOT_READY,
            f"0/{replicas} replicas ready: servers are starting (loading the model can take many minutes; "
            f"the startup probe allows {spec.engine.startup_timeout_seconds}s)",
        )

    blocked = pod_problem if pod_problem and pod_problem.permanent else cache_problem
    if blocked and blocked.permanent:
        cond(c.PROGRESSING, c.FALSE, blocked.reason, blocked.message)
    elif target_rev != desired_rev:
        cond(
            c.PROGRESSING,
            c.TRUE,
            c.NEW_REVISION,
            f"revision {desired_rev} is being prepared (download) before it replaces "
            f"{stable.revision or 'nothing'}",
        )
    elif not rolled:
        cond(
            c.PROGRESSING,
            c.TRUE,
            c.ROLLING_UPDATE,
            f"rolling out revision {target_rev}: {stable.ready}/{replicas} replicas ready"
            + (f"; {pod_problem.message}" if pod_problem else ""),
        )
    else:
        cond(c.PROGRESSING, c.FALSE, c.ROLLOUT_COMPLETE, f"revision {target_rev} is rolled out")

    if replicas > 0 and rolled and stable.ready < replicas:
        cond(
            c.DEGRADED,
            c.TRUE,
            pod_problem.reason if pod_problem else c.PODS_NOT_READY,
            f"{stable.ready}/{replicas} replicas ready" + (f": {pod_problem.message}" if pod_problem else ""),
        )
    elif blocked and blocked.permanent:
        cond(c.DEGRADED, c.TRUE, blocked.reason, blocked.message)
    else:
        cond(c.DEGRADED, c.FALSE, "AsExpected", "no problem detected")

    if obs.errors:
        cond(c.AVAILABLE, c.UNKNOWN, c.OBSERVATION_FAILED, "; ".join(obs.errors)[:1000])

    phase = _phase(replicas, stable, rolled, target_rev, desired_rev, cache_ok, cache_problem, pod_problem)
    fields: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": phase.value,
        "ready": f"{stable.ready}/{replicas}",
        "readyReplicas": stable.ready,
        "replicas": replicas,
        "servingRevision": serving_rev,
        "desiredRevision": desired_rev,
        "endpoint": endpoint(name, ns, spec.service.port),
        "model": spec.model.id,
    }
    history = list(old_status.get("history") or [])
    if serving_rev and serving_rev != old_status.get("servingRevision"):
        events.append(Event("Normal", "Deployed", f"revision {serving_rev} serves {replicas} replicas"))
        history.append(
            {
                "time": timestamp(now),
                "action": "Deployed",
                "revision": serving_rev,
                "reason": c.ROLLOUT_COMPLETE,
                "message": f"{stable.ready}/{replicas} replicas ready",
            }
        )
    if phase.value != old_status.get("phase") and phase in (Phase.FAILED, Phase.DEGRADED):
        problem = blocked or pod_problem
        events.append(
            Event(
                "Warning",
                problem.reason if problem else phase.value,
                problem.message if problem else f"phase {phase.value}",
            )
        )
    fields["history"] = history[-HISTORY_LIMIT:]
    if not rolled or target_rev != desired_rev:
        out.requeue_after = _RESYNC_WHILE_BUSY
    return _finish(out, old_status, fields, conds, events, now)


def _cache(
    ld: LLMDeployment, obs: Observations, desired: list[dict[str, Any]], cond: Any
) -> tuple[bool, Problem | None]:
    """Render the cache children; return (desired revision cached?, blocking problem)."""
    spec = ld.spec
    if not spec.cache.enabled:
        cond(
            c.MODEL_CACHED,
            c.FALSE,
            c.CACHE_DISABLED,
            "spec.cache.enabled is false: each pod downloads the model",
        )
        return True, None
    claim = pvc(ld)
    assert claim is not None
    desired.append(_stamp(claim))
    job = download_job(ld, revision=spec.model.revision)
    if job is None:
        cond(
            c.MODEL_CACHED,
            c.FALSE,
            c.CACHE_DISABLED,
            "spec.cache.download.enabled is false: pods fill the cache themselves on first start",
        )
        return True, None
    desired.append(_stamp(job))
    observed_pvc = obs.child("PersistentVolumeClaim", pvc_name(ld.name))
    state, reason, message = job_state(obs.child("Job", job["metadata"]["name"]))
    rev = spec.model.revision
    if state == "Complete":
        cond(
            c.MODEL_CACHED, c.TRUE, c.DOWNLOAD_SUCCEEDED, f"revision {rev} of {spec.model.id} is in the cache"
        )
        return True, None
    if state == "Failed":
        detail = _job_message(obs, job["metadata"]["name"])
        if reason == "DeadlineExceeded":
            p = Problem(
                c.DOWNLOAD_TIMED_OUT,
                f"the download of {spec.model.id}@{rev} did not finish within "
                f"{spec.cache.download.active_deadline_seconds}s; raise spec.cache.download.activeDeadlineSeconds",
                permanent=True,
            )
        else:
            p = Problem(
                c.DOWNLOAD_FAILED,
                f"the download of {spec.model.id}@{rev} failed: {detail or message or reason}; "
                "check spec.model (id, revision, tokenSecretRef)",
                permanent=True,
            )
        cond(c.MODEL_CACHED, c.FALSE, p.reason, p.message)
        return False, p
    job_pods = [
        p
        for p in obs.pods
        if (p.get("metadata", {}).get("labels") or {}).get("batch.kubernetes.io/job-name")
        == job["metadata"]["name"]
    ]
    problem = diagnose_pods(job_pods, spec.resources.gpu.resource_name)
    if observed_pvc is not None and (observed_pvc.get("status") or {}).get("phase") != "Bound":
        problem = Problem(
            c.PVC_NOT_BOUND,
            f"the model cache PersistentVolumeClaim {pvc_name(ld.name)} is not bound; check that "
            f"storage class {spec.cache.storage_class_name or '(default)'} exists and can provision "
            f"{spec.cache.size} {spec.cache.access_mode}",
            permanent=False,
        )
    if problem:
        cond(c.MODEL_CACHED, c.FALSE, problem.reason, problem.message)
        return False, problem
    cond(c.MODEL_CACHED, c.FALSE, c.DOWNLOADING, f"downloading {spec.model.id}@{rev} into the cache")
    return False, None


def _phase(
    replicas: int,
    stable: _Rollout,
    rolled: bool,
    target: str | None,
    desired: str,
    cache_ok: bool,
    cache_problem: Problem | None,
    pod_problem: Problem | None,
) -> Phase:
    serving_something = stable.ready > 0
    if cache_problem and cache_problem.permanent and not serving_something:
        return Phase.FAILED
    if pod_problem and pod_problem.permanent and not serving_something:
        return Phase.FAILED
    if target is None or (not cache_ok and not serving_something):
        return Phase.CACHING if not cache_problem else Phase.PENDING
    if not serving_something:
        return Phase.PENDING if replicas > 0 else Phase.SERVING
    if target != desired and not cache_ok:
        return Phase.CACHING
    if rolled and stable.ready < replicas:
        return Phase.DEGRADED
    return Phase.SERVING


def _diff(desired: list[dict[str, Any]], obs: Observations, out: Plan) -> None:
    wanted = set()
    for obj in desired:
        key = (obj["kind"], obj["metadata"]["name"])
        wanted.add(key)
        if _applied_hash(obs.child(*key)) != obj["metadata"]["annotations"][ANNOTATION_APPLIED_HASH]:
            out.apply.append(obj)
    for key, child in obs.children.items():
        if (
            key[0] in _MANAGED_KINDS
            and key not in wanted
            and not (child.get("metadata") or {}).get("deletionTimestamp")
        ):
            out.delete.append(key)


def _finish(
    out: Plan,
    old: dict[str, Any],
    fields: dict[str, Any],
    conds: list[dict[str, Any]],
    events: list[Event],
    now: dt.datetime,
) -> Plan:
    new = {**old, **fields, "conditions": conds}
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
