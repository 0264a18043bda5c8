"""The GPU capacity read behind InsufficientGPU's numbers is shared: N LLMDeployments waiting for
GPUs cost one pair of cluster-wide lists per ``GPU_CAPACITY_TTL_SECONDS``, not one per pass
(at 1,000 LLMDeployments on 16 GPUs, one per pass made the operator 2.5 times slower than
``kubectl apply`` of the same children).

``SharedRead`` is driven with a fake clock; ``Kube.gpu_nodes`` with a stand-in for the one
method that sends requests, to pin down what it asks the apiserver (the apiserver's answer to
that exact query is covered by tests/integration/test_gpu_diagnosis_cluster.py).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from llmops.kube import GPU_CAPACITY_TTL_SECONDS, ApiError, Kube, SharedRead
from llmops.lifecycle.observations import Compute

GPU = "nvidia.com/gpu"


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_callers_within_the_ttl_share_one_read() -> None:
    clock, reads = Clock(), []
    shared = SharedRead(lambda: reads.append(1) or len(reads), ttl=10.0, clock=clock)
    assert [shared.get() for _ in range(50)] == [1] * 50
    clock.t += 9.9
    assert shared.get() == 1
    clock.t += 0.1  # the TTL has passed: the next caller reads again
    assert shared.get() == 2
    assert shared.reads == 2


def test_concurrent_callers_wait_for_the_read_in_flight_instead_of_reading_too() -> None:
    started, release = threading.Event(), threading.Event()
    reads: list[int] = []

    def slow_read() -> int:
        reads.append(1)
        started.set()
        assert release.wait(5)
        return 7

    shared = SharedRead(slow_read, ttl=10.0)
    answers: list[int] = []
    threads = [threading.Thread(target=lambda: answers.append(shared.get())) for _ in range(8)]
    threads[0].start()
    assert started.wait(5)  # the first caller is inside the read; the others arrive meanwhile
    for t in threads[1:]:
        t.start()
    release.set()
    for t in threads:
        t.join(5)
    assert answers == [7] * 8
    assert reads == [1]


def test_a_refused_read_is_shared_too_and_forget_reads_again() -> None:
    clock, calls = Clock(), []

    def refused() -> int:
        calls.append(1)
        raise ApiError(403, "pods is forbidden: cannot list resource pods at the cluster scope")

    shared = SharedRead(refused, ttl=10.0, clock=clock)
    for _ in range(5):
        with pytest.raises(ApiError) as caught:
            shared.get()
        assert caught.value.status == 403
    assert calls == [1]  # a namespaced install is not asked again by every waiting pass
    shared.forget()
    with pytest.raises(ApiError):
        shared.get()
    assert calls == [1, 1]


def test_a_programming_error_is_not_kept() -> None:
    shared = SharedRead(lambda: {}["missing"], ttl=10.0)
    with pytest.raises(KeyError):
        shared.get()
    with pytest.raises(KeyError):  # raised again from a new read, never served from the cache
        shared.get()
    assert shared.reads == 2


def _node(
    name: str, gpus: int | None, labels: Mapping[str, str] | None = None, cordoned: bool = False
) -> Any:
    allocatable = {"cpu": "32", "memory": "256Gi"} | ({GPU: str(gpus)} if gpus is not None else {})
    return {
        "metadata": {"name": name, "labels": dict(labels or {}), "managedFields": [{"big": "x" * 100}]},
        "spec": {"unschedulable": True} if cordoned else {},
        "status": {"allocatable": allocatable, "images": [{"names": ["a"] * 50}]},
    }


def _pod(node: str, *containers: Mapping[str, Any], init: Sequence[Mapping[str, Any]] = ()) -> Any:
    return {"spec": {"nodeName": node, "containers": list(containers), "initContainers": list(init)}}


def _res(requests: Mapping[str, str] | None = None, limits: Mapping[str, str] | None = None) -> Any:
    return {"resources": {"requests": dict(requests or {}), "limits": dict(limits or {})}}


class FakeApi:
    """What the apiserver answers to the two lists, and the requests it was sent."""

    def __init__(self, nodes: list[Any], pods: list[Any]) -> None:
        self.nodes, self.pods = nodes, pods
        self.requests: list[tuple[str, str, tuple[tuple[str, Any], ...]]] = []

    def __call__(self, method: str, path: str, body: Any = None, query: Sequence[Any] = (), **_: Any) -> Any:
        self.requests.append((method, path, tuple(query)))
        return {"items": self.nodes if path == "/api/v1/nodes" else self.pods}


def _kube(api: FakeApi) -> Kube:
    kube = Kube(client=None)  # type: ignore[arg-type]  # every request goes through the fake
    kube._call_object = api  # type: ignore[method-assign]
    return kube


def test_gpu_nodes_sums_what_bound_pods_request_per_node() -> None:
    api = FakeApi(
        nodes=[
            _node("gpu-a", 8, {"nvidia.com/gpu.product": "H100"}),
            _node("gpu-b", 8, cordoned=True),
            _node("cpu", None),
        ],
        pods=[
            _pod("gpu-a", _res({GPU: "2", "cpu": "4"}), _res(limits={GPU: "1"})),  # 3
            _pod("gpu-a", _res({"cpu": "1"}), init=[_res({GPU: "4"})]),  # init container: the max
            _pod("gpu-b", _res({GPU: "1"})),
            _pod("cpu", _res({"cpu": "2"})),
        ],
    )
    nodes = {n.name: n for n in _kube(api).gpu_nodes(GPU)}
    assert set(nodes) == {"gpu-a", "gpu-b"}  # the node without the resource is not one
    assert (nodes["gpu-a"].allocatable, nodes["gpu-a"].requested, nodes["gpu-a"].free) == (8, 7, 1)
    assert nodes["gpu-a"].labels == {"nvidia.com/gpu.product": "H100"}
    assert (nodes["gpu-b"].requested, nodes["gpu-b"].schedulable) == (1, False)


def test_gpu_nodes_says_what_cpu_and_memory_the_bound_pods_leave() -> None:
    bare = _node("bare", 8)
    bare["status"]["allocatable"] = {GPU: "8"}  # a node that does not say: not read, never "lacking"
    api = FakeApi(
        nodes=[_node("gpu-a", 8), bare],
        pods=[
            _pod("gpu-a", _res({GPU: "2", "cpu": "4", "memory": "64Gi"}), _res({"cpu": "500m"})),
            _pod("gpu-a", _res(limits={"cpu": "1", "memory": "1Gi"})),  # the request defaults to the limit
        ],
    )
    nodes = {n.name: n for n in _kube(api).gpu_nodes(GPU)}
    assert nodes["gpu-a"].compute_free == Compute(cpu=32000 - 5500, memory=(256 - 65) * 2**30)
    assert nodes["bare"].compute_free is None


def test_gpu_nodes_asks_for_bound_unfinished_pods_from_the_watch_cache() -> None:
    api = FakeApi(nodes=[_node("gpu-a", 8)], pods=[])
    _kube(api).gpu_nodes(GPU)
    assert api.requests == [
        ("GET", "/api/v1/nodes", (("resourceVersion", "0"),)),
        (
            "GET",
            "/api/v1/pods",
            (
                ("fieldSelector", "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"),
                ("resourceVersion", "0"),
            ),
        ),
    ]


def test_a_thousand_waiting_passes_cost_one_read_per_ttl() -> None:
    api = FakeApi(nodes=[_node("gpu-a", 8)], pods=[_pod("gpu-a", _res({GPU: "8"}))])
    kube = _kube(api)
    clock = Clock()
    kube.gpu_capacity = SharedRead(kube._read_gpu_capacity, GPU_CAPACITY_TTL_SECONDS, clock)
    for _ in range(1000):
        assert kube.gpu_nodes(GPU)[0].free == 0
    assert len(api.requests) == 2  # one node list, one pod list
    clock.t += GPU_CAPACITY_TTL_SECONDS
    kube.gpu_nodes(GPU)
    assert len(api.requests) == 4


def test_only_what_the_answers_need_of_a_node_is_kept() -> None:
    api = FakeApi(nodes=[_node("gpu-a", 8)], pods=[])
    kept = _kube(api).gpu_capacity.get().nodes[0]
    assert set(kept["status"]) == {"allocatable"}  # not the node's image list, conditions…
    assert set(kept["metadata"]) == {"name", "labels"}  # not its managedFields
