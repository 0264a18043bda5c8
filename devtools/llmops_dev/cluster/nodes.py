"""The fake nodes kwok manages: two 8-GPU H100 nodes and one CPU-only node."""

from __future__ import annotations

from typing import Any

__all__ = ["GPUS_PER_NODE", "GPU_PRODUCT", "NODES", "fake_node"]

GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"
GPUS_PER_NODE = 8


def fake_node(name: str, *, gpus: int = 0, taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A Node kwok manages (Ready, with this capacity); the fake kubelet runs the pods bound to it."""
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
    }
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
        labels["nvidia.com/gpu.product"] = GPU_PRODUCT
        labels["nvidia.com/gpu.count"] = str(gpus)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            # kwok manages only nodes with this annotation (--manage-nodes-with-annotation-selector).
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        # No kwok taint: workloads land here without tolerations, as on a real GPU pool.
        "spec": {"taints": taints} if taints else {},
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


NODES: list[dict[str, Any]] = [
    fake_node("gpu-node-0", gpus=GPUS_PER_NODE),
    fake_node("gpu-node-1", gpus=GPUS_PER_NODE),
    fake_node("cpu-node-0"),
]
