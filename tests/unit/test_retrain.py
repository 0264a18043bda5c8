"""Retrain Jobs in ``plan()``: started on drift or on the annotation, within the cooldown and the
daily cap, one at a time and never twice; followed to a candidate, a failure or a bad report."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest
from test_drift import LONG, MINUTE, hist, measured
from test_drift import frozen as drift_frozen

from llmops.analysis.results import Error
from llmops.api import conditions as c
from llmops.lifecycle.diagnose import jobs_without_pods
from llmops.lifecycle.observations import Observations
from llmops.lifecycle.plan import Plan, plan
from testkit.planning import SHA_A, cond, job_pod, with_status

EVALUATION = {
    "dataset": {"configMapRef": {"name": "qa", "key": "qa.jsonl"}},
    "thresholds": [{"metric": "exactMatch", "min": 0.5}],
}
TRAINER = {
    "name": "train",
    "image": "registry.local/trainer:1",
    "env": [{"name": "LLMOPS_RUN_ID", "value": "x"}],
}
RETRAIN = {
    "jobTemplate": {
        "metadata": {"labels": {"team": "ml"}},
        "spec": {"backoffLimit": 0, "template": {"spec": {"containers": [TRAINER]}}},
    },
    "approval": "Auto",
    "cooldown": "1h",
    "maxRetrainsPerDay": 2,
}
NEW_SHA = "c" * 40
HOUR = dt.timedelta(hours=1)


def drifted_with_retrain() -> tuple[dict[str, Any], dict, dt.datetime, Plan]:
    """Serving with a frozen reference and spec.retrain; then a check that finds drift."""
    b, ch, now = drift_frozen()
    b["spec"]["evaluation"] = EVALUATION
    b["spec"]["retrain"] = copy.deepcopy(RETRAIN)
    b, p = measured(b, ch, now + MINUTE, current=hist(LONG))
    return b, ch, now + MINUTE, p


def applied_jobs(p: Plan) -> list[dict[str, Any]]:
    return [o for o in p.apply if o["kind"] == "Job" and "-retrain-" in o["metadata"]["name"]]


def finish(ch: dict, job: dict[str, Any], state: str, reason: str = "") -> None:
    """The Job as the cluster has it now, finished."""
    obj = copy.deepcopy(job)
    obj["status"] = {"conditions": [{"type": state, "status": "True", "reason": reason}]}
    ch[("Job", job["metadata"]["name"])] = obj


def test_drift_starts_a_retrain_job_with_the_contract() -> None:
    *_, p = drifted_with_retrain()
    [job] = applied_jobs(p)
    assert job["metadata"]["name"] == "m-retrain-1"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "LLMDeployment"
    assert job["metadata"]["labels"]["team"] == "ml"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "retrain"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 0
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["LLMOPS_BASE_MODEL"] == "org/model" and env["LLMOPS_BASE_REVISION"] == SHA_A
    assert env["LLMOPS_RUN_ID"] == "m-retrain-1"  # the contract's, not the template's "x"
    assert env["LLMOPS_TRIGGER"].startswith("drift: inputLength: PSI ")
    st = p.status["retrain"]
    assert (st["state"], st["runs"], st["job"], st["baseRevision"]) == ("Running", 1, "m-retrain-1", SHA_A)
    assert st["startTimes"] == [st["lastStartTime"]]
    assert p.status["phase"] == "Retraining"
    progressing = cond(p, c.PROGRESSING)
    assert (progressing["status"], progressing["reason"]) == (c.TRUE, c.RETRAIN_RUNNING)
    assert progressing["message"].startswith("Retrain Job m-retrain-1 running after drift: inputLength: PSI")
    assert cond(p, c.RETRAINED)["status"] == c.UNKNOWN
    assert p.status["history"][-1]["action"] == "RetrainStarted"


def test_the_contract_says_where_the_data_is_and_where_the_model_goes() -> None:
    # Without spec: the run's folder on the model cache, no dataset (no capture store), no repo.
    *_, p = drifted_with_retrain()
    [job] = applied_jobs(p)
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LLMOPS_OUTPUT_DIR"] == "/data/retrain/m-retrain-1"
    assert "LLMOPS_DATASET_URL" not in env and "LLMOPS_OUTPUT_REPO" not in env
    # With spec.retrain.datasetUrl and outputRepo: given as they are, over the template's own.
    b, ch, now = drift_frozen()
    b["spec"]["evaluation"] = EVALUATION
    b["spec"]["retrain"] = {
        **copy.deepcopy(RETRAIN),
        "datasetUrl": "s3://ml/chat.jsonl",
        "outputRepo": "org/tuned",
    }
    container = b["spec"]["retrain"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "LLMOPS_DATASET_URL", "value": "stale"})
    b, p = measured(b, ch, now + MINUTE, current=hist(LONG))
    [job] = applied_jobs(p)
    env_list = job["spec"]["template"]["spec"]["containers"][0]["env"]
    env = {e["name"]: e["value"] for e in env_list}
    assert env["LLMOPS_DATASET_URL"] == "s3://ml/chat.jsonl" and env["LLMOPS_OUTPUT_REPO"] == "org/tuned"
    assert [e["name"] for e in env_list].count("LLMOPS_DATASET_URL") == 1


def test_with_the_capture_store_the_dataset_is_its_records_since_the_drift_reference() -> None:
    b, ch, now = drift_frozen()
    b["spec"]["evaluation"] = EVALUATION
    b["spec"]["retrain"] = copy.deepcopy(RETRAIN)
    b["spec"]["gateway"] = {"capture": {"sampleRate": 1.0}}
    start = b["status"]["drift"]["reference"]["start"]
    b, p = measured(b, ch, now + MINUTE, current=hist(LONG))
    [job] = applied_jobs(p)
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    since = start.replace(":", "%3A")
    assert env["LLMOPS_DATASET_URL"] == f"http://m-capture.ns.svc:8080/v1/records?since={since}"
    assert p.status["retrain"]["datasetSince"] == start
    # Followed on the next pass: the same Job kept, and where its data begins kept with it.
    ch[("Job", "m-retrain-1")] = copy.deepcopy(job)
    p2 = plan(b, Observations(children=ch), now + 2 * MINUTE)
    assert ("Job", "m-retrain-1") not in p2.delete and not applied_jobs(p2)
    assert p2.status["retrain"]["datasetSince"] == start


def test_one_job_at_a_time_and_never_a_second_after_a_restart_or_a_lost_status_write() -> None:
    before = drift_frozen()[0]
    b, ch, now, p = drifted_with_retrain()
    [job] = applied_jobs(p)
    ch[("Job", "m-retrain-1")] = copy.deepcopy(job)  # created, running
    again = plan(b, Observations(children=ch), now + MINUTE)  # a restarted operator, still drifted
    assert applied_jobs(again) == [] and ("Job", "m-retrain-1") not in again.delete
    assert again.status["retrain"]["runs"] == 1
    # The status write of the starting pass was lost: the pass repeats and names the same Job.
    lost = copy.deepcopy(b)
    lost["status"]["retrain"] = before.get("status", {}).get("retrain")
    repeat = plan(lost, Observations(children=ch), now)
    assert [j["metadata"]["name"] for j in applied_jobs(repeat)] in ([], ["m-retrain-1"])
    assert all(o["metadata"]["name"] == "m-retrain-1" for o in applied_jobs(repeat))


def test_a_reported_candidate_is_recorded_and_the_job_kept() -> None:
    b, ch, now, p = drifted_with_retrain()
    [job] = applied_jobs(p)
    finish(ch, job, "Complete")
    report = json.dumps({"model": "org/model-ft", "revision": NEW_SHA})
    p = plan(b, Observations(children=ch, pods=[job_pod("m-retrain-1", 0, report)]), now + MINUTE)
    st = p.status["retrain"]
    assert (st["state"], st["candidateModel"], st["candidateRevision"]) == (
        "Succeeded",
        "org/model-ft",
        NEW_SHA,
    )
    retrained = cond(p, c.RETRAINED)
    assert (retrained["status"], retrained["reason"]) == (c.TRUE, c.RETRAIN_SUCCEEDED)
    assert retrained["message"] == f"retrain Job m-retrain-1 produced org/model-ft@{NEW_SHA}"
    assert ("Job", "m-retrain-1") not in p.delete
    assert p.status["phase"] == "Serving"
    assert p.status["history"][-1]["action"] == "RetrainSucceeded"


def test_a_reported_lora_adapter_is_recorded_on_the_model_the_run_started_from() -> None:
    b, ch, now, p = drifted_with_retrain()
    [job] = applied_jobs(p)
    finish(ch, job, "Complete")
    report = json.dumps({"adapter": {"path": "/data/adapters/m-retrain-1"}})
    p = plan(b, Observations(children=ch, pods=[job_pod("m-retrain-1", 0, report)]), now + MINUTE)
    adapter = {"name": "m-retrain-1", "path": "/data/adapters/m-retrain-1", "baseRevision": SHA_A}
    assert p.status["retrain"]["candidateAdapter"] == adapter  # the name defaults to the run ID
    assert p.status["candidate"]["adapter"] == adapter and p.status["candidate"]["model"] == "org/model"
    retrained = cond(p, c.RETRAINED)
    assert retrained["message"] == (
        f"retrain Job m-retrain-1 produced org/model@{SHA_A} + LoRA adapter m-retrain-1 "
        "(/data/adapters/m-retrain-1)"
    )


def test_cooldown_and_daily_cap_hold_from_status() -> None:
    b, ch, now, p = drifted_with_retrain()
    [job] = applied_jobs(p)
    # A failed run counts like any other (a candidate on its road would hold the next run anyway).
    finish(ch, job, "Failed", "BackoffLimitExceeded")
    b = with_status(plan(b, Observations(children=ch), now + MINUTE), b)
    # Still drifted, within the hour: no second run, and the status says until when.
    b, p = measured(b, ch, now + 2 * MINUTE, current=hist(LONG))
    assert applied_jobs(p) == []
    assert "the next may start at" in p.status["retrain"]["message"]
    assert [e.reason for e in p.events] == [c.RETRAIN_RATE_LIMITED]
    # After the cooldown: run 2.
    b, p = measured(b, ch, now + HOUR + MINUTE, current=hist(LONG))
    [second] = applied_jobs(p)
    assert second["metadata"]["name"] == "m-retrain-2"
    finish(ch, second, "Failed", "BackoffLimitExceeded")
    b = with_status(plan(b, Observations(children=ch), now + HOUR + 2 * MINUTE), b)
    # Two starts in 24 hours: the cap, even once the cooldown is over.
    b, p = measured(b, ch, now + 3 * HOUR, current=hist(LONG))
    assert applied_jobs(p) == []
    assert "2 started in the last 24 hours (maxRetrainsPerDay)" in p.status["retrain"]["message"]


def test_a_failed_job_is_retrain_failed_with_its_reason() -> None:
    b, ch, now, p = drifted_with_retrain()
    [job] = applied_jobs(p)
    finish(ch, job, "Failed", "BackoffLimitExceeded")
    p = plan(
        b, Observations(children=ch, pods=[job_pod("m-retrain-1", 1, "CUDA out of memory")]), now + MINUTE
    )
    retrained = cond(p, c.RETRAINED)
    assert (retrained["status"], retrained["reason"]) == (c.FALSE, c.RETRAIN_FAILED)
    assert retrained["message"] == "retrain Job m-retrain-1 failed (BackoffLimitExceeded: CUDA out of memory)"
    assert p.status["retrain"]["state"] == "Failed"
    assert p.status["servingRevision"] == SHA_A
    assert any(e.type == "Warning" and e.reason == c.RETRAIN_FAILED for e in p.events)


def created(ch: dict, job: dict[str, Any], when: dt.datetime, status: dict[str, Any] | None = None) -> None:
    """The Job as the cluster has it, created at ``when``, running with ``status``."""
    obj = copy.deepcopy(job)
    obj["metadata"]["creationTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    obj["status"] = status or {}
    ch[("Job", job["metadata"]["name"])] = obj


def test_a_job_without_any_pod_for_a_minute_is_job_pods_refused_and_looked_at_again_when_due() -> None:
    b, ch, now, p = drifted_with_retrain()
    [job] = applied_jobs(p)
    b = with_status(p, b)
    created(
        ch, job, now, {"startTime": "x", "ready": 0}
    )  # what the Job controller writes when pods are refused
    young = plan(b, Observations(children=ch), now + dt.timedelta(seconds=20))
    assert cond(young, c.RETRAINED)["reason"] == c.RETRAIN_RUNNING
    assert young.requeue_after is not None and young.requeue_after <= 40
    old = plan(b, Observations(children=ch), now + dt.timedelta(seconds=61))
    retrained, progressing = cond(old, c.RETRAINED), cond(old, c.PROGRESSING)
    assert (retrained["status"], retrained["reason"]) == (c.UNKNOWN, c.JOB_PODS_REFUSED)
    assert retrained["message"].startswith("Retrain Job m-retrain-1 has made no pod in 60s: the apiserver")
    assert "kubectl describe job m-retrain-1" in retrained["message"]
    assert (progressing["reason"], old.status["phase"]) == (c.JOB_PODS_REFUSED, "Retraining")
    assert (
        applied_jobs(old) == [] and ("Job", "m-retrain-1") not in old.delete
    )  # still wanted, never a second


REFUSAL = (
    'Error creating: pods "m-retrain-1-x" is forbidden: violates PodSecurity "restricted:latest": '
    'runAsNonRoot != true (pod or container "trainer" must set securityContext.runAsNonRoot=true)'
)


def test_a_job_whose_pods_are_refused_quotes_the_refusal_within_seconds() -> None:
    """With the Job's FailedCreate Event read (Observations.job_refusals), the condition says
    what the apiserver refused and why, 10 s after the Job was made, not after the minute's grace."""
    b, ch, now, p = drifted_with_retrain()
    [job] = applied_jobs(p)
    b = with_status(p, b)
    created(ch, job, now, {"startTime": "x", "ready": 0})
    obs = Observations(children=ch)
    # Its Events are read once it has gone 10 s without a pod (younger, the Job controller may
    # only be behind), and the pass comes back then, since Events start none.
    assert jobs_without_pods(obs, now + dt.timedelta(seconds=9)) == []
    soon = plan(b, obs, now + dt.timedelta(seconds=1))
    assert cond(soon, c.RETRAINED)["reason"] == c.RETRAIN_RUNNING
    assert soon.requeue_after == pytest.approx(9.0)
    later = now + dt.timedelta(seconds=10)
    assert [j["metadata"]["name"] for j in jobs_without_pods(obs, later)] == ["m-retrain-1"]
    refused = plan(b, Observations(children=ch, job_refusals={"m-retrain-1": REFUSAL}), later)
    retrained = cond(refused, c.RETRAINED)
    assert (retrained["status"], retrained["reason"]) == (c.UNKNOWN, c.JOB_PODS_REFUSED)
    assert retrained["message"].startswith(f"Retrain Job m-retrain-1 cannot make its pod: {REFUSAL}."), (
        retrained
    )
    assert "delete the Job m-retrain-1: the operator makes it again" in retrained["message"]
    # A Job with a pod has no refusal to read.
    created(ch, job, now, {"active": 1})
    assert jobs_without_pods(Observations(children=ch), later) == []


@pytest.mark.parametrize(
    ("spec", "status"),
    [
        ({"suspend": True}, {}),  # the template's spec.suspend
        ({}, {"conditions": [{"type": "Suspended", "status": "True", "reason": "JobSuspended"}]}),
    ],
)
def test_a_suspended_job_is_said_to_wait_not_to_be_refused(
    spec: dict[str, Any], status: dict[str, Any]
) -> None:
    """A queue such as Kueue suspends a Job until it admits it (GPU quota): no pod for minutes is
    expected then, and it is no refusal to fix and delete the Job for."""
    b, ch, now, p = drifted_with_retrain()
    [job] = applied_jobs(p)
    b = with_status(p, b)
    created(ch, job, now, status)
    ch[("Job", "m-retrain-1")]["spec"].update(spec)
    later = now + dt.timedelta(minutes=5)
    assert jobs_without_pods(Observations(children=ch), later) == []  # no Events to read
    waiting = plan(b, Observations(children=ch), later)
    retrained = cond(waiting, c.RETRAINED)
    assert (retrained["status"], retrained["reason"]) == (c.UNKNOWN, c.JOB_SUSPENDED), retrained
    assert "Retrain Job m-retrain-1 is suspended" in retrained["message"] and "Kueue" in retrained["message"]
    assert cond(waiting, c.PROGRESSING)["reason"] == c.JOB_SUSPENDED
    assert waiting.status["phase"] == "Retraining" and waiting.status["servingRevision"] == SHA_A


def test_a_job_with_a_pod_is_running_however_long_it_runs() -> None:
    b, ch, now, p = drifted_with_retrain()
    [job] = applied_jobs(p)
    b = with_status(p, b)
    later = now + 3 * HOUR
    created(ch, job, now, {"active": 1})  # its pod is not labelled (a user template may drop labels)
    assert cond(plan(b, Observations(children=ch), later), c.RETRAINED)["reason"] == c.RETRAIN_RUNNING
    created(ch, job, now)
    labels = {"llmops.io/deployment": "m", "batch.kubernetes.io/job-name": "m-retrain-1"}
    pods = [{"metadata": {"name": "m-retrain-1-x", "labels": labels}, "status": {"phase": "Pending"}}]
    assert (
        cond(plan(b, Observations(children=ch, pods=pods), later), c.RETRAINED)["reason"] == c.RETRAIN_RUNNING
    )


def test_a_report_that_names_no_model_is_a_condition_saying_what_is_wrong() -> None:
    for report, problem in (
        ("all done!", "its report names no model"),
        (
            json.dumps({"model": "org/model-ft", "revision": "main"}),
            "revision 'main' for org/model-ft is not a 40-hex",
        ),
        (json.dumps({"path": "relative/dir"}), "is not an absolute path"),
        ("", "its termination message is empty"),
        (json.dumps({"adapter": "/data/a"}), "adapter '/data/a' is not an object"),
        (json.dumps({"adapter": {"name": "x"}}), "its report's adapter has no path"),
        (json.dumps({"adapter": {"path": "/tmp/a"}}), "adapter.path '/tmp/a' is not a folder under /data"),
        (json.dumps({"adapter": {"path": "/data/../etc"}}), "is not a folder under /data"),
        (
            json.dumps({"adapter": {"path": "/data/a", "name": "a=b"}}),
            "adapter.name 'a=b' is not an adapter id",
        ),
        (json.dumps({"adapter": {"path": "/data/a", "name": 7}}), "adapter.name '7' is not an adapter id"),
    ):
        b, ch, now, p = drifted_with_retrain()
        [job] = applied_jobs(p)
        finish(ch, job, "Complete")
        pods = [job_pod("m-retrain-1", 0, report)] if report else []
        p = plan(b, Observations(children=ch, pods=pods), now + MINUTE)
        retrained = cond(p, c.RETRAINED)
        assert (retrained["status"], retrained["reason"]) == (c.FALSE, c.RETRAIN_REPORT_INVALID), report
        assert problem in retrained["message"], (report, retrained["message"])


def test_the_annotation_starts_a_retrain_once_per_value() -> None:
    b, ch, now = drift_frozen()
    b["spec"]["evaluation"] = EVALUATION
    b["spec"]["retrain"] = copy.deepcopy(RETRAIN)
    b["metadata"]["annotations"] = {"llmops.io/retrain": "please"}
    p = plan(b, Observations(children=ch), now)
    b = with_status(p, b)
    [job] = applied_jobs(p)
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LLMOPS_TRIGGER"] == "annotation llmops.io/retrain=please"
    assert p.status["retrain"]["annotation"] == "please"
    finish(ch, job, "Failed", "BackoffLimitExceeded")
    b = with_status(plan(b, Observations(children=ch), now + MINUTE), b)
    stale = plan(b, Observations(children=ch), now + 2 * HOUR)
    assert applied_jobs(stale) == []  # the same value does not act twice
    b["metadata"]["annotations"] = {"llmops.io/retrain": "again"}
    assert [
        j["metadata"]["name"] for j in applied_jobs(plan(b, Observations(children=ch), now + 2 * HOUR))
    ] == ["m-retrain-2"]


def test_prometheus_down_starts_no_retrain() -> None:
    b, ch, now = drift_frozen()
    b["spec"]["evaluation"] = EVALUATION
    b["spec"]["retrain"] = copy.deepcopy(RETRAIN)
    down = Error("cannot query Prometheus at http://prom:9090: connection refused", "unreachable")
    b, p = measured(b, ch, now + MINUTE, current=down)
    assert cond(p, c.DRIFTED)["status"] == c.UNKNOWN
    assert (applied_jobs(p) == [] and "retrain" not in p.status) or not p.status["retrain"].get("job")


def test_retraining_turned_off_starts_nothing() -> None:
    b, ch, now = drift_frozen()
    b["spec"]["evaluation"] = EVALUATION
    b["spec"]["retrain"] = {**copy.deepcopy(RETRAIN), "maxRetrainsPerDay": 0}
    b, p = measured(b, ch, now + MINUTE, current=hist(LONG))
    assert applied_jobs(p) == []
    assert p.status["retrain"]["message"] == "retraining is off: spec.retrain.maxRetrainsPerDay is 0"


def test_a_pass_with_nothing_new_writes_nothing() -> None:
    b, ch, now, p = drifted_with_retrain()
    [job] = applied_jobs(p)
    ch[("Job", "m-retrain-1")] = copy.deepcopy(job)
    b = with_status(plan(b, Observations(children=ch), now + MINUTE), b)
    # As the apiserver stores it (JSON, no nulls), then one more pass: nothing changes.
    stored = json.loads(json.dumps(b))
    again = plan(stored, Observations(children=ch), now + MINUTE)
    assert not again.status_changed and not again.apply
