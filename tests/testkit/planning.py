"""Fixture builders for ``plan()`` tests: LLMDeployment bodies and a simulated cluster.

The cluster is simulated by feeding the applied objects back as observations, with
whatever status a test gives them.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping
from typing import Any

from llmops.api.status import phase_change_allowed
from llmops.contracts import format_timestamp
from llmops.lifecycle.observations import Observations
from llmops.lifecycle.plan import Plan
from llmops.lifecycle.plan import plan as _plan

T0 = dt.datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=dt.UTC)
SHA_A = "a" * 40
SHA_B = "b" * 40


PHASE_CHANGES: set[tuple[str | None, str]] = set()
"""Every phase change a checked ``plan()`` made in this test session: (from, to)."""


def plan(b: Mapping[str, Any], obs: Observations, now: dt.datetime) -> Plan:
    """``llmops.lifecycle.plan.plan``, checking that the phase change it makes is allowed.

    Every unit scenario plans through here (the tests import ``plan`` from this module), so each
    of their passes is checked against PHASE_TRANSITIONS.
    """
    out = _plan(b, obs, now)
    before = (b.get("status") or {}).get("phase")
    after = out.status.get("phase")
    assert after is not None, "plan() always sets a phase"
    assert phase_change_allowed(before, after), f"phase {before} -> {after} is not in PHASE_TRANSITIONS"
    if before != after:
        PHASE_CHANGES.add((before, str(after)))
    return out


def body(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"id": "org/model", "revision": SHA_A},
        "resources": {"gpu": {"count": 1}},
        "replicas": 1,
    }
    for key, value in spec.items():
        base[key] = value
    return {
        "apiVersion": "llmops.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": "m", "namespace": "ns", "uid": "u-1", "generation": 1},
        "spec": base,
    }


Children = dict[tuple[str, str], dict[str, Any]]
"""The simulated cluster: objects by (kind, name)."""


def children_of(p: Plan, existing: Mapping[tuple[str, str], dict[str, Any]] | None = None) -> Children:
    """The cluster after applying ``p`` (objects keep any status the test gave them)."""
    out = {k: copy.deepcopy(v) for k, v in (existing or {}).items()}
    for obj in p.apply:
        key = (obj["kind"], obj["metadata"]["name"])
        new = copy.deepcopy(obj)
        new["metadata"]["generation"] = (out.get(key, {}).get("metadata", {}).get("generation") or 0) + 1
        if key in out and "status" in out[key]:
            new["status"] = out[key]["status"]
        out[key] = new
    for key in p.delete:
        out.pop(key, None)
    return out


def with_status(p: Plan, b: dict[str, Any]) -> dict[str, Any]:
    nb = copy.deepcopy(b)
    nb["status"] = copy.deepcopy(p.status)
    return nb


def job_end_status(name: str, state: str, reason: str, exit_code: int = 0) -> dict[str, Any]:
    """A finished Job's status; with an ``exit_code``, as the pod failure policy fails a Job (the
    Job controller's message names the code)."""
    condition = {"type": state, "status": "True", "reason": reason}
    if exit_code:
        condition["message"] = fail_job_message(name, exit_code)
    return {"conditions": [condition]}


def job_done(
    children: Children,
    state: str = "Complete",
    reason: str = "",
    prefix: str = "m-download-",
    exit_code: int = 0,
) -> None:
    """Finish the Jobs whose name starts with ``prefix`` (and bind the cache PVC)."""
    for (kind, name), obj in children.items():
        if kind == "Job" and name.startswith(prefix):
            obj["status"] = job_end_status(name, state, reason, exit_code)
    for (kind, _), obj in children.items():
        if kind == "PersistentVolumeClaim":
            obj["status"] = {"phase": "Bound"}


def rollout(
    children: Children, ready: int, replicas: int = 1, updated: int | None = None, name: str = "m-stable"
) -> None:
    """Give the Deployment ``name`` a status: ``ready`` of ``replicas`` pods, all updated unless said.
    A rollout that completes gets the Progressing condition kube-controller-manager writes then
    (reason NewReplicaSetAvailable), which stays until the template changes."""
    dep = children[("Deployment", name)]
    updated = replicas if updated is None else updated
    dep["status"] = {
        "observedGeneration": dep["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
    }
    if ready == replicas == updated:
        dep["status"]["conditions"] = [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        ]


def lose_replicas(children: Children, ready: int, name: str = "m-stable") -> None:
    """Pods of the rolled-out Deployment ``name`` stop being ready (crashed, evicted, replaced):
    its rollout stays complete by its Progressing condition, with fewer ready replicas."""
    dep = children[("Deployment", name)]
    dep["status"] = {
        **dep["status"],
        "observedGeneration": dep["metadata"]["generation"],
        "readyReplicas": ready,
    }


def cond(p: Plan, type_: str) -> dict[str, Any]:
    return next(x for x in p.status["conditions"] if x["type"] == type_)


def kinds(p: Plan) -> set[str]:
    return {o["kind"] for o in p.apply}


def server_pod(track: str = "stable", **status: Any) -> dict[str, Any]:
    """A server pod of the LLMDeployment ``m`` on ``track``, with the Pod status ``status``."""
    return {
        "metadata": {
            "name": f"m-{track}-x",
            "labels": {"llmops.io/deployment": "m", "llmops.io/track": track},
        },
        "status": status,
    }


def gateway_pod(since: dt.datetime, track: str = "stable", ready: bool = True) -> dict[str, Any]:
    """A server pod of ``m`` with its gateway container, Ready (or not, with ``ready`` False)
    since ``since``."""
    status = "True" if ready else "False"
    pod = server_pod(
        track,
        phase="Running",
        conditions=[{"type": "Ready", "status": status, "lastTransitionTime": format_timestamp(since)}],
    )
    pod["spec"] = {"containers": [{"name": "server"}, {"name": "gateway"}]}
    return pod


def pod_without_gpu(track: str = "stable") -> dict[str, Any]:
    """A server pod the scheduler cannot place: every node is short of the GPU it asks for."""
    return server_pod(
        track,
        phase="Pending",
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
            }
        ],
    )


def pods_starting(b: dict[str, Any], deployment: str = "m-stable") -> tuple[dict[str, Any], Children]:
    """A first revision cached and its Deployment applied (stable, or m-staging for a gated
    revision), no pod ready yet: (body with status, children)."""
    p = plan(b, Observations(), T0)
    ch = children_of(p)
    job_done(ch)
    p = plan(with_status(p, b), Observations(children=ch), T0)
    ch = children_of(p, ch)
    rollout(ch, ready=0, name=deployment)
    return with_status(p, b), ch


def to_serving(b: dict[str, Any]) -> tuple[dict[str, Any], Children]:
    """Drive a fresh LLMDeployment to Serving; return (body with status, children)."""
    p = plan(b, Observations(), T0)
    ch = children_of(p)
    job_done(ch)
    b = with_status(p, b)
    p = plan(b, Observations(children=ch), T0)
    ch = children_of(p, ch)
    rollout(ch, ready=1)
    b = with_status(p, b)
    p = plan(b, Observations(children=ch), T0 + dt.timedelta(minutes=5))
    return with_status(p, b), children_of(p, ch)


def fail_job_message(job_name: str, exit_code: int, container: str = "evaluate") -> str:
    """The Job controller's Failed condition message when a pod failure policy rule fails the Job."""
    return (
        f"Container {container} for pod ns/{job_name}-x failed with exit code {exit_code} "
        "matching FailJob rule at index 0"
    )


def job_pod(job_name: str, exit_code: int, message: str) -> dict[str, Any]:
    """A finished pod of a Job, with its termination message."""
    return {
        "metadata": {
            "name": f"{job_name}-x",
            "labels": {"llmops.io/deployment": "m", "batch.kubernetes.io/job-name": job_name},
        },
        "status": {
            "containerStatuses": [
                {
                    "state": {
                        "terminated": {
                            "exitCode": exit_code,
                            "message": message,
                            "finishedAt": "2026-11-28T10:00:00Z",
                        }
                    }
                }
            ]
        },
    }
