"""The pod status the fake kubelet writes, built the way the kubelet builds it (no I/O).

Container states (waiting / running / terminated with the kubelet's reasons), the pod phase
from the restart policy, and the pod conditions (PodReadyToStartContainers, Initialized,
ContainersReady, Ready), keeping each condition's lastTransitionTime until its status flips
and keeping conditions other components own (PodScheduled, DisruptionTarget).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from llmops.contracts import format_timestamp
from llmops_dev.kubelet.spec import image_repository

__all__ = ["ContainerModel", "build_status", "now", "phase_of", "terminated", "waiting"]

Obj = dict[str, Any]
_OURS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
MAX_MESSAGE = 4096  # the kubelet's limit for a termination message


def now() -> str:
    return format_timestamp(dt.datetime.now(dt.UTC))


def waiting(reason: str, message: str | None = None) -> Obj:
    w: Obj = {"reason": reason}
    if message:
        w["message"] = message
    return {"waiting": w}


def terminated(
    exit_code: int, started_at: str, *, reason: str | None = None, message: str = "", container_id: str = ""
) -> Obj:
    t: Obj = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "startedAt": started_at,
        "finishedAt": now(),
    }
    if message:
        t["message"] = message[:MAX_MESSAGE]
    if container_id:
        t["containerID"] = container_id
    return {"terminated": t}


@dataclass
class ContainerModel:
    """What the kubelet knows about one container."""

    name: str
    image: str
    state: Obj = field(default_factory=lambda: waiting("ContainerCreating"))
    last_state: Obj = field(default_factory=dict)
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    container_id: str = ""
    init: bool = False

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def exit_code(self) -> int | None:
        t = self.state.get("terminated")
        return int(t["exitCode"]) if t else None

    def to_status(self) -> Obj:
        image_id = f"{image_repository(self.image)}@sha256:{_digest(self.image)}"
        out: Obj = {
            "name": self.name,
            "image": self.image,
            "imageID": image_id if not self.state.get("waiting") or self.restart_count else "",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out


def _digest(image: str) -> str:
    return hashlib.sha256(image.encode()).hexdigest()


def phase_of(restart_policy: str, init: list[ContainerModel], main: list[ContainerModel]) -> str:
    """The pod phase from its containers, as the kubelet's getPhase computes it."""
    for c in init:
        code = c.exit_code
        if code is not None and code != 0 and restart_policy == "Never":
            return "Failed"
        if code != 0:
            return "Pending"
    if all("waiting" in c.state and c.restart_count == 0 and not c.last_state for c in main):
        return "Pending"
    codes = [c.exit_code for c in main]
    if all(code is not None for code in codes):
        if restart_policy == "Always":
            return "Running"
        if all(code == 0 for code in codes):
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
    return "Running"


def _condition(
    old: dict[str, Obj], type_: str, ok: bool, reason: str | None = None, message: str | None = None
) -> Obj:
    status = "True" if ok else "False"
    prev = old.get(type_)
    since = prev["lastTransitionTime"] if prev and prev.get("status") == status else now()
    c: Obj = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
    if reason and not ok:
        c["reason"] = reason
    if message and not ok:
        c["message"] = message
    return c


def build_status(
    pod: Obj,
    init: list[ContainerModel],
    main: list[ContainerModel],
    *,
    sandbox_ready: bool,
    pod_ip: str,
    host_ip: str,
    start_time: str,
    phase: str | None = None,
    reason: str | None = None,
    message: str | None = None,
) -> Obj:
    """The pod's whole status (for a JSON merge patch, which replaces lists whole)."""
    spec = pod.get("spec", {})
    phase = phase or phase_of(spec.get("restartPolicy", "Always"), init, main)
    old = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
    done = phase in ("Succeeded", "Failed")
    pending_init = [c.name for c in init if c.exit_code != 0]
    unready = [c.name for c in main if not c.ready]
    if done:
        ready_reason = "PodCompleted"
        ready_msg = None
    else:
        ready_reason = "ContainersNotReady"
        ready_msg = f"containers with unready status: [{' '.join(unready)}]"
    containers_ready = not unready and not done
    init_done = not pending_init or done
    # Pod readiness gates: Ready also needs every gate's condition True (set by someone else).
    gates = [g.get("conditionType") for g in spec.get("readinessGates") or []]
    waiting_gates = [g for g in gates if (old.get(g) or {}).get("status") != "True"]
    pod_ready = containers_ready and not waiting_gates
    pod_reason, pod_msg = ready_reason, ready_msg
    if containers_ready and waiting_gates:
        pod_reason = "ReadinessGatesNotReady"
        pod_msg = f"the status of pod readiness gate {waiting_gates[0]!r} is not True"
    conditions = [c for t, c in old.items() if t not in _OURS]
    conditions += [
        _condition(old, "PodReadyToStartContainers", sandbox_ready and not done),
        _condition(
            old,
            "Initialized",
            init_done,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(pending_init)}]",
        ),
        _condition(old, "ContainersReady", containers_ready, ready_reason, ready_msg),
        _condition(old, "Ready", pod_ready, pod_reason, pod_msg),
    ]
    status: Obj = {
        "phase": phase,
        "conditions": conditions,
        "containerStatuses": [c.to_status() for c in main],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip if sandbox_ready else None,
        "podIPs": [{"ip": pod_ip}] if sandbox_ready else None,
        "startTime": start_time,
        "qosClass": (pod.get("status") or {}).get("qosClass"),
        "reason": reason,
        "message": message,
    }
    if init:
        status["initContainerStatuses"] = [c.to_status() for c in init]
    return status
