"""The drift stage in ``plan()``: when it measures, the reference it freezes, the verdict per
signal, the Drifted condition and its Events; quality against the gate's score; feedback."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest
from prometheus_client import REGISTRY

from llmops import metrics
from llmops.analysis.results import Error, NoData, Value, Vector
from llmops.api import conditions as c
from llmops.api.resource import parse
from llmops.lifecycle.drift import drift_request, retention_problem
from llmops.lifecycle.observations import Observations
from llmops.lifecycle.plan import Plan, plan
from llmops.reconciler import measure_drift
from llmops.render.monitoring import prometheus_rule
from testkit.planning import (
    SHA_A,
    SHA_B,
    T0,
    body,
    children_of,
    cond,
    job_done,
    job_pod,
    rollout,
    to_serving,
    with_status,
)

EDGES = (10.0, 20.0, 30.0, 40.0)
SHORT = (40, 40, 20, 0, 0)
"""Requests per bucket of a quiet day: short prompts."""
LONG = (0, 0, 10, 40, 50)
"""The same number of requests, much longer prompts."""
SEL = 'namespace="ns",llmops_deployment="m",llmops_track="stable",llmops_revision="' + SHA_A + '"'
DRIFT = {
    "interval": "1m",
    "window": "10m",
    "traffic": {"signals": ["inputLength"], "minSamples": 100, "psi": 0.2, "ks": 0.2},
}
MINUTE = dt.timedelta(minutes=1)


def hist(counts: tuple[float, ...], edges: tuple[float, ...] = EDGES, scale: float = 1.0) -> Vector:
    """Prometheus' answer to `sum by (le) (increase(...))`: cumulative counts by `le`."""
    out, running = {}, 0.0
    for le, n in zip([*(f"{e:g}" for e in edges), "+Inf"], counts, strict=True):
        running += n * scale
        out[le] = running
    return Vector(out)


def serving(drift: dict[str, Any] | None = None, **spec: Any) -> tuple[dict[str, Any], dict]:
    b, ch = to_serving(body(drift=drift or DRIFT, **spec))
    return b, ch


def at(b: dict[str, Any], ch: dict, now: dt.datetime, results: dict[str, Any] | None = None) -> Plan:
    """One pass at ``now``; ``results`` are what the shell measured (None: nothing was due)."""
    return plan(b, Observations(children=ch, drift=results), now)


def measured(b: dict[str, Any], ch: dict, now: dt.datetime, **by_key: Any) -> tuple[dict[str, Any], Plan]:
    """A pass at ``now`` with the queries drift_request asks for answered from ``by_key``
    (``current``/``reference`` → a result for every signal; or an exact query key)."""
    wanted = drift_request(b, parse(b), now)
    assert wanted, f"no drift check due at {now}"
    results = {q.key: by_key.get(q.key, by_key.get(q.key.split("/")[0])) for q in wanted}
    p = at(b, ch, now, results)
    return with_status(p, b), p


def signal(p: Plan, name: str = "inputLength") -> dict[str, Any]:
    return next(s for s in p.status["drift"]["signals"] if s["signal"] == name)


def frozen(
    drift: dict[str, Any] | None = None, counts: tuple[float, ...] = SHORT
) -> tuple[dict, dict, dt.datetime]:
    """Serving with a frozen reference of ``counts``; returns (body, children, time of the freeze)."""
    b, ch = serving(drift)
    end = dt.datetime.fromisoformat(b["status"]["drift"]["reference"]["end"])
    now = end + dt.timedelta(seconds=5)
    b, p = measured(b, ch, now, current=hist(counts), reference=hist(counts))
    assert p.status["drift"]["reference"]["histograms"], p.status["drift"]
    return b, ch, now


# -------------------------------------------------------------------------------------- requests


def test_queries_cover_the_serving_revision_and_are_due_every_interval() -> None:
    b, ch = serving()
    now = T0 + 6 * MINUTE
    wanted = drift_request(b, parse(b), now)
    # The reference window has not ended yet: only the current window is asked for.
    assert [(q.key, q.promql, q.by) for q in wanted] == [
        (
            "current/inputLength",
            f"sum by (le) (increase(tgi_request_input_length_bucket{{{SEL}}}[10m]))",
            "le",
        )
    ]
    b, p = measured(b, ch, now, current=hist(SHORT))
    assert p.status["drift"]["lastCheckTime"] == "2026-11-28T10:06:00Z"
    assert drift_request(b, parse(b), now + dt.timedelta(seconds=30)) == []
    assert drift_request(b, parse(b), now + MINUTE)
    assert p.requeue_after == pytest.approx(60.0, abs=1.0)  # lastCheckTime has whole seconds


def test_nothing_is_asked_before_a_revision_serves_or_without_spec_drift() -> None:
    b = body(drift=DRIFT)
    assert drift_request(b, parse(b), T0) == []
    served, _ = to_serving(body())
    assert drift_request(served, parse(served), T0) == []
    off = copy.deepcopy(served)
    off["spec"]["drift"] = {**DRIFT, "enabled": False}
    assert drift_request(off, parse(off), T0) == []


def test_the_reference_window_is_asked_for_at_its_end() -> None:
    b, _ = serving()
    ref = b["status"]["drift"]["reference"]
    assert ref["revision"] == SHA_A and ref["histograms"] == []
    assert (ref["start"], ref["end"]) == ("2026-11-28T10:05:00Z", "2026-11-28T10:15:00Z")
    end = dt.datetime(2026, 11, 28, 10, 15, tzinfo=dt.UTC)
    wanted = {q.key: q.promql for q in drift_request(b, parse(b), end + dt.timedelta(seconds=5))}
    assert wanted["reference/inputLength"] == (
        f"sum by (le) (increase(tgi_request_input_length_bucket{{{SEL}}}[10m] @ {end.timestamp():.3f}))"
    )


# ------------------------------------------------------------------------------------- reference


def test_before_the_reference_is_frozen_the_verdict_is_unknown() -> None:
    b, ch = serving()
    b, p = measured(b, ch, T0 + 6 * MINUTE, current=hist(LONG))
    got = signal(p)
    assert (got["verdict"], got["reason"]) == ("Unknown", c.COLLECTING_REFERENCE)
    assert "until 2026-11-28T10:15:00Z" in got["message"]
    drifted = cond(p, c.DRIFTED)
    assert (drifted["status"], drifted["reason"]) == (c.UNKNOWN, c.COLLECTING_REFERENCE)


def test_the_first_window_of_serving_is_frozen_and_judged_against() -> None:
    b, ch, now = frozen()
    ref = b["status"]["drift"]["reference"]
    assert ref["histograms"] == [
        {"signal": "inputLength", "edges": list(EDGES), "counts": list(map(float, SHORT))}
    ]
    assert b["status"]["history"][-1]["action"] == "DriftReference"
    assert b["status"]["history"][-1]["reason"] == "ReferenceFrozen"
    got = signal(at(b, ch, now))  # between checks the last verdicts stay
    assert got["verdict"] == "NoDrift"
    assert got["value"] == 0.0 and got["ks"] == 0.0 and got["samples"] == 100.0
    assert got["current"] == {"start": "2026-11-28T10:05:05Z", "end": "2026-11-28T10:15:05Z"}
    assert got["reference"] == {"start": "2026-11-28T10:05:00Z", "end": "2026-11-28T10:15:00Z"}
    drifted = cond(at(b, ch, now), c.DRIFTED)
    assert (drifted["status"], drifted["reason"]) == (c.FALSE, c.NO_DRIFT)
    assert drifted["message"].startswith("inputLength: PSI 0.000 < 0.2, KS 0.000 < 0.2")


def test_a_quiet_reference_window_is_not_frozen_the_next_one_is_tried() -> None:
    b, ch = serving()
    now = dt.datetime(2026, 11, 28, 10, 15, 5, tzinfo=dt.UTC)
    b, p = measured(b, ch, now, current=hist(SHORT, scale=0.5), reference=hist(SHORT, scale=0.5))
    ref = p.status["drift"]["reference"]
    assert ref["histograms"] == []
    assert (ref["start"], ref["end"]) == ("2026-11-28T10:06:05Z", "2026-11-28T10:16:05Z")
    assert "too few requests (inputLength: 50 requests; minSamples 100)" in ref["message"]
    assert signal(p)["verdict"] == "Unknown"


def test_new_bucket_edges_reset_the_reference() -> None:
    b, ch, now = frozen()
    wider = (20.0, 40.0, 60.0, 80.0)  # maxInputTokens doubled: TGI's buckets are limit/100 wide
    b, p = measured(b, ch, now + MINUTE, current=hist(SHORT, edges=wider))
    ref = p.status["drift"]["reference"]
    assert ref["histograms"] == [] and "the bucket edges changed" in ref["message"]
    assert (signal(p)["verdict"], signal(p)["reason"]) == ("Unknown", c.COLLECTING_REFERENCE)
    assert p.status["history"][-1]["reason"] == "ReferenceReset"
    assert cond(p, c.DRIFTED)["status"] == c.UNKNOWN


def test_a_new_serving_revision_collects_a_new_reference() -> None:
    b, ch, now = frozen()
    b["spec"]["model"]["revision"] = SHA_B
    for _ in range(3):  # download, then stable rolls to the new revision
        p = at(b, ch, now)
        ch = children_of(p, ch)
        job_done(ch, prefix="m-download-")
        rollout(ch, ready=1)
        b = with_status(p, b)
    assert p.status["servingRevision"] == SHA_B
    ref = p.status["drift"]["reference"]
    assert ref["revision"] == SHA_B and ref["histograms"] == []
    assert p.status["drift"]["revision"] == SHA_B
    assert signal(p)["reason"] == "NotChecked"


# -------------------------------------------------------------------------------------- verdicts


def test_a_shift_is_drifted_and_the_flips_post_events() -> None:
    b, ch, now = frozen()
    b, p = measured(b, ch, now + MINUTE, current=hist(LONG))
    got = signal(p)
    # CDFs at the edges: (0.4, 0.8, 1, 1) against (0, 0, 0.1, 0.5).
    assert got["verdict"] == "Drifted" and got["value"] > 0.2 and got["ks"] == 0.9
    drifted = cond(p, c.DRIFTED)
    assert (drifted["status"], drifted["reason"]) == (c.TRUE, c.DRIFT_DETECTED)
    assert drifted["message"].startswith("inputLength: PSI ") and "KS 0.900 >= 0.2" in drifted["message"]
    assert [(e.type, e.reason) for e in p.events] == [("Warning", c.DRIFT_DETECTED)]
    assert p.status["history"][-1]["action"] == "DriftDetected"
    # Steady: the same verdict again posts nothing.
    again = at(b, ch, now + 90 * dt.timedelta(seconds=1))
    assert not again.events
    b, p = measured(b, ch, now + 2 * MINUTE, current=hist(SHORT))
    assert cond(p, c.DRIFTED)["status"] == c.FALSE
    assert [(e.type, e.reason) for e in p.events] == [("Normal", c.NO_DRIFT)]
    assert p.status["history"][-1]["action"] == "DriftCleared"


def test_too_few_requests_is_unknown_never_drifted() -> None:
    b, ch, now = frozen()
    b, p = measured(b, ch, now + MINUTE, current=hist(LONG, scale=0.9))
    got = signal(p)
    assert (got["verdict"], got["reason"], got["samples"]) == ("Unknown", c.INSUFFICIENT_SAMPLES, 90.0)
    assert "fewer than minSamples 100" in got["message"]
    assert cond(p, c.DRIFTED)["status"] == c.UNKNOWN
    b, p = measured(b, ch, now + 2 * MINUTE, current=NoData("the query returned no series"))
    assert (signal(p)["verdict"], signal(p)["reason"]) == ("Unknown", c.INSUFFICIENT_SAMPLES)


def test_prometheus_down_is_unknown_never_drifted() -> None:
    b, ch, now = frozen()
    b, p = measured(b, ch, now + MINUTE, current=hist(LONG))
    assert cond(p, c.DRIFTED)["status"] == c.TRUE
    down = Error("cannot query Prometheus at http://prom:9090: connection refused", "unreachable")
    b, p = measured(b, ch, now + 2 * MINUTE, current=down)
    got = signal(p)
    assert (got["verdict"], got["reason"]) == ("Unknown", c.OBSERVATION_FAILED)
    assert "connection refused" in got["message"]
    drifted = cond(p, c.DRIFTED)
    assert (drifted["status"], drifted["reason"]) == (c.UNKNOWN, c.OBSERVATION_FAILED)
    assert [(e.type, e.reason) for e in p.events] == [("Normal", c.OBSERVATION_FAILED)]
    # The frozen reference survives the outage.
    assert p.status["drift"]["reference"]["histograms"]


def test_offset_mode_compares_with_the_window_offset_back() -> None:
    drift = {**DRIFT, "traffic": {**DRIFT["traffic"], "reference": {"mode": "Offset", "offset": "1d"}}}
    b, ch = serving(drift)
    assert "reference" not in b["status"]["drift"]  # nothing is stored in Offset mode
    now = T0 + 6 * MINUTE
    wanted = {q.key: q.promql for q in drift_request(b, parse(b), now)}
    assert wanted["reference/inputLength"] == (
        f"sum by (le) (increase(tgi_request_input_length_bucket{{{SEL}}}[10m] offset 1d))"
    )
    b, p = measured(b, ch, now, current=hist(LONG), reference=hist(SHORT))
    got = signal(p)
    assert got["verdict"] == "Drifted"
    assert got["reference"] == {"start": "2026-11-27T09:56:00Z", "end": "2026-11-27T10:06:00Z"}


def test_a_window_shorter_than_two_scrapes_is_reported_naming_the_field() -> None:
    b, ch = serving({**DRIFT, "window": "45s"})
    drifted = cond(at(b, ch, T0 + 6 * MINUTE), c.DRIFTED)
    assert (drifted["status"], drifted["reason"]) == (c.UNKNOWN, c.INVALID_SPEC)
    assert drifted["message"] == (
        "spec.drift.window (45s) is shorter than twice the scrape interval "
        "spec.monitoring.podMonitor.interval (30s): increase() needs two samples in the window"
    )
    assert drift_request(b, parse(b), T0 + 6 * MINUTE) == []


DAY = 86400.0


def test_a_window_longer_than_prometheus_retention_is_unknown_naming_the_field_and_queries_nothing() -> None:
    b, ch = serving({**DRIFT, "window": "2d"})
    now = T0 + 6 * MINUTE
    assert drift_request(b, parse(b), now, retention=DAY) == []
    assert drift_request(b, parse(b), now, retention=3 * DAY)  # within it: measured as ever
    p = plan(b, Observations(children=ch, prometheus_retention=DAY), now)
    drifted = cond(p, c.DRIFTED)
    assert (drifted["status"], drifted["reason"]) == (c.UNKNOWN, c.BEYOND_RETENTION)
    assert drifted["message"] == (
        "spec.drift.window (2d) reaches further back than Prometheus keeps 1d (its storage retention, "
        "/api/v1/status/runtimeinfo): nothing can be judged on it"
    )
    assert p.requeue_after is not None and p.requeue_after <= 60  # looked at again next interval


def test_an_offset_reference_beyond_retention_names_the_offset_and_earlier_verdicts_are_withdrawn() -> None:
    offset = {**DRIFT, "traffic": {**DRIFT["traffic"], "reference": {"mode": "Offset", "offset": "1d"}}}
    b, ch = serving(offset)
    now = T0 + 6 * MINUTE
    # Measured once with Prometheus keeping 2d: a verdict stands.
    b, _ = measured(b, ch, now, current=hist(SHORT), reference=hist(SHORT))
    assert b["status"]["drift"]["signals"][0]["verdict"] == "NoDrift"
    # Prometheus restarted keeping 12h: 1d + 10m back is gone.
    later = now + 2 * MINUTE
    assert drift_request(b, parse(b), later, retention=DAY / 2) == []
    p = plan(b, Observations(children=ch, prometheus_retention=DAY / 2), later)
    drifted = cond(p, c.DRIFTED)
    assert (drifted["status"], drifted["reason"]) == (c.UNKNOWN, c.BEYOND_RETENTION)
    assert drifted["message"].startswith(
        "spec.drift.traffic.reference.offset (1d) plus spec.drift.window (10m) reach 1d10m back, "
        "further than Prometheus keeps 12h"
    ), drifted["message"]
    assert p.status["drift"]["signals"] == []
    # An unknown retention (a backend without runtimeinfo, or a size limit only) blocks nothing.
    assert drift_request(b, parse(b), later, retention=None)


def test_a_reference_window_prometheus_no_longer_holds_is_collected_again_not_read() -> None:
    b, ch = serving()  # the reference is collected over [10:05, 10:15]; Prometheus keeps 20m
    on_time = dt.datetime(2026, 11, 28, 10, 15, 5, tzinfo=dt.UTC)
    assert "reference/inputLength" in {q.key for q in drift_request(b, parse(b), on_time, retention=1200)}
    late = dt.datetime(2026, 11, 28, 10, 40, tzinfo=dt.UTC)  # the operator was away: its start is gone
    wanted = drift_request(b, parse(b), late, retention=1200)
    assert [q.key for q in wanted] == ["current/inputLength"]
    results = {q.key: hist(SHORT) for q in wanted}
    p = plan(b, Observations(children=ch, drift=results, prometheus_retention=1200), late)
    ref = p.status["drift"]["reference"]
    assert ref["histograms"] == [] and (ref["start"], ref["end"]) == (
        "2026-11-28T10:40:00Z",
        "2026-11-28T10:50:00Z",
    )
    assert ref["message"] == (
        "the reference window from 2026-11-28T10:05:00Z is older than Prometheus keeps (20m) and was "
        "never read: collecting a new one"
    )
    assert (signal(p)["verdict"], signal(p)["reason"]) == ("Unknown", c.COLLECTING_REFERENCE)


def test_only_prompts_and_quality_signals_do_not_depend_on_prometheus_retention() -> None:
    only_prompts = parse(body(drift={**DRIFT, "window": "30d", "traffic": {"signals": []}}))
    assert retention_problem(only_prompts, DAY) is None
    with_feedback = parse(body(drift={**DRIFT, "window": "30d", "traffic": {"signals": []}, "feedback": {}}))
    assert retention_problem(with_feedback, DAY) is not None


def test_turning_drift_off_removes_its_status() -> None:
    b, ch, now = frozen()
    b["spec"]["drift"] = {**DRIFT, "enabled": False}
    p = at(b, ch, now + MINUTE)
    assert "drift" not in p.status
    assert all(x["type"] != c.DRIFTED for x in p.status["conditions"])


# --------------------------------------------------------------------------------------- feedback


def test_feedback_without_the_gateway_metric_is_unknown_saying_so() -> None:
    b, ch, now = frozen({**DRIFT, "feedback": {"maxNegativeRatio": 0.2, "minSamples": 50}})
    keys = [q.key for q in drift_request(b, parse(b), now + MINUTE)]
    assert keys == ["current/inputLength", "feedback/negative", "feedback/total"]
    none = NoData("the query returned no series")
    b, p = measured(b, ch, now + MINUTE, current=hist(SHORT), feedback=none)
    got = signal(p, "feedback")
    assert (got["verdict"], got["reason"]) == ("Unknown", c.NO_FEEDBACK_METRIC)
    assert "no llmops_feedback_total series" in got["message"]
    assert cond(p, c.DRIFTED)["status"] == c.UNKNOWN
    b, p = measured(
        b,
        ch,
        now + 2 * MINUTE,
        current=hist(SHORT),
        **{"feedback/negative": Value(30), "feedback/total": Value(100)},
    )
    assert (signal(p, "feedback")["verdict"], signal(p, "feedback")["value"]) == ("Drifted", 0.3)
    assert cond(p, c.DRIFTED)["status"] == c.TRUE


# ---------------------------------------------------------------------------------------- quality

EVALUATION = {
    "dataset": {"configMapRef": {"name": "qa", "key": "qa.jsonl"}},
    "thresholds": [{"metric": "exactMatch", "min": 0.5}, {"metric": "latencyP95", "max": 2.0}],
    "schedule": "0 * * * *",
}
GATE = {
    "revision": SHA_A,
    "job": "m-eval-1",
    "passed": True,
    "metrics": [
        {"metric": "exactMatch", "value": 0.9, "min": 0.5, "passed": True},
        {"metric": "latencyP95", "value": 0.5, "max": 2.0, "passed": True},
    ],
}


def quality_serving(metric: str = "exactMatch") -> tuple[dict[str, Any], dict]:
    drift = {
        **DRIFT,
        "traffic": {"signals": []},
        "quality": {"metric": metric, "maxDrop": 0.1, "consecutive": 2},
    }
    b, ch = to_serving(body())
    b["spec"]["evaluation"] = EVALUATION
    b["spec"]["drift"] = drift
    b["status"]["evaluation"] = GATE  # the score the revision had at its gate
    return b, ch


def scheduled_run(
    b: dict[str, Any], ch: dict, n: int, exact: float, latency: float = 0.5
) -> tuple[dict, Plan]:
    """The CronJob's n-th run finished with these scores (passing or not); one pass."""
    name = f"m-eval-scheduled-{n}"
    labels = {"app.kubernetes.io/component": "evaluation-scheduled", "llmops.io/deployment": "m"}
    owner = [{"kind": "CronJob", "name": "m-eval-scheduled", "uid": "u-9", "controller": True}]
    ch[("Job", name)] = {
        "kind": "Job",
        "metadata": {"name": name, "labels": labels, "ownerReferences": owner},
        "status": {
            "completionTime": f"2026-11-28T1{n}:00:00Z",
            "conditions": [{"type": "Complete", "status": "True"}]
            if exact >= 0.5 and latency <= 2.0
            else [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}],
        },
    }
    summary = {
        "verdict": "Passed",
        "exitCode": 0,
        "modelRevision": SHA_A,
        "metrics": {
            "exactMatch": {"value": exact, "min": 0.5, "passed": exact >= 0.5},
            "latencyP95": {"value": latency, "max": 2.0, "passed": latency <= 2.0},
        },
    }
    p = plan(b, Observations(children=ch, pods=[job_pod(name, 0, json.dumps(summary))]), T0 + n * MINUTE)
    return with_status(p, b), p


def test_quality_drops_count_in_a_row_against_the_gate_score() -> None:
    b, ch = quality_serving()
    b, p = scheduled_run(b, ch, 1, exact=0.75)  # drop 0.15 > 0.1, but one run is not two
    got = signal(p, "quality")
    assert (got["verdict"], got["value"]) == ("NoDrift", 0.15)
    assert p.status["drift"]["quality"]["consecutiveDrops"] == 1
    # The same run seen again is not counted again.
    again = plan(b, Observations(children=ch), T0 + 2 * MINUTE)
    assert again.status["drift"]["quality"]["consecutiveDrops"] == 1
    b, p = scheduled_run(b, ch, 2, exact=0.78)  # drop 0.12: two in a row
    drifted = cond(p, c.DRIFTED)
    assert (drifted["status"], drifted["reason"]) == (c.TRUE, c.EVAL_SCORE_DROPPED)
    assert drifted["message"] == (
        "quality: exactMatch 0.78 against 0.9 at the gate (drop 0.12, allowed 0.1); "
        "2 run(s) in a row above the allowed drop, 2 make drift"
    )
    assert any(e.reason == c.EVAL_SCORE_DROPPED and e.type == "Warning" for e in p.events)
    b, p = scheduled_run(b, ch, 3, exact=0.85)  # drop 0.05: the streak ends
    assert cond(p, c.DRIFTED)["status"] == c.FALSE
    assert p.status["drift"]["quality"]["consecutiveDrops"] == 0


def test_a_failing_scheduled_run_is_not_a_drop_when_the_gate_scored_as_low() -> None:
    b, ch = quality_serving()
    b["status"]["evaluation"] = {
        **GATE,
        "metrics": [{"metric": "exactMatch", "value": 0.45, "min": 0.5, "passed": False}],
    }
    b, p = scheduled_run(b, ch, 1, exact=0.4)  # misses min 0.5, but only 0.05 below the gate's 0.45
    b, p = scheduled_run(b, ch, 2, exact=0.4)
    assert p.status["scheduledEvaluation"]["passed"] is False
    assert signal(p, "quality")["verdict"] == "NoDrift"
    assert cond(p, c.DRIFTED)["status"] == c.FALSE


def test_a_max_threshold_means_a_rise_is_the_drop() -> None:
    b, ch = quality_serving("latencyP95")
    b, p = scheduled_run(b, ch, 1, exact=0.9, latency=0.7)
    b, p = scheduled_run(b, ch, 2, exact=0.9, latency=0.8)
    got = signal(p, "quality")
    assert (got["verdict"], got["value"]) == ("Drifted", 0.3)


def test_quality_without_a_gate_score_is_unknown() -> None:
    b, ch = quality_serving()
    del b["status"]["evaluation"]
    b, p = scheduled_run(b, ch, 1, exact=0.2)
    got = signal(p, "quality")
    assert (got["verdict"], got["reason"]) == ("Unknown", "NoGateScore")
    assert cond(p, c.DRIFTED)["status"] == c.UNKNOWN


def test_quality_keeps_the_serving_gate_score_while_a_candidates_gate_replaced_the_evaluation() -> None:
    b, ch = quality_serving()
    gate = b["status"]["evaluation"]
    b["status"]["serving"] = {
        "model": "org/model",
        "revision": SHA_A,
        "origin": "spec",
        "scores": gate["metrics"],
    }
    b["status"]["evaluation"] = {**gate, "revision": "c" * 40}  # a retrained candidate's verdict
    b, p = scheduled_run(b, ch, 1, exact=0.75)
    assert (signal(p, "quality")["verdict"], signal(p, "quality")["value"]) == ("NoDrift", 0.15)


# ------------------------------------------------------------------------------- shell and metrics


def test_without_a_prometheus_url_every_query_is_an_error_so_unknown() -> None:
    b, ch, now = frozen()
    wanted = drift_request(b, parse(b), now + MINUTE)
    results = measure_drift(None, wanted)
    assert results is not None and set(results) == {"current/inputLength"}
    assert isinstance(results["current/inputLength"], Error)
    p = at(b, ch, now + MINUTE, results)
    assert (signal(p)["verdict"], signal(p)["reason"]) == ("Unknown", c.OBSERVATION_FAILED)
    assert "no Prometheus URL" in signal(p)["message"]
    assert measure_drift(None, []) is None


def test_the_operator_exports_drift_scores_only_for_known_verdicts() -> None:
    b, ch, now = frozen()
    b, p = measured(b, ch, now + MINUTE, current=hist(LONG))
    got = signal(p)
    metrics.observe_status("ns", "m", p.status, rolled_back=False)
    labels = {"llmd_namespace": "ns", "llmd_name": "m", "signal": "inputLength"}
    score = REGISTRY.get_sample_value("llmops_drift_score", labels)
    assert score == pytest.approx(max(got["value"] / 0.2, got["ks"] / 0.2))
    assert REGISTRY.get_sample_value("llmops_drift_value", {**labels, "statistic": "psi"}) == got["value"]
    assert REGISTRY.get_sample_value("llmops_drift_value", {**labels, "statistic": "ks"}) == got["ks"]
    # Prometheus down: Unknown, and no number to alert on.
    down = Error("cannot query Prometheus at http://prom:9090: connection refused", "unreachable")
    b, p = measured(b, ch, now + 2 * MINUTE, current=down)
    metrics.observe_status("ns", "m", p.status, rolled_back=False)
    assert REGISTRY.get_sample_value("llmops_drift_score", labels) is None
    metrics.forget("ns", "m")


def test_the_prometheus_rule_alerts_on_the_drift_score() -> None:
    ld = parse(body(drift=DRIFT))
    rule = prometheus_rule(ld)
    assert rule is not None
    alert = next(a for a in rule["spec"]["groups"][0]["rules"] if a["alert"] == "LLMDeploymentDrifted")
    assert alert["expr"] == 'max by (signal) (llmops_drift_score{llmd_namespace="ns",llmd_name="m"}) >= 1'
    assert alert["labels"] == {"severity": "warning", "llmops_deployment": "m", "namespace": "ns"}
    without = prometheus_rule(parse(body()))
    assert without is not None
    assert all(a["alert"] != "LLMDeploymentDrifted" for a in without["spec"]["groups"][0]["rules"])


def test_a_pass_with_nothing_new_writes_nothing() -> None:
    offset = {**DRIFT, "traffic": {**DRIFT["traffic"], "reference": {"mode": "Offset", "offset": "1d"}}}
    for drift in (DRIFT, offset):
        b, ch = serving(drift)
        b, _ = measured(b, ch, T0 + 6 * MINUTE, current=hist(SHORT), reference=hist(SHORT))
        stored = json.loads(json.dumps(b))  # as the apiserver keeps it: no nulls
        again = at(stored, ch, T0 + 6 * MINUTE + dt.timedelta(seconds=10))
        assert not again.status_changed, drift


def test_a_histogram_too_fine_for_status_is_not_frozen() -> None:
    b, ch = serving()
    fine = tuple(float(e) for e in range(1, 201))
    end = dt.datetime.fromisoformat(b["status"]["drift"]["reference"]["end"]) + dt.timedelta(seconds=5)
    counts = (1.0,) * 201
    b, p = measured(b, ch, end, current=hist(counts, edges=fine), reference=hist(counts, edges=fine))
    ref = p.status["drift"]["reference"]
    assert ref["histograms"] == []
    assert ref["message"] == "inputLength has 200 buckets, more than 128 can be kept"
    assert p.status_changed
