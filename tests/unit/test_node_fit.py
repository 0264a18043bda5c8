"""node_fit: the GPUs counted free for InsufficientGPU are on nodes the pods could go to: taints
they do not tolerate and a required node affinity they do not meet leave a node out."""

from __future__ import annotations

from typing import Any

import pytest

from llmops.api.resource import LLMDeployment
from llmops.lifecycle.diagnose import gpu_detail, gpu_shortage
from llmops.lifecycle.node_fit import PodPlacement, tolerates
from llmops.lifecycle.observations import GpuNode, Observations
from testkit.planning import body, pod_without_gpu

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
        "each pod requests 4 nvidia.com/gpu; 2 of 8 are free on the 1 matching node(s), at most 2 on one node"
    )
    tolerant = PodPlacement({}, tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists"}])
    assert gpu_shortage(4, "nvidia.com/gpu", None, tolerant, nodes).endswith(
        "10 of 16 are free on the 2 matching node(s), at most 8 on one node"
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
        "8 of 8 are free on the 1 matching node(s), at most 8 on one node"
    )
    spec = LLMDeployment.model_validate(body(placement={**placement, "tolerations": []})).spec
    detail = gpu_detail(spec, Observations(gpu_nodes=nodes))
    assert detail == (
        "each pod requests 1 nvidia.com/gpu; 2 schedulable node(s) offer nvidia.com/gpu, but the pods are "
        "kept off them by taints they do not tolerate (nvidia.com/gpu=present:NoSchedule) or by their "
        "required node affinity"
    )


def test_the_waiting_pods_tolerations_count_as_admitted() -> None:
    """Admission may add tolerations the spec does not have (ExtendedResourceToleration: a GPU
    request tolerates the taint named after the resource, which GPU nodes often carry): the pod
    waiting for GPUs says where it may go, the spec only when no pod waits."""
    nodes = [node("tainted", {"key": "nvidia.com/gpu", "effect": "NoSchedule"}, free=2)]
    spec = LLMDeployment.model_validate(body()).spec
    assert gpu_detail(spec, Observations(gpu_nodes=nodes)) == (
        "each pod requests 1 nvidia.com/gpu; 1 schedulable node(s) offer nvidia.com/gpu, but the pods are "
        "kept off them by taints they do not tolerate (nvidia.com/gpu:NoSchedule)"
    )
    admitted = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    waiting = {**pod_without_gpu(), "spec": {"tolerations": [admitted]}}
    detail = gpu_detail(spec, Observations(gpu_nodes=nodes, pods=[waiting]))
    assert detail is not None and detail.endswith(
        "2 of 8 are free on the 1 matching node(s), at most 2 on one node"
    )
