"""The Argo CD health check on the statuses ``plan()`` really writes, phase by phase.

test_argocd_health.py checks the Lua against hand-written fixtures; this checks that what the
operator writes gets the health docs/gitops-argocd.md promises (a paused analysis is
Suspended, a step waiting for a manual promote is Progressing, a rollback is Degraded).
"""

from __future__ import annotations

import json
from typing import Any

from llmops.analysis import NoData
from testkit.argocd import run_health_check
from testkit.canary_sim import BAD, EVALUATION, GOOD, ROLLOUT, Sim, finish_job, start_canary
from testkit.planning import job_pod, rollout


def health(sim: Sim) -> str:
    return run_health_check(sim.b)["status"]


def test_serving_is_healthy() -> None:
    sim = Sim()
    sim.step()
    assert sim.b["status"]["phase"] == "Serving"
    assert health(sim) == "Healthy"


def test_a_spec_the_operator_has_not_seen_is_progressing() -> None:
    sim = Sim()
    sim.step()
    sim.b["metadata"]["generation"] += 1
    assert health(sim) == "Progressing"


def test_caching_a_new_revision_is_progressing() -> None:
    sim = Sim()
    sim.b["spec"]["model"]["revision"] = "c" * 40
    sim.b["metadata"]["generation"] += 1
    sim.step()
    assert sim.b["status"]["phase"] == "Caching"
    assert health(sim) == "Progressing"


def test_a_progressing_canary_is_progressing() -> None:
    sim = Sim()
    start_canary(sim)
    sim.step(1.1, analysis=GOOD)
    assert sim.b["status"]["phase"] == "Canary"
    # Stable runs 3 of 4 pods on purpose (the canary has the fourth): that is not Degraded.
    degraded = next(x for x in sim.b["status"]["conditions"] if x["type"] == "Degraded")
    assert degraded["status"] == "False"
    assert health(sim) == "Progressing"


def test_a_canary_paused_by_missing_data_is_suspended() -> None:
    sim = Sim()
    start_canary(sim)
    for _ in range(3):
        sim.step(1.1, analysis={"errors": (NoData("empty vector"), None)})
    assert sim.canary["state"] == "Paused"
    result = run_health_check(sim.b)
    assert result["status"] == "Suspended"
    assert "inconclusive" in result["message"]


def test_a_step_waiting_for_a_manual_promote_is_progressing() -> None:
    manual: dict[str, Any] = {**ROLLOUT, "steps": [{"setWeight": 25, "pause": {}}, {"setWeight": 50}]}
    sim = Sim(rollout_spec=manual)
    start_canary(sim)
    sim.step(1.1, analysis=GOOD)
    sim.step(30)
    assert sim.canary["step"] == 0 and sim.canary["state"] == "Progressing"
    assert health(sim) == "Progressing"


def test_a_canary_without_gpus_is_progressing() -> None:
    sim = Sim()
    sim.new_revision()
    sim.step()
    pending = {
        "metadata": {"name": "m-canary-x", "labels": {"llmops.io/deployment": "m", "llmops.io/track": "canary"}},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                        "reason": "Unschedulable",
                                                        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]},
    }  # fmt: skip
    sim.step(1, pods=[pending])
    assert sim.canary["state"] == "Paused"
    assert health(sim) == "Progressing"


def test_a_rolled_back_canary_is_degraded_and_says_stable_serves() -> None:
    sim = Sim()
    start_canary(sim)
    sim.step(1.1, analysis=BAD)
    sim.step(1.1, analysis=BAD)
    assert sim.b["status"]["phase"] == "RolledBack"
    result = run_health_check(sim.b)
    assert result["status"] == "Degraded"
    assert "serves all traffic" in result["message"]


def test_a_revision_that_failed_its_evaluation_is_degraded_naming_the_metric() -> None:
    sim = Sim()
    sim.b["spec"]["evaluation"] = EVALUATION
    sim.new_revision()
    sim.step()
    sim.ready("m-staging")
    sim.step()
    failed = json.dumps(
        {"verdict": "Failed", "metrics": {"exactMatch": {"value": 0.5, "min": 0.8, "passed": False}}}
    )
    job = finish_job(sim, "m-eval-", "Failed", "PodFailurePolicy")
    sim.step(pods=[job_pod(job, 1, failed)])
    assert sim.b["status"]["phase"] == "Failed"
    result = run_health_check(sim.b)
    assert result["status"] == "Degraded"
    assert "exactMatch 0.5 < min 0.8" in result["message"]


def test_a_deployment_scaled_to_zero_is_healthy() -> None:
    """spec.replicas 0 is done once nothing runs: Healthy (it was Progressing for ever)."""
    sim = Sim(replicas=1)
    sim.b["spec"]["replicas"] = 0
    sim.b["metadata"]["generation"] += 1
    sim.step()
    rollout(sim.ch, ready=0, replicas=0)
    sim.step()
    assert sim.b["status"]["phase"] == "Serving"
    assert run_health_check(sim.b) == {"status": "Healthy", "message": "spec.replicas is 0"}
