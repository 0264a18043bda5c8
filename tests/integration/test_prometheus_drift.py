"""Drift detection end to end without Kubernetes: the operator's drift stage, pass by pass, against
a real Prometheus scraping a TGI simulator that takes real traffic (testkit.drift_rig).

One serving pod of `ns/m`, prompts of 20-120 words at ~50 requests/s, scraped every second;
spec.drift compares 10 s windows of TGI's input-length and generated-token histograms. The tests
run in order on one rig: the reference is frozen from the first window of serving; stationary
traffic is checked many times and never drifts; too few samples and an unreachable Prometheus
are Unknown; then the prompts grow to 300-500 words and the next checks say Drifted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from llmops.api import conditions as c
from llmops_dev.processes import free_port
from testkit import wait_for
from testkit.drift_rig import DriftRig, drift_rig

DRIFT = {
    "interval": "3s",
    "window": "10s",
    "traffic": {"signals": ["inputLength", "generatedTokens"], "minSamples": 300, "psi": 0.2, "ks": 0.2},
}
STATIONARY_CHECKS = 20


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DriftRig]:
    with drift_rig(tmp_path_factory.mktemp("drift"), DRIFT, rate=100, prompt_words=(20, 120)) as r:
        yield r


def test_the_reference_is_the_first_window_of_serving(rig: DriftRig) -> None:
    first = wait_for("a first drift check", rig.check, timeout=10, interval=0.2)
    verdict = next(s for s in first.status["drift"]["signals"] if s["signal"] == "inputLength")
    assert (verdict["verdict"], verdict["reason"]) == ("Unknown", c.COLLECTING_REFERENCE)

    def frozen() -> bool:
        rig.check()
        return bool(rig.status["drift"]["reference"]["histograms"])

    wait_for("the reference to be frozen", frozen, timeout=40, interval=0.2)
    ref = rig.status["drift"]["reference"]
    by_signal = {h["signal"]: h for h in ref["histograms"]}
    # TGI's linear token buckets: maxInputTokens / 100 wide (1024 here), 100 of them.
    assert by_signal["inputLength"]["edges"] == pytest.approx([10.24 * (k + 1) for k in range(100)])
    assert sum(by_signal["inputLength"]["counts"]) >= 300
    assert sum(by_signal["inputLength"]["counts"][12:]) == 0  # no prompt is longer than 120 words
    assert rig.drifted()["status"] == c.FALSE, rig.drifted()


def test_stationary_traffic_never_drifts(rig: DriftRig) -> None:
    rig.spec(interval="1s")  # status times have whole seconds: a shorter interval re-reads a scrape
    start = len(rig.checks)
    wait_for(
        f"{STATIONARY_CHECKS} checks",
        lambda: rig.check() and len(rig.checks) - start >= STATIONARY_CHECKS,
        timeout=60,
        interval=0.1,
    )
    verdicts = [s for p in rig.checks[start:] for s in p.status["drift"]["signals"]]
    assert {s["verdict"] for s in verdicts} == {"NoDrift"}, [s["message"] for s in verdicts]
    psi = [s["value"] for s in verdicts if s["signal"] == "inputLength"]
    assert max(psi) < 0.1, psi


def test_below_the_minimum_samples_the_verdict_is_unknown(rig: DriftRig) -> None:
    rig.spec(traffic={**DRIFT["traffic"], "minSamples": 1_000_000})
    try:
        p = wait_for("a check", rig.check, timeout=10, interval=0.1)
        verdict = next(s for s in p.status["drift"]["signals"] if s["signal"] == "inputLength")
        assert (verdict["verdict"], verdict["reason"]) == ("Unknown", c.INSUFFICIENT_SAMPLES)
        assert "fewer than minSamples 1000000" in verdict["message"]
        assert rig.drifted()["status"] == c.UNKNOWN
    finally:
        rig.spec(traffic=DRIFT["traffic"])


def test_prometheus_down_is_unknown_not_drifted(rig: DriftRig) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    p = wait_for("a check", lambda: rig.check(prometheus_url=nowhere), timeout=10, interval=0.1)
    verdict = next(s for s in p.status["drift"]["signals"] if s["signal"] == "inputLength")
    assert (verdict["verdict"], verdict["reason"]) == ("Unknown", c.OBSERVATION_FAILED)
    assert "connection refused" in verdict["message"]
    assert rig.drifted()["status"] == c.UNKNOWN
    assert rig.status["drift"]["reference"]["histograms"]  # the reference survives the outage


def test_longer_prompts_are_drifted_within_two_intervals(rig: DriftRig) -> None:
    rig.spec(interval=DRIFT["interval"])
    wait_for(
        "a calm check", lambda: rig.check() and rig.drifted()["status"] == c.FALSE, timeout=20, interval=0.1
    )
    start = len(rig.checks)
    rig.traffic.prompt_words = (300, 500)
    shifted = time.monotonic()
    wait_for(
        "Drifted=True", lambda: rig.check() and rig.drifted()["status"] == c.TRUE, timeout=30, interval=0.1
    )
    elapsed = time.monotonic() - shifted
    checks = len(rig.checks) - start
    assert checks <= 2, (
        f"{checks} checks after the shift: {[p.status['drift']['signals'] for p in rig.checks[start:]]}"
    )
    assert elapsed <= 2 * 3 + 1, elapsed
    drifted = rig.drifted()
    assert drifted["reason"] == c.DRIFT_DETECTED
    assert drifted["message"].startswith("inputLength: PSI ")
    assert rig.signal("generatedTokens")["verdict"] == "NoDrift"  # the answers did not change
    events = [e for e in rig.checks[-1].events if e.reason == c.DRIFT_DETECTED]
    assert events and events[0].type == "Warning"
