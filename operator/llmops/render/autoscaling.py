"""The autoscaler of the stable Deployment (spec.autoscaling): a KEDA ScaledObject with a Prometheus
trigger when KEDA's CRDs are installed, otherwise an autoscaling/v2 HorizontalPodAutoscaler on an
External metric, plus the recording rule that publishes that metric.

Both scale `<name>-stable` between minReplicas and maxReplicas on one PromQL query (`ScalerMetric`,
resolved by the lifecycle: the engine's queue depth summed over the stable pods, or a custom query).
The HorizontalPodAutoscaler cannot carry PromQL: it asks the external metrics API for
``llmops_autoscaling_metric{llmops_deployment="<name>"}`` in its namespace, which the PrometheusRule
records from the same query (render.monitoring), so one prometheus-adapter rule serves every
LLMDeployment (docs/autoscaling.md). Which of the two is rendered is decided from discovery by the
caller: render stays pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from llmops.api.constants import PROM_LABEL_DEPLOYMENT
from llmops.api.resource import LLMDeployment
from llmops.api.spec import AutoscalingSpec
from llmops.render.labels import common_labels, metadata
from llmops.render.names import autoscaler_name, deployment_name

__all__ = [
    "AUTOSCALING_METRIC",
    "COMPONENT_AUTOSCALER",
    "HPA_API_VERSION",
    "KEDA_API_VERSION",
    "ScalerKind",
    "ScalerMetric",
    "autoscaling_recording_group",
    "horizontal_pod_autoscaler",
    "quantity",
    "scaled_object",
]

HPA_API_VERSION = "autoscaling/v2"
KEDA_API_VERSION = "keda.sh/v1alpha1"
AUTOSCALING_METRIC = "llmops_autoscaling_metric"
"""The recorded series an HPA's External metric reads (through an external metrics adapter)."""
COMPONENT_AUTOSCALER = "autoscaler"

ScalerKind = Literal["HorizontalPodAutoscaler", "ScaledObject"]


@dataclass(frozen=True)
class ScalerMetric:
    """What the autoscaler follows: a PromQL query returning one number, and its target."""

    query: str
    target: float
    target_type: Literal["AverageValue", "Value"]
    """AverageValue: the value divided by the replicas is kept near target; Value: the value itself."""


def quantity(value: float) -> str:
    """A Kubernetes quantity for a target, exact: "4", milli-units when they hold it ("0.25" →
    "250m"), else the float's shortest decimal ("2.5e-07"), which a quantity reads too. Not
    rounded to milli-units: a target of 0.0004 became "0m", which the HPA refuses (a target must
    be positive); below 1n, Kubernetes rounds it up to 1n."""
    exact = Decimal(repr(float(value)))
    if exact == exact.to_integral_value():
        return str(int(exact))
    milli = exact * 1000
    if milli == milli.to_integral_value():
        return f"{int(milli)}m"
    return repr(float(value))


def _number(value: float) -> str:
    """A number as KEDA's string metadata wants it ("4", "0.25")."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _target_ref(ld: LLMDeployment) -> dict[str, str]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment_name(ld.name, "stable")}


def _scale_down(spec: AutoscalingSpec) -> dict[str, Any]:
    """The scale-down stabilisation window (spec.autoscaling.cooldownSeconds)."""
    return {"scaleDown": {"stabilizationWindowSeconds": spec.cooldown_seconds}}


def _spec(ld: LLMDeployment) -> AutoscalingSpec:
    spec = ld.spec.autoscaling
    if spec is None:
        raise ValueError("spec.autoscaling is not set")
    return spec


def horizontal_pod_autoscaler(ld: LLMDeployment, metric: ScalerMetric) -> dict[str, Any]:
    """The HorizontalPodAutoscaler `<name>` scaling `<name>-stable` on the External metric
    AUTOSCALING_METRIC selected by this LLMDeployment's name."""
    spec = _spec(ld)
    if metric.target_type == "AverageValue":
        target = {"type": "AverageValue", "averageValue": quantity(metric.target)}
    else:
        target = {"type": "Value", "value": quantity(metric.target)}
    external = {
        "metric": {
            "name": AUTOSCALING_METRIC,
            "selector": {"matchLabels": {PROM_LABEL_DEPLOYMENT: ld.name}},
        },
        "target": target,
    }
    return {
        "apiVersion": HPA_API_VERSION,
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(ld, autoscaler_name(ld.name), common_labels(ld, COMPONENT_AUTOSCALER)),
        "spec": {
            "scaleTargetRef": _target_ref(ld),
            "minReplicas": spec.min_replicas,
            "maxReplicas": spec.max_replicas,
            "metrics": [{"type": "External", "external": external}],
            "behavior": _scale_down(spec),
        },
    }


def scaled_object(ld: LLMDeployment, metric: ScalerMetric, server_address: str) -> dict[str, Any]:
    """The KEDA ScaledObject `<name>` scaling `<name>-stable` with a Prometheus trigger on the query
    itself (KEDA makes and owns the HorizontalPodAutoscaler behind it, keda-hpa-<name>)."""
    spec = _spec(ld)
    trigger = {
        "type": "prometheus",
        "metricType": metric.target_type,
        "metadata": {
            "serverAddress": server_address,
            "query": metric.query,
            "threshold": _number(metric.target),
        },
    }
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": "ScaledObject",
        "metadata": metadata(ld, autoscaler_name(ld.name), common_labels(ld, COMPONENT_AUTOSCALER)),
        "spec": {
            "scaleTargetRef": _target_ref(ld),
            "pollingInterval": spec.polling_interval_seconds,
            "minReplicaCount": spec.min_replicas,
            "maxReplicaCount": spec.max_replicas,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _scale_down(spec)}},
            "triggers": [trigger],
        },
    }


def autoscaling_recording_group(ld: LLMDeployment, metric: ScalerMetric) -> dict[str, Any]:
    """A PrometheusRule group recording AUTOSCALING_METRIC, labelled with the namespace and the
    LLMDeployment's name: what the HPA's External metric reads through the adapter (and, with
    KEDA, the same number to look at on a dashboard)."""
    return {
        "name": f"llmops.{ld.namespace}.{ld.name}.autoscaling",
        "rules": [
            {
                "record": AUTOSCALING_METRIC,
                "expr": metric.query,
                "labels": {"namespace": ld.namespace, PROM_LABEL_DEPLOYMENT: ld.name},
            }
        ],
    }
