"""A small simulated cluster for canary tests of ``plan()``: serve A, move to B, step time."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from llmops.analysis import Result, Value
from llmops.lifecycle.observations import Observations
from llmops.lifecycle.plan import Plan
from testkit.planning import (
    SHA_B,
    T0,
    body,
    children_of,
    job_end_status,
    job_pod,
    plan,
    rollout,
    to_serving,
    with_status,
)

ROLLOUT = {
    "steps": [{"setWeight": 25, "pause": {"duration": "2m"}}, {"setWeight": 50, "pause": {"duration": "2m"}}],
    "analysis": {
        "interval": "1m",
        "failureLimit": 2,
        "inconclusiveLimit": 2,
        "metrics": [{"name": "errors", "template": "tgi-error-ratio", "thresholdRange": {"max": 0.01}}],
    },
}
GOOD = {"errors": (Value(0.0), None)}
BAD = {"errors": (Value(0.05), None)}


class Sim:
    """A tiny cluster: plan, apply, give Deployments the status the test wants."""

    def __init__(self, replicas: int = 4, rollout_spec: dict[str, Any] | None = None) -> None:
        b = body(replicas=replicas, rollout=rollout_spec or ROLLOUT)
        self.b, self.ch = to_serving(b)
        self.b["status"]["phase"] = "Serving"
        self.now = T0 + dt.timedelta(hours=1)
        self.replicas = replicas
        self.p: Plan | None = None

    def new_revision(self, rev: str = SHA_B) -> Plan:
        self.b["spec"]["model"]["revision"] = rev
        self.b["metadata"]["generation"] += 1
        # The new revision's download Job completes at once in this simulation.
        p = self.step()
        for (kind, _), obj in self.ch.items():
            if kind == "Job":
                obj["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
        return p

    def step(
        self,
        minutes: float = 0,
        analysis: Mapping[str, tuple[Result, Result | None]] | None = None,
        pods: list[dict[str, Any]] | None = None,
        **obs: Any,
    ) -> Plan:
        self.now += dt.timedelta(minutes=minutes)
        p = plan(self.b, Observations(children=self.ch, analysis=analysis, pods=pods or [], **obs), self.now)
        self.ch = children_of(p, self.ch)
        self.b = with_status(p, self.b)
        self.p = p
        return p

    def ready(self, name: str) -> None:
        dep = self.ch[("Deployment", name)]
        n = dep["spec"]["replicas"]
        rollout(self.ch, ready=n, replicas=n, name=name)

    @property
    def canary(self) -> dict[str, Any]:
        return self.b["status"].get("canary") or {}

    def deployment(self, name: str) -> dict[str, Any] | None:
        return self.ch.get(("Deployment", name))


def start_canary(sim: Sim) -> None:
    sim.new_revision()
    sim.step()  # cached → canary
    sim.ready("m-canary")
    sim.ready("m-stable")
    sim.step()  # canary ready: analysis starts


EVALUATION = {
    "dataset": {"configMapRef": {"name": "qa", "key": "qa.jsonl"}},
    "thresholds": [{"metric": "exactMatch", "min": 0.8}],
}
PASSED = json.dumps(
    {"verdict": "Passed", "metrics": {"exactMatch": {"value": 1.0, "min": 0.8, "passed": True}}}
)


def job_named(sim: Sim, prefix: str) -> str:
    return next(name for kind, name in sim.ch if kind == "Job" and name.startswith(prefix))


def finish_job(sim: Sim, prefix: str, state: str = "Complete", reason: str = "", exit_code: int = 0) -> str:
    """End the Job whose name starts with ``prefix`` (see job_end_status)."""
    name = job_named(sim, prefix)
    sim.ch[("Job", name)]["status"] = job_end_status(name, state, reason, exit_code)
    return name


def smoke_sim() -> tuple[Sim, dict[str, Any]]:
    sim = Sim()
    sim.b["spec"]["evaluation"] = EVALUATION
    sim.new_revision()
    sim.step()  # staging for the gate
    sim.ready("m-staging")
    sim.step()  # the gate's Job
    gate = finish_job(sim, "m-eval-")
    sim.step(pods=[job_pod(gate, 0, PASSED)])  # passed: the canary starts
    canary_pod = {
        "metadata": {
            "name": "m-canary-1",
            "labels": {"llmops.io/deployment": "m", "llmops.io/track": "canary"},
        },
        "status": {"conditions": [{"type": "ContainersReady", "status": "True"}]},
    }
    return sim, canary_pod
