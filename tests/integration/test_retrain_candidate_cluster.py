"""The retrained candidate's road end to end (issue 12): a retrain Job (a pod the fake kubelet runs,
reporting through its termination message) → candidate → download through the real
huggingface_hub client → staging pod and a real evaluation Job against the TGI simulator →
no worse than what serves → approval → canary → promoted, with the lineage in status and Events.

The simulators answer the dataset correctly for a chosen fraction of prompts per revision, so a
candidate can be made better or worse than what serves.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from huggingface_hub import InferenceClient

from llmops.api.constants import OPERATOR_IMAGE
from llmops.capture_store.records import held_out
from llmops_dev.cluster import Cluster
from llmops_dev.loadgen import Traffic
from testkit import get_json, restricted, unique, wait_for
from testkit.datasets import QA, apply_qa
from testkit.datasets import QA_EVALUATION as EVALUATION
from testkit.network import through_the_cluster
from testkit.operator import (
    OperatorProcess,
    condition,
    configure_hub,
    llmd,
    sample,
    set_behaviour,
    wait_condition,
)
from testkit.volumes import static_volume

MODEL = "sim-org/tiny-chat"
# Canaries without Prometheus analysis (the canary's own tests cover it), except in the first test.
ROLLOUT: dict[str, Any] = {
    "steps": [{"setWeight": 50, "pause": {"duration": "3s"}}],
    "analysis": {"metrics": []},
    "progressDeadlineSeconds": 120,
}
ERRORS = {"name": "errors", "template": "error-ratio", "thresholdRange": {"max": 0.02}}
ANALYSED = {
    **ROLLOUT,
    "analysis": {"interval": "4s", "failureLimit": 2, "inconclusiveLimit": 8, "metrics": [ERRORS]},
}
# The trainer writes its report to the termination message path it is given (the fake kubelet
# maps /dev/termination-log to the pod's own file), after ``sleep`` seconds.
TRAINER = (
    "import json, os, sys, time\n"
    "report, sleep, path = sys.argv[1], float(sys.argv[2]), sys.argv[3]\n"
    "for folder in sys.argv[4:]:  # a LoRA adapter's folder, written to the model cache\n"
    "    os.makedirs(folder, exist_ok=True)\n"
    "    open(os.path.join(folder, 'adapter_config.json'), 'w').write(json.dumps({'peft_type': 'LORA'}))\n"
    "time.sleep(sleep)\n"
    "open(path, 'w').write(report)\n"
)


def rev(tag: str) -> str:
    return hashlib.sha1(tag.encode()).hexdigest()


def _retrain(report: dict[str, Any], approval: str = "Auto", sleep: float = 0.0) -> dict[str, Any]:
    container = {
        "name": "train",
        "image": OPERATOR_IMAGE,
        "command": ["python", "-c", TRAINER, json.dumps(report), str(sleep), "/dev/termination-log"],
    }
    pod = restricted({"restartPolicy": "Never", "containers": [container]})
    return {
        "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": pod}}},
        "approval": approval,
        "cooldown": "1s",
        "maxRetrainsPerDay": 24,
        "noWorseThan": [{"metric": "exactMatch", "maxDrop": 0.05}],
    }


def _adapter_retrain(name: str, report: dict[str, Any], folder: str) -> dict[str, Any]:
    """A retrain run that writes an adapter's folder to the model cache (its PVC, mounted at /data
    as in the server pods) and reports it."""
    retrain = _retrain(report)
    pod = retrain["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    container["command"].append(folder)
    container["volumeMounts"] = [{"name": "model-cache", "mountPath": "/data"}]
    pod["volumes"] = [{"name": "model-cache", "persistentVolumeClaim": {"claimName": f"{name}-model-cache"}}]
    return retrain


def _dataset(cluster: Cluster, namespace: str) -> None:
    apply_qa(cluster, namespace)


def _behave(cluster: Cluster, revision: str, accuracy: float) -> None:
    assert cluster.state_dir is not None
    set_behaviour(cluster, revision, dataset=str(cluster.state_dir / "qa.jsonl"), accuracy=accuracy)


def _serve(
    cluster: Cluster,
    namespace: str,
    name: str,
    base: str,
    retrain: dict[str, Any],
    rollout: Any = ROLLOUT,
    evaluation: Any = EVALUATION,
) -> dict[str, Any]:
    """Apply the LLMDeployment at ``base`` and wait until it serves with its gate scores kept."""
    _dataset(cluster, namespace)
    body = json.loads(sample(name, base, evaluation=evaluation, rollout=rollout, retrain=retrain))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    wait_for(
        f"{name} serves {base} with its gate scores",
        lambda: _status(cluster, namespace, name).get("serving", {}).get("scores")
        and _status(cluster, namespace, name).get("phase") == "Serving",
        180,
        0.5,
    )
    return body


def _status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return llmd(cluster, namespace, name).get("status") or {}


def _until(cluster: Cluster, namespace: str, name: str, what: str, probe: Any, timeout: float) -> Any:
    """wait_for, and on a timeout the status and the retrain/candidate children as they were."""
    try:
        return wait_for(what, probe, timeout, 0.5)
    except AssertionError as exc:
        st = _status(cluster, namespace, name)
        shown = {
            k: st.get(k)
            for k in ("phase", "servingRevision", "serving", "candidate", "retrain", "evaluation")
        }
        shown["conditions"] = [
            (c["type"], c["status"], c.get("reason"), c.get("message")) for c in st.get("conditions") or []
        ]
        shown["history"] = [(h["action"], h.get("message", "")[:200]) for h in st.get("history") or []]
        jobs = get_json(cluster, "jobs,deployments,pods", "-n", namespace).get("items", [])
        shown["children"] = [
            (o["kind"], o["metadata"]["name"], o.get("status", {}).get("phase")) for o in jobs
        ]
        raise AssertionError(f"{exc}\n{json.dumps(shown, indent=1)[:8000]}") from None


def _candidate_state(cluster: Cluster, namespace: str, name: str, state: str, timeout: float = 240) -> None:
    _until(
        cluster,
        namespace,
        name,
        f"the candidate {state}",
        lambda: _status(cluster, namespace, name).get("candidate", {}).get("state") == state,
        timeout,
    )


def _annotate(cluster: Cluster, namespace: str, name: str, key: str, value: str) -> None:
    cluster.kubectl("annotate", "llmdeployment", name, "-n", namespace, f"{key}={value}", "--overwrite")


def _retrain_jobs(cluster: Cluster, namespace: str, name: str) -> list[str]:
    selector = f"llmops.io/deployment={name},app.kubernetes.io/component=retrain"
    return [
        j["metadata"]["name"] for j in get_json(cluster, "jobs", "-n", namespace, "-l", selector)["items"]
    ]


def _stable(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return get_json(cluster, "deployment", f"{name}-stable", "-n", namespace)


def _events(cluster: Cluster, namespace: str, name: str) -> list[str]:
    items = get_json(
        cluster, "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}"
    ).get("items", [])
    return [str(e.get("reason")) for e in items]


def test_auto_approval_takes_a_retrained_candidate_through_gate_and_canary_to_promotion(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    base, tuned = rev("auto-base"), rev("auto-tuned")
    _behave(cluster, base, 0.8)
    _behave(cluster, tuned, 0.95)
    body = _serve(cluster, namespace, "auto", base, _retrain({"model": MODEL, "revision": tuned}), ANALYSED)
    with Traffic(cluster.state_dir, namespace, "auto"):  # the canary is judged on its error ratio
        _annotate(cluster, namespace, "auto", "llmops.io/retrain", "shifted-traffic")
        _candidate_state(cluster, namespace, "auto", "Promoted")
    obj = llmd(cluster, namespace, "auto")
    st = obj["status"]
    assert st["servingRevision"] == tuned and st["phase"] == "Serving"
    assert st["serving"]["origin"] == "auto-retrain-1" and st["serving"]["model"] == MODEL
    assert _stable(cluster, namespace, "auto")["metadata"]["annotations"]["llmops.io/model-revision"] == tuned
    comparison = st["candidate"]["comparison"][0]
    assert (
        comparison["metric"] == "exactMatch" and comparison["serving"] == 0.8 and comparison["value"] >= 0.9
    )
    pinned = condition(obj, "PinnedToSpec")
    assert (pinned["status"], pinned["reason"]) == ("False", "RetrainedModelServing")
    assert f"revision: {tuned}" in pinned["message"]
    actions = [h["action"] for h in st["history"]]
    lineage = ["RetrainStarted", "RetrainSucceeded", "Evaluated", "CandidateRolling", "CanaryStarted"]
    for action in [*lineage, "Promoting", "Promoted", "CandidatePromoted"]:
        assert action in actions, actions
    loop = actions[actions.index("RetrainStarted") :]  # the serving revision's own gate came before
    assert [loop.index(a) for a in lineage] == sorted(loop.index(a) for a in lineage), loop
    reasons = wait_for(
        "the story in Events",
        lambda: (r := _events(cluster, namespace, "auto")) and "CandidatePromoted" in r and r,
        30,
        0.5,
    )
    assert {"RetrainRunning", "RetrainSucceeded", "CandidateApproved", "Promoted"} <= set(reasons)

    # Pinning what serves in git rolls nothing: same revision, the origin becomes spec.
    generation = _stable(cluster, namespace, "auto")["metadata"]["generation"]
    body = json.loads(
        sample(
            "auto",
            tuned,
            evaluation=EVALUATION,
            rollout=ROLLOUT,
            retrain=_retrain({"model": MODEL, "revision": tuned}),
        )
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    wait_condition(cluster, namespace, "auto", "PinnedToSpec", "True", "SpecModelServing")
    assert _status(cluster, namespace, "auto")["serving"]["origin"] == "spec"
    assert _stable(cluster, namespace, "auto")["metadata"]["generation"] == generation


def test_manual_approval_holds_the_candidate_until_the_annotation_names_its_run(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    base, tuned = rev("manual-base"), rev("manual-tuned")
    _behave(cluster, base, 0.8)
    _behave(cluster, tuned, 0.9)
    _serve(
        cluster, namespace, "manual", base, _retrain({"model": MODEL, "revision": tuned}, approval="Manual")
    )
    # A value naming a run this LLMDeployment never had, set ahead: named in the condition, acts on nothing.
    _annotate(cluster, namespace, "manual", "llmops.io/approve-retrain", "manual-retrain-7")
    _annotate(cluster, namespace, "manual", "llmops.io/retrain", "1")
    obj = wait_condition(
        cluster, namespace, "manual", "Candidate", "Unknown", "ApprovalUnknownRun", timeout=180
    )
    assert "manual-retrain-7" in condition(obj, "Candidate")["message"]
    assert obj["status"]["candidate"]["state"] == "AwaitingApproval"
    assert condition(obj, "Progressing")["reason"] == "RetrainAwaitingApproval"
    assert obj["status"]["servingRevision"] == base
    assert not get_json(cluster, "deployment", "manual-canary", "-n", namespace)
    _annotate(cluster, namespace, "manual", "llmops.io/approve-retrain", "manual-retrain-1")
    _candidate_state(cluster, namespace, "manual", "Promoted", 180)
    # Run 2 with the annotation still naming run 1: stale, it approves nothing.
    newer = rev("manual-tuned-2")
    _behave(cluster, newer, 0.92)
    body = json.loads(
        sample(
            "manual",
            base,
            evaluation=EVALUATION,
            rollout=ROLLOUT,
            retrain=_retrain({"model": MODEL, "revision": newer}, approval="Manual"),
        )
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    _annotate(cluster, namespace, "manual", "llmops.io/retrain", "2")
    obj = wait_for(
        "run 2 awaiting approval",
        lambda: (o := llmd(cluster, namespace, "manual"))
        and (o["status"].get("candidate") or {}).get("run") == "manual-retrain-2"
        and o["status"]["candidate"]["state"] == "AwaitingApproval"
        and o,
        180,
        0.5,
    )
    assert "names an earlier run" in condition(obj, "Candidate")["message"]
    assert obj["status"]["servingRevision"] == tuned


def test_a_candidate_worse_than_what_serves_never_serves_and_status_says_by_how_much(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    base, worse = rev("worse-base"), rev("worse-tuned")
    _behave(cluster, base, 0.9)
    _behave(
        cluster, worse, 0.6
    )  # shown above the gate's 0.3 (Wilson bound 0.39 at n=20), far below what serves
    lenient = {**EVALUATION, "thresholds": [{"metric": "exactMatch", "min": 0.3}]}
    _serve(
        cluster, namespace, "worse", base, _retrain({"model": MODEL, "revision": worse}), evaluation=lenient
    )
    _annotate(cluster, namespace, "worse", "llmops.io/retrain", "1")
    obj = wait_condition(cluster, namespace, "worse", "Candidate", "False", "CandidateWorse", timeout=180)
    message = condition(obj, "Candidate")["message"]
    # Judged prompt by prompt: the evaluation Job scored what serves on the same prompts.
    assert "paired on the same prompts: worse than the baseline: exactMatch 0.90 → 0.60" in message, message
    assert "beyond maxDrop 0.05" in message and "it will not serve" in message, message
    judged = obj["status"]["candidate"]["comparison"][0]
    assert (judged["value"], judged["serving"], judged["passed"]) == (0.6, 0.9, False)
    wait_for(
        "back to Serving", lambda: _status(cluster, namespace, "worse").get("phase") == "Serving", 60, 0.5
    )
    st = _status(cluster, namespace, "worse")
    assert st["servingRevision"] == base and st["serving"]["origin"] == "spec"
    assert _stable(cluster, namespace, "worse")["metadata"]["annotations"]["llmops.io/model-revision"] == base
    assert not get_json(cluster, "deployment", "worse-canary", "-n", namespace)


def test_a_report_naming_a_revision_that_does_not_exist_is_rejected_and_serving_is_untouched(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    base, ghost = rev("ghost-base"), rev("ghost-never-pushed")
    _behave(cluster, base, 0.9)
    configure_hub(cluster, absent={MODEL: [ghost]})
    _serve(cluster, namespace, "ghost", base, _retrain({"model": MODEL, "revision": ghost}))
    _annotate(cluster, namespace, "ghost", "llmops.io/retrain", "1")
    obj = wait_condition(cluster, namespace, "ghost", "Candidate", "False", "DownloadFailed", timeout=180)
    message = condition(obj, "Candidate")["message"]
    assert ghost in message and "keeps serving" in message, message
    wait_for(
        "back to Serving", lambda: _status(cluster, namespace, "ghost").get("phase") == "Serving", 60, 0.5
    )
    assert _status(cluster, namespace, "ghost")["servingRevision"] == base
    assert condition(llmd(cluster, namespace, "ghost"), "Available")["status"] == "True"


def _trainer(command: list[str]) -> dict[str, Any]:
    """spec.retrain whose Job runs ``command`` (python) once."""
    retrain = _retrain({})
    pod = retrain["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]  # restricted: the namespace's Pod Security admits nothing else
    container["command"] = ["python", "-c", *command]
    return retrain


def test_a_failed_job_and_a_garbage_report_are_conditions_and_serving_is_untouched(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    """Runs that produce nothing: a Job whose trainer exits 3 is RetrainFailed with the Job's
    reason, and a Job that completes with a termination message that is not JSON is
    RetrainReportInvalid saying what to write; both keep serving what served, with no candidate.
    A Job whose pods Pod Security refuses is JobPodsRefused with the refusal, and runs once fixed."""
    base = rev("broken-base")
    _behave(cluster, base, 0.9)
    crash = ["import sys; print('out of memory', file=sys.stderr); sys.exit(3)"]
    garbage = ["import sys; open(sys.argv[1], 'w').write('loss=0.12 done')", "/dev/termination-log"]
    refused = _trainer(garbage)
    pod = refused["jobTemplate"]["spec"]["template"]["spec"]
    pod.pop("securityContext")  # root allowed: the namespace's restricted Pod Security refuses the pod
    runs = {"crash": _trainer(crash), "garbage": _trainer(garbage), "refused": refused}
    _dataset(cluster, namespace)
    for name, retrain in runs.items():
        body = sample(name, base, evaluation=EVALUATION, rollout=ROLLOUT, retrain=retrain)
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=body)
    for name in runs:
        wait_for(
            f"{name} serves",
            lambda n=name: _status(cluster, namespace, n).get("phase") == "Serving",
            180,
            0.5,
        )
        _annotate(cluster, namespace, name, "llmops.io/retrain", "1")

    failed = wait_condition(cluster, namespace, "crash", "Retrained", "False", "RetrainFailed", timeout=120)
    message = condition(failed, "Retrained")["message"]
    assert "retrain Job crash-retrain-1 failed (BackoffLimitExceeded" in message, message
    invalid = wait_condition(
        cluster, namespace, "garbage", "Retrained", "False", "RetrainReportInvalid", timeout=120
    )
    message = condition(invalid, "Retrained")["message"]
    assert "garbage-retrain-1 completed but its report names no model" in message, message
    assert "40-hex revision" in message and "loss=0.12 done" in message, message
    for name, obj in (("crash", failed), ("garbage", invalid)):
        status = _status(cluster, namespace, name)
        assert status["servingRevision"] == base and status["phase"] == "Serving", status
        assert "candidate" not in status or not status["candidate"], status["candidate"]
        assert condition(obj, "Available")["status"] == "True"
        assert [h["action"] for h in status["history"]][-2:] == ["RetrainStarted", "RetrainFailed"], status[
            "history"
        ]

    # A Job whose pods the apiserver refuses says so, quoting the refusal from the Job's
    # FailedCreate Events (the Job itself says nothing), well before the minute's grace that
    # applies when no Event can be read; once the template is fixed and the Job deleted, the
    # operator makes it again and it runs.
    stuck = wait_condition(
        cluster, namespace, "refused", "Retrained", "Unknown", "JobPodsRefused", timeout=150
    )
    message = condition(stuck, "Retrained")["message"]
    assert "Job refused-retrain-1 cannot make its pod: " in message, message
    assert 'violates PodSecurity "restricted:latest"' in message, message
    assert condition(stuck, "Progressing")["reason"] == "JobPodsRefused", condition(stuck, "Progressing")
    assert _status(cluster, namespace, "refused")["servingRevision"] == base
    body = json.loads(
        sample("refused", base, evaluation=EVALUATION, rollout=ROLLOUT, retrain=_trainer(garbage))
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    cluster.kubectl("delete", "job", "refused-retrain-1", "-n", namespace)
    ran = wait_condition(
        cluster, namespace, "refused", "Retrained", "False", "RetrainReportInvalid", timeout=120
    )
    assert (
        "refused-retrain-1 completed but its report names no model" in condition(ran, "Retrained")["message"]
    )


def test_a_restart_mid_retrain_starts_no_second_job_and_a_spec_change_abandons_it(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    base, tuned, moved = rev("spec-base"), rev("spec-tuned"), rev("spec-moved")
    for revision in (base, tuned, moved):
        _behave(cluster, revision, 0.9)
    body = _serve(cluster, namespace, "spec", base, _retrain({"model": MODEL, "revision": tuned}, sleep=600))
    _annotate(cluster, namespace, "spec", "llmops.io/retrain", "1")
    _until(
        cluster,
        namespace,
        "spec",
        "Retraining",
        lambda: _status(cluster, namespace, "spec").get("phase") == "Retraining",
        60,
    )
    assert _retrain_jobs(cluster, namespace, "spec") == ["spec-retrain-1"]
    operator.restart()
    # The restarted operator's passes find run 1 in status: it follows that Job (and, below,
    # abandons it), never starting a second one.
    body["spec"]["model"]["revision"] = moved
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    # The restarted operator takes its lease and lists everything first: allow for a loaded machine.
    obj = wait_condition(cluster, namespace, "spec", "Retrained", "False", "RetrainAbandoned", timeout=150)
    assert obj["status"]["retrain"]["state"] == "Abandoned" and obj["status"]["retrain"]["runs"] == 1
    assert "spec-retrain-1" in condition(obj, "Retrained")["message"]
    _until(
        cluster,
        namespace,
        "spec",
        "its Job deleted",
        lambda: not _retrain_jobs(cluster, namespace, "spec"),
        60,
    )
    _until(
        cluster,
        namespace,
        "spec",
        "spec wins",
        lambda: _status(cluster, namespace, "spec").get("servingRevision") == moved,
        180,
    )
    st = _status(cluster, namespace, "spec")
    assert st["retrain"]["runs"] == 1 and st["serving"]["origin"] == "spec"


def test_a_lora_adapter_serves_on_the_base_model_through_gate_canary_and_the_service(
    cluster: Cluster, namespace: str, operator: OperatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that reports a LoRA adapter: the candidate's pods run the base model with
    LORA_ADAPTERS, the gateway names the adapter in every request, so the gate and the canary judge
    base + adapter (the adapter answers better than the base alone), and once promoted the
    Service's answers come from the adapter, through the real huggingface_hub client."""
    assert cluster.state_dir is not None
    base, adapter = rev("lora-base"), f"lora-{namespace[-8:]}"  # the behaviours folder is shared
    probe = "Which weights answer?"  # no reference: each answers it with its default answer
    dataset = str(cluster.state_dir / "qa.jsonl")
    set_behaviour(cluster, base, dataset=dataset, accuracy=0.8, default_answer="the base")
    folder = "/data/adapters/lora-retrain-1"
    adapter_file = cluster.state_dir / "behaviours" / f"adapter-{adapter}.json"
    adapter_file.write_text(
        json.dumps({"dataset": dataset, "accuracy": 1.0, "default_answer": "the adapter"})
    )
    report = {"adapter": {"path": folder, "name": adapter}}
    _serve(cluster, namespace, "lora", base, _adapter_retrain("lora", report, folder))
    _annotate(cluster, namespace, "lora", "llmops.io/retrain", "1")
    _candidate_state(cluster, namespace, "lora", "Promoted", 180)

    st = _status(cluster, namespace, "lora")
    served = {"name": adapter, "path": folder, "baseRevision": base}
    assert st["serving"]["adapter"] == served and st["serving"]["model"] == MODEL
    assert st["serving"]["origin"] == "lora-retrain-1" and st["servingRevision"].startswith(
        f"{base}+{adapter}-"
    )
    # The gate and the canary judged base + adapter: its score is the adapter's, not the base's.
    comparison = st["candidate"]["comparison"][0]
    assert (comparison["serving"], comparison["value"]) == (0.8, 1.0), comparison
    assert {"CanaryStarted", "Promoted", "CandidatePromoted"} <= {h["action"] for h in st["history"]}
    containers = {
        c["name"]: c for c in _stable(cluster, namespace, "lora")["spec"]["template"]["spec"]["containers"]
    }
    env = {e["name"]: e.get("value") for e in containers["server"]["env"]}
    assert (env["REVISION"], env["LORA_ADAPTERS"]) == (base, f"{adapter}={folder}")
    assert containers["gateway"]["args"][containers["gateway"]["args"].index("--adapter") + 1] == adapter

    # Through the Service, clients that name no adapter get the adapter's answers.
    through_the_cluster(monkeypatch, cluster)
    client = InferenceClient(base_url=f"http://lora.{namespace}.svc.cluster.local")
    assert client.text_generation(probe, max_new_tokens=20, return_full_text=False) == "the adapter"
    chat = client.chat_completion([{"role": "user", "content": probe}], max_tokens=20)
    assert chat.choices[0].message.content == "the adapter"

    # Pinned as PinnedToSpec says: the same revision, nothing rolls, the origin becomes spec.
    pinned = condition(llmd(cluster, namespace, "lora"), "PinnedToSpec")
    assert f"adapter: {{name: {adapter}, path: {folder}}}" in pinned["message"], pinned
    generation = _stable(cluster, namespace, "lora")["metadata"]["generation"]
    body = json.loads(
        sample(
            "lora",
            base,
            evaluation=EVALUATION,
            rollout=ROLLOUT,
            retrain=_adapter_retrain("lora", report, folder),
        )
    )
    body["spec"]["model"]["adapter"] = {"name": adapter, "path": folder}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    wait_condition(cluster, namespace, "lora", "PinnedToSpec", "True", "SpecModelServing")
    assert _status(cluster, namespace, "lora")["serving"]["origin"] == "spec"
    assert _stable(cluster, namespace, "lora")["metadata"]["generation"] == generation


CORRECTED = {f"Spell the word number {i} backwards": f"drow {i}" for i in range(40)}
"""Prompts users asked, and the answers their feedback said they wanted."""


def _capture_corrections(url: str, token: str, fraction: float) -> list[str]:
    """Captured requests with a correction each, posted to the store as the gateways would; the
    IDs of those in the held-out view."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    records, held = [], []
    for i, (prompt, answer) in enumerate(CORRECTED.items()):
        rid = f"corr-{i:03d}"
        held += [rid] if held_out(rid, fraction) else []
        base = {"time": now, "requestId": rid, "revision": rev("held-base"), "track": "stable"}
        records.append({**base, "kind": "request", "messages": [{"role": "user", "content": prompt}]})
        records.append({**base, "kind": "feedback", "rating": "down", "correction": answer})
    body = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    with httpx2.Client(timeout=30) as http:
        wait_for(
            "the capture store to take the records",
            lambda: http.post(f"{url}/v1/records", content=body, headers=headers).status_code == 200,
            60,
            0.5,
        )
    return held


def test_a_candidate_that_loses_on_the_held_out_corrections_never_serves(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The serving revision answers the corrected prompts as users wanted; the candidate is as good
    on the dataset but answers them wrong. Its gate reads the held-out corrections from a real
    capture store, scores both on them, and the candidate is rejected with the numbers."""
    assert cluster.state_dir is not None
    name, base, tuned = "heldout", rev("held-base"), rev("held-tuned")
    pv, store_class = unique("held-out"), "held-out-hostpath"
    volume = tmp_path / "volume"
    volume.mkdir(mode=0o777)
    volume.chmod(0o777)
    cluster.kubectl(
        "apply", "-f", "-",
        input=static_volume(pv, volume, namespace=namespace, claim=f"{name}-capture", storage_class=store_class, size="64Mi"),
    )  # fmt: skip
    try:
        _dataset(cluster, namespace)
        everything = cluster.state_dir / "qa-and-corrections.jsonl"
        lines = [
            *QA,
            *({"messages": [{"role": "user", "content": p}], "reference": a} for p, a in CORRECTED.items()),
        ]
        everything.write_text("".join(json.dumps(x) + "\n" for x in lines))
        set_behaviour(cluster, base, dataset=str(everything), accuracy=1.0)
        _behave(cluster, tuned, 1.0)  # the dataset only: the corrected prompts get a wrong answer
        held = {"corrections": {"fraction": 0.5, "window": "1h", "minRecords": 10}}
        capture = {"sampleRate": 1.0, "store": {"size": "64Mi", "storageClassName": store_class}}
        body = json.loads(
            sample(
                name, base, evaluation={**EVALUATION, "heldOut": held},
                retrain=_retrain({"model": MODEL, "revision": tuned}),
                rollout=ROLLOUT, gateway={"capture": capture},
            )
        )  # fmt: skip
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
        _until(
            cluster, namespace, name, "serving with its gate scores",
            lambda: _status(cluster, namespace, name).get("phase") == "Serving"
            and _status(cluster, namespace, name).get("serving", {}).get("scores"),
            180,
        )  # fmt: skip
        assert "heldOut" not in _status(cluster, namespace, name)["evaluation"]  # gates: Candidates
        secret = get_json(cluster, "secret", f"{name}-gateway", "-n", namespace)
        token = base64.b64decode(secret["data"]["capture-token"]).decode()
        through_the_cluster(monkeypatch, cluster)
        held_ids = _capture_corrections(
            f"http://{name}-capture.{namespace}.svc.cluster.local:8080", token, 0.5
        )
        assert len(held_ids) >= 10, held_ids

        _annotate(cluster, namespace, name, "llmops.io/retrain", "1")
        obj = wait_condition(cluster, namespace, name, "Candidate", "False", "CandidateWorse", timeout=240)
        message = condition(obj, "Candidate")["message"]
        n = len(held_ids)
        assert (
            f"held-out corrections (n={n}): paired on the same prompts: worse than the baseline: exactMatch 1.00 → 0.00"
            in message
        ), message
        assert f"{n} prompt(s) lost, 0 won, n={n}" in message and "it will not serve" in message, message
        st = obj["status"]
        report = st["evaluation"]["heldOut"]
        assert (report["verdict"], report["records"], report["minRecords"]) == ("Passed", n, 10), report
        assert {"metric": "exactMatch", "value": 0.0, "samples": n} in report["metrics"]
        on_held = next(e for e in st["candidate"]["comparison"] if e.get("set") == "heldOut")
        assert (on_held["value"], on_held["serving"], on_held["drop"], on_held["passed"]) == (
            0.0,
            1.0,
            1.0,
            False,
        )
        dataset = next(e for e in st["candidate"]["comparison"] if "set" not in e)
        assert dataset["passed"], dataset  # as good as what serves on the dataset
        wait_for(
            "back to Serving", lambda: _status(cluster, namespace, name).get("phase") == "Serving", 60, 0.5
        )
        assert _status(cluster, namespace, name)["servingRevision"] == base
        assert (
            _stable(cluster, namespace, name)["metadata"]["annotations"]["llmops.io/model-revision"] == base
        )
    finally:
        cluster.kubectl("delete", "llmd", name, "-n", namespace, "--wait=false", check=False)
        cluster.kubectl("delete", "pv", pv, "--wait=false", check=False)
