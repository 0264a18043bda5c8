"""The autoscaling stage: who sets the stable Deployment's replicas, and the autoscaler itself.

Without spec.autoscaling the operator applies spec.replicas and takes back any other manager's
edit (ownership.py). With it, the replica count belongs to the autoscaler and the operator makes
no write to it:

- the stable Deployment is applied without ``replicas`` (a new one starts with spec.replicas
  clamped to [minReplicas, maxReplicas], and is handed over on the next pass; a count of ours
  outside the bounds is first brought within them the same way);
- server-side apply *removes* a field its manager stops applying when no other manager owns it,
  and an absent ``replicas`` defaults to 1. So while ``llmops`` still owns the field (the pass that
  turns autoscaling on, or the one after creating the Deployment), the pass first applies
  ``{spec: {replicas: <live count>}}`` under a second field manager, HANDOVER_MANAGER, without
  force: it becomes a co-owner of the same value, and the main apply without ``replicas`` then
  leaves the count where it is (the procedure of Kubernetes' server-side apply documentation,
  "Transferring ownership"). A conflict there means the autoscaler already took the field: fine;
- the autoscaler (render.autoscaling) is a KEDA ScaledObject when the cluster has KEDA's CRD
  (discovered by the kube adapter: Observations.apis), otherwise a HorizontalPodAutoscaler;
- the canary's share is computed from the live count (lifecycle.canary), never written to stable.

Removing spec.autoscaling deletes the autoscaler (no longer desired) and the next apply carries
spec.replicas again, forced: the operator owns the count again. A custom query is checked
against Prometheus once per distinct query (the shell runs :func:`query_check_request`); one that
does not parse gets no autoscaler and an Autoscaling=False condition naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from llmops.analysis import UnknownPlaceholder, render_query
from llmops.api import conditions as c
from llmops.api.resource import LLMDeployment
from llmops.api.spec import DEFAULT_TARGET_QUEUE_DEPTH
from llmops.api.status import AutoscalingStatusDict
from llmops.engines import get_engine
from llmops.engines.base import matchers, selector
from llmops.lifecycle.context import Event, Pass
from llmops.lifecycle.observations import KEDA_API
from llmops.lifecycle.ownership import FIELD_MANAGER, owns
from llmops.render.autoscaling import ScalerKind, ScalerMetric, horizontal_pod_autoscaler, scaled_object
from llmops.render.names import deployment_name

__all__ = [
    "HANDOVER_MANAGER",
    "QUERY_INTERVAL",
    "REPLICAS_OWNER_CHANGED",
    "Scaling",
    "autoscaling_stage",
    "handover_manifest",
    "query_check_request",
    "scaler_metric",
    "scaling_of",
]

HANDOVER_MANAGER = f"{FIELD_MANAGER}-replicas-handover"
"""The field manager that holds the replica count while it passes from the operator to the
autoscaler (never forced, never used for anything else)."""
QUERY_INTERVAL = "1m"
"""What {{ interval }} stands for in a custom autoscaling query."""
_REPLICAS = ("f:spec", "f:replicas")
REPLICAS_OWNER_CHANGED = "ReplicasOwnerChanged"
"""Event reason and history action when status.replicasOwner changes."""


@dataclass(frozen=True)
class Scaling:
    """How the stable Deployment's replicas are set in this pass."""

    autoscaled: bool
    rendered: int | None
    """What the stable manifest carries (None: left out, the autoscaler owns it)."""
    desired: int
    """The stable replicas expected now: spec.replicas, or the live count set by the autoscaler."""
    hand_over: bool = False
    """The operator still owns the count: hand it over before applying without it."""


def scaling_of(ld: LLMDeployment, stable: Mapping[str, Any] | None) -> Scaling:
    """The replicas of the stable Deployment ``stable`` (as observed; None when absent)."""
    spec = ld.spec
    if spec.autoscaling is None:
        return Scaling(False, spec.replicas, spec.replicas)
    start = spec.autoscaling.start_replicas(spec.replicas)
    if stable is None:
        # A new Deployment starts at the clamped count; the next pass hands the field over.
        return Scaling(True, start, start)
    live = (stable.get("spec") or {}).get("replicas")
    count = int(live) if live is not None else start
    if not owns(stable, _REPLICAS, FIELD_MANAGER):
        return Scaling(True, None, count)
    clamped = spec.autoscaling.start_replicas(count)
    if clamped != count:
        # Still ours and out of bounds (spec.replicas was 0, say: an HPA leaves a Deployment at 0
        # alone): one last write brings it within them, and the next pass hands it over.
        return Scaling(True, clamped, clamped)
    return Scaling(True, None, count, hand_over=True)


def scaler_metric(ld: LLMDeployment) -> ScalerMetric:
    """The query the autoscaler follows. Raises UnknownPlaceholder for a custom query with one."""
    scaling = ld.spec.autoscaling
    assert scaling is not None
    if scaling.query is None:
        queue = get_engine(ld.spec.engine.type).metrics.queue_size
        stable = selector(ld.namespace, ld.name, "stable")
        # No stable pod scraped (or none yet) reads as an empty queue, not as a missing metric.
        query = f"sum({queue}{matchers(stable)}) or vector(0)"
        return ScalerMetric(
            query, float(scaling.target_queue_depth or DEFAULT_TARGET_QUEUE_DEPTH), "AverageValue"
        )
    assert scaling.target is not None  # the model requires it with query
    query = render_query(
        scaling.query, namespace=ld.namespace, name=ld.name, track="stable", interval=QUERY_INTERVAL
    )
    return ScalerMetric(query, scaling.target, scaling.target_type or "AverageValue")


def query_check_request(body: Mapping[str, Any], ld: LLMDeployment | None) -> str | None:
    """The custom query to check against Prometheus in this pass: a query not checked yet (the
    built-in queue-depth query is ours and needs none). Pure."""
    if ld is None or ld.spec.autoscaling is None or ld.spec.autoscaling.query is None:
        return None
    try:
        query = scaler_metric(ld).query
    except UnknownPlaceholder:
        return None  # the stage reports it without asking Prometheus
    checked = (((body.get("status") or {}).get("autoscaling")) or {}).get("checkedQuery")
    return None if checked == query else query


def handover_manifest(stable: Mapping[str, Any]) -> dict[str, Any]:
    """Only the live replica count of the observed stable Deployment, for HANDOVER_MANAGER."""
    meta = stable["metadata"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": int((stable.get("spec") or {}).get("replicas") or 0)},
    }


def autoscaling_stage(p: Pass, scaling: Scaling) -> ScalerMetric | None:
    """The autoscaler, its status and condition, and the hand-over of the replica count. Returns
    the metric the PrometheusRule should record (None: no autoscaler this pass)."""
    metric = _autoscaling(p, scaling)
    _announce_owner(p)
    return metric


_OWNER_TEXT = {
    "Spec": "the operator, from spec.replicas",
    "HorizontalPodAutoscaler": "the HorizontalPodAutoscaler",
    "ScaledObject": "KEDA's ScaledObject",
    "Nobody": "nobody (no autoscaler can be rendered: see the Autoscaling condition)",
}


def _announce_owner(p: Pass) -> None:
    """An Event and a history entry when someone else sets the replicas (not for an object that
    simply gets the field for the first time with spec.replicas)."""
    before, after = p.old_status.get("replicasOwner"), p.fields.get("replicasOwner")
    if after is None or after == before or (before is None and after == "Spec"):
        return
    text = f"the replicas of {deployment_name(p.ld.name, 'stable')} are now set by {_OWNER_TEXT[after]}"
    p.events.append(Event("Normal", REPLICAS_OWNER_CHANGED, text))
    p.record(REPLICAS_OWNER_CHANGED, None, REPLICAS_OWNER_CHANGED, text)


def _autoscaling(p: Pass, scaling: Scaling) -> ScalerMetric | None:
    spec = p.ld.spec.autoscaling
    if spec is None:
        p.fields.update({"replicasOwner": "Spec", "autoscaling": None})
        p.drop_condition(c.AUTOSCALING)
        return None
    stable = p.obs.child("Deployment", deployment_name(p.ld.name, "stable"))
    if stable is not None and scaling.hand_over:
        p.handover.append(handover_manifest(stable))
    old: AutoscalingStatusDict = {**(p.old_status.get("autoscaling") or {})}
    status: AutoscalingStatusDict = {
        "minReplicas": spec.min_replicas,
        "maxReplicas": spec.max_replicas,
        "replicas": scaling.desired,
        "checkedQuery": old.get("checkedQuery"),
        "queryError": old.get("queryError"),
    }
    metric = _scaler(p, status)
    # Absent rather than null: a stored status has no null fields, so a quiet pass compares equal.
    p.fields["autoscaling"] = cast(AutoscalingStatusDict, {k: v for k, v in status.items() if v is not None})
    return metric


def _scaler(p: Pass, status: AutoscalingStatusDict) -> ScalerMetric | None:
    """Want the autoscaler (filling ``status``); its metric, or None when none can be rendered."""
    kind: ScalerKind = "ScaledObject" if KEDA_API in p.obs.apis else "HorizontalPodAutoscaler"
    try:
        metric = scaler_metric(p.ld)
    except UnknownPlaceholder as exc:
        _no_scaler(p, c.INVALID_QUERY, f"spec.autoscaling.query: {exc}")
        return None
    status.update({"query": metric.query, "target": metric.target, "targetType": metric.target_type})
    check = _record_check(p, status, metric.query)
    if check.error is not None:
        _no_scaler(p, c.INVALID_QUERY, f"spec.autoscaling.query does not parse: {check.error}")
        return None
    if kind == "ScaledObject":
        url = p.ld.spec.monitoring.prometheus.url or p.obs.prometheus_url
        if url is None:
            why = "KEDA's Prometheus trigger needs a Prometheus URL: set spec.monitoring.prometheus.url"
            _no_scaler(p, "NoPrometheusURL", why)
            return None
        p.want(scaled_object(p.ld, metric, url))
    else:
        p.want(horizontal_pod_autoscaler(p.ld, metric))
    status["scaler"] = kind
    p.fields["replicasOwner"] = kind
    _scaler_condition(p, kind, metric, check)
    return metric


@dataclass(frozen=True)
class _Check:
    """Where the syntax check of a custom query stands."""

    checked: bool
    """Prometheus answered for this very query (now or in an earlier pass)."""
    error: str | None = None
    """Its parse error."""
    unreachable: str | None = None
    """Why this pass could not ask."""


def _record_check(p: Pass, status: AutoscalingStatusDict, query: str) -> _Check:
    """This pass's syntax check of ``query``, kept in ``status`` so that it is asked once."""
    spec = p.ld.spec.autoscaling
    if spec is None or spec.query is None:
        status["checkedQuery"] = status["queryError"] = None
        return _Check(True)
    check = p.obs.query_check
    unreachable = None
    if check is not None and check[0] == query:
        answer = check[1]
        if answer is None or answer.kind == "rejected":
            status["checkedQuery"] = query
            status["queryError"] = answer.message if answer is not None else None
        else:
            unreachable = answer.message
    if status.get("checkedQuery") != query:
        return _Check(False, unreachable=unreachable)
    return _Check(True, error=status.get("queryError"))


def _no_scaler(p: Pass, reason: str, message: str) -> None:
    """No autoscaler this pass: the replicas stay where they are (the operator does not take them
    back: a typo in a query must not scale a loaded model down to spec.replicas)."""
    p.fields["replicasOwner"] = "Nobody"
    p.cond(
        c.AUTOSCALING,
        c.FALSE,
        reason,
        f"{message}; no autoscaler is applied and the replicas stay as they are",
    )


def _scaler_condition(p: Pass, kind: str, metric: ScalerMetric, check: _Check) -> None:
    spec = p.ld.spec.autoscaling
    assert spec is not None
    per = " per replica" if metric.target_type == "AverageValue" else ""
    text = (
        f"{kind} {p.ld.name} scales {deployment_name(p.ld.name, 'stable')} between {spec.min_replicas} "
        f"and {spec.max_replicas} replicas, keeping {metric.query} near {metric.target:g}{per}"
    )
    if not check.checked:
        why = f" ({check.unreachable})" if check.unreachable else ""
        p.cond(c.AUTOSCALING, c.UNKNOWN, c.QUERY_NOT_CHECKED, f"{text}; the query is not checked yet{why}")
        return
    p.cond(c.AUTOSCALING, c.TRUE, c.SCALER_CONFIGURED, text)
