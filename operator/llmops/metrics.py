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

The status gauges are made at each scrape from one small record per LLMDeployment (a
``Collector``), not kept as the client library's labelled children: those are 24 per
LLMDeployment (one per phase and canary state), 12 MiB of the operator's memory at 1,000.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from llmops.api.status import CanaryState, Phase

__all__ = ["CANARY_STATES", "LLMD_LABELS", "forget", "observe_pass", "observe_status", "serve"]

# The states status.canary keeps (Promoted clears status.canary in the same pass).
CANARY_STATES = tuple(s.value for s in CanaryState if s is not CanaryState.PROMOTED)
LLMD_LABELS = ("llmd_namespace", "llmd_name")
"""The labels naming the LLMDeployment on every per-object series (dashboards select on them)."""
# The status series' names (the dashboards and alerts select on them).
PHASE = "llmops_llmdeployment_phase"
READY = "llmops_llmdeployment_ready_replicas"
REPLICAS = "llmops_llmdeployment_replicas"
GPUS_PER_POD = "llmops_llmdeployment_gpus_per_pod"
CANARY_STATE = "llmops_canary_state"
CANARY_WEIGHT = "llmops_canary_weight"
CANARY_STEP = "llmops_canary_step"


class _Mirror(NamedTuple):
    """What the status gauges show of one LLMDeployment."""

    phase: str | None
    ready: int
    replicas: int
    gpus_per_pod: int
    canary_state: str | None
    canary_weight: int
    canary_step: int


class _StatusCollector(Collector):
    """The status gauges of every LLMDeployment, made from their ``_Mirror`` at each scrape."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mirrors: dict[tuple[str, str], _Mirror] = {}

    def set(self, namespace: str, name: str, mirror: _Mirror) -> None:
        with self._lock:
            self._mirrors[(namespace, name)] = mirror

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._mirrors.pop((namespace, name), None)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            mirrors = sorted(self._mirrors.items())
        phase = GaugeMetricFamily(
            PHASE,
            "1 for the LLMDeployment's current phase.",
            labels=[*LLMD_LABELS, "phase"],
        )
        ready = GaugeMetricFamily(READY, "Ready serving pods.", labels=LLMD_LABELS)
        replicas = GaugeMetricFamily(REPLICAS, "Desired serving pods.", labels=LLMD_LABELS)
        gpus = GaugeMetricFamily(
            GPUS_PER_POD,
            "GPUs each serving pod requests (spec.resources.gpu.count).",
            labels=LLMD_LABELS,
        )
        state = GaugeMetricFamily(
            CANARY_STATE, "1 for the canary's current state.", labels=[*LLMD_LABELS, "state"]
        )
        weight = GaugeMetricFamily(CANARY_WEIGHT, "Percent of traffic the canary takes.", labels=LLMD_LABELS)
        step = GaugeMetricFamily(CANARY_STEP, "Index of the canary's current step.", labels=LLMD_LABELS)
        for (namespace, name), m in mirrors:
            for p in Phase:
                phase.add_metric([namespace, name, p.value], 1 if p.value == m.phase else 0)
            ready.add_metric([namespace, name], m.ready)
            replicas.add_metric([namespace, name], m.replicas)
            gpus.add_metric([namespace, name], m.gpus_per_pod)
            for s in CANARY_STATES:
                state.add_metric([namespace, name, s], 1 if s == m.canary_state else 0)
            weight.add_metric([namespace, name], m.canary_weight)
            step.add_metric([namespace, name], m.canary_step)
        yield from (phase, ready, replicas, gpus, state, weight, step)


STATUS = _StatusCollector()
REGISTRY.register(STATUS)
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
    canary = status.get("canary") or {}
    STATUS.set(
        namespace,
        name,
        _Mirror(
            phase=status.get("phase"),
            ready=int(status.get("readyReplicas") or 0),
            replicas=int(status.get("replicas") or 0),
            gpus_per_pod=gpus_per_pod,
            canary_state=canary.get("state"),
            canary_weight=int(canary.get("weight") or 0),
            canary_step=int(canary.get("step") or 0),
        ),
    )
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
    STATUS.forget(namespace, name)
    with contextlib.suppress(KeyError):
        ROLLBACKS.remove(namespace, name)
    _forget_drift(namespace, name)
