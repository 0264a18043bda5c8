"""The canary stage in ``plan()``: steps, analysis verdicts, promotion, rollback, manual gates."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from llmops.analysis import Error, NoData
from llmops.api import conditions as c
from llmops.api.resource import parse
from llmops.lifecycle.canary import analysis_request, split
from llmops.lifecycle.plan import ANNOTATION_MODEL_REVISION
from testkit.canary_sim import (
    BAD,
    EVALUATION,
    GOOD,
    PASSED,
    ROLLOUT,
    Sim,
    finish_job,
    job_named,
    smoke_sim,
    start_canary,
)
from testkit.planning import (
    SHA_A,
    SHA_B,
    cond,
    job_pod,
    pod_without_gpu,
    rollout,
)


@pytest.mark.parametrize(
    ("total", "weight", "mode", "expected"),
    [
        (4, 25, "replicas", (3, 1)),
        (4, 50, "replicas", (2, 2)),
        (1, 10, "replicas", (1, 1)),  # one pod each: the smallest split there is
        (4, 100, "replicas", (0, 4)),
        (4, 0, "replicas", (4, 0)),
        (4, 25, "gatewayAPI", (4, 1)),  # stable keeps full capacity; the route splits traffic
    ],
)
def test_split(total: int, weight: int, mode: str, expected: tuple[int, int]) -> None:
    assert split(total, weight, mode) == expected


def test_new_revision_starts_a_canary_while_stable_keeps_serving() -> None:
    sim = Sim()
    sim.new_revision()
    p = sim.step()
    canary = sim.deployment("m-canary")
    assert canary is not None
    assert canary["metadata"]["annotations"][ANNOTATION_MODEL_REVISION] == SHA_B
    assert canary["spec"]["replicas"] == 1
    assert canary["spec"]["template"]["metadata"]["labels"]["llmops.io/serving"] == "true"
    stable = sim.deployment("m-stable")
    assert stable["metadata"]["annotations"][ANNOTATION_MODEL_REVISION] == SHA_A
    assert stable["spec"]["replicas"] == 3
    assert p.status["phase"] == "Canary"
    assert sim.canary["step"] == 0 and sim.canary["weight"] == 25 and sim.canary["state"] == "Progressing"
    assert sim.canary["stableRevision"] == SHA_A
    assert cond(p, c.PROGRESSING)["reason"] == c.CANARY_PROGRESSING
    assert p.status["history"][-1]["action"] == "CanaryStarted"


def test_measurements_are_requested_once_per_interval_after_the_canary_is_ready() -> None:
    sim = Sim()
    sim.new_revision()
    sim.step()
    ld = parse(sim.b)
    assert analysis_request(sim.b, ld, sim.now + dt.timedelta(minutes=5)) == []  # not ready yet
    _start_ready = sim
    _start_ready.ready("m-canary")
    _start_ready.step()
    ready_at = sim.now
    assert analysis_request(sim.b, ld, ready_at + dt.timedelta(seconds=30)) == []
    wanted = analysis_request(sim.b, ld, ready_at + dt.timedelta(seconds=61))
    assert [q.name for q in wanted] == ["errors"]
    assert 'llmops_track="canary"' in wanted[0].canary and "tgi_request_failure" in wanted[0].canary


def test_healthy_canary_walks_every_step_and_is_promoted_without_losing_capacity() -> None:
    sim = Sim()
    start_canary(sim)
    sim.step(1, analysis=GOOD)
    assert sim.canary["stepChecks"] == 1 and sim.canary["step"] == 0
    sim.step(1.1, analysis=GOOD)  # 2m pause is over and it passed: step 2
    assert sim.canary["step"] == 1 and sim.canary["weight"] == 50
    assert sim.deployment("m-canary")["spec"]["replicas"] == 2
    assert sim.deployment("m-stable")["spec"]["replicas"] == 2
    sim.ready("m-canary")
    sim.ready("m-stable")
    sim.step(1, analysis=GOOD)
    p = sim.step(1.1, analysis=GOOD)  # last step done → promoting
    assert sim.canary["state"] == "Promoting"
    stable = sim.deployment("m-stable")
    assert stable["metadata"]["annotations"][ANNOTATION_MODEL_REVISION] == SHA_B
    # Stable rolls to B at the size it has (no GPU more than the canary's steps used)...
    assert (stable["spec"]["replicas"], replicas(sim, "m-canary")) == (2, 2)
    assert p.status["servingRevision"] == SHA_A
    # ...then takes the canary's pods over one at a time, the canary giving one up only once
    # the new stable pod is ready: B's ready pods never fall below 4, GPU demand never above 5.
    seen = []
    while sim.deployment("m-canary") is not None:
        sim.ready("m-stable")
        p = sim.step()
        seen.append((replicas(sim, "m-stable"), replicas(sim, "m-canary")))
        assert len(seen) < 5, seen
    assert seen == [(3, 2), (4, 1), (4, 0)], seen
    assert p.status["servingRevision"] == SHA_B
    assert p.status["phase"] == "Serving"
    assert "canary" not in p.status
    assert cond(p, c.PROMOTED)["status"] == "True"
    actions = [h["action"] for h in p.status["history"]]
    assert actions[-4:] == ["CanaryStep", "Promoting", "Promoted", "Deployed"]


def replicas(sim: Sim, name: str) -> int:
    """A Deployment's spec.replicas; 0 once it is gone."""
    dep = sim.deployment(name)
    return int(dep["spec"]["replicas"]) if dep else 0


def test_a_promotion_short_of_gpus_has_the_canary_give_a_pod_up_and_is_never_degraded() -> None:
    """No GPU free but the canary's (replicas mode keeps demand flat): the new stable pod cannot
    be scheduled, so the canary gives one up at once instead of waiting for a pod that never
    starts. The pass says so in Promoted; it is not Degraded (nothing was lost)."""
    sim = Sim(
        rollout_spec={"steps": [{"setWeight": 50, "pause": {"duration": "1m"}}], "analysis": {"metrics": []}}
    )
    sim.new_revision()
    sim.step()
    sim.ready("m-canary")
    sim.ready("m-stable")
    sim.step()
    sim.step(1.1)  # the only step is over: promoting, stable rolls to B at 2
    sim.ready("m-stable")
    sim.step()  # complete at 2: stable asks for a third
    assert (replicas(sim, "m-stable"), replicas(sim, "m-canary")) == (3, 2)
    rollout(sim.ch, ready=2, replicas=3, name="m-stable")
    p = sim.step(pods=[pod_without_gpu()])
    assert (replicas(sim, "m-stable"), replicas(sim, "m-canary")) == (3, 1)
    promoted = cond(p, c.PROMOTED)
    assert promoted["reason"] == "Promoting" and "the canary gives one up" in promoted["message"], promoted
    assert "Insufficient nvidia.com/gpu" in promoted["message"], promoted
    assert cond(p, c.DEGRADED)["status"] == "False" and p.status["phase"] == "Canary"
    # Scheduled now: the canary keeps what it has left (it never grows back).
    p = sim.step(pods=[])
    assert (replicas(sim, "m-stable"), replicas(sim, "m-canary")) == (3, 1)
    sim.ready("m-stable")
    sim.step()
    assert (replicas(sim, "m-stable"), replicas(sim, "m-canary")) == (4, 1)
    sim.ready("m-stable")
    p = sim.step()
    assert sim.deployment("m-canary") is None and p.status["servingRevision"] == SHA_B


def test_failing_canary_is_rolled_back_within_the_failure_limit() -> None:
    sim = Sim()
    start_canary(sim)
    sim.step(1, analysis=BAD)
    assert sim.canary["failedChecks"] == 1 and sim.deployment("m-canary") is not None
    p = sim.step(1, analysis=BAD)
    assert sim.deployment("m-canary") is None
    assert sim.deployment("m-stable")["metadata"]["annotations"][ANNOTATION_MODEL_REVISION] == SHA_A
    assert sim.deployment("m-stable")["spec"]["replicas"] == 4
    assert p.status["phase"] == "RolledBack"
    promoted = cond(p, c.PROMOTED)
    assert promoted["reason"] == c.ROLLED_BACK
    assert "0.05" in promoted["message"] and "errors" in promoted["message"]
    assert any(e.type == "Warning" and e.reason == c.ROLLED_BACK for e in p.events)
    assert p.status["history"][-1]["action"] == "RolledBack"
    # It stays rolled back: no new canary for the same revision.
    p = sim.step(10)
    assert sim.deployment("m-canary") is None and p.status["phase"] == "RolledBack"
    assert not p.apply
    # ...and Progressing says so (it read "NewRevision … in its download stage" before).
    progressing = cond(p, c.PROGRESSING)
    assert (progressing["status"], progressing["reason"]) == ("False", c.ROLLED_BACK)
    assert progressing["message"].startswith(f"revision {SHA_B} was rolled back and {SHA_A} serves: ")
    assert not sim.step(1).status_changed  # and stays so, without a write


@pytest.mark.parametrize("missing", [NoData("empty vector"), Error("connection refused", "unreachable")])
def test_no_data_or_unreachable_prometheus_pauses_and_never_promotes(missing: Any) -> None:
    sim = Sim()
    start_canary(sim)
    for _ in range(3):
        p = sim.step(1.1, analysis={"errors": (missing, None)})
    assert sim.canary["state"] == "Paused"
    assert sim.canary["step"] == 0
    assert cond(p, c.PROGRESSING)["status"] == "False"
    assert p.status["phase"] == "Canary"
    p = sim.step(30)  # time alone never promotes
    assert sim.canary["step"] == 0 and sim.canary["state"] == "Paused"


def test_a_restarted_operator_resumes_at_the_same_step() -> None:
    sim = Sim()
    start_canary(sim)
    sim.step(1, analysis=GOOD)
    sim.step(1.1, analysis=GOOD)
    before = dict(sim.canary)
    p = sim.step(0.1)  # a new process: same status, same cluster, no measurement
    assert sim.canary["step"] == before["step"] == 1
    assert sim.canary["stepStartTime"] == before["stepStartTime"]
    assert not p.apply


def test_abort_annotation_rolls_back_and_is_not_acted_on_twice() -> None:
    sim = Sim()
    start_canary(sim)
    sim.b["metadata"]["annotations"] = {"llmops.io/abort": "true"}
    p = sim.step()
    assert p.status["phase"] == "RolledBack"
    assert "aborted" in cond(p, c.PROMOTED)["message"]
    assert p.status["manualGates"] == {"abort": "true"}
    # A next revision with the stale annotation still there is not aborted.
    sim.new_revision("c" * 40)
    sim.step()
    assert sim.canary["state"] == "Progressing"


def test_promote_annotation_promotes_now() -> None:
    sim = Sim()
    start_canary(sim)
    sim.b["metadata"]["annotations"] = {"llmops.io/promote": SHA_B}
    sim.step()
    assert sim.canary["state"] == "Promoting"
    assert sim.deployment("m-stable")["metadata"]["annotations"][ANNOTATION_MODEL_REVISION] == SHA_B


def test_canary_without_gpus_pauses_instead_of_failing_the_model() -> None:
    sim = Sim()
    sim.new_revision()
    sim.step()
    pending = {
        "metadata": {"name": "m-canary-x", "labels": {"llmops.io/deployment": "m", "llmops.io/track": "canary"}},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                        "reason": "Unschedulable",
                                                        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]},
    }  # fmt: skip
    p = sim.step(120, pods=[pending])  # far past the progress deadline
    assert sim.canary["state"] == "Paused"
    assert "nvidia.com/gpu" in sim.canary["message"]
    assert cond(p, c.PROGRESSING)["reason"] == c.INSUFFICIENT_GPU
    assert p.status["phase"] == "Canary"


def test_canary_that_never_gets_ready_is_rolled_back_at_the_progress_deadline() -> None:
    sim = Sim(rollout_spec={**ROLLOUT, "progressDeadlineSeconds": 600})
    sim.new_revision()
    sim.step()
    p = sim.step(11)
    assert p.status["phase"] == "RolledBack"
    assert cond(p, c.PROMOTED)["message"].count("progressDeadlineSeconds") == 1


def test_gateway_api_mode_sets_route_weights_at_each_step() -> None:
    spec = {**ROLLOUT, "traffic": {"mode": "gatewayAPI", "httpRouteRef": {"name": "chat"}}}
    sim = Sim(rollout_spec=spec)
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "chat", "resourceVersion": "7"},
        "spec": {
            "rules": [{"matches": [{"path": {"value": "/"}}], "backendRefs": [{"name": "m", "port": 80}]}]
        },
    }
    sim.new_revision()
    p = sim.step(referenced={("HTTPRoute", "chat"): route})
    assert sim.deployment("m-stable")["spec"]["replicas"] == 4  # capacity kept
    assert {("Service", "m-stable"), ("Service", "m-canary")} <= set(sim.ch)
    ((kind, name, patch),) = p.patches
    assert (kind, name) == ("HTTPRoute", "chat")
    assert patch["metadata"]["resourceVersion"] == "7"
    refs = patch["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("m-stable", 75), ("m-canary", 25)]
    assert patch["spec"]["rules"][0]["matches"] == route["spec"]["rules"][0]["matches"]


def test_a_paused_canary_keeps_being_measured_and_resumes_when_data_returns() -> None:
    sim = Sim()
    start_canary(sim)
    for _ in range(3):
        sim.step(1.1, analysis={"errors": (NoData("empty vector"), None)})
    assert sim.canary["state"] == "Paused"
    assert analysis_request(sim.b, parse(sim.b), sim.now + dt.timedelta(minutes=2))
    sim.step(1.1, analysis=GOOD)
    assert sim.canary["state"] == "Progressing"


def test_smoke_evaluation_runs_on_the_canary_before_it_gets_traffic() -> None:
    sim, pod = smoke_sim()
    canary = sim.deployment("m-canary")
    assert canary["spec"]["template"]["spec"]["readinessGates"] == [
        {"conditionType": "llmops.io/smoke-evaluation"}
    ]
    assert ("Service", "m-smoke") in sim.ch
    assert sim.ch[("Service", "m-smoke")]["spec"]["publishNotReadyAddresses"] is True
    assert not [n for k, n in sim.ch if k == "Job" and n.startswith("m-smoke-")]  # no pod loaded yet
    sim.step(pods=[pod])
    smoke = job_named(sim, "m-smoke-")
    args = sim.ch[("Job", smoke)]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--max-samples") + 1] == "20"
    # A few samples cannot show a rate's bound (the gate did, on the whole dataset): values are judged.
    assert args[args.index("--judge") + 1] == "value"
    assert args[args.index("--endpoint") + 1] == "http://m-smoke.ns.svc.cluster.local:80"
    assert sim.canary["smoke"] == "Running"
    finish_job(sim, "m-smoke-")
    p = sim.step(pods=[pod, job_pod(smoke, 0, PASSED)])
    assert p.pod_conditions == [("m-canary-1", "llmops.io/smoke-evaluation", "SmokeEvaluationPassed")]
    assert sim.canary["smoke"] == "Passed"
    assert "SmokeEvaluationPassed" in [h["action"] for h in p.status["history"]]


def test_failing_smoke_evaluation_rolls_the_canary_back() -> None:
    sim, pod = smoke_sim()
    sim.step(pods=[pod])
    smoke = finish_job(sim, "m-smoke-", "Failed", "PodFailurePolicy")
    failed = json.dumps({"verdict": "Failed", "message": "failed: exactMatch 0.1 < min 0.8"})
    p = sim.step(pods=[pod, job_pod(smoke, 1, failed)])
    assert p.status["phase"] == "RolledBack"
    assert "exactMatch 0.1" in cond(p, c.PROMOTED)["message"]
    assert sim.deployment("m-canary") is None


@pytest.mark.parametrize(
    ("reason", "code", "message"),
    [
        ("BackoffLimitExceeded", 2, "endpoint unreachable"),
        # A bad dataset line fails the Job at once by the pod failure policy, as a failed model
        # does; it is still no verdict, so nothing is rolled back.
        ("PodFailurePolicy", 3, "qa.jsonl:2: invalid JSON"),
    ],
)
def test_broken_smoke_evaluation_pauses_the_canary(reason: str, code: int, message: str) -> None:
    sim, pod = smoke_sim()
    sim.step(pods=[pod])
    smoke = finish_job(sim, "m-smoke-", "Failed", reason, exit_code=code)
    summary = {"verdict": "Broken", "exitCode": code, "message": message}
    p = sim.step(pods=[pod, job_pod(smoke, code, json.dumps(summary))])
    assert sim.canary["state"] == "Paused"
    assert sim.canary["smoke"] == "Broken"
    assert message in sim.canary["message"]
    assert p.status["phase"] == "Canary"
    assert sim.deployment("m-canary") is not None


# A step advances, and the last step promotes, only on a passing latest measurement.


@pytest.mark.parametrize(
    "latest",
    [
        BAD,  # failed, but below failureLimit (2): no rollback yet, and no advance either
        {"errors": (NoData("empty vector"), None)},  # no data: inconclusive
        {"errors": (Error("connection refused", "unreachable"), None)},  # query error
    ],
    ids=["failed", "no-data", "error"],
)
def test_a_step_does_not_advance_after_a_non_passing_measurement(latest: Any) -> None:
    sim = Sim()
    start_canary(sim)
    sim.step(1, analysis=GOOD)  # passed
    sim.step(1.1, analysis=latest)  # the 2m pause is over, but the latest measurement did not pass
    assert sim.canary["step"] == 0 and sim.canary["weight"] == 25
    assert sim.deployment("m-canary")["spec"]["replicas"] == 1
    sim.step(1.1, analysis=GOOD)  # passing again: now it advances
    assert sim.canary["step"] == 1 and sim.canary["weight"] == 50


def test_the_last_step_does_not_promote_after_a_failed_measurement() -> None:
    sim = Sim()
    start_canary(sim)
    sim.step(1, analysis=GOOD)
    sim.step(1.1, analysis=GOOD)  # step 2
    sim.ready("m-canary")
    sim.ready("m-stable")
    sim.step(1, analysis=GOOD)
    sim.step(1.1, analysis=BAD)  # pause over, latest failed (failedChecks 1 < 2)
    assert sim.canary["state"] == "Progressing" and sim.canary["step"] == 1
    assert sim.deployment("m-stable")["metadata"]["annotations"][ANNOTATION_MODEL_REVISION] == SHA_A


def test_the_canary_pod_template_never_changes_across_steps() -> None:
    """Only replicas and traffic change at a step; a template change would replace every pod."""
    sim, pod = smoke_sim()
    sim.b["spec"]["rollout"] = ROLLOUT
    sim.step(pods=[pod])
    smoke = finish_job(sim, "m-smoke-")
    sim.step(pods=[pod, job_pod(smoke, 0, PASSED)])
    sim.ready("m-canary")
    sim.step(pods=[pod])
    template = json.dumps(sim.deployment("m-canary")["spec"]["template"], sort_keys=True)
    seen = []
    for _ in range(6):
        sim.step(1.1, analysis=GOOD, pods=[pod])
        dep = sim.deployment("m-canary")
        if dep is None:
            break
        seen.append(sim.canary.get("step"))
        assert json.dumps(dep["spec"]["template"], sort_keys=True) == template
        sim.ready("m-canary")
    assert 1 in seen  # it did advance at least once


def test_a_canary_pod_waiting_for_the_gpu_a_terminating_stable_pod_frees_is_not_paused() -> None:
    """In replicas mode the canary takes its replicas from stable: on a cluster with exactly the
    GPUs the LLMDeployment uses, the canary pod waits for the GPU of the stable pod scaled away,
    and the scheduler says Insufficient GPU until that pod is gone. That is the canary starting,
    not a shortage: no CanaryPaused."""
    sim = Sim()
    sim.new_revision()
    sim.step()
    pending = {
        "metadata": {"name": "m-canary-x", "labels": {"llmops.io/deployment": "m", "llmops.io/track": "canary"}},
        "spec": {"containers": [{"name": "server", "resources": {"requests": {"nvidia.com/gpu": "1"}}}]},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                        "reason": "Unschedulable",
                                                        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]},
    }  # fmt: skip
    leaving = {
        "metadata": {
            "name": "m-stable-y",
            "labels": {"llmops.io/deployment": "m", "llmops.io/track": "stable"},
            "deletionTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"containers": [{"name": "server", "resources": {"requests": {"nvidia.com/gpu": "1"}}}]},
        "status": {"phase": "Running"},
    }
    p = sim.step(0.1, pods=[pending, leaving])
    assert sim.canary["state"] == "Progressing", sim.canary
    assert "terminating" in sim.canary["message"]
    assert cond(p, c.PROMOTED)["reason"] == c.CANARY_PROGRESSING
    # Once that pod is gone and the canary pod still waits, it is a shortage.
    sim.step(0.1, pods=[pending])
    assert sim.canary["state"] == "Paused"
    assert "nvidia.com/gpu" in sim.canary["message"]


def test_changing_how_evaluations_are_retried_keeps_their_verdicts_and_the_canary() -> None:
    """backoffLimit and activeDeadlineSeconds say how an evaluation Job runs, not what it judges: a
    revision whose gate and smoke evaluation have passed is not evaluated again when they change."""
    sim, pod = smoke_sim()
    sim.step(pods=[pod])
    gate, smoke = job_named(sim, "m-eval-"), finish_job(sim, "m-smoke-")
    sim.step(pods=[pod, job_pod(gate, 0, PASSED), job_pod(smoke, 0, PASSED)])
    assert (sim.canary["smoke"], sim.canary["state"]) == ("Passed", "Progressing")
    sim.b["spec"]["evaluation"] = {**EVALUATION, "backoffLimit": 5, "activeDeadlineSeconds": 7200}
    sim.b["metadata"]["generation"] += 1
    p = sim.step(pods=[pod, job_pod(gate, 0, PASSED), job_pod(smoke, 0, PASSED)])
    jobs = sorted(o["metadata"]["name"] for o in p.apply if o["kind"] == "Job")
    assert jobs in ([], [gate], [smoke], sorted([gate, smoke])), jobs  # the same Jobs, if any
    assert cond(p, c.EVALUATED)["status"] == "True"
    assert (sim.canary["smoke"], sim.canary["state"]) == ("Passed", "Progressing")
    assert sim.deployment("m-canary") is not None
    assert [reason for *_, reason in p.pod_conditions] in ([], ["SmokeEvaluationPassed"])
