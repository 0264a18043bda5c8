"""Would a node take the LLMDeployment's pods? The scheduler's filters that decide where its GPUs
are (the node selector, taints against tolerations, required node affinity), applied to what the
operator reads of the GPU nodes, so that "N GPUs free on the matching nodes" counts only nodes
the pods could be scheduled on; and whether such a node has the CPU and memory a pod requests
(NodeResourcesFit), so that a shortage of those is not told as one of GPUs.

Not the scheduler: pod (anti-)affinity, topology spread, volume zones and resources other than
the GPU, CPU and memory are left out. When the affinity has a shape this module does not know,
the node counts as matching: better an estimate that is too kind than a node wrongly left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from llmops.api.quantity import cpu_millis, quantity_bytes
from llmops.api.spec import LLMDeploymentSpec
from llmops.lifecycle.observations import Compute, GpuNode, pod_compute_requests
from llmops.render.placement import scheduling

__all__ = ["PodPlacement", "taint_text", "tolerates"]

_BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
"""Taint effects that keep a pod off a node (PreferNoSchedule only weighs against it)."""


@dataclass(frozen=True)
class PodPlacement:
    """Where the pods may go, as rendered into their pod spec, and the CPU and memory each one
    requests besides its GPUs."""

    selector: Mapping[str, str]
    tolerations: Sequence[Mapping[str, Any]] = ()
    affinity: Mapping[str, Any] | None = None
    requests: Compute = field(default_factory=Compute)

    @classmethod
    def of(cls, spec: LLMDeploymentSpec) -> PodPlacement:
        """As the spec renders it into the pods (render.placement.scheduling, the one renderer);
        the requests are the server's (spec.resources), without the gateway's small ones."""
        res = spec.resources
        return replace(
            cls.of_pod({"spec": scheduling(spec, with_priority=False)}),
            requests=Compute(
                cpu=cpu_millis(res.cpu) if res.cpu is not None else 0,
                memory=quantity_bytes(res.memory) if res.memory is not None else 0,
            ),
        )

    @classmethod
    def of_pod(cls, pod: Mapping[str, Any]) -> PodPlacement:
        """As the scheduler sees it: the pod as admitted, with the tolerations admission added
        (ExtendedResourceToleration's for a GPU request, the default not-ready ones)."""
        spec = pod.get("spec") or {}
        return cls(
            selector=dict(spec.get("nodeSelector") or {}),
            tolerations=list(spec.get("tolerations") or []),
            affinity=spec.get("affinity") or None,
            requests=pod_compute_requests(pod),
        )

    def lacks(self, node: GpuNode) -> list[str]:
        """What of CPU and memory the node has too little of for one pod ("CPU", "memory");
        nothing when the node's free CPU and memory were not read."""
        free = node.compute_free
        if free is None:
            return []
        return [
            name
            for name, wanted, have in (
                ("CPU", self.requests.cpu, free.cpu),
                ("memory", self.requests.memory, free.memory),
            )
            if wanted > have
        ]

    def selects(self, node: GpuNode) -> bool:
        """The node is schedulable and carries the selector's labels."""
        return node.schedulable and all(node.labels.get(k) == v for k, v in self.selector.items())

    def untolerated(self, node: GpuNode) -> list[Mapping[str, str]]:
        """The node's taints that keep these pods off it."""
        return [
            taint
            for taint in node.taints
            if taint.get("effect") in _BLOCKING_EFFECTS
            and not any(tolerates(t, taint) for t in self.tolerations)
        ]

    def admits(self, node: GpuNode) -> bool:
        """The node is selected, has no blocking taint the pods do not tolerate, and meets the
        required node affinity."""
        return (
            self.selects(node)
            and not self.untolerated(node)
            and _meets_required_affinity(self.affinity, node)
        )


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """core/v1 Toleration.ToleratesTaint: an empty effect matches every effect, an empty key with
    operator Exists every key; Equal (the default) compares the values."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def _meets_required_affinity(affinity: Mapping[str, Any] | None, node: GpuNode) -> bool:
    """requiredDuringSchedulingIgnoredDuringExecution: any one of the nodeSelectorTerms holds."""
    required = ((affinity or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not isinstance(required, Mapping):
        return True
    terms = required.get("nodeSelectorTerms")
    if not isinstance(terms, list) or not terms:
        return True  # the apiserver refuses it; the pods do not exist to be placed
    return any(_term_holds(term, node) for term in terms)


def _term_holds(term: Any, node: GpuNode) -> bool:
    """Every expression of the term holds; a term with none matches no node (as the scheduler)."""
    if not isinstance(term, Mapping):
        return True
    expressions = list(term.get("matchExpressions") or [])
    fields = list(term.get("matchFields") or [])
    if not expressions and not fields:
        return False
    return all(_holds(e, node.labels) for e in expressions) and all(
        _holds(f, {"metadata.name": node.name}) for f in fields
    )


def _holds(requirement: Any, labels: Mapping[str, str]) -> bool:
    """One NodeSelectorRequirement against the node's labels (or fields); an unknown shape holds."""
    if not isinstance(requirement, Mapping):
        return True
    key, operator = requirement.get("key"), requirement.get("operator")
    values = [str(v) for v in requirement.get("values") or []]
    present = key in labels
    value = labels.get(str(key), "")
    if operator == "In":
        return present and value in values
    if operator == "NotIn":
        return not present or value not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and len(values) == 1:
        try:
            have, bound = int(value), int(values[0])
        except ValueError:
            return False
        return present and (have > bound if operator == "Gt" else have < bound)
    return True


def taint_text(taint: Mapping[str, str]) -> str:
    """key=value:effect, as kubectl taint writes it."""
    value = f"={taint['value']}" if taint.get("value") else ""
    return f"{taint.get('key', '')}{value}:{taint.get('effect', '')}"
