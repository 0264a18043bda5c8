"""The PodMonitor that scrapes the servers and the PrometheusRule with their serving alerts
(Prometheus Operator kinds, monitoring.coreos.com/v1)."""

from __future__ import annotations

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
from llmops.engines import PORT_NAME, alert_rules, get_engine
from llmops.render.gateway import HEALTH_PORT_NAME
from llmops.render.labels import COMPONENT_MONITORING, common_labels, metadata, server_selector
from llmops.render.names import service_name

MONITORING_API_VERSION = "monitoring.coreos.com/v1"
SERVING_TRACKS_REGEX = "stable|canary"


def _meta_label(key: str) -> str:
    """Prometheus' service-discovery name of a pod label (non-alphanumerics become _)."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in key)


def pod_monitor(ld: LLMDeployment) -> dict[str, Any] | None:
    """The PodMonitor `<name>` (None when monitoring is disabled). Scrapes /metrics on the
    server's main port (TGI's separate prometheus port serves nothing), or with the gateway on
    its health port, whose /metrics is the gateway's series followed by the engine's (same
    names, same labels); copies the pod's deployment, track and revision labels onto every series."""
    mon = ld.spec.monitoring
    if not mon.enabled:
        return None
    engine = get_engine(ld.spec.engine.type)
    relabelings = [
        {"action": "replace", "sourceLabels": [_meta_label(pod_label)], "targetLabel": target}
        for pod_label, target in (
            (LABEL_DEPLOYMENT, PROM_LABEL_DEPLOYMENT),
            (LABEL_TRACK, PROM_LABEL_TRACK),
            (LABEL_REVISION, PROM_LABEL_REVISION),
        )
    ]
    labels = {**mon.pod_monitor.labels, **common_labels(ld, COMPONENT_MONITORING)}
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "PodMonitor",
        "metadata": metadata(ld, service_name(ld.name), labels),
        "spec": {
            "selector": {"matchLabels": server_selector(ld)},
            "podMetricsEndpoints": [
                {
                    "port": HEALTH_PORT_NAME if ld.spec.gateway.enabled else PORT_NAME,
                    "path": engine.routes.metrics,
                    "interval": mon.pod_monitor.interval,
                    "relabelings": relabelings,
                }
            ],
        },
    }


def prometheus_rule(ld: LLMDeployment) -> dict[str, Any] | None:
    """The PrometheusRule `<name>` (None when monitoring or the rule is disabled): pods not ready,
    error ratio, p95 latency and queue backlog over the serving (stable and canary) pods; canary
    failed and rollout stalled with spec.rollout, drifted with spec.drift (the operator's metrics)."""
    mon = ld.spec.monitoring
    rule = mon.prometheus_rule
    if not (mon.enabled and rule.enabled):
        return None
    engine = get_engine(ld.spec.engine.type)
    sel = (
        f'namespace="{ld.namespace}",{PROM_LABEL_DEPLOYMENT}="{ld.name}",'
        f'{PROM_LABEL_TRACK}=~"{SERVING_TRACKS_REGEX}"'
    )
    where = f"{ld.namespace}/{ld.name}"
    exprs = alert_rules(
        engine,
        selector=sel,
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
    alerts: list[dict[str, Any]] = []
    if ld.spec.replicas > 0:
        # A pod scrapes as up only once the server listens, which TGI does after warm-up; pods
        # that are Pending have no target at all. So fewer `up` targets than replicas = not ready.
        alerts.append(
            _alert(
                "LLMDeploymentPodsNotReady",
                f"(count(up{{{sel}}} == 1) or vector(0)) < {ld.spec.replicas}",
                rule.for_,
                "warning",
                f"Fewer than {ld.spec.replicas} serving pods of {where} are up.",
                ld,
            )
        )
    for suffix, expr in exprs.items():
        severity, text = descriptions[suffix]
        alerts.append(_alert(f"LLMDeployment{suffix}", expr, rule.for_, severity, text, ld))
    if ld.spec.rollout is not None:
        # On the operator's own metrics (llmops.metrics), scraped through the chart's ServiceMonitor.
        op = f'llmd_namespace="{ld.namespace}",llmd_name="{ld.name}"'
        alerts.append(
            _alert(
                "LLMDeploymentCanaryFailed",
                f'llmops_canary_state{{{op},state="RolledBack"}} == 1',
                "0m",
                "warning",
                f"The canary of {where} was rolled back; the previous revision serves (see status.history).",
                ld,
            )
        )
        alerts.append(
            _alert(
                "LLMDeploymentRolloutStalled",
                f'llmops_canary_state{{{op},state="Paused"}} == 1',
                "15m",
                "warning",
                f"The canary of {where} has been paused for 15 minutes (no GPUs, or no analysis data).",
                ld,
            )
        )
    drift = ld.spec.drift
    if drift is not None and drift.enabled:
        # The operator's verdict, not a second PromQL copy of it: llmops_drift_score is the
        # statistic over its threshold, and has no series while the verdict is Unknown.
        op = f'llmd_namespace="{ld.namespace}",llmd_name="{ld.name}"'
        alerts.append(
            _alert(
                "LLMDeploymentDrifted",
                f"max by (signal) (llmops_drift_score{{{op}}}) >= 1",
                "0m",
                "warning",
                f"The traffic, quality or feedback of {where} drifted from its reference "
                "(status.drift has the numbers).",
                ld,
            )
        )
    labels = {**rule.labels, **common_labels(ld, COMPONENT_MONITORING)}
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "PrometheusRule",
        "metadata": metadata(ld, service_name(ld.name), labels),
        "spec": {"groups": [{"name": f"llmops.{ld.namespace}.{ld.name}", "rules": alerts}]},
    }


def _alert(name: str, expr: str, for_: str, severity: str, text: str, ld: LLMDeployment) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, PROM_LABEL_DEPLOYMENT: ld.name, "namespace": ld.namespace},
        "annotations": {"summary": text, "description": f"{text} See `kubectl describe llmd {ld.name}`."},
    }
