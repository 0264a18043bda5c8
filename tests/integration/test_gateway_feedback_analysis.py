"""A canary judged on user feedback by the real Prometheus, without Kubernetes: a canary and a
stable gateway (each in front of a TGI simulator) labelled in a file_sd targets file as the
PodMonitor labels their health ports, a real Prometheus scraping them every second, and the
operator's analysis code (queries → PromClient.query_all → measure_all → judge).

Users press "down" on 30 % of the canary's answers, and send that feedback to the *stable*
gateway (as a load balancer may, or after a promotion): it still counts for the canary, because
the track comes from the signed request ID. feedback-negative-ratio with max 0.2 fails the
canary and, at the failure limit, rolls it back; the stable track reads 0.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from llmops.analysis import Decision, Outcome, Value, judge, measure_all, queries
from llmops.analysis.drift import SignalVerdict
from llmops.analysis.drift import Verdict as DriftVerdict
from llmops.analysis.drift import feedback as drift_feedback
from llmops.analysis.drift import feedback_queries as drift_feedback_queries
from llmops.api.delivery import AnalysisSpec
from llmops.engines import TGI
from llmops.prom import PromClient
from llmops_dev.gateway_thread import serve_pod
from llmops_dev.prometheus import Prometheus, write_targets
from llmops_dev.tgisim import Behaviour, Simulator
from testkit import wait_for

NS, NAME, WINDOW = "prod", "chat", "10s"
KEY = b"s" * 32
DOWN_EVERY = (3, 10)  # 3 of every 10 canary answers are rated down


class Users:
    """Ask the canary, rate its answers (30 % down) on the stable gateway; rate stable answers up."""

    def __init__(self, canary: str, stable: str) -> None:
        self.canary, self.stable = canary, stable
        self.rated = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="users", daemon=True)

    def _ask(self, client: httpx2.Client, url: str) -> str:
        r = client.post(f"{url}/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": 1}})
        r.raise_for_status()
        return r.headers["X-LLMOps-Request-ID"]

    def _run(self) -> None:
        with httpx2.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    rating = "down" if self.rated % DOWN_EVERY[1] < DOWN_EVERY[0] else "up"
                    rid = self._ask(client, self.canary)
                    fb = client.post(f"{self.stable}/v1/feedback", json={"request_id": rid, "rating": rating})
                    assert fb.status_code == 202 and fb.json()["track"] == "canary", fb.text
                    rid = self._ask(client, self.stable)
                    client.post(
                        f"{self.stable}/v1/feedback", json={"request_id": rid, "rating": 5}
                    ).raise_for_status()
                    self.rated += 1
                    self._stop.wait(0.02)  # pacing: about 40 ratings a second, not a busy loop
                except BaseException as exc:
                    self.error = exc
                    return

    def __enter__(self) -> Users:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert self.error is None, f"the users broke: {self.error!r}"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PromClient, Users]]:
    state: Path = tmp_path_factory.mktemp("feedback-canary")
    with contextlib.ExitStack() as stack:
        api, pods = {}, []
        for track in ("canary", "stable"):
            sim = Simulator(Behaviour(), revision=f"rev-{track}")
            api[track], pod = serve_pod(stack, sim, f"{NS}/{NAME}", track, KEY)
            pods.append(pod)
        targets = state / "tgi-targets.json"
        write_targets(targets, pods)
        prometheus = Prometheus.start(state, targets, scrape_interval="1s")
        stack.callback(prometheus.stop)
        users = stack.enter_context(Users(api["canary"], api["stable"]))
        client = stack.enter_context(PromClient(prometheus.url))
        yield client, users


def test_a_canary_users_rate_down_30_percent_is_rolled_back_on_feedback(
    fleet: tuple[PromClient, Users],
) -> None:
    prom, users = fleet
    covered = (
        f'count_over_time(llmops_feedback_total{{namespace="{NS}",track="canary",rating="down"}}[{WINDOW}])'
    )
    wait_for(
        "the canary's feedback to cover the rate window",
        lambda: isinstance(r := prom.query(covered), Value) and r.value >= 9,
        timeout=60,
        interval=0.25,
    )
    analysis = AnalysisSpec.model_validate(
        {
            "interval": WINDOW,
            "failureLimit": 2,
            "metrics": [
                {
                    "name": "user-feedback",
                    "template": "feedback-negative-ratio",
                    "thresholdRange": {"max": 0.2},
                }
            ],
        }
    )
    wanted = queries(analysis, TGI(), NS, NAME, WINDOW)
    (check,) = measure_all(analysis, prom.query_all(wanted))
    assert check.verdict == Outcome.FAIL, check.message
    assert check.value == pytest.approx(0.3, abs=0.08), check.message
    first = judge([check], 0, 0, 2, 1)
    assert first.decision == Decision.CONTINUE
    second = judge([check], first.failed_checks, first.inconclusive_checks, 2, 1)
    assert second.decision == Decision.ROLLBACK, second.message
    # The stable track's answers are all rated 5: no negative feedback.
    stable = prom.query(wanted[0].canary.replace('track="canary"', 'track="stable"'))
    assert stable == Value(0.0)
    assert users.rated > 0


def test_feedback_drift_counts_the_ratings_users_gave_the_serving_revision(
    fleet: tuple[PromClient, Users],
) -> None:
    """The drift check's feedback signal reads the same counter: 30 % "down" on rev-canary's
    answers is drift at maxNegativeRatio 0.2; rev-stable's answers, all rated 5, are not."""
    prom, _ = fleet

    def verdict(revision: str) -> SignalVerdict | None:
        negative, total = drift_feedback_queries(NS, NAME, revision, WINDOW)
        bad, every = prom.query(negative), prom.query(total)
        if not (isinstance(bad, Value) and isinstance(every, Value) and every.value >= 20):
            return None
        return drift_feedback(bad.value, every.value, max_ratio=0.2, min_samples=20)

    canary = wait_for(
        "20 ratings of rev-canary's answers in the window", lambda: verdict("rev-canary"), 60, 0.25
    )
    assert canary.verdict == DriftVerdict.DRIFTED, canary.message
    assert canary.value == pytest.approx(0.3, abs=0.08), canary.message
    stable = wait_for("20 ratings of rev-stable's answers", lambda: verdict("rev-stable"), 60, 0.25)
    assert stable.verdict == DriftVerdict.NO_DRIFT and stable.value == 0.0, stable.message
