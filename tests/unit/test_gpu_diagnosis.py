"""InsufficientGPU says what a pod requests and what the matching nodes have free; the GPU
product label follows the vendor of the GPU resource."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from llmops.api.spec import GpuSpec
from llmops.lifecycle.diagnose import diagnose_pods, gpu_shortage, waits_for_gpus
from llmops.lifecycle.node_fit import PodPlacement
from llmops.lifecycle.observations import GpuNode
from llmops.render.placement import node_selector
from testkit.planning import T0 as NOW
from testkit.planning import body

GPU_ADVICE = "lower resources.gpu.count, free GPUs, or add GPU nodes"
"""What InsufficientGPU advises when GPUs, not CPU or memory, are short."""

H100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
NODES = [
    GpuNode("gpu-0", H100, allocatable=8, requested=8, schedulable=True),
    GpuNode("gpu-1", H100, allocatable=8, requested=3, schedulable=True),
    GpuNode("gpu-2", H100, allocatable=8, requested=0, schedulable=False),  # cordoned
    GpuNode("a100", {"nvidia.com/gpu.product": "NVIDIA-A100"}, allocatable=8, requested=0, schedulable=True),
]
WAITING: dict[str, Any] = {
    "metadata": {"name": "p"},
    "status": {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
            }
        ],
    },
}


def test_the_shortage_counts_free_gpus_on_matching_schedulable_nodes() -> None:
    text = gpu_shortage(6, "nvidia.com/gpu", "NVIDIA-H100-80GB-HBM3", PodPlacement(H100), NODES)
    assert text == (
        "each pod requests 6 nvidia.com/gpu of product NVIDIA-H100-80GB-HBM3; "
        "5 of 16 are free on the 2 matching node(s), at most 5 on one node; " + GPU_ADVICE
    )


def test_without_a_product_every_node_with_the_resource_counts() -> None:
    text = gpu_shortage(9, "nvidia.com/gpu", None, PodPlacement({}), NODES)
    assert (
        text
        == "each pod requests 9 nvidia.com/gpu; 13 of 24 are free on the 3 matching node(s), at most 8 on one node; "
        + GPU_ADVICE
    )


def test_no_matching_node_is_said_with_the_selector() -> None:
    text = gpu_shortage(
        1, "amd.com/gpu", "MI300X", PodPlacement({"amd.com/gpu.product-name": "MI300X"}), NODES
    )
    assert text == (
        "each pod requests 1 amd.com/gpu of product MI300X; "
        "no schedulable node with amd.com/gpu.product-name=MI300X offers amd.com/gpu; " + GPU_ADVICE
    )


def test_the_condition_message_carries_the_detail_instead_of_the_scheduler_text() -> None:
    assert waits_for_gpus([WAITING], "nvidia.com/gpu") and not waits_for_gpus([WAITING], "amd.com/gpu")
    detail = gpu_shortage(9, "nvidia.com/gpu", None, PodPlacement({}), NODES)
    problem = diagnose_pods([WAITING], "nvidia.com/gpu", detail, now=NOW)
    assert problem is not None and problem.reason == "InsufficientGPU"
    assert problem.message == f"pods cannot be scheduled: {detail}"
    fallback = diagnose_pods([WAITING], "nvidia.com/gpu", now=NOW)
    assert fallback is not None and "3 Insufficient nvidia.com/gpu" in fallback.message


@pytest.mark.parametrize(
    ("resource", "label"),
    [("nvidia.com/gpu", "nvidia.com/gpu.product"), ("amd.com/gpu", "amd.com/gpu.product-name")],
)
def test_the_product_label_follows_the_vendor(resource: str, label: str) -> None:
    from llmops.api.resource import parse

    ld = parse(body(resources={"gpu": {"count": 1, "resourceName": resource, "product": "X1"}}))
    assert ld is not None
    assert node_selector(ld.spec) == {label: "X1"}


def test_a_product_for_a_resource_without_a_product_label_is_refused() -> None:
    with pytest.raises(ValidationError, match="product is matched against a node label"):
        GpuSpec.model_validate({"resourceName": "intel.com/gpu", "product": "Max-1550"})
    assert GpuSpec.model_validate({"resourceName": "intel.com/gpu"}).product is None
