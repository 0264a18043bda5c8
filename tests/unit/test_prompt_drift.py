"""The prompt-content drift signal: the windows the stage asks the capture store for, the
reference it freezes (bounds only), PSI of the term histograms, Unknown below minSamples or with
the store unreachable; and `compare_terms` itself."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest

from llmops.analysis.drift import EdgesDiffer, TermCounts, Verdict, compare_terms
from llmops.analysis.results import Error
from llmops.api import conditions as c
from llmops.api.resource import parse
from llmops.capture_store.terms import bucket_of, histogram_of
from llmops.lifecycle.drift import prompts_request
from llmops.lifecycle.observations import Observations
from llmops.lifecycle.plan import Plan, plan
from llmops.reconciler import measure_prompts
from testkit.planning import (
    SHA_A,
    SHA_B,
    T0,
    body,
    children_of,
    cond,
    job_done,
    rollout,
    to_serving,
    with_status,
)

BUCKETS = 256
PROMPTS = {"psi": 0.2, "minSamples": 100, "buckets": BUCKETS, "bins": 20}
DRIFT = {"interval": "1m", "window": "10m", "traffic": {"signals": []}, "prompts": PROMPTS}
CAPTURE = {"capture": {"sampleRate": 1.0}}
MINUTE = dt.timedelta(minutes=1)
TAX = ["tax", "refund", "deadline", "form", "income", "return", "deduction", "audit", "bracket", "filing"]
SPORT = ["football", "match", "goal", "score", "league", "team", "coach", "player", "season", "referee"]


def terms(vocabulary: list[str], n: int, seed: int) -> TermCounts:
    """The store's histogram of ``n`` prompts of 3 to 6 words drawn from ``vocabulary``."""
    rng = random.Random(seed)
    prompts = [{"prompt": " ".join(rng.choices(vocabulary, k=rng.randint(3, 6)))} for _ in range(n)]
    h = histogram_of(prompts, BUCKETS)
    return TermCounts(h.counts, h.prompts)


def serving(drift: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict]:
    return to_serving(body(drift=drift or DRIFT, gateway=CAPTURE))


def measured(b: dict[str, Any], ch: dict, now: dt.datetime, **by_key: Any) -> tuple[dict[str, Any], Plan]:
    """A pass at ``now`` with the windows prompts_request asks for answered from ``by_key``
    (``current`` / ``reference``)."""
    wanted = prompts_request(b, parse(b), now)
    assert wanted, f"no prompts check due at {now}"
    results = {q.key: by_key[q.key.split("/")[1]] for q in wanted}
    p = plan(b, Observations(children=ch, drift=results), now)
    return with_status(p, b), p


def signal(p: Plan) -> dict[str, Any]:
    return next(s for s in p.status["drift"]["signals"] if s["signal"] == "prompts")


def frozen() -> tuple[dict[str, Any], dict, dt.datetime]:
    b, ch = serving()
    end = dt.datetime.fromisoformat(b["status"]["drift"]["promptsReference"]["end"])
    now = end + dt.timedelta(seconds=5)
    b, _ = measured(b, ch, now, current=terms(TAX, 300, 1), reference=terms(TAX, 300, 2))
    assert b["status"]["drift"]["promptsReference"]["prompts"] == 300
    return b, ch, now


# ------------------------------------------------------------------------------------- compare


def test_the_same_topic_is_no_drift_and_another_topic_is_drifted() -> None:
    reference = terms(TAX, 300, 1)
    same = compare_terms(reference, terms(TAX, 300, 2), psi_threshold=0.2, min_samples=100, bins=20)
    assert same.verdict == Verdict.NO_DRIFT and same.value is not None and same.value < 0.05, same
    other = compare_terms(reference, terms(SPORT, 300, 3), psi_threshold=0.2, min_samples=100, bins=20)
    assert other.verdict == Verdict.DRIFTED and other.value is not None and other.value > 1, other
    assert "300 captured prompts" in other.message


def test_a_topic_mixed_in_by_half_is_drifted_and_by_a_little_is_not() -> None:
    reference = terms(TAX, 400, 1)

    def mixed(share: float) -> TermCounts:
        a, b = terms(TAX, int(400 * (1 - share)), 5), terms(SPORT, int(400 * share), 6)
        return TermCounts(
            tuple(x + y for x, y in zip(a.counts, b.counts, strict=True)), a.prompts + b.prompts
        )

    assert (
        compare_terms(reference, mixed(0.5), psi_threshold=0.2, min_samples=100, bins=20).verdict == "Drifted"
    )
    assert (
        compare_terms(reference, mixed(0.02), psi_threshold=0.2, min_samples=100, bins=20).verdict
        == "NoDrift"
    )


def test_too_few_prompts_is_unknown_and_other_bucket_counts_are_refused() -> None:
    v = compare_terms(terms(TAX, 50, 1), terms(SPORT, 300, 2), psi_threshold=0.2, min_samples=100, bins=20)
    assert v.verdict == Verdict.UNKNOWN and "fewer than minSamples 100" in v.message
    with pytest.raises(EdgesDiffer):
        compare_terms(
            TermCounts((1, 2), 3), TermCounts((1, 2, 3), 3), psi_threshold=0.2, min_samples=1, bins=2
        )


# ----------------------------------------------------------------------------------------- stage


def test_the_store_is_asked_for_the_current_window_then_the_reference_window_too() -> None:
    b, ch = serving()
    ref = b["status"]["drift"]["promptsReference"]
    assert ref["revision"] == SHA_A and "prompts" not in ref
    assert (ref["start"], ref["end"]) == ("2026-11-28T10:05:00Z", "2026-11-28T10:15:00Z")
    now = T0 + 6 * MINUTE
    [current] = prompts_request(b, parse(b), now)
    assert (current.key, current.since, current.until) == ("prompts/current", now - 10 * MINUTE, now)
    assert (current.revision, current.buckets) == (SHA_A, BUCKETS)
    b, p = measured(b, ch, now, current=terms(TAX, 300, 1))
    assert signal(p)["verdict"] == "Unknown" and signal(p)["reason"] == c.COLLECTING_REFERENCE
    assert prompts_request(b, parse(b), now + dt.timedelta(seconds=30)) == []  # not due yet
    later = dt.datetime(2026, 11, 28, 10, 15, 5, tzinfo=dt.UTC)
    keys = {q.key: (q.since, q.until) for q in prompts_request(b, parse(b), later)}
    assert keys["prompts/reference"] == (later.replace(minute=5, second=0), later.replace(second=0))


def test_the_reference_freezes_as_bounds_and_a_new_topic_is_drifted_with_an_event() -> None:
    b, ch, now = frozen()
    ref = b["status"]["drift"]["promptsReference"]
    assert set(ref) <= {"revision", "start", "end", "prompts", "message"}  # no histogram in status
    later = now + MINUTE
    b, p = measured(b, ch, later, current=terms(TAX, 300, 7), reference=terms(TAX, 300, 2))
    s = signal(p)
    assert s["verdict"] == "NoDrift" and s["threshold"] == 0.2 and s["samples"] == 300
    assert s["reference"] == {"start": ref["start"], "end": ref["end"]}
    assert cond(p, c.DRIFTED)["status"] == c.FALSE
    b, p = measured(b, ch, later + MINUTE, current=terms(SPORT, 300, 8), reference=terms(TAX, 300, 2))
    s = signal(p)
    assert s["verdict"] == "Drifted" and s["value"] > 1, s
    assert cond(p, c.DRIFTED)["status"] == c.TRUE and "prompts: PSI" in cond(p, c.DRIFTED)["message"]
    assert [e.reason for e in p.events if e.reason == c.DRIFT_DETECTED]


def test_a_quiet_reference_window_is_not_frozen_the_next_one_is_tried() -> None:
    b, ch = serving()
    end = dt.datetime.fromisoformat(b["status"]["drift"]["promptsReference"]["end"])
    now = end + dt.timedelta(seconds=5)
    b, p = measured(b, ch, now, current=terms(TAX, 30, 1), reference=terms(TAX, 30, 1))
    ref = b["status"]["drift"]["promptsReference"]
    assert "prompts" not in ref and "30 captured prompts" in ref["message"]
    assert dt.datetime.fromisoformat(ref["end"]) == now + MINUTE
    assert signal(p)["verdict"] == "Unknown" and signal(p)["reason"] == c.COLLECTING_REFERENCE


def test_too_few_current_prompts_is_unknown_never_drifted() -> None:
    b, ch, now = frozen()
    b, p = measured(b, ch, now + MINUTE, current=terms(SPORT, 20, 3), reference=terms(TAX, 300, 2))
    assert signal(p)["verdict"] == "Unknown" and signal(p)["reason"] == c.INSUFFICIENT_SAMPLES
    assert cond(p, c.DRIFTED)["status"] == c.UNKNOWN


def test_the_store_unreachable_is_unknown_with_the_reason() -> None:
    b, ch, now = frozen()
    down = Error("http://m-capture.ns.svc:8080 unreachable: connection refused", "unreachable")
    b, p = measured(b, ch, now + MINUTE, current=down, reference=down)
    s = signal(p)
    assert s["verdict"] == "Unknown" and s["reason"] == c.OBSERVATION_FAILED
    assert "capture store: http://m-capture.ns.svc:8080 unreachable" in s["message"]
    assert b["status"]["drift"]["promptsReference"]["prompts"] == 300  # the reference stays


def test_an_unreadable_token_reads_as_every_window_failing() -> None:
    b, _, now = frozen()
    wanted = prompts_request(b, parse(b), now + MINUTE)
    token = Error("cannot read the Secret m-gateway (403): forbidden", "unreachable")
    assert measure_prompts("http://m-capture.ns.svc:8080", token, wanted) == {q.key: token for q in wanted}


def test_a_reference_window_the_store_no_longer_holds_is_collected_again() -> None:
    b, ch, now = frozen()
    later = now + MINUTE
    b, p = measured(b, ch, later, current=terms(TAX, 300, 7), reference=TermCounts((0,) * BUCKETS, 0))
    ref = b["status"]["drift"]["promptsReference"]
    assert "prompts" not in ref and "deleted by retention" in ref["message"]
    assert dt.datetime.fromisoformat(ref["start"]) == later
    assert signal(p)["verdict"] == "Unknown" and signal(p)["reason"] == c.COLLECTING_REFERENCE


def test_nothing_is_asked_without_spec_drift_prompts_and_a_new_revision_starts_over() -> None:
    b, _ = serving({**DRIFT, "prompts": None, "traffic": {"signals": ["inputLength"]}})
    assert prompts_request(b, parse(b), T0 + 6 * MINUTE) == []
    assert "promptsReference" not in b["status"]["drift"]
    b, ch, now = frozen()
    b["spec"]["model"]["revision"] = SHA_B
    for _ in range(3):  # download, then stable rolls to the new revision
        p = plan(b, Observations(children=ch), now)
        ch = children_of(p, ch)
        job_done(ch, prefix="m-download-")
        rollout(ch, ready=1)
        b = with_status(p, b)
    assert p.status["servingRevision"] == SHA_B
    ref = p.status["drift"]["promptsReference"]
    assert ref["revision"] == SHA_B and "prompts" not in ref
    assert signal(p)["reason"] == "NotChecked"


def test_bucket_numbers_match_the_store() -> None:
    # The operator never hashes: it only compares what the store computed. One check that the
    # helper the tests use hashes like the store does.
    assert histogram_of([{"prompt": "tax"}], BUCKETS).counts[bucket_of("tax", BUCKETS)] == 1
