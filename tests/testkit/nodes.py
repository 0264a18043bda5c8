"""A GPU node of one test's own: tainted, so nothing else lands on it, and removed afterwards.

The session's cluster is shared and namespaces are deleted without waiting, so GPU pods of earlier
tests may still hold GPUs on the common nodes. A test that needs an exact GPU picture (a node
wholly taken, a pod that cannot fit) gets its own node instead of counting around the others.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llmops_dev.cluster.nodes import GPUS_PER_NODE, fake_node
from testkit import get_json, wait_for

__all__ = ["dedicated_gpu_node", "placement_on"]

_TAINT_KEY = "llmops.test/dedicated"


@contextmanager
def dedicated_gpu_node(cluster: Any, name: str, gpus: int = GPUS_PER_NODE) -> Iterator[str]:
    """A Ready kwok GPU node ``name`` tainted for this test alone; deleted (and waited for) after."""
    node = fake_node(name, gpus=gpus, taints=[{"key": _TAINT_KEY, "value": name, "effect": "NoSchedule"}])
    cluster.kubectl("apply", "-f", "-", input=json.dumps(node))
    try:
        wait_for(f"node {name} Ready", lambda: _ready(cluster, name), 60, 0.2)
        yield name
    finally:
        cluster.kubectl("delete", "node", name, "--ignore-not-found", "--wait=true")


def placement_on(node: str) -> dict[str, Any]:
    """`spec.placement` that puts an LLMDeployment's pods on the dedicated node ``node`` only."""
    return {
        "nodeSelector": {"kubernetes.io/hostname": node},
        "tolerations": [{"key": _TAINT_KEY, "operator": "Equal", "value": node, "effect": "NoSchedule"}],
    }


def _ready(cluster: Any, name: str) -> bool:
    conditions = (get_json(cluster, "node", name).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
