"""The evaluation gate in ``plan()``: staging, the evaluation Job, and its three outcomes."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from llmops.api import conditions as c
from llmops.api.resource import LLMDeployment
from llmops.lifecycle.observations import GpuNode, Observations
from llmops.lifecycle.plan import ANNOTATION_MODEL_REVISION, Plan
from llmops.render.evaluation import evaluation_job, evaluation_job_name
from testkit.planning import (
    SHA_A,
    SHA_B,
    T0,
    body,
    children_of,
    cond,
    job_done,
    job_pod,
    kinds,
    plan,
    pod_without_gpu,
    pods_starting,
    rollout,
    to_serving,
    with_status,
)

EVALUATION = {
    "dataset": {"configMapRef": {"name": "qa", "key": "qa.jsonl"}},
    "thresholds": [{"metric": "exactMatch", "min": 0.8}, {"metric": "latencyP95", "max": 2.0}],
}
PASSED = {
    "verdict": "Passed",
    "exitCode": 0,
    "metrics": {
        "exactMatch": {"value": 0.95, "min": 0.8, "passed": True},
        "latencyP95": {"value": 0.4, "max": 2.0, "passed": True},
        "tokenF1": {"value": 0.9},
    },
}
FAILED = {
    "verdict": "Failed",
    "exitCode": 1,
    "metrics": {
        "exactMatch": {"value": 0.3, "min": 0.8, "passed": False},
        "latencyP95": {"value": 0.4, "max": 2.0, "passed": True},
    },
}


def _evaluating(b: dict[str, Any], ch: dict | None = None) -> tuple[dict[str, Any], dict, Plan]:
    """From ``b`` (and cluster ``ch``) to a running evaluation Job; returns (body, children, plan)."""
    p = plan(b, Observations(children=ch or {}), T0)
    ch = children_of(p, ch)
    job_done(ch)
    b = with_status(p, b)
    p = plan(b, Observations(children=ch), T0)
    ch = children_of(p, ch)
    rollout(ch, ready=1, name="m-staging")
    b = with_status(p, b)
    p = plan(b, Observations(children=ch), T0)
    return with_status(p, b), children_of(p, ch), p


def _eval_job(ch: dict) -> str:
    return next(name for kind, name in ch if kind == "Job" and name.startswith("m-eval-"))


def test_a_cached_revision_goes_to_staging_first_not_to_production() -> None:
    b = body(evaluation=EVALUATION)
    p = plan(b, Observations(), T0)
    ch = children_of(p)
    job_done(ch)
    p = plan(with_status(p, b), Observations(children=ch), T0)
    names = {(o["kind"], o["metadata"]["name"]) for o in p.apply}
    assert ("Deployment", "m-staging") in names and ("Service", "m-staging") in names
    assert ("Deployment", "m-stable") not in names
    staging = next(o for o in p.apply if o["metadata"]["name"] == "m-staging" and o["kind"] == "Deployment")
    labels = staging["spec"]["template"]["metadata"]["labels"]
    assert "llmops.io/serving" not in labels  # the production Service never selects it
    assert staging["spec"]["replicas"] == 1
    assert p.status["phase"] == "Evaluating"
    assert cond(p, c.EVALUATED)["status"] == "Unknown"


def test_evaluation_job_scores_the_staging_service_with_the_spec_thresholds() -> None:
    _, ch, p = _evaluating(body(evaluation=EVALUATION))
    job = next(o for o in p.apply if o["kind"] == "Job")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    flag = {args[i]: args[i + 1] for i in range(1, len(args) - 1) if args[i].startswith("--")}
    assert flag["--endpoint"] == "http://m-staging.ns.svc.cluster.local:80"
    assert json.loads(flag["--thresholds"]) == EVALUATION["thresholds"]
    assert flag["--dataset"] == "/etc/llmops/dataset/qa.jsonl"
    assert flag["--model-revision"] == SHA_A
    # the OpenAI chat route by default, naming the model (vLLM's served name), one worker process
    assert (flag["--route"], flag["--model"], flag["--workers"]) == ("chat", "org/model", "1")
    assert flag["--transport"] == "aiohttp"  # the lean client by default
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "evaluate", "operator": "In", "values": [1, 3]},
    }
    assert p.status["phase"] == "Evaluating"
    assert cond(p, c.EVALUATED)["reason"] == c.EVALUATION_RUNNING
    # A restarted operator computes the same Job: nothing new to create.
    again = plan(with_status(p, body(evaluation=EVALUATION)), Observations(children=ch), T0)
    assert not [o for o in again.apply if o["kind"] == "Job"]


def test_evaluation_workers_and_route_reach_the_job() -> None:
    evaluation = {**EVALUATION, "workers": 4, "route": "completion", "client": "aiohttp"}
    _, _, p = _evaluating(body(evaluation=evaluation))
    job = next(o for o in p.apply if o["kind"] == "Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--workers") + 1] == "4" and args[args.index("--route") + 1] == "completion"
    assert args[args.index("--transport") + 1] == "aiohttp"
    assert container["resources"]["requests"]["cpu"] == "1000m"  # a quarter core per worker


def test_confidence_and_a_baseline_reach_the_job() -> None:
    evaluation = {**EVALUATION, "confidence": 0.99}
    _, _, p = _evaluating(body(evaluation=evaluation))
    job = next(o for o in p.apply if o["kind"] == "Job")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--confidence") + 1] == "0.99"
    assert "--judge" not in args  # the gate judges rates on their bounds

    ld = LLMDeployment.model_validate(body(evaluation=EVALUATION))
    compared = evaluation_job(
        ld, revision=SHA_B, endpoint="http://cand", baseline_url="http://base", max_drop={"exactMatch": 0.01}
    )
    container = compared["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "LLMOPS_BASELINE_URL", "value": "http://base"} in container["env"]
    assert container["args"][container["args"].index("--max-drop") + 1] == '{"exactMatch":0.01}'
    # The default level leaves the Job's name (the verdict's key) as it was before the field existed.
    default = LLMDeployment.model_validate(body(evaluation={**EVALUATION, "confidence": 0.95}))
    assert evaluation_job_name(default, SHA_A) == evaluation_job_name(ld, SHA_A)
    assert evaluation_job_name(LLMDeployment.model_validate(body(evaluation=evaluation)), SHA_A) != (
        evaluation_job_name(ld, SHA_A)
    )


def test_how_the_job_runs_is_not_part_of_its_name() -> None:
    """backoffLimit, activeDeadlineSeconds, workers and client reach the rendered Job and leave its
    name, the key of its verdict, as it is; what the verdict depends on changes the name."""
    ld = LLMDeployment.model_validate(body(evaluation=EVALUATION))
    how = {"backoffLimit": 0, "activeDeadlineSeconds": 600, "workers": 4, "client": "huggingface_hub"}
    tuned = LLMDeployment.model_validate(body(evaluation={**EVALUATION, **how}))
    assert evaluation_job_name(tuned, SHA_A) == evaluation_job_name(ld, SHA_A)
    job = evaluation_job(tuned, revision=SHA_A, endpoint="http://staging")
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"]) == (0, 600)
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert (
        args[args.index("--workers") + 1] == "4" and args[args.index("--transport") + 1] == "huggingface_hub"
    )
    for changed in ({"maxNewTokens": 64}, {"timeoutSeconds": 5}, {"concurrency": 1}):
        other = LLMDeployment.model_validate(body(evaluation={**EVALUATION, **changed}))
        assert evaluation_job_name(other, SHA_A) != evaluation_job_name(ld, SHA_A), changed


def test_passing_revision_is_promoted_to_stable_and_staging_released() -> None:
    b, ch, _ = _evaluating(body(evaluation=EVALUATION))
    job = _eval_job(ch)
    job_done(ch, prefix="m-eval-")
    p = plan(b, Observations(children=ch, pods=[job_pod(job, 0, json.dumps(PASSED))]), T0)
    stable = next(o for o in p.apply if o["metadata"]["name"] == "m-stable")
    assert stable["metadata"]["annotations"][ANNOTATION_MODEL_REVISION] == SHA_A
    assert ("Deployment", "m-staging") in p.delete and ("Service", "m-staging") in p.delete
    ev = p.status["evaluation"]
    assert ev["passed"] is True and ev["revision"] == SHA_A and ev["job"] == job
    assert [m["metric"] for m in ev["metrics"]] == ["exactMatch", "latencyP95"]
    assert cond(p, c.EVALUATED)["status"] == "True"
    assert p.status["history"][-1]["action"] == "Evaluated"

    # The verdict outlives the Job.
    ch = children_of(p, ch)
    ch.pop(("Job", job), None)
    p2 = plan(with_status(p, b), Observations(children=ch), T0)
    assert cond(p2, c.EVALUATED)["status"] == "True"
    assert not [o for o in p2.apply if o["kind"] == "Job" and o["metadata"]["name"].startswith("m-eval-")]


def test_failing_revision_never_serves_and_status_names_the_metric() -> None:
    served, ch = to_serving(body())  # revision A served before the gate existed
    served["spec"]["evaluation"] = EVALUATION
    served["spec"]["model"]["revision"] = SHA_B
    b, ch, _ = _evaluating(served, ch)
    job = _eval_job(ch)
    job_done(ch, "Failed", "PodFailurePolicy", prefix="m-eval-")
    p = plan(b, Observations(children=ch, pods=[job_pod(job, 1, json.dumps(FAILED))]), T0)
    assert "m-stable" not in {o["metadata"]["name"] for o in p.apply}  # A keeps serving
    assert ("Deployment", "m-staging") in p.delete
    ev = cond(p, c.EVALUATED)
    assert ev["status"] == "False" and ev["reason"] == c.EVALUATION_FAILED
    assert "exactMatch 0.3 < min 0.8" in ev["message"]
    assert ev["message"].endswith("; it will not serve")
    assert "latencyP95" not in ev["message"]
    assert p.status["phase"] == "Failed"
    assert p.status["servingRevision"] == SHA_A
    assert cond(p, c.AVAILABLE)["status"] == "True"
    assert p.status["evaluation"]["passed"] is False
    assert any(e.type == "Warning" and e.reason == c.EVALUATION_FAILED for e in p.events)


INSUFFICIENT = {
    "verdict": "InsufficientSamples",
    "exitCode": 1,
    "confidence": 0.95,
    "counts": {"samples": 6, "completed": 6, "errors": 0, "retried": 0, "retries": 0},
    "metrics": {
        "errorRate": {
            "value": 0.0, "n": 6, "max": 0.01, "passed": False, "verdict": "InsufficientSamples",
            "lower": 0.0, "upper": 0.3903, "required": 381,
        },
        "exactMatch": {
            "value": 1.0, "n": 6, "min": 0.5, "passed": True, "verdict": "Passed", "lower": 0.6097, "upper": 1.0,
        },
    },
}  # fmt: skip


def test_a_dataset_too_small_to_show_a_threshold_is_not_a_pass_and_says_what_it_needs() -> None:
    """The user report: six prompts cannot show errorRate <= 0.01; the revision does not serve,
    and the condition and status say the bound, the sample size and the prompts needed."""
    served, ch = to_serving(body())
    served["spec"]["evaluation"] = EVALUATION
    served["spec"]["model"]["revision"] = SHA_B
    b, ch, _ = _evaluating(served, ch)
    job = _eval_job(ch)
    job_done(ch, "Failed", "PodFailurePolicy", prefix="m-eval-")
    p = plan(b, Observations(children=ch, pods=[job_pod(job, 1, json.dumps(INSUFFICIENT))]), T0)
    assert "m-stable" not in {o["metadata"]["name"] for o in p.apply}
    ev = cond(p, c.EVALUATED)
    assert ev["status"] == "False" and ev["reason"] == c.INSUFFICIENT_SAMPLES
    assert (
        "errorRate 0.00 (95% upper bound 0.39 at n=6) cannot show ≤ 0.01: needs ≥ 381 prompts"
        in ev["message"]
    )
    assert "add prompts to the dataset" in ev["message"] and ev["message"].endswith("; it will not serve")
    assert "exactMatch" not in ev["message"]  # it passed
    assert p.status["phase"] == "Failed" and p.status["servingRevision"] == SHA_A
    status = p.status["evaluation"]
    assert (status["passed"], status["verdict"], status["confidence"]) == (False, "InsufficientSamples", 0.95)
    assert status["counts"] == {"samples": 6, "errors": 0, "retried": 0, "retries": 0}
    errors = next(m for m in status["metrics"] if m["metric"] == "errorRate")
    assert errors == {
        "metric": "errorRate", "value": 0.0, "passed": False, "max": 0.01, "verdict": "InsufficientSamples",
        "samples": 6, "lower": 0.0, "upper": 0.3903, "requiredSamples": 381,
    }  # fmt: skip
    assert any(e.type == "Warning" and e.reason == c.INSUFFICIENT_SAMPLES for e in p.events)

    # The recorded verdict keeps its reason and numbers once the Job is gone.
    ch = children_of(p, ch)
    ch.pop(("Job", job), None)
    p2 = plan(with_status(p, b), Observations(children=ch), T0)
    again = cond(p2, c.EVALUATED)
    assert (again["reason"], again["message"]) == (ev["reason"], ev["message"])


def test_an_imperfect_rate_short_of_its_bound_says_what_its_rate_would_need() -> None:
    summary = {
        **INSUFFICIENT,
        "metrics": {
            "errorRate": {"value": 0.01, "n": 100, "max": 0.05, "passed": False,
                          "verdict": "InsufficientSamples", "lower": 0.0018, "upper": 0.0545, "required": 115},
        },
    }  # fmt: skip
    served, ch = to_serving(body())
    served["spec"]["evaluation"] = EVALUATION
    served["spec"]["model"]["revision"] = SHA_B
    b, ch, _ = _evaluating(served, ch)
    job = _eval_job(ch)
    job_done(ch, "Failed", "PodFailurePolicy", prefix="m-eval-")
    p = plan(b, Observations(children=ch, pods=[job_pod(job, 1, json.dumps(summary))]), T0)
    assert (
        "errorRate 0.01 (95% upper bound 0.054 at n=100) cannot show ≤ 0.05: needs about 115 prompts at this rate"
        in cond(p, c.EVALUATED)["message"]
    )


def test_a_passed_rate_shows_its_bound_in_the_condition() -> None:
    passed = {
        **PASSED,
        "metrics": {
            "exactMatch": {"value": 1.0, "n": 40, "min": 0.8, "passed": True, "verdict": "Passed",
                           "lower": 0.9124, "upper": 1.0},
        },
    }  # fmt: skip
    b, ch, _ = _evaluating(body(evaluation=EVALUATION))
    job = _eval_job(ch)
    job_done(ch, prefix="m-eval-")
    p = plan(b, Observations(children=ch, pods=[job_pod(job, 0, json.dumps(passed))]), T0)
    assert cond(p, c.EVALUATED)["message"].endswith(
        "passed its evaluation (1 threshold(s)): exactMatch 1.00 (95% lower bound 0.91 at n=40) ≥ 0.8"
    )


def test_broken_evaluation_is_not_a_failed_model() -> None:
    b, ch, _ = _evaluating(body(evaluation=EVALUATION))
    job = _eval_job(ch)
    job_done(ch, "Failed", "BackoffLimitExceeded", prefix="m-eval-")
    broken = {
        "verdict": "Broken",
        "exitCode": 2,
        "message": "dataset qa.jsonl:3: missing 'prompt' or 'messages'",
    }
    p = plan(b, Observations(children=ch, pods=[job_pod(job, 2, json.dumps(broken))]), T0)
    ev = cond(p, c.EVALUATED)
    assert ev["reason"] == c.EVALUATION_JOB_FAILED
    assert "qa.jsonl:3" in ev["message"] and "says nothing about the model" in ev["message"]
    assert f"delete Job {job}" in ev["message"]
    assert ("Job", job) not in p.delete  # kept: it marks the attempt as done
    assert ("Deployment", "m-staging") in p.delete
    assert "passed" not in p.status["evaluation"]
    assert p.status["phase"] == "Failed"
    assert "Deployment" not in kinds(p)


@pytest.mark.parametrize("controller_says_the_code", [True, False], ids=["from-the-job", "from-the-summary"])
def test_an_evaluation_given_a_bad_dataset_fails_at_once_and_is_broken_not_a_failed_model(
    controller_says_the_code: bool,
) -> None:
    # Exit 3 fails the Job by the pod failure policy, as exit 1 (a failed model) does: the Job
    # controller's message names the code, and without it the summary says Broken.
    b, ch, _ = _evaluating(body(evaluation=EVALUATION))
    job = _eval_job(ch)
    exit_code = 3 if controller_says_the_code else 0
    job_done(ch, "Failed", "PodFailurePolicy", prefix="m-eval-", exit_code=exit_code)
    broken = {"verdict": "Broken", "exitCode": 3, "message": "qa.jsonl:2: missing 'prompt' or 'messages'"}
    p = plan(b, Observations(children=ch, pods=[job_pod(job, 3, json.dumps(broken))]), T0)
    ev = cond(p, c.EVALUATED)
    assert (ev["status"], ev["reason"]) == (c.FALSE, c.EVALUATION_JOB_FAILED)
    assert "not retried, a retry would read the same input: qa.jsonl:2: missing" in ev["message"], ev
    assert "says nothing about the model" in ev["message"] and f"delete Job {job}" in ev["message"]
    assert p.status["evaluation"]["broken"] == ev["message"]
    assert "passed" not in p.status["evaluation"] and "metrics" not in p.status["evaluation"]
    assert p.status["phase"] == "Failed"


def test_a_failed_model_is_read_from_the_job_controllers_exit_code() -> None:
    # The summary unreadable (its pod gone): the Job's own message still says exit 1, a verdict.
    b, ch, _ = _evaluating(body(evaluation=EVALUATION))
    job_done(ch, "Failed", "PodFailurePolicy", prefix="m-eval-", exit_code=1)
    p = plan(b, Observations(children=ch), T0)
    ev = cond(p, c.EVALUATED)
    assert (ev["status"], ev["reason"]) == (c.FALSE, c.EVALUATION_FAILED)
    assert p.status["evaluation"]["passed"] is False


def test_an_evaluation_job_whose_pods_are_refused_says_so_after_a_minute() -> None:
    b, ch, _ = _evaluating(body(evaluation=EVALUATION))
    job = _eval_job(ch)
    ch[("Job", job)]["metadata"]["creationTimestamp"] = T0.strftime("%Y-%m-%dT%H:%M:%SZ")
    waiting = plan(b, Observations(children=ch), T0 + dt.timedelta(seconds=30))
    assert cond(waiting, c.EVALUATED)["reason"] == c.EVALUATION_RUNNING
    assert waiting.requeue_after is not None and waiting.requeue_after <= 30
    p = plan(b, Observations(children=ch), T0 + dt.timedelta(seconds=90))
    ev = cond(p, c.EVALUATED)
    assert (ev["status"], ev["reason"]) == (c.UNKNOWN, c.JOB_PODS_REFUSED)
    assert f"its pod cannot run: Job {job} has made no pod in 60s" in ev["message"], ev["message"]


def test_an_evaluation_job_whose_pods_a_quota_refuses_quotes_the_quota() -> None:
    b, ch, _ = _evaluating(body(evaluation=EVALUATION))
    job = _eval_job(ch)
    ch[("Job", job)]["metadata"]["creationTimestamp"] = T0.strftime("%Y-%m-%dT%H:%M:%SZ")
    quota = f'Error creating: pods "{job}-x" is forbidden: exceeded quota: compute, requested: cpu=250m'
    p = plan(b, Observations(children=ch, job_refusals={job: quota}), T0 + dt.timedelta(seconds=10))
    ev = cond(p, c.EVALUATED)
    assert (ev["status"], ev["reason"]) == (c.UNKNOWN, c.JOB_PODS_REFUSED)
    assert f"its pod cannot run: Job {job} cannot make its pod: {quota}." in ev["message"], ev["message"]


def test_scheduled_re_evaluation_of_the_serving_revision() -> None:
    scheduled = {**EVALUATION, "schedule": "0 * * * *"}
    served, ch = to_serving(body())
    served["spec"]["evaluation"] = scheduled
    p = plan(served, Observations(children=ch), T0)
    cron = next(o for o in p.apply if o["kind"] == "CronJob")
    assert cron["metadata"]["name"] == "m-eval-scheduled"
    assert cron["spec"]["schedule"] == "0 * * * *" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    job_spec = cron["spec"]["jobTemplate"]["spec"]
    args = job_spec["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--endpoint") + 1] == "http://m.ns.svc.cluster.local:80"  # production
    assert args[args.index("--model-revision") + 1] == SHA_A
    labels = cron["spec"]["jobTemplate"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "evaluation-scheduled"

    # The CronJob's first run finished with a failed threshold.
    ch = children_of(p, ch)
    run = "m-eval-scheduled-29000000"
    owner = [{"kind": "CronJob", "name": "m-eval-scheduled", "uid": "u-9", "controller": True}]
    ch[("Job", run)] = {
        "kind": "Job",
        "metadata": {"name": run, "labels": labels, "ownerReferences": owner},
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}]},
    }
    b = with_status(p, served)
    p = plan(b, Observations(children=ch, pods=[job_pod(run, 1, json.dumps(FAILED))]), T0)
    got = p.status["scheduledEvaluation"]
    assert got["job"] == run and got["passed"] is False and got["revision"] == SHA_A
    assert p.status["history"][-1]["action"] == "ScheduledEvaluation"
    # The same verdict as the gate's, without the gate's consequence: this revision keeps serving.
    assert (
        p.status["history"][-1]["message"]
        == f"revision {SHA_A} failed its evaluation: exactMatch 0.3 < min 0.8"
    )
    assert any(e.type == "Warning" and "exactMatch 0.3" in e.message for e in p.events)
    # A missed threshold is reported as such: whether the score *dropped* is drift.quality's call,
    # made against the gate's score (there is none to compare with here).
    assert p.status["history"][-1]["reason"] == c.SCHEDULED_EVALUATION_FAILED
    assert all(e.reason != c.EVAL_SCORE_DROPPED for e in p.events)
    assert ("Job", run) not in p.delete  # the CronJob's, not ours
    assert p.status["servingRevision"] == SHA_A  # reported, not acted upon
    again = plan(with_status(p, b), Observations(children=ch, pods=[job_pod(run, 1, json.dumps(FAILED))]), T0)
    assert not again.status_changed


def test_a_staging_pod_short_of_gpus_says_what_it_requests_and_what_is_free() -> None:
    """The gate needs the GPUs of one more replica while it runs: when none are free the
    Evaluated condition counts them, as Degraded does for a serving pod."""
    b, ch = pods_starting(body(evaluation=EVALUATION), "m-staging")
    nodes = [GpuNode("gpu-0", {}, allocatable=4, requested=4, schedulable=True)]
    p = plan(b, Observations(children=ch, pods=[pod_without_gpu("staging")], gpu_nodes=nodes), T0)
    evaluated = cond(p, c.EVALUATED)
    assert (evaluated["status"], evaluated["reason"]) == ("Unknown", c.INSUFFICIENT_GPU), evaluated
    assert "each pod requests 1 nvidia.com/gpu" in evaluated["message"], evaluated
    assert "0 of 4 are free on the 1 matching node(s)" in evaluated["message"], evaluated
