"""The PodMonitor that scrapes the servers and the PrometheusRule with their serving alerts
(Prometheus Operator kinds, monitoring.coreos.com/v1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmops.api.constants import (
    LABEL_DEPLOYMENT,
    LABEL_REVISION,
    LABEL_TRACK,
    PROM_LABEL_DEPLOYMENT,
    PROM_LABEL_REVISION,
    PROM_LABEL_TRACK,
)
from llmops.api.resource import LLMDeployment
from llmops.api.spec import PrometheusRuleSpec
from llmops.api.status import CanaryState
from llmops.engines import PORT_NAME, alert_rules, get_engine
from llmops.render.autoscaling import ScalerMetric, autoscaling_recording_group
from llmops.render.gateway import HEALTH_PORT_NAME
from llmops.render.labels import COMPONENT_MONITORING, common_labels, metadata, server_selector
from llmops.render.names import service_name

MONITORING_API_VERSION = "monitoring.coreos.com/v1"
SERVING_TRACKS_REGEX = "stable|canary"


def _meta_label(key: str) -> str:
    """Prometheus' service-discovery name of a pod label (non-alphanumerics become _)."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in key)


def pod_monitor_for(
    ld: LLMDeployment,
    name: str,
    labels: dict[str, str],
    pods: dict[str, str],
    endpoint: tuple[str, str],
    copied: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    """A PodMonitor `name` scraping the `pods` (a matchLabels selector) at `endpoint` (port name,
    path) on spec.monitoring's interval, copying each (pod label, series label) of `copied` onto
    every series; spec.monitoring.podMonitor.labels go on the object, so the user's Prometheus
    selects it."""
    mon = ld.spec.monitoring
    port, path = endpoint
    relabelings = [
        {"action": "replace", "sourceLabels": [_meta_label(pod_label)], "targetLabel": target}
        for pod_label, target in copied
    ]
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "PodMonitor",
        "metadata": metadata(ld, name, {**mon.pod_monitor.labels, **labels}),
        "spec": {
            "selector": {"matchLabels": pods},
            "podMetricsEndpoints": [
                {"port": port, "path": path, "interval": mon.pod_monitor.interval, "relabelings": relabelings}
            ],
        },
    }


def pod_monitor(ld: LLMDeployment) -> dict[str, Any] | None:
    """The PodMonitor `<name>` (None when monitoring is disabled). Scrapes /metrics on the
    server's main port (TGI's separate prometheus port serves nothing), or with the gateway on
    its health port, whose /metrics is the gateway's series followed by the engine's (same
    names, same labels); copies the pod's deployment, track and revision labels onto every series."""
    if not ld.spec.monitoring.enabled:
        return None
    engine = get_engine(ld.spec.engine.type)
    port = HEALTH_PORT_NAME if ld.spec.gateway.enabled else PORT_NAME
    copied = (
        (LABEL_DEPLOYMENT, PROM_LABEL_DEPLOYMENT),
        (LABEL_TRACK, PROM_LABEL_TRACK),
        (LABEL_REVISION, PROM_LABEL_REVISION),
    )
    labels = common_labels(ld, COMPONENT_MONITORING)
    return pod_monitor_for(
        ld, service_name(ld.name), labels, server_selector(ld), (port, engine.routes.metrics), copied
    )


def prometheus_rule(ld: LLMDeployment, autoscaling: ScalerMetric | None = None) -> dict[str, Any] | None:
    """The PrometheusRule `<name>` (None when monitoring or the rule is disabled): pods not ready,
    error ratio, p95 latency and queue backlog over the serving (stable and canary) pods; canary
    failed and rollout stalled with spec.rollout, drifted with spec.drift (the operator's metrics);
    with `autoscaling`, a second group recording the autoscaler's metric (render.autoscaling)."""
    mon = ld.spec.monitoring
    rule = mon.prometheus_rule
    if not (mon.enabled and rule.enabled):
        return None
    alerts = [*_pods_alerts(ld, rule), *_serving_alerts(ld, rule), *_canary_alerts(ld), *_drift_alerts(ld)]
    labels = {**rule.labels, **common_labels(ld, COMPONENT_MONITORING)}
    groups = [{"name": f"llmops.{ld.namespace}.{ld.name}", "rules": alerts}]
    if autoscaling is not None:
        groups.append(autoscaling_recording_group(ld, autoscaling))
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "PrometheusRule",
        "metadata": metadata(ld, service_name(ld.name), labels),
        "spec": {"groups": groups},
    }


def _serving_selector(ld: LLMDeployment) -> str:
    """PromQL label matchers for the serving (stable and canary) pods of ``ld``."""
    return (
        f'namespace="{ld.namespace}",{PROM_LABEL_DEPLOYMENT}="{ld.name}",'
        f'{PROM_LABEL_TRACK}=~"{SERVING_TRACKS_REGEX}"'
    )


def _where(ld: LLMDeployment) -> str:
    return f"{ld.namespace}/{ld.name}"


def _operator_selector(ld: LLMDeployment) -> str:
    """Label matchers for the operator's own metrics (llmops.metrics) about ``ld``."""
    return f'llmd_namespace="{ld.namespace}",llmd_name="{ld.name}"'


def _pods_alerts(ld: LLMDeployment, rule: PrometheusRuleSpec) -> list[dict[str, Any]]:
    """Fewer serving pods up than replicas (with autoscaling: than minReplicas, the fewest it keeps)."""
    scaling = ld.spec.autoscaling
    replicas = scaling.min_replicas if scaling is not None else ld.spec.replicas
    if replicas <= 0:
        return []
    # A pod scrapes as up only once the server listens, which TGI does after warm-up; pods
    # that are Pending have no target at all. So fewer `up` targets than replicas = not ready.
    return [
        _alert(
            ld,
            "LLMDeploymentPodsNotReady",
            expr=f"(count(up{{{_serving_selector(ld)}}} == 1) or vector(0)) < {replicas}",
            for_=rule.for_,
            severity="warning",
            text=f"Fewer than {replicas} serving pods of {_where(ld)} are up.",
        )
    ]


def _serving_alerts(ld: LLMDeployment, rule: PrometheusRuleSpec) -> list[dict[str, Any]]:
    """The engine's alerts on its own metrics: error ratio, p95 latency, queue backlog."""
    where = _where(ld)
    exprs = alert_rules(
        get_engine(ld.spec.engine.type),
        selector=_serving_selector(ld),
        error_ratio=rule.error_ratio,
        latency_p95_seconds=rule.latency_p95_seconds,
        queue_size=rule.queue_size,
    )
    descriptions = {
        "ErrorRatio": (
            "critical",
            f"More than {rule.error_ratio:.0%} of requests to {where} fail (validation errors excluded).",
        ),
        "LatencyP95": ("warning", f"p95 request duration of {where} is above {rule.latency_p95_seconds:g}s."),
        "QueueBacklog": ("warning", f"A pod of {where} has more than {rule.queue_size} requests queued."),
    }
    alerts = []
    for suffix, expr in exprs.items():
        severity, text = descriptions[suffix]
        alerts.append(
            _alert(ld, f"LLMDeployment{suffix}", expr=expr, for_=rule.for_, severity=severity, text=text)
        )
    return alerts


def _canary_alerts(ld: LLMDeployment) -> list[dict[str, Any]]:
    """A rolled-back or stalled canary, on the operator's own metrics (llmops.metrics), scraped
    through the chart's ServiceMonitor."""
    if ld.spec.rollout is None:
        return []
    where, op = _where(ld), _operator_selector(ld)
    return [
        _alert(
            ld,
            "LLMDeploymentCanaryFailed",
            expr=f'llmops_canary_state{{{op},state="{CanaryState.ROLLED_BACK}"}} == 1',
            for_="0m",
            severity="warning",
            text=f"The canary of {where} was rolled back; the previous revision serves (see status.history).",
        ),
        _alert(
            ld,
            "LLMDeploymentRolloutStalled",
            expr=f'llmops_canary_state{{{op},state="{CanaryState.PAUSED}"}} == 1',
            for_="15m",
            severity="warning",
            text=f"The canary of {where} has been paused for 15 minutes (no GPUs, or no analysis data).",
        ),
    ]


def _drift_alerts(ld: LLMDeployment) -> list[dict[str, Any]]:
    """Drifted, on the operator's verdict, not a second PromQL copy of it: llmops_drift_score is
    the statistic over its threshold, and has no series while the verdict is Unknown."""
    drift = ld.spec.drift
    if drift is None or not drift.enabled:
        return []
    return [
        _alert(
            ld,
            "LLMDeploymentDrifted",
            expr=f"max by (signal) (llmops_drift_score{{{_operator_selector(ld)}}}) >= 1",
            for_="0m",
            severity="warning",
            text=f"The traffic, quality or feedback of {_where(ld)} drifted from its reference "
            "(status.drift has the numbers).",
        )
    ]


def _alert(ld: LLMDeployment, name: str, *, expr: str, for_: str, severity: str, text: str) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, PROM_LABEL_DEPLOYMENT: ld.name, "namespace": ld.namespace},
        "annotations": {"summary": text, "description": f"{text} See `kubectl describe llmd {ld.name}`."},
    }
