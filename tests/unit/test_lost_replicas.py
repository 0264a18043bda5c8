"""A revision that was rolled out and then loses replicas (a pod crash-loops, a replacement finds
no GPU) is Degraded, phase and condition, with the reason its pods show; a replica that is only
starting again (replaced, or added by a scale-up) is not; a first rollout partly up is still
rolling out. Kubernetes says which of these it is: the Deployment's Progressing condition keeps
reason NewReplicaSetAvailable from the moment its rollout completed until its template changes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from llmops.api import conditions as c
from llmops.contracts import format_timestamp
from llmops.lifecycle.diagnose import MOUNT_GRACE_SECONDS
from llmops.lifecycle.observations import Observations
from llmops.lifecycle.plan import Plan
from testkit.argocd import run_health_check
from testkit.planning import (
    SHA_A,
    T0,
    Children,
    body,
    children_of,
    cond,
    lose_replicas,
    plan,
    pod_without_gpu,
    rollout,
    server_pod,
    to_serving,
    with_status,
)

LATER = T0 + dt.timedelta(hours=1)


CRASHING = server_pod(
    phase="Running",
    containerStatuses=[
        {
            "name": "server",
            "ready": False,
            "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"reason": "Error", "exitCode": 1}},
        }
    ],
)
NO_GPU = pod_without_gpu()
STARTING = server_pod(
    phase="Running",
    conditions=[{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
    containerStatuses=[{"name": "server", "ready": False, "restartCount": 0, "state": {"running": {}}}],
)


def _serving(replicas: int = 2) -> tuple[dict[str, Any], Children]:
    """Every replica of revision A ready once: the rollout is complete."""
    b, ch = to_serving(body(replicas=replicas))
    rollout(ch, ready=replicas, replicas=replicas)
    p = plan(b, Observations(children=ch), LATER)
    assert p.status["phase"] == "Serving"
    assert cond(p, c.PROGRESSING)["reason"] == c.ROLLOUT_COMPLETE
    return with_status(p, b), children_of(p, ch)


def _after_loss(ready: int, *pods: dict[str, Any], replicas: int = 2) -> Plan:
    b, ch = _serving(replicas)
    lose_replicas(ch, ready=ready)
    return plan(b, Observations(children=ch, pods=list(pods)), LATER + dt.timedelta(minutes=1))


def test_a_replica_crash_looping_after_the_rollout_is_degraded() -> None:
    p = _after_loss(1, CRASHING)
    assert p.status["phase"] == "Degraded"
    degraded = cond(p, c.DEGRADED)
    assert (degraded["status"], degraded["reason"]) == ("True", c.CRASH_LOOP)
    assert degraded["message"].startswith(
        f"1/2 replicas of revision {SHA_A} ready: the server keeps crashing"
    )
    assert cond(p, c.AVAILABLE)["status"] == "True"  # the ready one still serves
    assert any(e.type == "Warning" and e.reason == c.CRASH_LOOP for e in p.events)
    health = run_health_check({"metadata": {"generation": 1}, "status": p.status})
    assert health == {"status": "Degraded", "message": degraded["message"]}


def test_a_replacement_with_no_gpu_left_is_degraded_and_says_so() -> None:
    p = _after_loss(1, NO_GPU)
    assert p.status["phase"] == "Degraded"
    degraded = cond(p, c.DEGRADED)
    assert (degraded["status"], degraded["reason"]) == ("True", c.INSUFFICIENT_GPU)
    assert "1/2 replicas" in degraded["message"] and "nvidia.com/gpu" in degraded["message"]
    assert any(e.type == "Warning" and e.reason == c.INSUFFICIENT_GPU for e in p.events)


def test_every_replica_lost_to_a_shortage_is_degraded_not_pending() -> None:
    p = _after_loss(0, NO_GPU)
    assert p.status["phase"] == "Degraded"
    assert cond(p, c.AVAILABLE)["reason"] == c.INSUFFICIENT_GPU
    assert cond(p, c.DEGRADED)["message"].startswith(f"0/2 replicas of revision {SHA_A} ready")


def test_every_replica_crash_looping_fails_as_before() -> None:
    assert _after_loss(0, CRASHING).status["phase"] == "Failed"


def test_a_replica_starting_again_is_neither_degraded_nor_a_rollout() -> None:
    p = _after_loss(1, STARTING)
    assert p.status["phase"] == "Serving"
    assert cond(p, c.DEGRADED)["status"] == "False"
    progressing = cond(p, c.PROGRESSING)
    assert (progressing["status"], progressing["reason"]) == ("True", c.REPLICAS_STARTING)
    assert progressing["message"].startswith(f"1/2 replicas of revision {SHA_A} ready; 1 starting")
    assert p.status["ready"] == "1/2"


def test_a_scale_up_is_progressing_not_degraded() -> None:
    b, ch = _serving(replicas=2)
    b["spec"]["replicas"] = 3
    b["metadata"]["generation"] += 1
    p = plan(b, Observations(children=ch), LATER + dt.timedelta(minutes=1))
    b, ch = with_status(p, b), children_of(p, ch)
    # kube-controller-manager adds a pod of the same ReplicaSet: the rollout stays complete.
    dep = ch[("Deployment", "m-stable")]
    dep["status"] = {**dep["status"], "replicas": 3, "updatedReplicas": 3}
    lose_replicas(ch, ready=2)
    p = plan(b, Observations(children=ch, pods=[STARTING]), LATER + dt.timedelta(minutes=2))
    assert p.status["phase"] == "Serving"
    assert cond(p, c.DEGRADED)["status"] == "False"
    assert cond(p, c.PROGRESSING)["reason"] == c.REPLICAS_STARTING
    assert p.status["ready"] == "2/3"


def test_a_first_rollout_partly_up_is_still_rolling_out() -> None:
    b, ch = to_serving(body(replicas=2))
    rollout(ch, ready=1, replicas=2)
    p = plan(b, Observations(children=ch, pods=[CRASHING]), LATER)
    assert p.status["phase"] == "Serving"
    assert cond(p, c.DEGRADED)["reason"] == c.CRASH_LOOP  # permanent: reported as before
    rollout(ch, ready=1, replicas=2)
    p = plan(b, Observations(children=ch, pods=[STARTING]), LATER)
    assert cond(p, c.PROGRESSING)["reason"] == c.ROLLING_UPDATE
    assert cond(p, c.DEGRADED)["status"] == "False"


def test_degraded_clears_once_the_replicas_are_back() -> None:
    b, ch = _serving()
    lose_replicas(ch, ready=1)
    p = plan(b, Observations(children=ch, pods=[NO_GPU]), LATER + dt.timedelta(minutes=1))
    assert p.status["phase"] == "Degraded"
    b, ch = with_status(p, b), children_of(p, ch)
    lose_replicas(ch, ready=2)
    p = plan(b, Observations(children=ch), LATER + dt.timedelta(minutes=2))
    assert p.status["phase"] == "Serving"
    assert cond(p, c.DEGRADED)["status"] == "False"


def _waiting_for_sandbox(scheduled: dt.datetime) -> dict[str, Any]:
    """A replacement pod scheduled at ``scheduled`` whose sandbox is not up yet: its containers
    wait to be created, and it mounts a Secret (the gateway's keys)."""
    pod = server_pod(
        phase="Pending",
        conditions=[
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": format_timestamp(scheduled)},
            {"type": "PodReadyToStartContainers", "status": "False"},
        ],
        containerStatuses=[
            {"name": "server", "ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}}
        ],
    )
    pod["spec"] = {"volumes": [{"name": "keys", "secret": {"secretName": "m-gateway"}}]}
    return pod


def test_a_replacement_whose_sandbox_is_starting_is_not_a_missing_secret() -> None:
    # A clean-clone CI run caught status saying "check that the Secrets exist" about a stable pod
    # recreated a second earlier: every pod waits for its sandbox for a moment before it starts.
    now = LATER + dt.timedelta(minutes=1)
    pod = _waiting_for_sandbox(scheduled=now - dt.timedelta(seconds=1))
    b, ch = _serving()
    lose_replicas(ch, ready=1)
    p = plan(b, Observations(children=ch, pods=[pod]), now)
    assert p.status["phase"] == "Serving"
    assert cond(p, c.DEGRADED)["status"] == "False"
    assert cond(p, c.PROGRESSING)["reason"] == c.REPLICAS_STARTING
    # No pod event comes while the kubelet retries a mount: the pass asks to look again.
    assert p.requeue_after is not None and p.requeue_after <= MOUNT_GRACE_SECONDS - 1 + 1e-6
    later = now + dt.timedelta(seconds=MOUNT_GRACE_SECONDS)
    p = plan(b, Observations(children=ch, pods=[pod]), later)
    degraded = cond(p, c.DEGRADED)
    assert (degraded["status"], degraded["reason"]) == ("True", c.VOLUME_NOT_MOUNTED)
    assert '"m-gateway"' in degraded["message"]
