"""InsufficientGPU says how many GPUs of which product a pod requests and how many are free on
the matching nodes (read from the Nodes and the GPU requests of the pods on them)."""

from __future__ import annotations

import re

from llmops.api.quantity import format_bytes, quantity_bytes
from llmops_dev.cluster import Cluster
from llmops_dev.cluster.nodes import GPU_PRODUCT, GPUS_PER_NODE, NODES
from testkit import wait_for
from testkit.operator import OperatorProcess, condition, llmd, sample, wait_condition

REV = "8" * 40


def test_insufficient_gpu_names_the_request_and_the_free_gpus(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    gpu = {"count": GPUS_PER_NODE + 1, "product": GPU_PRODUCT}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=sample("big", REV, resources={"gpu": gpu}))
    obj = wait_condition(cluster, namespace, "big", "Available", "False", "InsufficientGPU", timeout=120)
    message = condition(obj, "Available")["message"]
    assert f"each pod requests {GPUS_PER_NODE + 1} nvidia.com/gpu of product {GPU_PRODUCT}" in message, (
        message
    )
    gpu_nodes = sum(1 for n in NODES if "nvidia.com/gpu" in n["status"]["allocatable"])
    found = re.search(
        r"(\d+) of (\d+) are free on the (\d+) matching node\(s\), at most (\d+) on one node", message
    )
    assert found, message
    free, total, nodes, most = map(int, found.groups())
    assert (total, nodes) == (gpu_nodes * GPUS_PER_NODE, gpu_nodes)
    assert most <= GPUS_PER_NODE and free <= total


def test_only_the_nodes_the_pods_may_go_to_are_counted(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    """A required node affinity naming one GPU node: the free GPUs are counted on it alone."""
    first = next(n["metadata"]["name"] for n in NODES if "nvidia.com/gpu" in n["status"]["allocatable"])
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [first]}]}
    placement = {
        "affinity": {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
        }
    }
    gpu = {"count": GPUS_PER_NODE + 1}
    body = sample("pinned", REV, resources={"gpu": gpu}, placement=placement)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=body)
    obj = wait_condition(cluster, namespace, "pinned", "Available", "False", "InsufficientGPU", timeout=120)
    message = condition(obj, "Available")["message"]
    assert re.search(rf"of {GPUS_PER_NODE} are free on the 1 matching node\(s\)", message), message


def test_memory_no_gpu_node_has_is_told_as_memory_not_gpus(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    """One GPU but more memory than any node has: the scheduler names the GPU (the CPU-only node
    lacks it) and memory (the GPU nodes lack it); the condition says memory, with the amounts."""
    node_memory = max(quantity_bytes(n["status"]["allocatable"]["memory"]) for n in NODES)
    memory = format_bytes(node_memory + 2**30)
    body = sample("hungry", REV, resources={"gpu": {"count": 1}, "memory": memory})
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=body)

    def told() -> str | None:
        found = condition(llmd(cluster, namespace, "hungry"), "Available")
        message = str(found.get("message", ""))
        return message if found.get("reason") == "InsufficientGPU" and "lack the memory" in message else None

    message = wait_for("InsufficientGPU naming memory", told, timeout=120)
    found = re.search(
        r"lack the memory each pod requests \((\S+) of memory, at most (\S+) free on one\)", message
    )
    assert found, message
    requested, most_free = (quantity_bytes(q) for q in found.groups())
    assert requested >= node_memory + 2**30 and most_free <= node_memory, message  # with the gateway's
    assert message.endswith("lower resources.memory, or free memory on those nodes"), message


def test_the_gpu_nodes_are_read_with_their_taints(cluster: Cluster) -> None:
    """The taints reach the diagnosis (a PreferNoSchedule one here: it keeps no pod of the shared
    cluster off the node while the test runs)."""
    from llmops.kube import Kube, load_client

    first = next(n["metadata"]["name"] for n in NODES if "nvidia.com/gpu" in n["status"]["allocatable"])
    cluster.kubectl("taint", "node", first, "llmops.io/test=read:PreferNoSchedule")
    try:
        kube = Kube(load_client(str(cluster.kubeconfig)))
        try:
            nodes = {n.name: n for n in kube.gpu_nodes("nvidia.com/gpu")}
        finally:
            kube.stop()
        assert {"key": "llmops.io/test", "value": "read", "effect": "PreferNoSchedule"} in nodes[first].taints
    finally:
        cluster.kubectl("taint", "node", first, "llmops.io/test-")
