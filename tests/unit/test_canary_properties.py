"""Property test of the canary decisions in ``plan()``: random measurements, pauses and restarts.

hypothesis drives a canary (two steps of 2 minutes, a measurement every minute, failureLimit 2,
inconclusiveLimit 2) with sequences of passes of time in which the shell measures when
``analysis_request`` says a measurement is due, with a random outcome: pass, fail, no data,
Prometheus unreachable, or a query Prometheus rejects. A model kept by the test counts what was
measured, and after every pass the invariants are checked:

- a step advances, and the last step promotes, only when the most recent measurement in that
  step passed;
- failedChecks and inconclusiveChecks count exactly the failed and inconclusive measurements,
  the failureLimit-th failure rolls back and nothing before it does;
- more inconclusive measurements than inconclusiveLimit, or a rejected query, pause; a paused
  canary neither advances nor promotes;
- a restart changes nothing: the same pass planned from a JSON round trip of what the cluster
  stores (the LLMDeployment with its status, the children) decides exactly the same.

A second property drives the promotion of a replicas-mode canary of any size and weight on a
cluster with as many GPUs as the steps needed, or one or two more.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops.analysis import Error, NoData, Value
from llmops.api.resource import parse
from llmops.lifecycle.canary import analysis_request
from llmops.lifecycle.observations import Observations
from testkit.canary_sim import ROLLOUT, Sim, start_canary
from testkit.planning import SHA_B, plan, pod_without_gpu, rollout

FAILURE_LIMIT = ROLLOUT["analysis"]["failureLimit"]
INCONCLUSIVE_LIMIT = ROLLOUT["analysis"]["inconclusiveLimit"]
OUTCOMES = {
    "pass": Value(0.0),
    "fail": Value(0.05),
    "nodata": NoData("empty vector"),
    "unreachable": Error("connection refused", "unreachable"),
    "rejected": Error("parse error at char 3", "rejected"),
}
INCONCLUSIVE = ("nodata", "unreachable", "rejected")
"""No verdict on the model; a rejected query is counted here too, and pauses at once."""

passes = st.lists(
    st.tuples(
        st.sampled_from(sorted(OUTCOMES)),
        st.floats(min_value=0.2, max_value=3.0, allow_nan=False),  # minutes until the pass
        st.booleans(),  # restart the operator before this pass
    ),
    min_size=1,
    max_size=25,
)


@dataclass
class Model:
    """What the test knows was measured."""

    failed: int = 0
    inconclusive: int = 0
    latest_in_step: str | None = None
    step: int = 0


def _restarted_plan(sim: Sim, analysis: dict[str, Any] | None) -> dict[str, Any]:
    """The pass a freshly started operator makes from what the cluster stores."""
    stored_body = json.loads(json.dumps(sim.b))
    stored_children = {k: json.loads(json.dumps(v)) for k, v in sim.ch.items()}
    p = plan(stored_body, Observations(children=stored_children, analysis=analysis, pods=[]), sim.now)
    return {"status": p.status, "apply": p.apply, "delete": p.delete, "requeue": p.requeue_after}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(passes)
def test_canary_decisions_hold_their_invariants(sequence: list[tuple[str, float, bool]]) -> None:
    sim = Sim()
    start_canary(sim)
    model = Model()
    for outcome, minutes, restart in sequence:
        before = dict(sim.canary)
        sim.now += dt.timedelta(minutes=minutes)
        due = bool(analysis_request(sim.b, parse(sim.b), sim.now))
        analysis = {"errors": (OUTCOMES[outcome], None)} if due else None
        if restart:
            expected = _restarted_plan(sim, analysis)
        p = sim.step(0, analysis=analysis)
        if restart:
            assert {"status": p.status, "apply": p.apply, "delete": p.delete, "requeue": p.requeue_after} == (
                expected
            )
        after = sim.canary
        if analysis is not None:
            assert after.get("lastCheckTime") != before.get("lastCheckTime"), "a due measurement is judged"
            model.latest_in_step = outcome
            model.failed += outcome == "fail"
            model.inconclusive += outcome in INCONCLUSIVE
        if p.status.get("phase") == "Serving":
            assert before["state"] == "Promoting" and model.latest_in_step == "pass"
            return
        if p.status.get("phase") == "RolledBack":
            assert model.failed >= FAILURE_LIMIT, f"rolled back after {model.failed} failures"
            return
        assert model.failed < FAILURE_LIMIT, "the failureLimit-th failure rolls back"
        assert after["failedChecks"] == model.failed
        assert after["inconclusiveChecks"] == model.inconclusive
        moved_on = after["step"] != before["step"] or after["state"] == "Promoting"
        if moved_on and before["state"] != "Promoting":
            assert model.latest_in_step == "pass", f"moved on after a {model.latest_in_step} measurement"
            assert before["state"] == "Progressing" or analysis is not None
        if analysis is not None and after["state"] != "Promoting":
            if outcome == "rejected" or (outcome in INCONCLUSIVE and model.inconclusive > INCONCLUSIVE_LIMIT):
                assert after["state"] == "Paused"
            if outcome == "pass":
                assert after["state"] == "Progressing"
        if after.get("step", model.step) != model.step:
            model.step, model.latest_in_step = after["step"], None
            sim.ready("m-canary")
            sim.ready("m-stable")
        if after["state"] == "Promoting":
            sim.ready("m-stable")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    total=st.integers(min_value=1, max_value=6),
    weight=st.integers(min_value=1, max_value=100),
    spare=st.integers(min_value=0, max_value=2),
)
def test_a_replicas_mode_promotion_ends_on_any_gpu_budget_without_asking_for_more(
    total: int, weight: int, spare: int
) -> None:
    """Promotion on a cluster of ``total + spare`` GPUs (the canary's steps needed ``total``):
    a scheduler places pods while GPUs are free, a placed pod is ready a pass later. It ends
    promoted; it never asks for more than one GPU beyond the steps'; the revision's ready pods
    never drop below total - 1, nor below total when one GPU is spare."""
    sim = Sim(
        replicas=total,
        rollout_spec={
            "steps": [{"setWeight": weight, "pause": {"duration": "1m"}}],
            "analysis": {"metrics": []},
        },
    )
    sim.new_revision()
    sim.step()
    sim.ready("m-canary")
    sim.ready("m-stable")
    sim.step()
    sim.step(1.1)
    assert sim.canary["state"] == "Promoting"
    gpus, placed = total + spare, _spec(sim, "m-stable")  # the rolling update to B replaces in place
    for _ in range(4 * total + 4):
        stable, canary = _spec(sim, "m-stable"), _spec(sim, "m-canary")
        assert stable + canary <= total + 1, (stable, canary)
        assert placed + canary >= total - (0 if spare else 1), (placed, canary)
        ready, placed = placed, min(stable, gpus - canary)
        rollout(sim.ch, ready=ready, replicas=stable, name="m-stable")
        p = sim.step(0.1, pods=[pod_without_gpu()] if placed < stable else [])
        if p.status.get("phase") == "Serving":
            assert p.status["servingRevision"] == SHA_B and sim.deployment("m-canary") is None
            return
    raise AssertionError(f"not promoted: stable {_spec(sim, 'm-stable')}, canary {_spec(sim, 'm-canary')}")


def _spec(sim: Sim, name: str) -> int:
    dep = sim.deployment(name)
    return int(dep["spec"]["replicas"]) if dep else 0
