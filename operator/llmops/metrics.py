"""The operator's own Prometheus metrics (``llmops run --metrics-port``).

Gauges mirror each LLMDeployment's status after every pass, so alerts can be written on what
the operator decided (the PrometheusRule's canary-failed and rollout-stalled alerts use them):

    llmops_llmdeployment_phase{llmd_namespace, llmd_name, phase}   1 for the current phase
    llmops_llmdeployment_ready_replicas / _replicas
    llmops_llmdeployment_gpus_per_pod                               spec.resources.gpu.count (GPUs
                                                                    held = replicas * this)
    llmops_canary_state{..., state}                                 1 for the canary's state
    llmops_canary_weight, llmops_canary_step
    llmops_canary_rollbacks_total                                   rollbacks decided
    llmops_drift_score{..., signal}                                 the drift statistic over its
                                                                    threshold (>= 1: drifted); absent
                                                                    while the verdict is Unknown
    llmops_drift_value{..., signal, statistic}                      psi, ks, drop or negativeRatio
    llmops_reconcile_total{result}, llmops_reconcile_duration_seconds

The labels are ``llmd_namespace``/``llmd_name``, not ``namespace``, because a ServiceMonitor
scraping the operator sets ``namespace`` to the operator's own namespace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from llmops.api.status import CanaryState, Phase

__all__ = ["CANARY_STATES", "LLMD_LABELS", "forget", "observe_pass", "observe_status", "serve"]

# The states status.canary keeps (Promoted clears status.canary in the same pass).
CANARY_STATES = tuple(s.value for s in CanaryState if s is not CanaryState.PROMOTED)
LLMD_LABELS = ("llmd_namespace", "llmd_name")
"""The labels naming the LLMDeployment on every per-object series (dashboards select on them)."""

PHASE = Gauge(
    "llmops_llmdeployment_phase", "1 for the LLMDeployment's current phase.", [*LLMD_LABELS, "phase"]
)
READY = Gauge("llmops_llmdeployment_ready_replicas", "Ready serving pods.", LLMD_LABELS)
REPLICAS = Gauge("llmops_llmdeployment_replicas", "Desired serving pods.", LLMD_LABELS)
GPUS_PER_POD = Gauge(
    "llmops_llmdeployment_gpus_per_pod",
    "GPUs each serving pod requests (spec.resources.gpu.count).",
    LLMD_LABELS,
)
CANARY_STATE = Gauge("llmops_canary_state", "1 for the canary's current state.", [*LLMD_LABELS, "state"])
CANARY_WEIGHT = Gauge("llmops_canary_weight", "Percent of traffic the canary takes.", LLMD_LABELS)
CANARY_STEP = Gauge("llmops_canary_step", "Index of the canary's current step.", LLMD_LABELS)
ROLLBACKS = Counter("llmops_canary_rollbacks", "Canary rollbacks decided.", LLMD_LABELS)
DRIFT_SCORE = Gauge(
    "llmops_drift_score",
    "Drift statistic of a signal over its threshold (1 = at the threshold, >= 1 drifted); no series while Unknown.",
    [*LLMD_LABELS, "signal"],
)
DRIFT_VALUE = Gauge(
    "llmops_drift_value",
    "Drift statistic of a signal as measured; no series while Unknown.",
    [*LLMD_LABELS, "signal", "statistic"],
)
_STATISTIC = {"quality": "drop", "feedback": "negativeRatio"}
PASSES = Counter("llmops_reconcile", "Reconcile passes by result.", ["result"])
DURATION = Histogram("llmops_reconcile_duration_seconds", "Duration of one reconcile pass.")


def serve(port: int) -> None:
    """Expose /metrics on ``port`` (all interfaces) in a background thread."""
    start_http_server(port)


def observe_pass(result: str, seconds: float) -> None:
    PASSES.labels(result).inc()
    DURATION.observe(seconds)


def observe_status(
    namespace: str, name: str, status: Mapping[str, Any], rolled_back: bool, *, gpus_per_pod: int = 1
) -> None:
    """Mirror one LLMDeployment's status (and its GPUs per pod, from spec) into the gauges."""
    phase = status.get("phase")
    for p in Phase:
        PHASE.labels(namespace, name, p.value).set(1 if p.value == phase else 0)
    READY.labels(namespace, name).set(int(status.get("readyReplicas") or 0))
    REPLICAS.labels(namespace, name).set(int(status.get("replicas") or 0))
    GPUS_PER_POD.labels(namespace, name).set(gpus_per_pod)
    canary = status.get("canary") or {}
    for state in CANARY_STATES:
        CANARY_STATE.labels(namespace, name, state).set(1 if canary.get("state") == state else 0)
    CANARY_WEIGHT.labels(namespace, name).set(int(canary.get("weight") or 0) if canary else 0)
    CANARY_STEP.labels(namespace, name).set(int(canary.get("step") or 0) if canary else 0)
    if rolled_back:
        ROLLBACKS.labels(namespace, name).inc()
    _observe_drift(namespace, name, (status.get("drift") or {}).get("signals") or [])


def _drift_scores(signal: Mapping[str, Any]) -> tuple[float | None, dict[str, float]]:
    """(score, statistic → value) of one status.drift.signals entry; (None, {}) while Unknown."""
    value, threshold = signal.get("value"), signal.get("threshold")
    if signal.get("verdict") == "Unknown" or value is None or not threshold:
        return None, {}
    name = str(signal.get("signal"))
    values = {_STATISTIC.get(name, "psi"): float(value)}
    ratios = [float(value) / float(threshold)]
    ks, ks_threshold = signal.get("ks"), signal.get("ksThreshold")
    if ks is not None and ks_threshold:
        values["ks"] = float(ks)
        ratios.append(float(ks) / float(ks_threshold))
    return max(ratios), values


# Which drift series exist per LLMDeployment, so that the ones gone Unknown can be removed (the
# client library has no public way to list a gauge's label sets).
_DRIFT_SERIES: dict[tuple[str, str], set[tuple[Gauge, tuple[str, ...]]]] = {}


def _observe_drift(namespace: str, name: str, signals: list[Mapping[str, Any]]) -> None:
    _forget_drift(namespace, name)
    series = _DRIFT_SERIES.setdefault((namespace, name), set())
    for signal in signals:
        score, values = _drift_scores(signal)
        if score is None:
            continue
        labels = (namespace, name, str(signal["signal"]))
        DRIFT_SCORE.labels(*labels).set(score)
        series.add((DRIFT_SCORE, labels))
        for statistic, value in values.items():
            DRIFT_VALUE.labels(*labels, statistic).set(value)
            series.add((DRIFT_VALUE, (*labels, statistic)))


def _forget_drift(namespace: str, name: str) -> None:
    """Remove the drift series of one LLMDeployment (an Unknown verdict has no number to show)."""
    for metric, labels in _DRIFT_SERIES.pop((namespace, name), set()):
        with contextlib.suppress(KeyError):
            metric.remove(*labels)


def forget(namespace: str, name: str) -> None:
    """Drop the series of a deleted LLMDeployment."""
    for metric, extra in ((PHASE, [p.value for p in Phase]), (CANARY_STATE, list(CANARY_STATES))):
        for value in extra:
            with contextlib.suppress(KeyError):
                metric.remove(namespace, name, value)
    series: tuple[Gauge | Counter, ...] = (
        READY,
        REPLICAS,
        GPUS_PER_POD,
        CANARY_WEIGHT,
        CANARY_STEP,
        ROLLBACKS,
    )
    for one in series:
        with contextlib.suppress(KeyError):
            one.remove(namespace, name)
    _forget_drift(namespace, name)
