"""The closed loop with nobody in it (issue 12): traffic shifts → Drifted=True → the operator
starts the retrain Job itself (no annotation) → the Job, the sample trainer
(manifests/samples/trainer/publish_revision.py) run by the fake kubelet, publishes a new revision
to the simulated Hub with huggingface_hub's upload API and reports it → candidate → download →
gate → no worse than what serves → canary → promoted, with the lineage in status.history.

Every stage is the real one and has its own tests; this one proves they chain, on the fastest
settings each of those tests uses (3 s drift checks over 10 s windows, a 3 s canary step without
analysis).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from llmops_dev.cluster import Cluster
from llmops_dev.loadgen import Traffic
from llmops_dev.trainer import publish_retrain_spec, trainer_objects
from testkit import get_json, wait_for
from testkit.datasets import QA_EVALUATION as EVALUATION
from testkit.datasets import apply_qa
from testkit.operator import (
    OperatorProcess,
    configure_hub,
    llmd,
    sample,
    set_behaviour,
    wait_condition,
)

ROLLOUT = {
    "steps": [{"setWeight": 50, "pause": {"duration": "3s"}}],
    "analysis": {"metrics": []},
    "progressDeadlineSeconds": 120,
}
DRIFT = {
    "interval": "3s",
    "window": "10s",
    "traffic": {"signals": ["inputLength"], "minSamples": 150, "psi": 0.2, "ks": 0.2},
}
LINEAGE = [
    "DriftDetected",
    "RetrainStarted",
    "RetrainSucceeded",
    "Evaluated",
    "CandidateRolling",
    "CanaryStarted",
    "Promoted",
    "CandidatePromoted",
]


def rev(tag: str) -> str:
    return hashlib.sha1(tag.encode()).hexdigest()


def _apply(cluster: Cluster, namespace: str, *objects: dict[str, Any]) -> None:
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
    )


def _status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return llmd(cluster, namespace, name).get("status") or {}


def _story(st: dict[str, Any]) -> str:
    shown = {k: st.get(k) for k in ("phase", "servingRevision", "serving", "candidate", "retrain")}
    shown["history"] = [(h["action"], h.get("message", "")[:160]) for h in st.get("history") or []]
    return json.dumps(shown, indent=1)[:6000]


def test_drift_starts_a_retrain_whose_published_revision_is_gated_canaried_and_promoted(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    name = "loop"
    base, tuned = rev(f"{namespace}-base"), rev(f"{namespace}-tuned")
    target = f"sim-org/{namespace}-tuned"
    answers = apply_qa(cluster, namespace)
    set_behaviour(cluster, base, dataset=str(answers), accuracy=0.9)
    set_behaviour(cluster, tuned, dataset=str(answers), accuracy=0.95)
    # The target repo does not exist until the trainer's create_repo; its first push gets `tuned`
    # (the simulators' behaviour is keyed by revision, so the test must know it ahead).
    configure_hub(cluster, missing=[target], pushes={target: [tuned]})
    _apply(cluster, namespace, *trainer_objects(name, "hf_dev_write_token"))
    body = sample(
        name,
        base,
        evaluation=EVALUATION,
        rollout=ROLLOUT,
        drift=DRIFT,
        monitoring={"podMonitor": {"interval": "1s"}},
        retrain=publish_retrain_spec(name, target),
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=body)
    wait_condition(cluster, namespace, name, "Available", "True", timeout=180)

    with Traffic(cluster.state_dir, namespace, name, rate=100, prompt_words=(20, 120)) as traffic:
        wait_condition(cluster, namespace, name, "Drifted", "False", "NoDrift", timeout=120)
        assert not _status(cluster, namespace, name).get("retrain", {}).get("runs")
        traffic.prompt_words = (300, 500)  # the users' prompts got longer
        try:
            wait_for(
                "the drift-triggered candidate promoted",
                lambda: (_status(cluster, namespace, name).get("candidate") or {}).get("state") == "Promoted",
                240,
                0.5,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_story(_status(cluster, namespace, name))}") from None
    obj = llmd(cluster, namespace, name)
    st = obj["status"]
    assert "llmops.io/retrain" not in (obj["metadata"].get("annotations") or {})
    assert st["servingRevision"] == tuned and st["phase"] == "Serving", _story(st)
    assert st["serving"]["model"] == target and st["serving"]["origin"] == f"{name}-retrain-1", _story(st)
    # kubectl get llmd names the model that serves, the retrained one, with its revision.
    row = cluster.kubectl("get", "llmd", name, "-n", namespace, "--no-headers").stdout.split()
    assert row[2:4] == [target, tuned], row
    retrain = st["retrain"]
    assert retrain["runs"] == 1 and retrain["trigger"].startswith("drift: inputLength: PSI "), retrain
    assert (retrain["candidateModel"], retrain["candidateRevision"]) == (target, tuned), retrain
    history = st["history"]
    actions = [h["action"] for h in history]
    loop = actions[actions.index("DriftDetected") :]
    assert all(a in loop for a in LINEAGE), _story(st)
    assert [loop.index(a) for a in LINEAGE] == sorted(loop.index(a) for a in LINEAGE), _story(st)
    started = next(h for h in history if h["action"] == "RetrainStarted")
    assert f"Job {name}-retrain-1: drift: inputLength: PSI " in started["message"], started
    succeeded = next(h for h in history if h["action"] == "RetrainSucceeded")
    assert f"{target}@{tuned}" in succeeded["message"], succeeded
    job = get_json(cluster, "job", f"{name}-retrain-1", "-n", namespace)
    assert job["status"].get("succeeded") == 1, job.get("status")
