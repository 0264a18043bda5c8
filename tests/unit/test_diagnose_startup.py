"""A server killed by its startup probe (the model took longer to load than
spec.engine.startupTimeoutSeconds) is told apart from a server that crashes: the kubelet only
says so in an Event, so the pod status is read as the kubelet leaves it (a terminated run as
long as the probe's budget, during which the pod never turned Ready)."""

from __future__ import annotations

from typing import Any

from llmops.api import conditions as c
from llmops.lifecycle.diagnose import diagnose_pods
from llmops.lifecycle.observations import Observations
from testkit.planning import T0, body, cond, plan, pods_starting, server_pod

PROBE = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10, "failureThreshold": 6}


def _pod(
    run_seconds: int, ready_since: str, *, state: dict[str, Any] | None = None, probe: Any = PROBE
) -> dict:
    """A stable pod whose server's last run began at 10:00:00 and lasted ``run_seconds``."""
    finished = f"2026-11-28T10:{run_seconds // 60:02d}:{run_seconds % 60:02d}Z"
    container: dict[str, Any] = {"name": "server", "image": "tgi"}
    if probe:
        container["startupProbe"] = probe
    return {
        **server_pod(),
        "spec": {"containers": [container]},
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-28T09:59:58Z"},
                {"type": "Ready", "status": "False", "lastTransitionTime": ready_since},
            ],
            "containerStatuses": [
                {
                    "name": "server",
                    "ready": False,
                    "started": False,
                    "restartCount": 1,
                    "state": state or {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {
                        "terminated": {
                            "exitCode": 143,
                            "reason": "Error",
                            "startedAt": "2026-11-28T10:00:00Z",
                            "finishedAt": finished,
                        }
                    },
                }
            ],
        },
    }


NEVER_READY = "2026-11-28T09:59:59Z"  # the pod's creation: Ready has been False ever since


def test_a_run_killed_at_the_end_of_the_startup_budget_is_a_startup_timeout() -> None:
    problem = diagnose_pods([_pod(60, NEVER_READY)], now=T0)
    assert problem is not None and problem.reason == c.STARTUP_TIMED_OUT and problem.permanent
    assert "within 60s" in problem.message and "spec.engine.startupTimeoutSeconds" in problem.message


def test_it_is_told_at_the_first_kill_while_the_next_run_starts() -> None:
    running = {"running": {"startedAt": "2026-11-28T10:01:00Z"}}
    problem = diagnose_pods([_pod(60, NEVER_READY, state=running)], now=T0)
    assert problem is not None and problem.reason == c.STARTUP_TIMED_OUT


def test_a_server_that_crashes_early_keeps_crashing() -> None:
    problem = diagnose_pods([_pod(20, NEVER_READY)], now=T0)
    assert problem is not None and problem.reason == c.CRASH_LOOP


def test_a_server_that_served_then_crashed_is_a_crash_not_a_slow_start() -> None:
    # Ready turned True during the run and False when it ended: the run had started.
    problem = diagnose_pods([_pod(600, "2026-11-28T10:10:00Z")], now=T0)
    assert problem is not None and problem.reason == c.CRASH_LOOP


def test_without_a_startup_probe_nothing_is_inferred() -> None:
    problem = diagnose_pods([_pod(600, NEVER_READY, probe=None)], now=T0)
    assert problem is not None and problem.reason == c.CRASH_LOOP


def test_a_first_revision_whose_server_never_starts_fails_saying_what_to_raise() -> None:
    b, ch = pods_starting(body())
    p = plan(b, Observations(children=ch, pods=[_pod(60, NEVER_READY)]), T0)
    assert p.status["phase"] == "Failed"
    available = cond(p, c.AVAILABLE)
    assert (available["reason"], available["status"]) == (c.STARTUP_TIMED_OUT, "False")
    assert any(e.type == "Warning" and e.reason == c.STARTUP_TIMED_OUT for e in p.events)
