"""node_fit: the GPUs counted free for InsufficientGPU are on nodes the pods could go to: taints
they do not tolerate and a required node affinity they do not meet leave a node out."""

from __future__ import annotations

from typing import Any

import pytest

from llmops.api.resource import LLMDeployment
from llmops.lifecycle.diagnose import gpu_detail, gpu_shortage
from llmops.lifecycle.node_fit import PodPlacement, tolerates
from llmops.lifecycle.observations import Compute, GpuNode, Observations, pod_compute_requests
from testkit.planning import body, pod_without_gpu

GPU_ADVICE = "lower resources.gpu.count, free GPUs, or add GPU nodes"
"""What InsufficientGPU advises when GPUs, not CPU or memory, are short."""

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def node(name: str, *taints: dict[str, str], free: int = 8, **labels: str) -> GpuNode:
    return GpuNode(name, labels, allocatable=8, requested=8 - free, schedulable=True, taints=taints)


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        ({"key": "nvidia.com/gpu", "operator": "Exists"}, GPU_TAINT, True),
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, GPU_TAINT, False),
        ({"key": "nvidia.com/gpu", "value": "present"}, GPU_TAINT, True),  # Equal is the default
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "other"}, GPU_TAINT, False),
        ({"key": "other", "operator": "Exists"}, GPU_TAINT, False),
        ({"operator": "Exists"}, GPU_TAINT, True),  # no key, Exists: every taint
        ({"operator": "Exists", "effect": "NoSchedule"}, GPU_TAINT, True),
        ({"key": "dedicated", "value": ""}, {"key": "dedicated", "effect": "NoSchedule"}, True),
    ],
)
def test_tolerations_match_taints_as_the_scheduler_does(
    toleration: dict[str, str], taint: dict[str, str], expected: bool
) -> None:
    assert tolerates(toleration, taint) is expected


def test_a_taint_the_pods_do_not_tolerate_leaves_the_node_out() -> None:
    nodes = [node("tainted", GPU_TAINT), node("plain", free=2)]
    assert gpu_shortage(4, "nvidia.com/gpu", None, PodPlacement({}), nodes) == (
        "each pod requests 4 nvidia.com/gpu; 2 of 8 are free on the 1 matching node(s), at most 2 on one node; "
        + GPU_ADVICE
    )
    tolerant = PodPlacement({}, tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists"}])
    assert gpu_shortage(4, "nvidia.com/gpu", None, tolerant, nodes).endswith(
        "10 of 16 are free on the 2 matching node(s), at most 8 on one node; " + GPU_ADVICE
    )


def test_only_blocking_effects_count() -> None:
    soft = node("soft", {"key": "spot", "effect": "PreferNoSchedule"})
    hard = node("hard", {"key": "spot", "effect": "NoExecute"})
    assert PodPlacement({}).admits(soft) and not PodPlacement({}).admits(hard)


def _affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}
    }


def _expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": operator, **({"values": list(values)} if values else {})}


@pytest.mark.parametrize(
    ("terms", "admitted"),
    [
        ([{"matchExpressions": [_expr("zone", "In", "a", "b")]}], {"a1", "b1"}),
        ([{"matchExpressions": [_expr("zone", "NotIn", "a")]}], {"b1", "none"}),
        ([{"matchExpressions": [_expr("zone", "Exists")]}], {"a1", "b1"}),
        ([{"matchExpressions": [_expr("zone", "DoesNotExist")]}], {"none"}),
        ([{"matchExpressions": [_expr("memory-gb", "Gt", "40")]}], {"b1"}),
        ([{"matchExpressions": [_expr("memory-gb", "Lt", "80")]}], {"a1"}),
        # Terms are ORed, a term's expressions ANDed.
        (
            [
                {"matchExpressions": [_expr("zone", "In", "a"), _expr("memory-gb", "Gt", "40")]},
                {"matchFields": [_expr("metadata.name", "In", "none")]},
            ],
            {"none"},
        ),
        ([{}], set()),  # a term with no requirement matches no node
    ],
)
def test_a_required_node_affinity_the_node_does_not_meet_leaves_it_out(
    terms: list[dict[str, Any]], admitted: set[str]
) -> None:
    nodes = [
        node("a1", zone="a", **{"memory-gb": "40"}),
        node("b1", zone="b", **{"memory-gb": "80"}),
        node("none"),
    ]
    placement = PodPlacement({}, affinity=_affinity(*terms))
    assert {n.name for n in nodes if placement.admits(n)} == admitted


def test_an_affinity_of_a_shape_it_does_not_know_counts_the_node() -> None:
    odd = PodPlacement({}, affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": "?"}})
    assert odd.admits(node("n"))
    unknown_operator = PodPlacement(
        {}, affinity=_affinity({"matchExpressions": [_expr("zone", "Near", "a")]})
    )
    assert unknown_operator.admits(node("n"))


def test_the_condition_reads_the_spec_placement() -> None:
    """From spec to message: the tolerations and affinity of spec.placement choose the nodes, and
    the message says so when none is left."""
    nodes = [node("tainted", GPU_TAINT, zone="a"), node("other-zone", zone="b")]
    placement = {
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": _affinity({"matchExpressions": [_expr("zone", "In", "a")]}),
    }
    spec = LLMDeployment.model_validate(body(placement=placement)).spec
    detail = gpu_detail(spec, Observations(gpu_nodes=nodes))
    assert detail is not None and detail.endswith(
        "8 of 8 are free on the 1 matching node(s), at most 8 on one node; " + GPU_ADVICE
    )
    spec = LLMDeployment.model_validate(body(placement={**placement, "tolerations": []})).spec
    detail = gpu_detail(spec, Observations(gpu_nodes=nodes))
    assert detail == (
        "each pod requests 1 nvidia.com/gpu; 2 schedulable node(s) offer nvidia.com/gpu, but the pods are "
        "kept off them by taints they do not tolerate (nvidia.com/gpu=present:NoSchedule) or by their "
        "required node affinity; " + GPU_ADVICE
    )


def test_the_waiting_pods_tolerations_count_as_admitted() -> None:
    """Admission may add tolerations the spec does not have (ExtendedResourceToleration: a GPU
    request tolerates the taint named after the resource, which GPU nodes often carry): the pod
    waiting for GPUs says where it may go, the spec only when no pod waits."""
    nodes = [node("tainted", {"key": "nvidia.com/gpu", "effect": "NoSchedule"}, free=2)]
    spec = LLMDeployment.model_validate(body()).spec
    assert gpu_detail(spec, Observations(gpu_nodes=nodes)) == (
        "each pod requests 1 nvidia.com/gpu; 1 schedulable node(s) offer nvidia.com/gpu, but the pods are "
        "kept off them by taints they do not tolerate (nvidia.com/gpu:NoSchedule); " + GPU_ADVICE
    )
    admitted = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    waiting = {**pod_without_gpu(), "spec": {"tolerations": [admitted]}}
    detail = gpu_detail(spec, Observations(gpu_nodes=nodes, pods=[waiting]))
    assert detail is not None and detail.endswith(
        "2 of 8 are free on the 1 matching node(s), at most 2 on one node; " + GPU_ADVICE
    )


# -- CPU and memory (NodeResourcesFit) --------------------------------------------------------------

GI = 2**30


def test_a_pods_cpu_and_memory_are_counted_as_the_scheduler_counts_them() -> None:
    """Containers and sidecars add up; a plain init container counts with the sidecars before it,
    when that is more; the overhead adds; a request defaults to the limit."""

    def container(cpu: str | None = None, memory: str | None = None, **extra: Any) -> dict[str, Any]:
        requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
        return {"resources": {"requests": requests}, **extra}

    pod = {
        "spec": {
            "containers": [container("2", "16Gi"), container("100m", "128Mi")],
            "initContainers": [
                container("500m", "1Gi", restartPolicy="Always"),  # a sidecar: runs with them
                container("8", "1Gi"),  # alone, with the sidecar: 8.5 CPU is the peak
            ],
            "overhead": {"cpu": "250m", "memory": "64Mi"},
        }
    }
    assert pod_compute_requests(pod) == Compute(
        cpu=8500 + 250, memory=(16 + 1) * GI + 128 * 2**20 + 64 * 2**20
    )
    limited = {"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "2Gi"}}}]}}
    assert pod_compute_requests(limited) == Compute(cpu=1000, memory=2 * GI)
    assert pod_compute_requests({"spec": {"containers": [{}]}}) == Compute()


def _roomy(name: str, free: int, cpu: int, memory: int) -> GpuNode:
    return GpuNode(
        name, {}, allocatable=8, requested=8 - free, schedulable=True, compute_free=Compute(cpu, memory)
    )


def test_nodes_with_free_gpus_but_too_little_memory_are_told_as_such() -> None:
    pod = PodPlacement({}, requests=Compute(cpu=4000, memory=64 * GI))
    nodes = [_roomy("a", free=2, cpu=16000, memory=30 * GI), _roomy("b", free=1, cpu=16000, memory=200 * GI)]
    assert gpu_shortage(2, "nvidia.com/gpu", None, pod, nodes) == (
        "each pod requests 2 nvidia.com/gpu; 3 of 16 are free on the 2 matching node(s), at most 2 on one "
        "node; the 1 node(s) with 2 free lack the memory each pod requests (64Gi of memory, at most 30Gi "
        "free on one); lower resources.memory, or free memory on those nodes"
    )


def test_cpu_and_memory_are_both_named_when_both_lack() -> None:
    pod = PodPlacement({}, requests=Compute(cpu=4500, memory=64 * GI))
    nodes = [_roomy("a", free=4, cpu=2000, memory=80 * GI), _roomy("b", free=4, cpu=8000, memory=10 * GI)]
    text = gpu_shortage(1, "nvidia.com/gpu", None, pod, nodes)
    assert text.endswith(
        "the 2 node(s) with 1 free lack the CPU and memory each pod requests (4500m CPU, at most 8 free "
        "on one; 64Gi of memory, at most 80Gi free on one); lower resources.cpu and resources.memory, "
        "or free CPU and memory on those nodes"
    )


def test_one_node_with_room_for_all_of_it_keeps_the_gpu_advice() -> None:
    """A node with the GPUs, the CPU and the memory: what keeps the pod off is not modelled here
    (pod affinity, say), so the message is the GPU count and its advice, not a guess."""
    pod = PodPlacement({}, requests=Compute(cpu=4000, memory=64 * GI))
    nodes = [_roomy("a", free=2, cpu=16000, memory=30 * GI), _roomy("b", free=2, cpu=16000, memory=100 * GI)]
    assert gpu_shortage(2, "nvidia.com/gpu", None, pod, nodes).endswith(
        "at most 2 on one node; " + GPU_ADVICE
    )
    unread = [GpuNode("c", {}, allocatable=8, requested=6, schedulable=True)]  # compute_free None
    assert "lack" not in gpu_shortage(2, "nvidia.com/gpu", None, pod, unread)


def test_the_spec_and_the_waiting_pod_give_the_requests() -> None:
    spec = LLMDeployment.model_validate(
        body(resources={"gpu": {"count": 1}, "cpu": "1500m", "memory": "1e9"})
    ).spec
    assert PodPlacement.of(spec).requests == Compute(cpu=1500, memory=10**9)
    waiting = {"spec": {"containers": [{"resources": {"requests": {"cpu": "2", "memory": "3Gi"}}}]}}
    assert PodPlacement.of_pod(waiting).requests == Compute(cpu=2000, memory=3 * GI)
