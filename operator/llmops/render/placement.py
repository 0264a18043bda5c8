"""Pod scheduling fields from spec.placement and spec.resources.gpu.product.

Shared by the server pods and the download Job: the Job runs where the servers will, so a
topology-bound volume (local disks, zonal PVs) binds where the GPUs are.
"""

from __future__ import annotations

from typing import Any

from llmops.api.constants import GPU_PRODUCT_LABELS
from llmops.api.spec import LLMDeploymentSpec


def node_selector(spec: LLMDeploymentSpec) -> dict[str, str]:
    """spec.placement.nodeSelector plus the vendor's GPU product label, if a product is set
    (the API refuses a product for a GPU resource without a product label)."""
    selector = dict(spec.placement.node_selector)
    gpu = spec.resources.gpu
    if gpu.product is not None and (label := GPU_PRODUCT_LABELS.get(gpu.resource_name)):
        selector[label] = gpu.product
    return selector


def scheduling(spec: LLMDeploymentSpec, *, with_priority: bool) -> dict[str, Any]:
    """nodeSelector, tolerations, affinity (and priorityClassName) for a pod spec; empty ones omitted."""
    out: dict[str, Any] = {}
    if selector := node_selector(spec):
        out["nodeSelector"] = selector
    if spec.placement.tolerations:
        out["tolerations"] = [t.model_dump(exclude_none=True) for t in spec.placement.tolerations]
    if spec.placement.affinity:
        out["affinity"] = dict(spec.placement.affinity)
    if with_priority and spec.placement.priority_class_name:
        out["priorityClassName"] = spec.placement.priority_class_name
    return out
