"""Statuses at each phase of real runs, checked against the Argo CD health check, and recorded.

Each scenario drives the operator into one state (a Secret missing, a download under way with
its progress, an evaluation running, serving, a canary progressing, a canary without GPUs, a
rollback, a failed download or evaluation, an evaluation with too few prompts to show its
threshold, drift detected, a retrain Job running, a retrained candidate waiting for manual
approval, an approval naming no run, a retrained candidate worse than what serves, a retrained model
serving that spec.model does not name, a capture store with no ready pod, a replica lost to a GPU
gone, spec.replicas 0); the status is snapshotted
the moment the state is reached, and the Argo CD health check (real Lua) must give the expected
health with the operator's own message.

With ``LLMOPS_RECORD_STATUSES=1`` (``make argocd-fixtures``) the snapshots are written to
tests/fixtures/recorded_statuses.yaml, which the unit tier replays; names are normalised so
that a re-recording changes only what the operator says.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from llmops_dev.cluster import Cluster
from llmops_dev.cluster.nodes import GPUS_PER_NODE
from llmops_dev.loadgen import Traffic
from testkit import get_json, wait_for
from testkit.argocd import RECORDED, check_case
from testkit.datasets import QA, apply_qa, jsonl
from testkit.nodes import dedicated_gpu_node, placement_on
from testkit.operator import OperatorProcess, condition, configure_hub, llmd, sample, set_behaviour
from testkit.retrain import trainer_job_template

A, B = "1" * 40, "2" * 40
GOOD, BAD = "3" * 40, "4" * 40
FEW, TUNED = "5" * 40, "6" * 40
WORSE = "7" * 40
EVALUATION = {
    "dataset": {"configMapRef": {"name": "qa", "key": "qa.jsonl"}},
    "thresholds": [{"metric": "exactMatch", "min": 0.8}],
    "concurrency": 2,
    "timeoutSeconds": 10,
    "maxNewTokens": 16,
}
ERRORS = {"name": "errors", "template": "tgi-error-ratio", "thresholdRange": {"max": 0.02}}
ROLLOUT: dict[str, Any] = {
    "steps": [{"setWeight": 50, "pause": {"duration": "10m"}}],
    "analysis": {"interval": "4s", "failureLimit": 2, "inconclusiveLimit": 20, "metrics": [ERRORS]},
    "progressDeadlineSeconds": 600,
}
DRIFT = {
    "interval": "3s",
    "window": "10s",
    "traffic": {"signals": ["inputLength"], "minSamples": 150, "psi": 0.2, "ks": 0.2},
}
_recorded: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module", autouse=True)
def record() -> Iterator[None]:
    yield
    if os.environ.get("LLMOPS_RECORD_STATUSES") == "1" and _recorded:
        old = yaml.safe_load(RECORDED.read_text()) if RECORDED.exists() else {}
        merged = {**(old or {}), **_recorded}
        header = "# Recorded by `make argocd-fixtures` (tests/integration/test_argocd_recorded_statuses.py): do not edit.\n"
        RECORDED.write_text(header + yaml.safe_dump(merged, sort_keys=True, width=120))


def _normalised(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The object as Argo CD sees it, without what changes from run to run (namespace, uid)."""
    text = json.dumps({"metadata": obj["metadata"], "status": obj.get("status") or {}}).replace(
        namespace, "demo"
    )
    kept = json.loads(text)
    meta = kept["metadata"]
    return {
        "apiVersion": "llmops.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": meta["name"], "namespace": "demo", "generation": meta["generation"]},
        "status": kept["status"],
    }


def _snapshot(
    cluster: Cluster,
    namespace: str,
    name: str,
    case: str,
    reached: Callable[[dict[str, Any]], bool],
    timeout: float,
) -> dict[str, Any]:
    """Wait until the live object is in the state of ``case``; check its health, record it."""

    def probe() -> dict[str, Any] | None:
        obj = llmd(cluster, namespace, name)
        st = obj.get("status") or {}
        current = st.get("observedGeneration") == obj["metadata"]["generation"]
        return obj if current and reached(obj) else None

    obj = wait_for(f"{name}: {case}", probe, timeout, 0.2)
    snap = _normalised(obj, namespace)
    check_case(case, snap)
    _recorded[case] = snap
    return obj


def _wait_serving(cluster: Cluster, namespace: str, name: str) -> None:
    wait_for(
        f"{name} serving",
        lambda: (llmd(cluster, namespace, name).get("status") or {}).get("phase") == "Serving",
        150,
    )


def _phase(phase: str) -> Callable[[dict[str, Any]], bool]:
    return lambda obj: obj["status"].get("phase") == phase


def _reason(type_: str, reason: str) -> Callable[[dict[str, Any]], bool]:
    return lambda obj: condition(obj, type_).get("reason") == reason


def _downloading(obj: dict[str, Any]) -> bool:
    """Caching, with the download's progress in status.download (read from the Job's endpoint)."""
    download = obj["status"].get("download") or {}
    return obj["status"].get("phase") == "Caching" and bool(
        download.get("bytesDone") and download.get("progress")
    )


def _canary_state(state: str) -> Callable[[dict[str, Any]], bool]:
    return (
        lambda obj: obj["status"].get("phase") == "Canary"
        and (obj["status"].get("canary") or {}).get("state") == state
    )


def _apply(cluster: Cluster, namespace: str, body: str | dict[str, Any]) -> None:
    cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=body if isinstance(body, str) else json.dumps(body)
    )


def _dataset(cluster: Cluster, namespace: str) -> None:
    apply_qa(cluster, namespace)
    # Five of the prompts: a perfect score cannot show exactMatch >= 0.8 at 95% (InsufficientSamples).
    few = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "qa-few"},
        "data": {"qa.jsonl": jsonl(QA[:5])},
    }
    _apply(cluster, namespace, few)


def _behave(cluster: Cluster, revision: str, **behaviour: Any) -> None:
    assert cluster.state_dir is not None
    set_behaviour(cluster, revision, dataset=str(cluster.state_dir / "qa.jsonl"), **behaviour)


def test_pending_caching_serving_and_failed_download(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    configure_hub(
        cluster,
        slow={"sim-org/slow-chat": 40},
        weights={"sim-org/slow-chat": 60 * 1024 * 1024},
        missing=["sim-org/missing-chat"],
    )
    secret_ref = {"id": "sim-org/tiny-chat", "revision": A, "tokenSecretRef": {"name": "missing"}}
    _apply(cluster, namespace, sample("nosecret", A, model=secret_ref))
    _apply(cluster, namespace, sample("slow", A, model={"id": "sim-org/slow-chat", "revision": A}))
    _apply(cluster, namespace, sample("served", A))
    _apply(cluster, namespace, sample("nopvc", A, cache={"size": "1Gi", "storageClassName": "no-such-class"}))
    _apply(cluster, namespace, sample("missing", A, model={"id": "sim-org/missing-chat", "revision": A}))
    store = {"storageClassName": "no-such-class"}  # the store's PVC is never bound: no store pod
    _apply(cluster, namespace, sample("capdown", A, gateway={"capture": {"store": store}}))
    _snapshot(cluster, namespace, "nosecret", "secret-missing", _reason("ModelCached", "SecretNotFound"), 90)
    caching = _snapshot(cluster, namespace, "slow", "caching", _downloading, 120)
    assert caching["status"]["download"]["progress"] in condition(caching, "ModelCached")["message"]
    _snapshot(cluster, namespace, "served", "serving", _phase("Serving"), 120)
    _snapshot(cluster, namespace, "nopvc", "pvc-not-bound", _reason("ModelCached", "PVCNotBound"), 90)
    _snapshot(cluster, namespace, "missing", "failed-download", _phase("Failed"), 120)
    unavailable = _reason("CaptureDegraded", "StoreUnavailable")
    _snapshot(cluster, namespace, "capdown", "capture-store-unavailable", unavailable, 120)


def test_evaluating_and_failed_evaluation(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    _dataset(cluster, namespace)
    _behave(cluster, GOOD, accuracy=1.0, latency_seconds=0.5)
    _behave(cluster, BAD, accuracy=0.3)
    _behave(cluster, FEW, accuracy=1.0)
    _apply(cluster, namespace, sample("evaluating", GOOD, evaluation=EVALUATION))
    _apply(cluster, namespace, sample("flunks", BAD, evaluation=EVALUATION))
    few = {**EVALUATION, "dataset": {"configMapRef": {"name": "qa-few", "key": "qa.jsonl"}}}
    _apply(cluster, namespace, sample("few", FEW, evaluation=few))
    _snapshot(cluster, namespace, "evaluating", "evaluating", _phase("Evaluating"), 150)
    _snapshot(cluster, namespace, "flunks", "failed-evaluation", _phase("Failed"), 180)
    _snapshot(
        cluster, namespace, "few", "insufficient-samples", _reason("Evaluated", "InsufficientSamples"), 180
    )


def test_canary_progressing_then_rolled_back(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    set_behaviour(cluster, A)
    set_behaviour(cluster, B, error_rate=0.2, error_kind="overloaded")
    body = json.loads(sample("errs", A, rollout=ROLLOUT))
    body["spec"]["replicas"] = 2
    assert cluster.state_dir is not None
    with Traffic(cluster.state_dir, namespace, "errs"):
        _apply(cluster, namespace, body)
        _wait_serving(cluster, namespace, "errs")
        body["spec"]["model"]["revision"] = B
        _apply(cluster, namespace, body)
        # Once the canary pod is ready (until then the stable pod it replaced is missing: Degraded).
        canary_up = _canary_state("Progressing")
        up = lambda obj: canary_up(obj) and condition(obj, "Degraded").get("status") == "False"  # noqa: E731
        _snapshot(cluster, namespace, "errs", "canary-progressing", up, 120)
        _snapshot(cluster, namespace, "errs", "rolled-back", _phase("RolledBack"), 180)


def test_canary_paused_without_gpus(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    """On a node of its own with 8 GPUs, the stable pod takes all 8: the canary's pod, which needs
    8 GPUs too, cannot be scheduled and the canary pauses."""
    body = json.loads(sample("nogpu", A, rollout=ROLLOUT))
    body["spec"]["resources"]["gpu"]["count"] = GPUS_PER_NODE
    with dedicated_gpu_node(cluster, f"gpu-{namespace}") as node:
        body["spec"]["placement"] = placement_on(node)
        _apply(cluster, namespace, body)
        _wait_serving(cluster, namespace, "nogpu")
        body["spec"]["model"]["revision"] = B
        _apply(cluster, namespace, body)
        _snapshot(cluster, namespace, "nogpu", "canary-paused-no-gpu", _canary_state("Paused"), 150)


def test_a_replica_lost_to_a_gpu_gone_and_a_deployment_scaled_to_zero(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    """Two replicas of one GPU each on a node of its own with two GPUs. The node then reports one
    GPU (a GPU gone bad: its device plugin lowers what the node can allocate) and a pod is
    deleted: its replacement cannot be scheduled, and the rolled-out revision is Degraded with
    the scheduler's reason, the other replica still serving. Beside it, spec.replicas 0 is done."""
    _apply(cluster, namespace, sample("zero", A, replicas=0))
    body = json.loads(sample("lost", A, replicas=2))
    with dedicated_gpu_node(cluster, f"gpu-{namespace}", gpus=2) as node:
        body["spec"]["placement"] = placement_on(node)
        _apply(cluster, namespace, body)
        wait_for(
            "lost: 2/2 ready",
            lambda: (llmd(cluster, namespace, "lost").get("status") or {}).get("ready") == "2/2",
            150,
        )
        one_gpu = {"capacity": {"nvidia.com/gpu": "1"}, "allocatable": {"nvidia.com/gpu": "1"}}
        cluster.kubectl(
            "patch",
            "node",
            node,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": one_gpu}),
        )
        pods = get_json(
            cluster, "pods", "-n", namespace, "-l", "llmops.io/deployment=lost,llmops.io/track=stable"
        )
        cluster.kubectl(
            "delete", "pod", "-n", namespace, pods["items"][0]["metadata"]["name"], "--wait=false"
        )
        lost = _snapshot(cluster, namespace, "lost", "replica-lost", _phase("Degraded"), 90)
        assert condition(lost, "Degraded")["reason"] == "InsufficientGPU"
        assert condition(lost, "Available")["status"] == "True"
    _snapshot(cluster, namespace, "zero", "scaled-to-zero", _reason("Available", "ScaledToZero"), 120)


def test_drifted_while_serving(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    """Prompts far longer than those of the reference frozen at promotion: Drifted=True while the
    model keeps serving (no spec.retrain: nothing else happens)."""
    set_behaviour(cluster, A)
    body = sample("drifty", A, drift=DRIFT, monitoring={"podMonitor": {"interval": "1s"}})
    _apply(cluster, namespace, body)
    _wait_serving(cluster, namespace, "drifty")
    assert cluster.state_dir is not None
    with Traffic(cluster.state_dir, namespace, "drifty", rate=100, prompt_words=(20, 120)) as traffic:
        wait_for(
            "drifty: a reference and no drift",
            lambda: condition(llmd(cluster, namespace, "drifty"), "Drifted").get("reason") == "NoDrift",
            120,
        )
        traffic.prompt_words = (300, 500)
        _snapshot(cluster, namespace, "drifty", "drifted", _reason("Drifted", "DriftDetected"), 90)


def test_retraining_awaiting_approval_and_a_retrained_model_serving(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    """A retrain run on the annotation (Retraining), its candidate held for manual approval after
    its gate (Suspended), an approval naming no run, then approved: it serves, and spec.model does
    not name it. Beside it, a retrained candidate worse than what serves is rejected."""
    _dataset(cluster, namespace)
    _behave(cluster, A, accuracy=1.0)
    _behave(cluster, TUNED, accuracy=1.0)
    _behave(cluster, WORSE, accuracy=0.6)  # above the lenient gate's 0.3, far below what serves
    retrain = {
        "jobTemplate": trainer_job_template("sim-org/tiny-chat", TUNED, sleep=8),
        "approval": "Manual",
        "maxRetrainsPerDay": 2,
    }
    worse = {
        "jobTemplate": trainer_job_template("sim-org/tiny-chat", WORSE, sleep=0),
        "noWorseThan": [{"metric": "exactMatch", "maxDrop": 0.05}],
    }
    lenient = {**EVALUATION, "thresholds": [{"metric": "exactMatch", "min": 0.3}]}
    _apply(cluster, namespace, sample("tuned", A, evaluation=EVALUATION, retrain=retrain))
    _apply(cluster, namespace, sample("worse", A, evaluation=lenient, retrain=worse))
    _wait_serving(cluster, namespace, "tuned")
    _wait_serving(cluster, namespace, "worse")
    cluster.kubectl("annotate", "llmd", "tuned", "worse", "-n", namespace, "llmops.io/retrain=1")
    _snapshot(cluster, namespace, "tuned", "retraining", _phase("Retraining"), 60)
    _snapshot(cluster, namespace, "tuned", "candidate-awaiting-approval", _candidate("AwaitingApproval"), 180)
    _snapshot(
        cluster, namespace, "worse", "candidate-rejected-worse", _reason("Candidate", "CandidateWorse"), 180
    )
    cluster.kubectl("annotate", "llmd", "tuned", "-n", namespace, "llmops.io/approve-retrain=tuned-retrain-7")
    unknown_run = _reason("Candidate", "ApprovalUnknownRun")
    _snapshot(cluster, namespace, "tuned", "candidate-approval-unknown-run", unknown_run, 60)
    approve = "llmops.io/approve-retrain=tuned-retrain-1"
    cluster.kubectl("annotate", "--overwrite", "llmd", "tuned", "-n", namespace, approve)
    serving = lambda obj: _candidate("Promoted")(obj) and obj["status"].get("phase") == "Serving"  # noqa: E731
    _snapshot(cluster, namespace, "tuned", "retrained-model-serving", serving, 120)


def _candidate(state: str) -> Callable[[dict[str, Any]], bool]:
    return lambda obj: (obj["status"].get("candidate") or {}).get("state") == state
