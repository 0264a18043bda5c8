"""A retrained candidate's road in ``plan()``: cache, gate, no worse than what serves, approval,
rollout, promotion; status.serving and PinnedToSpec; spec.model always wins."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

from llmops.api import conditions as c
from llmops.api.delivery import NoWorseThan
from llmops.api.resource import parse
from llmops.api.spec import AdapterSpec, adapter_revision
from llmops.lifecycle.candidate import comparison_verdict
from llmops.lifecycle.observations import Observations
from llmops.lifecycle.plan import Plan
from llmops.render.evaluation import evaluation_job_name
from testkit.argocd import run_health_check
from testkit.planning import SHA_A, T0, body, children_of, cond, job_done, job_pod, plan, rollout, with_status

SHA_C = "c" * 40
TUNED = "org/model-tuned"
EVALUATION = {
    "dataset": {"configMapRef": {"name": "qa", "key": "qa.jsonl"}},
    "thresholds": [{"metric": "exactMatch", "min": 0.5}, {"metric": "errorRate", "max": 0.1}],
}
TRAINER = {"name": "train", "image": "registry.local/trainer:1"}
MINUTE = dt.timedelta(minutes=1)


def report(exact: float, errors: float = 0.0) -> dict[str, Any]:
    """An evaluation Job's summary (its termination message)."""
    return {
        "verdict": "Passed" if exact >= 0.5 else "Failed",
        "metrics": {
            "exactMatch": {"value": exact, "min": 0.5, "passed": exact >= 0.5},
            "errorRate": {"value": errors, "max": 0.1, "passed": errors <= 0.1},
        },
    }


class Sim:
    """One LLMDeployment and its simulated cluster, pass by pass."""

    def __init__(self, approval: str = "Auto", **retrain: Any) -> None:
        spec = {
            "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {"containers": [TRAINER]}}}},
            "approval": approval,
            "cooldown": "1m",
            "maxRetrainsPerDay": 24,
            "noWorseThan": [{"metric": "exactMatch", "maxDrop": 0.01}],
            **retrain,
        }
        self.b = body(evaluation=EVALUATION, retrain=spec)
        self.ch: dict[tuple[str, str], dict[str, Any]] = {}
        self.now = T0
        self.pods: list[dict[str, Any]] = []
        self.last: Plan | None = None

    def step(self) -> Plan:
        self.now += MINUTE
        p = plan(self.b, Observations(children=self.ch, pods=self.pods), self.now)
        self.ch = children_of(p, self.ch)
        self.b = with_status(p, self.b)
        self.last = p
        return p

    @property
    def status(self) -> dict[str, Any]:
        return self.b["status"]

    def jobs(self, prefix: str) -> list[str]:
        return [name for kind, name in self.ch if kind == "Job" and name.startswith(prefix)]

    def finish_job(self, prefix: str, summary: dict[str, Any] | None = None, state: str = "Complete") -> None:
        [name] = [n for n in self.jobs(prefix) if "status" not in self.ch[("Job", n)]]
        job_done(self.ch, state=state, prefix=name)
        if summary is not None:
            self.pods = [job_pod(name, 0 if state == "Complete" else 1, json.dumps(summary))]

    def gate(self, exact: float) -> None:
        """Cache, staging and the evaluation Job of the target revision, scoring ``exact``."""
        self.step()
        self.finish_job("m-download-")
        self.step()
        rollout(self.ch, ready=1, name="m-staging")
        self.step()
        self.finish_job("m-eval-", report(exact))
        self.step()

    def serve(self) -> None:
        """The stable track rolls to its revision and is ready."""
        self.step()
        rollout(self.ch, ready=1)
        self.step()

    def retrain(self, produced: dict[str, Any], value: str = "1") -> str:
        """A retrain run on the annotation, reporting ``produced``; returns its run ID."""
        self.b["metadata"]["annotations"] = {**self.annotations, "llmops.io/retrain": value}
        self.step()
        run = self.status["retrain"]["job"]
        self.finish_job(run, produced)
        self.step()
        return str(run)

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.b["metadata"].get("annotations") or {})


def serving_sim(approval: str = "Auto", exact: float = 0.8, **retrain: Any) -> Sim:
    sim = Sim(approval, **retrain)
    sim.gate(exact)
    sim.serve()
    assert sim.status["servingRevision"] == SHA_A
    return sim


def stable_env(sim: Sim) -> dict[str, str]:
    dep = sim.ch[("Deployment", "m-stable")]
    return {e["name"]: e.get("value", "") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def serving_score(sim: Sim, metric: str = "exactMatch") -> float:
    return next(float(m["value"]) for m in sim.status["serving"]["scores"] if m["metric"] == metric)


def actions(sim: Sim) -> list[str]:
    return [h["action"] for h in sim.status["history"]]


def test_auto_approval_takes_the_candidate_down_the_whole_road_with_its_lineage() -> None:
    sim = serving_sim()
    assert sim.status["serving"] == {
        "model": "org/model",
        "revision": SHA_A,
        "origin": "spec",
        "specModel": f"org/model@{SHA_A}",
        "scores": sim.status["evaluation"]["metrics"],
    }
    assert cond(sim.last, c.PINNED_TO_SPEC)["status"] == c.TRUE
    run = sim.retrain({"model": TUNED, "revision": SHA_C})
    assert sim.status["candidate"]["state"] == "Evaluating"
    # The same road: its own download Job, staging pod and evaluation Job; stable untouched.
    sim.gate(0.85)
    assert sim.status["candidate"]["state"] == "Rolling"
    assert sim.status["candidate"]["comparison"] == [
        {
            "metric": "exactMatch",
            "value": 0.85,
            "serving": 0.8,
            "maxDrop": 0.01,
            "drop": -0.05,
            "passed": True,
        }
    ]
    sim.serve()
    assert stable_env(sim)["MODEL_ID"] == TUNED and stable_env(sim)["REVISION"] == SHA_C
    assert sim.status["servingRevision"] == SHA_C and sim.status["model"] == TUNED
    assert sim.status["serving"]["origin"] == run and sim.status["serving"]["model"] == TUNED
    assert serving_score(sim) == 0.85  # what the next candidate must beat
    assert sim.status["candidate"]["state"] == "Promoted"
    assert cond(sim.last, c.CANDIDATE)["status"] == c.TRUE
    pinned = cond(sim.last, c.PINNED_TO_SPEC)
    assert (pinned["status"], pinned["reason"]) == (c.FALSE, c.RETRAINED_MODEL_SERVING)
    assert f"spec.model to: {{id: {TUNED}, revision: {SHA_C}}}" in pinned["message"]
    # Lineage: trigger → Job → candidate → gate scores → approval → promotion, under the run.
    lineage = actions(sim)
    for action in (
        "RetrainStarted",
        "RetrainSucceeded",
        "Evaluated",
        "CandidateRolling",
        "CandidatePromoted",
    ):
        assert action in lineage, (action, lineage)
    assert (
        lineage.index("RetrainStarted")
        < lineage.index("CandidateRolling")
        < lineage.index("CandidatePromoted")
    )
    assert any(run in h["message"] for h in sim.status["history"] if h["action"] == "CandidatePromoted")
    assert sim.status["phase"] == "Serving"
    # Steady: nothing to write.
    quiet = sim.step()
    assert not quiet.apply and not quiet.status_changed


def test_pinning_the_served_model_in_spec_rolls_nothing_and_a_new_spec_model_wins() -> None:
    sim = serving_sim()
    sim.retrain({"model": TUNED, "revision": SHA_C})
    sim.gate(0.85)
    sim.serve()
    sim.b["spec"]["model"] = {"id": TUNED, "revision": SHA_C}
    sim.b["metadata"]["generation"] = 2
    p = sim.step()
    assert [o["kind"] for o in p.apply if o["kind"] in ("Deployment", "Job")] == []
    assert sim.status["serving"]["origin"] == "spec" and sim.status["servingRevision"] == SHA_C
    assert cond(p, c.PINNED_TO_SPEC)["status"] == c.TRUE
    # A spec.model that differs goes the normal road: its own download, the retrained one serves meanwhile.
    sim.b["spec"]["model"] = {"id": "org/model", "revision": "d" * 40}
    sim.b["metadata"]["generation"] = 3
    sim.step()
    assert sim.status["desiredRevision"] == "d" * 40
    assert stable_env(sim)["MODEL_ID"] == TUNED


def test_manual_approval_waits_for_the_run_and_ignores_stale_and_unknown_values() -> None:
    sim = serving_sim("Manual")
    first = sim.retrain({"model": TUNED, "revision": SHA_C})
    sim.gate(0.85)
    assert sim.status["candidate"]["state"] == "AwaitingApproval"
    progressing = cond(sim.last, c.PROGRESSING)
    assert progressing["reason"] == c.RETRAIN_AWAITING_APPROVAL
    assert f"llmops.io/approve-retrain={first}" in progressing["message"]
    sim.step()
    assert stable_env(sim)["REVISION"] == SHA_A  # held: no canary, no rollout
    sim.b["metadata"]["annotations"] = {**sim.annotations, "llmops.io/approve-retrain": "m-retrain-9"}
    sim.step()
    assert cond(sim.last, c.CANDIDATE)["reason"] == c.APPROVAL_UNKNOWN_RUN
    assert "m-retrain-9" in cond(sim.last, c.CANDIDATE)["message"]
    assert sim.status["candidate"]["state"] == "AwaitingApproval"
    sim.b["metadata"]["annotations"] = {**sim.annotations, "llmops.io/approve-retrain": first}
    sim.serve()
    assert sim.status["servingRevision"] == SHA_C and sim.status["candidate"]["state"] == "Promoted"
    # The next run: the annotation still names the first one, which approves nothing.
    second = sim.retrain({"model": TUNED, "revision": "e" * 40}, value="2")
    assert second != first
    sim.gate(0.86)
    sim.step()
    assert sim.status["candidate"]["state"] == "AwaitingApproval"
    assert "names an earlier run and approves nothing" in cond(sim.last, c.CANDIDATE)["message"]
    assert sim.status["servingRevision"] == SHA_C


def test_a_candidate_worse_than_what_serves_never_serves_and_status_says_by_how_much() -> None:
    sim = serving_sim(exact=0.8)
    sim.retrain({"model": TUNED, "revision": SHA_C})
    sim.gate(0.7)  # passes its own threshold (min 0.5), but loses 0.1 to what serves
    cand = sim.status["candidate"]
    assert (cand["state"], cand["reason"]) == ("Rejected", c.CANDIDATE_WORSE)
    assert "exactMatch 0.7 vs serving 0.8: worse by 0.1 (maxDrop 0.01)" in cand["message"]
    assert cond(sim.last, c.CANDIDATE)["reason"] == c.CANDIDATE_WORSE
    assert sim.last is not None and any(e.reason == c.CANDIDATE_WORSE for e in sim.last.events)
    for _ in range(3):
        sim.step()
    assert stable_env(sim)["REVISION"] == SHA_A and sim.status["servingRevision"] == SHA_A
    assert sim.status["phase"] == "Serving" and sim.status["serving"]["origin"] == "spec"
    assert serving_score(sim) == 0.8  # the baseline is not overwritten
    assert cond(sim.last, c.EVALUATED)["status"] == c.TRUE


def test_a_report_naming_a_revision_that_cannot_be_downloaded_ends_in_a_condition_naming_it() -> None:
    sim = serving_sim()
    sim.retrain({"model": TUNED, "revision": SHA_C})
    sim.step()
    sim.finish_job("m-download-", {"error": f"RevisionNotFound: {TUNED}@{SHA_C}"}, state="Failed")
    sim.step()
    cand = sim.status["candidate"]
    assert (cand["state"], cand["reason"]) == ("Rejected", c.DOWNLOAD_FAILED)
    assert f"{TUNED}@{SHA_C}" in cand["message"]
    sim.step()
    assert sim.status["phase"] == "Serving" and sim.status["servingRevision"] == SHA_A
    assert cond(sim.last, c.MODEL_CACHED)["status"] == c.TRUE
    assert stable_env(sim)["MODEL_ID"] == "org/model"


def test_a_spec_change_abandons_a_running_retrain_and_deletes_its_job() -> None:
    sim = serving_sim()
    sim.b["metadata"]["annotations"] = {"llmops.io/retrain": "1"}
    sim.step()
    assert sim.jobs("m-retrain-1") and sim.status["phase"] == "Retraining"
    sim.b["spec"]["model"]["revision"] = "d" * 40
    sim.b["metadata"]["generation"] = 2
    p = sim.step()
    assert ("Job", "m-retrain-1") in p.delete
    assert sim.status["retrain"]["state"] == "Abandoned"
    assert cond(p, c.RETRAINED)["reason"] == c.RETRAIN_ABANDONED
    assert sim.status["desiredRevision"] == "d" * 40  # spec goes the normal road
    assert "RetrainAbandoned" in actions(sim)


def test_a_spec_change_abandons_a_candidate_on_its_road() -> None:
    sim = serving_sim("Manual")
    sim.retrain({"model": TUNED, "revision": SHA_C})
    sim.gate(0.85)
    sim.b["spec"]["model"]["revision"] = "d" * 40
    sim.b["metadata"]["generation"] = 2
    sim.step()
    cand = sim.status["candidate"]
    assert (cand["state"], cand["reason"]) == ("Abandoned", c.SPEC_CHANGED)
    assert sim.status["desiredRevision"] == "d" * 40


def test_a_model_written_to_the_model_cache_needs_no_download_and_serves_from_its_path() -> None:
    sim = serving_sim()
    run = sim.retrain({"path": "/data/retrained/1"})
    p = sim.step()
    assert not any(o["metadata"]["name"].startswith("m-download-") for o in p.apply)
    assert cond(p, c.MODEL_CACHED)["reason"] == c.ON_MODEL_CACHE
    rollout(sim.ch, ready=1, name="m-staging")
    sim.step()
    sim.finish_job("m-eval-", report(0.9))
    sim.step()
    sim.serve()
    assert stable_env(sim)["MODEL_ID"] == "/data/retrained/1" and stable_env(sim)["REVISION"] == run
    assert sim.status["serving"]["path"] == "/data/retrained/1"
    assert "cannot be pinned in spec.model" in cond(sim.last, c.PINNED_TO_SPEC)["message"]


def pod_containers(sim: Sim, name: str) -> dict[str, dict[str, Any]]:
    dep = sim.ch[("Deployment", name)]
    return {c["name"]: c for c in dep["spec"]["template"]["spec"]["containers"]}


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_a_lora_adapter_serves_on_the_base_model_with_the_gateway_naming_it_and_pins_in_spec() -> None:
    sim = serving_sim()
    run = sim.retrain({"adapter": {"path": "/data/adapters/run-1", "name": "tuned"}})
    adapter = {"name": "tuned", "path": "/data/adapters/run-1"}
    revision = adapter_revision(SHA_A, AdapterSpec(**adapter))
    assert revision.startswith(f"{SHA_A}+tuned-")
    assert sim.status["retrain"]["candidateAdapter"] == {**adapter, "baseRevision": SHA_A}
    assert sim.status["candidate"]["adapter"] == {**adapter, "baseRevision": SHA_A}
    assert sim.status["candidate"]["model"] == "org/model" and sim.status["candidate"]["revision"] == revision
    p = sim.step()
    # The base model is in the cache already (its download Job is the same): nothing downloads.
    assert not any(o["kind"] == "Job" and o["metadata"]["name"].startswith("m-download-") for o in p.apply)
    staging = pod_containers(sim, "m-staging")
    env = env_of(staging["server"])
    assert (env["MODEL_ID"], env["REVISION"], env["LORA_ADAPTERS"]) == (
        "org/model",
        SHA_A,
        "tuned=/data/adapters/run-1",
    )
    args = staging["gateway"]["args"]
    assert args[args.index("--adapter") + 1] == "tuned" and args[args.index("--revision") + 1] == revision
    rollout(sim.ch, ready=1, name="m-staging")
    sim.step()
    sim.finish_job("m-eval-", report(0.9))
    sim.step()
    assert sim.status["candidate"]["state"] == "Rolling"
    sim.serve()
    stable = pod_containers(sim, "m-stable")
    assert env_of(stable["server"])["LORA_ADAPTERS"] == "tuned=/data/adapters/run-1"
    assert "--adapter" in stable["gateway"]["args"]
    assert sim.status["servingRevision"] == revision and sim.status["candidate"]["state"] == "Promoted"
    serving = sim.status["serving"]
    assert (serving["model"], serving["revision"], serving["origin"]) == ("org/model", revision, run)
    assert serving["adapter"] == {**adapter, "baseRevision": SHA_A}
    pinned = cond(sim.last, c.PINNED_TO_SPEC)
    assert (pinned["status"], pinned["reason"]) == (c.FALSE, c.RETRAINED_MODEL_SERVING)
    assert (
        f"set spec.model to: {{id: org/model, revision: {SHA_A}, adapter: {{name: tuned, "
        "path: /data/adapters/run-1}}"
    ) in pinned["message"]
    # Pinned as the condition says: the same revision, so nothing rolls; the origin becomes spec.
    sim.b["spec"]["model"] = {"id": "org/model", "revision": SHA_A, "adapter": adapter}
    sim.b["metadata"]["generation"] = 2
    p = sim.step()
    assert [o["kind"] for o in p.apply if o["kind"] in ("Deployment", "Job")] == []
    assert sim.status["serving"]["origin"] == "spec" and sim.status["servingRevision"] == revision
    assert cond(p, c.PINNED_TO_SPEC)["status"] == c.TRUE
    # Dropping the adapter from spec is a new revision (the base model alone): it takes the road.
    sim.b["spec"]["model"] = {"id": "org/model", "revision": SHA_A}
    sim.b["metadata"]["generation"] = 3
    sim.step()
    assert sim.status["desiredRevision"] == SHA_A and sim.status["servingRevision"] == revision
    assert "LORA_ADAPTERS" not in env_of(pod_containers(sim, "m-staging")["server"])


def test_a_retrain_while_an_adapter_serves_starts_from_the_base_weights_and_that_adapter() -> None:
    sim = serving_sim()
    first = sim.retrain({"adapter": {"path": "/data/adapters/run-1"}})
    sim.step()
    rollout(sim.ch, ready=1, name="m-staging")
    sim.step()
    sim.finish_job("m-eval-", report(0.9))
    sim.serve()
    assert sim.status["serving"]["adapter"]["name"] == first  # the name defaults to the run ID
    sim.b["metadata"]["annotations"] = {**sim.annotations, "llmops.io/retrain": "2"}
    sim.step()
    job = sim.ch[("Job", "m-retrain-2")]
    env = env_of(job["spec"]["template"]["spec"]["containers"][0])
    assert (env["LLMOPS_BASE_MODEL"], env["LLMOPS_BASE_REVISION"]) == ("org/model", SHA_A)
    assert env["LLMOPS_BASE_ADAPTER"] == "/data/adapters/run-1"
    assert sim.status["retrain"]["baseRevision"] == SHA_A
    # Its adapter applies to the same base weights, and replaces the first one.
    sim.finish_job("m-retrain-2", {"adapter": {"path": "/data/adapters/run-2"}})
    sim.step()
    assert sim.status["candidate"]["adapter"] == {
        "name": "m-retrain-2",
        "path": "/data/adapters/run-2",
        "baseRevision": SHA_A,
    }


def test_an_adapter_report_without_the_gateway_is_a_condition_naming_it() -> None:
    sim = serving_sim()
    sim.b["spec"]["gateway"] = {"enabled": False}
    sim.step()
    sim.retrain({"adapter": {"path": "/data/adapters/run-1"}})
    retrained = cond(sim.last, c.RETRAINED)
    assert (retrained["status"], retrained["reason"]) == (c.FALSE, c.RETRAIN_REPORT_INVALID)
    assert "needs spec.gateway.enabled" in retrained["message"]
    assert sim.status.get("candidate") is None


def test_a_restart_mid_retrain_never_starts_a_second_job() -> None:
    sim = serving_sim()
    sim.b["metadata"]["annotations"] = {"llmops.io/retrain": "1"}
    sim.step()
    before = copy.deepcopy(sim.b)
    for _ in range(3):  # the same stored status, planned again as a restarted operator would
        p = plan(before, Observations(children=sim.ch), sim.now + MINUTE)
        assert [o["metadata"]["name"] for o in p.apply if o["kind"] == "Job"] == []
    assert sim.jobs("m-retrain-") == ["m-retrain-1"]


def test_no_worse_than_follows_the_direction_of_each_metrics_threshold() -> None:
    rules = [NoWorseThan(metric="exactMatch", max_drop=0.01), NoWorseThan(metric="errorRate", max_drop=0.02)]
    serving = [
        {"metric": "exactMatch", "value": 0.8, "min": 0.5, "passed": True},
        {"metric": "errorRate", "value": 0.01, "max": 0.1, "passed": True},
    ]
    better = {
        "metrics": [
            {"metric": "exactMatch", "value": 0.9, "min": 0.5},
            {"metric": "errorRate", "value": 0.0, "max": 0.1},
        ]
    }
    assert comparison_verdict(better, serving, rules).passed  # type: ignore[arg-type]
    more_errors = {
        "metrics": [
            {"metric": "exactMatch", "value": 0.8, "min": 0.5},
            {"metric": "errorRate", "value": 0.05, "max": 0.1},
        ]
    }
    verdict = comparison_verdict(more_errors, serving, rules)  # type: ignore[arg-type]
    assert not verdict.passed
    assert "errorRate 0.05 vs serving 0.01: worse by 0.04 (maxDrop 0.02)" in verdict.message
    no_baseline = comparison_verdict(better, [], rules)
    assert no_baseline.passed and "no gate score to compare with" in no_baseline.message


def test_argo_cd_health_of_the_candidate_road() -> None:
    """The health check on the statuses plan() writes (docs/gitops-argocd.md)."""
    sim = serving_sim("Manual")
    run = sim.retrain({"model": TUNED, "revision": SHA_C})
    sim.step()
    assert sim.status["phase"] == "Caching" and run_health_check(sim.b)["status"] == "Progressing"
    sim.gate(0.85)
    waiting = run_health_check(sim.b)
    assert waiting["status"] == "Suspended" and f"llmops.io/approve-retrain={run}" in waiting["message"]
    sim.b["metadata"]["annotations"] = {**sim.annotations, "llmops.io/approve-retrain": "typo"}
    sim.step()
    unknown = run_health_check(sim.b)
    assert (
        unknown["status"] == "Suspended" and "approve-retrain=typo names no retrain run" in unknown["message"]
    )
    sim.b["metadata"]["annotations"] = {**sim.annotations, "llmops.io/approve-retrain": run}
    sim.serve()
    serving = run_health_check(sim.b)
    assert serving["status"] == "Healthy" and "to pin it in git" in serving["message"]


def test_argo_cd_health_of_a_rejected_candidate_is_healthy_and_says_why() -> None:
    sim = serving_sim(exact=0.8)
    sim.retrain({"model": TUNED, "revision": SHA_C})
    sim.gate(0.7)
    sim.step()
    result = run_health_check(sim.b)
    assert result["status"] == "Healthy" and "worse by 0.1" in result["message"]


def paired(candidate: float, baseline: float, wins: int, losses: int) -> dict[str, Any]:
    """The report's comparison section (llmops eval with a baseline), for exactMatch over 40 prompts."""
    entry = {"candidate": candidate, "baseline": baseline, "delta": round(candidate - baseline, 6)}
    return {"metrics": {"exactMatch": {**entry, "n": 40, "wins": wins, "losses": losses, "test": "mcnemar"}}}


def test_the_candidates_gate_scores_what_serves_on_the_same_prompts_and_the_paired_test_decides() -> None:
    sim = serving_sim(exact=0.8)
    sim.retrain({"model": TUNED, "revision": SHA_C})
    sim.step()
    sim.finish_job("m-download-")
    sim.step()
    rollout(sim.ch, ready=1, name="m-staging")
    sim.step()
    [job] = [sim.ch[("Job", n)] for n in sim.jobs("m-eval-") if "status" not in sim.ch[("Job", n)]]
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["LLMOPS_BASELINE_URL"] == "http://m.ns.svc.cluster.local:80"  # stable, through the Service
    assert container["args"][container["args"].index("--max-drop") + 1] == '{"exactMatch":0.01}'
    # Both scores pass min 0.5 and the candidate's mean is close; prompt by prompt it lost 12, won 1.
    summary = {**report(0.78), "comparison": paired(0.78, 0.8, wins=1, losses=12), "confidence": 0.95}
    sim.finish_job("m-eval-", summary)
    sim.step()
    cand = sim.status["candidate"]
    assert (cand["state"], cand["reason"]) == ("Rejected", c.CANDIDATE_WORSE)
    assert cand["message"].startswith(
        "paired on the same prompts: worse than the baseline: exactMatch 0.80 → 0.78"
    )
    assert "12 prompt(s) lost, 1 won, n=40" in cand["message"]
    assert cand["comparison"][0] | {"drop": None} == {
        "metric": "exactMatch",
        "value": 0.78,
        "serving": 0.8,
        "drop": None,
        "maxDrop": 0.01,
        "passed": False,
    }
    assert sim.status["evaluation"]["comparison"][0]["losses"] == 12


def test_a_paired_drop_chance_could_explain_is_not_shown_no_worse_and_does_not_serve() -> None:
    verdict = comparison_verdict(
        {
            "comparison": [
                {"metric": "exactMatch", "candidate": 0.78, "baseline": 0.8, "n": 40, "wins": 2, "losses": 3}
            ]
        },
        [],
        [NoWorseThan(metric="exactMatch", max_drop=0.01)],
    )
    assert not verdict.passed and verdict.reason == c.CANDIDATE_NOT_SHOWN_NO_WORSE
    assert "chance could explain" in verdict.message


HELD_OUT = {"corrections": {"fraction": 0.25, "window": "3d", "maxRecords": 200, "minRecords": 10}}
CAPTURE = {"enabled": True, "capture": {"sampleRate": 1.0}}


def held_out_sim(**held: Any) -> Sim:
    sim = Sim()
    sim.b["spec"]["evaluation"] = {
        **EVALUATION,
        "heldOut": {"corrections": {**HELD_OUT["corrections"], **held}},
    }
    sim.b["spec"]["gateway"] = CAPTURE
    sim.gate(0.8)
    sim.serve()
    assert sim.status["servingRevision"] == SHA_A
    return sim


def eval_container(sim: Sim) -> dict[str, Any]:
    [job] = [sim.ch[("Job", n)] for n in sim.jobs("m-eval-") if "status" not in sim.ch[("Job", n)]]
    return dict(job["spec"]["template"]["spec"]["containers"][0])


def held_out_summary(section: dict[str, Any]) -> dict[str, Any]:
    same = paired(0.8, 0.8, wins=0, losses=0)
    return {**report(0.8), "comparison": same, "confidence": 0.95, "heldOut": section}


def to_candidate_gate(sim: Sim) -> dict[str, Any]:
    sim.retrain({"model": TUNED, "revision": SHA_C})
    sim.step()
    sim.finish_job("m-download-")
    sim.step()
    rollout(sim.ch, ready=1, name="m-staging")
    sim.step()
    return eval_container(sim)


def test_a_candidate_that_loses_on_the_held_out_corrections_never_serves_and_status_says_by_how_much() -> (
    None
):
    sim = held_out_sim()
    # The serving revision's own gate (spec.model, gates: Candidates) read no corrections.
    assert all("--held-out-url" not in sim.ch[("Job", n)]["spec"]["template"]["spec"]["containers"][0]["args"]
               for n in sim.jobs("m-eval-"))  # fmt: skip
    container = to_candidate_gate(sim)
    args = container["args"]
    assert args[args.index("--held-out-url") + 1] == "http://m-capture.ns.svc:8080"
    assert args[args.index("--held-out-fraction") + 1] == "0.25"
    assert args[args.index("--held-out-window") + 1] == "259200"
    assert args[args.index("--held-out-min") + 1] == "10"
    token = next(e for e in container["env"] if e["name"] == args[args.index("--held-out-token-env") + 1])
    assert token["valueFrom"] == {"secretKeyRef": {"name": "m-gateway", "key": "capture-token"}}
    lost = {
        "candidate": 0.2,
        "baseline": 1.0,
        "delta": -0.8,
        "n": 20,
        "wins": 0,
        "losses": 16,
        "test": "mcnemar",
    }
    section = {
        "verdict": "Passed", "records": 20, "skipped": 0, "minRecords": 10, "message": "20 correction(s)",
        "counts": {"samples": 20, "completed": 20, "errors": 0},
        "metrics": {"exactMatch": {"value": 0.2, "n": 20}, "tokenF1": {"value": 0.41}},
        "comparison": {"metrics": {"exactMatch": {**lost, "verdict": "Worse"}}},
    }  # fmt: skip
    sim.finish_job("m-eval-", held_out_summary(section))
    sim.step()
    held = sim.status["evaluation"]["heldOut"]
    assert (held["verdict"], held["records"], held["minRecords"]) == ("Passed", 20, 10)
    assert held["metrics"] == [
        {"metric": "exactMatch", "value": 0.2, "samples": 20},
        {"metric": "tokenF1", "value": 0.41},
    ]
    assert held["comparison"][0]["losses"] == 16
    cand = sim.status["candidate"]
    assert (cand["state"], cand["reason"]) == ("Rejected", c.CANDIDATE_WORSE)
    assert cand["message"].startswith(
        "held-out corrections (n=20): paired on the same prompts: worse than the baseline: exactMatch 1.00 → 0.20"
    ), cand["message"]
    assert "16 prompt(s) lost, 0 won, n=20" in cand["message"] and "beyond maxDrop 0.01" in cand["message"]
    dataset, on_held = cand["comparison"]
    assert dataset["passed"] and "set" not in dataset
    assert on_held == {
        "metric": "exactMatch", "value": 0.2, "serving": 1.0, "drop": 0.8, "maxDrop": 0.01, "passed": False,
        "set": "heldOut",
    }  # fmt: skip
    assert sim.status["servingRevision"] == SHA_A
    assert sim.ch[("Deployment", "m-stable")]["metadata"]["annotations"]["llmops.io/model-revision"] == SHA_A


def test_too_few_corrections_is_the_held_out_sets_own_verdict_and_never_a_pass() -> None:
    sim = held_out_sim()
    to_candidate_gate(sim)
    section = {
        "verdict": "InsufficientSamples", "records": 3, "skipped": 0, "minRecords": 10,
        "message": "3 correction(s) in the window, fewer than minRecords 10",
        "counts": {"samples": 3, "completed": 3, "errors": 0}, "metrics": {"exactMatch": {"value": 1.0, "n": 3}},
    }  # fmt: skip
    summary = {**held_out_summary(section), "verdict": "InsufficientSamples", "exitCode": 1}
    [name] = [n for n in sim.jobs("m-eval-") if "status" not in sim.ch[("Job", n)]]
    job_done(sim.ch, state="Failed", reason="PodFailurePolicy", prefix=name)
    sim.pods = [job_pod(name, 1, json.dumps(summary))]
    sim.step()
    evaluated = sim.status["evaluation"]
    assert (evaluated["passed"], evaluated["verdict"]) == (False, "InsufficientSamples")
    cand = sim.status["candidate"]
    assert (cand["state"], cand["reason"]) == ("Rejected", c.INSUFFICIENT_SAMPLES)
    assert (
        "cannot be judged on its held-out set: 3 correction(s) in the window, fewer than minRecords 10"
        in (cand["message"])
    )
    assert sim.status["servingRevision"] == SHA_A


def test_gates_all_scores_the_held_out_set_at_every_gate_and_the_retrain_job_gets_the_train_view() -> None:
    sim = held_out_sim(gates="All")
    first = next(iter(sim.jobs("m-eval-")))
    args = sim.ch[("Job", first)]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--held-out-url" in args
    sim.b["metadata"]["annotations"] = {"llmops.io/retrain": "1"}
    sim.step()
    job = sim.ch[("Job", sim.status["retrain"]["job"])]
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LLMOPS_CAPTURE_RECORDS_URL"]["value"] == (
        "http://m-capture.ns.svc:8080/v1/records?split=train&fraction=0.25"
    )
    # Without spec.retrain.datasetUrl, the training data is the store's (train view).
    assert env["LLMOPS_DATASET_URL"]["value"] == env["LLMOPS_CAPTURE_RECORDS_URL"]["value"]
    assert env["LLMOPS_CAPTURE_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "m-gateway",
        "key": "capture-token",
    }


def test_adding_the_held_out_setting_to_the_api_leaves_existing_evaluation_job_names_alone() -> None:
    """The Job name hashes spec.evaluation: a new optional field at its absent default must not
    rename the Jobs (and so the verdicts recorded under them) of objects that do not set it."""
    plain = {
        "dataset": {"configMapRef": {"name": "qa", "key": "qa.jsonl"}},
        "thresholds": [{"metric": "exactMatch", "min": 0.5}],
    }
    assert (
        evaluation_job_name(parse(body(evaluation=plain)), "a" * 40) == "m-eval-bb3dadbf"
    )  # as before heldOut
    held = parse(body(evaluation={**plain, "heldOut": HELD_OUT}, gateway=CAPTURE))
    assert evaluation_job_name(held, "a" * 40) != "m-eval-bb3dadbf"
