"""The operator's status gauges: one series per phase and canary state, from the last status
observed, and none left once the LLMDeployment is forgotten."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from llmops import metrics
from llmops.api.status import Phase

LABELS = {"llmd_namespace": "ns", "llmd_name": "metrics-test"}


def sample(name: str, **extra: str) -> float | None:
    return REGISTRY.get_sample_value(name, {**LABELS, **extra})


def test_status_gauges_follow_the_status_and_go_with_the_llmdeployment() -> None:
    status = {
        "phase": "Canary",
        "readyReplicas": 2,
        "replicas": 3,
        "canary": {"state": "Progressing", "weight": 25, "step": 1},
    }
    metrics.observe_status("ns", "metrics-test", status, rolled_back=False, gpus_per_pod=4)
    assert {p.value: sample("llmops_llmdeployment_phase", phase=p.value) for p in Phase} == {
        p.value: (1.0 if p.value == "Canary" else 0.0) for p in Phase
    }
    assert sample("llmops_llmdeployment_ready_replicas") == 2
    assert sample("llmops_llmdeployment_replicas") == 3
    assert sample("llmops_llmdeployment_gpus_per_pod") == 4
    assert [s for s in metrics.CANARY_STATES if sample("llmops_canary_state", state=s) == 1] == [
        "Progressing"
    ]
    assert all(sample("llmops_canary_state", state=s) is not None for s in metrics.CANARY_STATES)
    assert (sample("llmops_canary_weight"), sample("llmops_canary_step")) == (25, 1)

    metrics.observe_status("ns", "metrics-test", {"phase": "Serving"}, rolled_back=True)
    assert sample("llmops_llmdeployment_phase", phase="Serving") == 1
    assert sample("llmops_llmdeployment_phase", phase="Canary") == 0
    assert (sample("llmops_canary_weight"), sample("llmops_canary_step")) == (0, 0)
    assert sample("llmops_canary_rollbacks_total") == 1
    exposition = generate_latest(REGISTRY).decode()
    assert "# TYPE llmops_llmdeployment_phase gauge" in exposition
    assert (
        'llmops_canary_state{llmd_name="metrics-test",llmd_namespace="ns",state="Progressing"} 0.0'
        in exposition
    )

    metrics.forget("ns", "metrics-test")
    exposition = generate_latest(REGISTRY).decode()
    assert 'llmd_name="metrics-test"' not in exposition
