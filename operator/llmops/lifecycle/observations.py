"""What the operator saw in the cluster for one LLMDeployment: plain data for ``plan()``.

The kube adapter fills it; the lifecycle only reads it. Children are keyed by (kind, name).
A read that failed is recorded in ``errors`` so that the plan can say Unknown instead of
concluding False from missing data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmops.analysis import Error, Result
from llmops.api.quantity import cpu_millis, quantity_bytes
from llmops.contracts import DownloadProgress

__all__ = [
    "GATEWAY_API",
    "KEDA_API",
    "MONITORING_API",
    "Compute",
    "GpuNode",
    "Observations",
    "device_count",
    "pod_compute_requests",
    "pod_device_requests",
]

CHILD_KINDS: tuple[str, ...] = (
    "Deployment",
    "Service",
    "PersistentVolumeClaim",
    "Job",
    "CronJob",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "PodMonitor",
    "PrometheusRule",
    "HorizontalPodAutoscaler",
    "ScaledObject",
)
"""Kinds the operator creates and owns: it lists them to observe, and deletes what is no longer
desired (never Pods: their controllers own them)."""

MONITORING_API = "monitoring.coreos.com/v1"
GATEWAY_API = "gateway.networking.k8s.io/v1"
KEDA_API = "keda.sh/v1alpha1"
"""KEDA's ScaledObject: present, spec.autoscaling renders one instead of a HorizontalPodAutoscaler."""


@dataclass(frozen=True)
class Compute:
    """CPU (millicores) and memory (bytes): what a pod requests, or what a node has left."""

    cpu: int = 0
    memory: int = 0

    def __add__(self, other: Compute) -> Compute:
        return Compute(self.cpu + other.cpu, self.memory + other.memory)

    def __sub__(self, other: Compute) -> Compute:
        return Compute(self.cpu - other.cpu, self.memory - other.memory)


@dataclass(frozen=True)
class GpuNode:
    """A node offering the GPU resource, and how much of it pods already request there."""

    name: str
    labels: Mapping[str, str]
    allocatable: int
    requested: int
    """GPUs requested by the node's pods that are not finished (any namespace)."""
    schedulable: bool
    """False when the node is cordoned."""
    taints: tuple[Mapping[str, str], ...] = ()
    """The node's spec.taints (key, value, effect)."""
    compute_free: Compute | None = None
    """CPU and memory allocatable minus what the node's unfinished pods request (None: not read)."""

    @property
    def free(self) -> int:
        return max(0, self.allocatable - self.requested)


def device_count(quantity: Any) -> int:
    """An extended resource's quantity (whole devices: "8", 8); 0 when it is not a whole number."""
    try:
        return int(str(quantity))
    except ValueError:
        return 0


def pod_device_requests(pod: Mapping[str, Any]) -> Counter[str]:
    """Devices of each extended resource a pod holds: its containers' sum, or its largest init
    container's when that is more (init containers run one at a time, before the others). The
    kube adapter counts GpuNode.requested with it, and the lifecycle the GPUs a pod frees."""

    def of(container: Mapping[str, Any]) -> Counter[str]:
        res = container.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        return Counter(
            {
                name: device_count(requests.get(name) or limits.get(name) or 0)
                for name in {*limits, *requests}
                if "/" in name
            }
        )

    spec = pod.get("spec") or {}
    total: Counter[str] = Counter()
    for container in spec.get("containers") or []:
        total.update(of(container))
    for init in spec.get("initContainers") or []:
        for name, count in of(init).items():
            total[name] = max(total[name], count)
    return total


def pod_compute_requests(pod: Mapping[str, Any]) -> Compute:
    """CPU and memory a pod holds on its node, as the scheduler counts them: its containers and
    sidecars (init containers that keep running) together, or an init container's with the
    sidecars started before it when that is more, plus the pod's overhead. A container's request
    defaults to its limit (admission writes that in, so a pod as read has it)."""

    def of(container: Mapping[str, Any]) -> Compute:
        res = container.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        return Compute(
            cpu=_amount(cpu_millis, requests.get("cpu", limits.get("cpu"))),
            memory=_amount(quantity_bytes, requests.get("memory", limits.get("memory"))),
        )

    spec = pod.get("spec") or {}
    running = sum((of(c) for c in spec.get("containers") or []), Compute())
    sidecars, peak = Compute(), Compute()
    for init in spec.get("initContainers") or []:
        if init.get("restartPolicy") == "Always":
            sidecars += of(init)
        else:
            step = sidecars + of(init)
            peak = Compute(max(peak.cpu, step.cpu), max(peak.memory, step.memory))
    total = running + sidecars
    overhead = spec.get("overhead") or {}
    return Compute(
        cpu=max(total.cpu, peak.cpu) + _amount(cpu_millis, overhead.get("cpu")),
        memory=max(total.memory, peak.memory) + _amount(quantity_bytes, overhead.get("memory")),
    )


def _amount(read: Callable[[Any], int], quantity: Any) -> int:
    """A quantity read by ``read``, 0 when absent or unreadable (the apiserver admitted it)."""
    if quantity is None:
        return 0
    try:
        return read(quantity)
    except ValueError:
        return 0


@dataclass(frozen=True)
class Observations:
    """The children, pods and optional APIs seen for one LLMDeployment."""

    children: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    """Existing children by (kind, name), as returned by the apiserver."""
    pods: Sequence[Mapping[str, Any]] = ()
    """Pods labelled with the LLMDeployment's name (all tracks, download and evaluation Jobs)."""
    apis: frozenset[str] = frozenset()
    """Optional group/versions present in the cluster (MONITORING_API, GATEWAY_API)."""
    errors: Sequence[str] = ()
    """Reads that failed; the plan reports Unknown for what depends on them."""
    referenced: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    """Objects the spec references but the operator does not own (the HTTPRoute), by (kind, name)."""
    analysis: Mapping[str, tuple[Result, Result | None]] | None = None
    """This pass's canary measurement, by analysis metric name: (canary result, stable result or
    None), as llmops.analysis results. None when no measurement was taken in this pass."""
    drift: Mapping[str, Any] | None = None
    """This pass's drift measurement: llmops.analysis results (Vector, Value, NoData, Error) by
    the key of each query lifecycle.drift.drift_request asked for. None when none was taken."""
    capture: Mapping[str, Result] | None = None
    """This pass's capture measurement (drops, records written, refusals), by the key of each query
    lifecycle.capture.capture_request asked for. None when none was taken."""

    job_refusals: Mapping[str, str] = field(default_factory=dict)
    """The apiserver's refusal of a Job's pods, by Job name, from the newest FailedCreate Event of
    that Job (read only for running Jobs that have made no pod)."""
    gpu_nodes: Sequence[GpuNode] | None = None
    """Nodes offering the GPU resource, read only while pods wait for GPUs (None: not read)."""
    prometheus_url: str | None = None
    """The operator's own Prometheus URL (--prometheus-url), for when the spec names none."""
    prometheus_retention: float | None = None
    """How far back that Prometheus keeps samples, in seconds (None: unknown or unlimited); read
    while drift is on, through a cache (llmops.prom.RetentionCache)."""
    query_check: tuple[str, Error | None] | None = None
    """This pass's syntax check of spec.autoscaling.query: (the query as sent, None when it parses
    or Prometheus' Error: rejected for a parse error, unreachable otherwise). None: not checked."""
    download_progress: DownloadProgress | str | None = None
    """This pass's reading of the download Job's progress endpoint (lifecycle.progress says
    when one is due): how far it is, or why it could not be read. None when none was taken."""

    def child(self, kind: str, name: str) -> Mapping[str, Any] | None:
        return self.children.get((kind, name))

    def pods_of(self, **labels: str) -> list[Mapping[str, Any]]:
        """Pods whose labels include all of ``labels``."""
        return [
            p
            for p in self.pods
            if all((p.get("metadata", {}).get("labels") or {}).get(k) == v for k, v in labels.items())
        ]
