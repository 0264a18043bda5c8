"""Canary analysis end to end without Kubernetes: TGI simulators labelled as canary and stable pods
in a file_sd targets file (the labels a PodMonitor gives), a real Prometheus scraping them every
second, traffic from the real huggingface_hub client, and the operator's analysis code:
queries() → PromClient.query_all() → measure_all() → judge().

Three LLMDeployments in namespace `prod`, all scraped from the start (Prometheus passes new targets
on only every 5 s, so they are all in the file before it starts):

- `errors`: the canary fails 5 % of requests (429 overloaded), the stable none;
- `slow`: the canary answers in 0.25 s, the stable in 0.05 s;
- `idle`: no traffic at all.

Every request asks for one token, so TGI's mean time per token equals the inference duration.
Rates use a 10 s window; each test waits (with a deadline) until the series it reads cover it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import OverloadedError

from llmops.analysis import (
    QUERY_REJECTED,
    Check,
    Decision,
    NoData,
    Outcome,
    Result,
    Value,
    judge,
    measure_all,
    queries,
)
from llmops.api.delivery import AnalysisSpec
from llmops.engines import TGI, selector
from llmops.prom import PromClient
from llmops_dev.prometheus import Prometheus, tgi_target, write_targets
from llmops_dev.tgisim import Behaviour, Simulator, run_in_thread
from llmops_dev.tgisim.metrics import DURATION_BUCKETS
from testkit import wait_for

NS = "prod"
WINDOW = "10s"
SAMPLES = 9  # scrapes at 1 s within a 10 s window: the series covers the window (one spare for jitter)
TRACKS = ("canary", "stable")
BEHAVIOURS = {
    "errors": {
        "canary": Behaviour(error_rate=0.05, latency_seconds=0.01),
        "stable": Behaviour(latency_seconds=0.01),
    },
    "slow": {"canary": Behaviour(latency_seconds=0.25), "stable": Behaviour(latency_seconds=0.05)},
    "idle": {"canary": Behaviour(), "stable": Behaviour()},
}
WITH_TRAFFIC = ("errors", "slow")


@dataclass
class Traffic:
    """One client sending one-token generations to one simulator until stopped (no pacing: the
    simulator's latency sets the rate). 429s are the simulated errors; anything else is a failure."""

    url: str
    ok: int = 0
    overloaded: int = 0
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"traffic {self.url}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        client = InferenceClient(model=self.url)
        while not self._stop.is_set():
            try:
                client.text_generation("Tell me something.", max_new_tokens=1)
                self.ok += 1
            except OverloadedError:
                self.overloaded += 1
            except BaseException as exc:
                self.error = exc
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        assert self.error is None, f"traffic to {self.url} broke: {self.error!r}"


@dataclass
class Fleet:
    """The simulators behind a running Prometheus, with traffic to the `errors` and `slow` pods."""

    prometheus: Prometheus
    client: PromClient
    traffic: dict[tuple[str, str], Traffic]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    state: Path = tmp_path_factory.mktemp("prom-canary")
    with contextlib.ExitStack() as stack:
        urls: dict[tuple[str, str], str] = {}
        for name, tracks in BEHAVIOURS.items():
            for track, behaviour in tracks.items():
                sim = Simulator(behaviour, model_id="org/model", revision=f"rev-{track}")
                urls[name, track] = stack.enter_context(run_in_thread(sim))
        targets = state / "tgi-targets.json"
        write_targets(
            targets,
            [
                tgi_target(
                    url.removeprefix("http://"),
                    namespace=NS,
                    pod=f"{name}-{track}-0",
                    deployment=name,
                    track=track,
                    revision=f"rev-{track}",
                )
                for (name, track), url in urls.items()
            ],
        )
        prometheus = Prometheus.start(state, targets, scrape_interval="1s")
        stack.callback(prometheus.stop)
        traffic = {key: Traffic(urls[key]) for key in urls if key[0] in WITH_TRAFFIC}
        for t in traffic.values():
            t.start()
            stack.callback(t.stop)
        client = stack.enter_context(PromClient(prometheus.url))
        yield Fleet(prometheus, client, traffic)


def wait_covered(
    fleet: Fleet, name: str, *series: str, tracks: tuple[str, ...] = TRACKS, timeout: float = 60
) -> None:
    """Wait until every `series` (a metric name, optionally with extra matchers in braces) of the
    `tracks` of `name` has SAMPLES samples within the rate window."""
    for track in tracks:
        sel = selector(NS, name, track)
        for s in series:
            metric, _, extra = s.partition("{")
            matchers = f"{sel},{extra.rstrip('}')}" if extra else sel
            promql = f"count_over_time({metric}{{{matchers}}}[{WINDOW}])"

            def covered(promql: str = promql) -> bool:
                got = fleet.client.query(promql)
                return isinstance(got, Value) and got.value >= SAMPLES

            wait_for(f"{promql} >= {SAMPLES}", covered, timeout=timeout, interval=0.25)


def template(fleet: Fleet, name: str, track: str, which: str) -> Result:
    """One built-in template of the engine, over one track's pods."""
    return fleet.client.query(TGI().query(which, selector=selector(NS, name, track), window=WINDOW))


def measure_now(fleet: Fleet, analysis: AnalysisSpec, name: str) -> list[Check]:
    """What the operator does every analysis interval, before judge()."""
    return measure_all(analysis, fleet.client.query_all(queries(analysis, TGI(), NS, name, WINDOW)))


def bucket_below(seconds: float) -> float:
    """The histogram edge just below `seconds`: no request that took `seconds` can have a quantile under it."""
    return max(edge for edge in DURATION_BUCKETS if edge < seconds)


def spec(*metrics: dict[str, object], failure_limit: int = 2, inconclusive_limit: int = 1) -> AnalysisSpec:
    return AnalysisSpec.model_validate(
        {
            "interval": WINDOW,
            "failureLimit": failure_limit,
            "inconclusiveLimit": inconclusive_limit,
            "metrics": list(metrics),
        }
    )


def test_no_data_before_traffic_is_inconclusive(fleet: Fleet) -> None:
    # The idle pods are scraped (their queue gauge exists from the start) but have served nothing.
    wait_covered(fleet, "idle", "up")
    assert template(fleet, "idle", "canary", "queue-size") == Value(0.0)
    assert template(fleet, "idle", "canary", "error-ratio") == NoData(
        "the value is NaN (e.g. a ratio of rates without traffic in the window)"
    )
    for which in ("latency-p95", "time-per-token-p95"):
        assert template(fleet, "idle", "canary", which) == NoData("the query returned no series")

    analysis = spec(
        {"name": "error-ratio", "template": "error-ratio", "thresholdRange": {"max": 0.05}},
        {"name": "latency-p95", "template": "latency-p95", "compareToStable": {"maxRatio": 1.5}},
        {"name": "queue-size", "template": "queue-size", "compareToStable": {"maxRatio": 2}},
    )
    checks = measure_now(fleet, analysis, "idle")
    assert [(c.name, c.verdict) for c in checks] == [
        ("error-ratio", Outcome.INCONCLUSIVE),
        ("latency-p95", Outcome.INCONCLUSIVE),
        ("queue-size", Outcome.PASS),  # 0 against a stable 0
    ]
    assert checks[1].message == "no data for the canary: the query returned no series"
    assert checks[2].message == "canary 0 <= stable 0"

    first = judge(checks, 0, 0, 2, 1)
    assert (first.decision, first.inconclusive_checks) == (Decision.CONTINUE, 1)
    second = judge(checks, first.failed_checks, first.inconclusive_checks, 2, 1)
    assert (second.decision, second.inconclusive_checks) == (Decision.PAUSE, 2)
    assert second.message == (
        "paused, not promoting without data: 2 inconclusive measurements, more than the 1 tolerated: "
        "error-ratio: no data for the canary: the value is NaN (e.g. a ratio of rates without traffic in the window); "
        "latency-p95: no data for the canary: the query returned no series"
    )


def test_error_ratio_of_a_canary_failing_5_percent(fleet: Fleet) -> None:
    wait_covered(fleet, "errors", "tgi_request_success")
    # The failure series exists only on the canary (TGI creates it on the first failure).
    wait_covered(fleet, "errors", 'tgi_request_failure{err="overloaded"}', tracks=("canary",))
    traffic = fleet.traffic["errors", "canary"]
    assert traffic.overloaded / (traffic.ok + traffic.overloaded) == pytest.approx(0.05, abs=0.002)

    canary = template(fleet, "errors", "canary", "error-ratio")
    assert isinstance(canary, Value)
    assert canary.value == pytest.approx(0.05, abs=0.01)
    # Not the `1 - success/count` pitfall, and `or vector(0)` makes a clean stable exactly 0, not no data.
    assert template(fleet, "errors", "stable", "error-ratio") == Value(0.0)

    analysis = spec(
        {"name": "error-ratio", "template": "error-ratio", "thresholdRange": {"max": 0.02}},
        {"name": "queue-size", "template": "queue-size", "compareToStable": {"maxRatio": 2}},
    )
    checks = measure_now(fleet, analysis, "errors")
    assert [(c.name, c.verdict) for c in checks] == [
        ("error-ratio", Outcome.FAIL),
        ("queue-size", Outcome.PASS),
    ]
    assert checks[0].value == pytest.approx(0.05, abs=0.01)
    assert checks[0].message == f"{checks[0].value:.4g} above max 0.02"

    verdict = judge(checks, 1, 0, 2, 1)
    assert (verdict.decision, verdict.failed_checks) == (Decision.ROLLBACK, 2)
    assert (
        verdict.message
        == f"2/2 failed measurements, rolling back: error-ratio: {checks[0].value:.4g} above max 0.02"
    )


def test_latency_regression_against_stable_fails(fleet: Fleet) -> None:
    wait_covered(
        fleet, "slow", "tgi_request_duration_count", "tgi_request_mean_time_per_token_duration_count"
    )
    for which in ("latency-p95", "time-per-token-p95"):
        canary, stable = (template(fleet, "slow", track, which) for track in TRACKS)
        assert isinstance(canary, Value) and isinstance(stable, Value), (which, canary, stable)
        # Every canary request took >= 0.25 s and every stable one >= 0.05 s: the p95 lies in or above
        # the histogram bucket holding that time (TGI's buckets grow by 1.5x).
        assert bucket_below(0.25) < canary.value < 0.5, (which, canary)
        assert bucket_below(0.05) < stable.value < 0.15, (which, stable)

    analysis = spec(
        {"name": "latency-p95", "template": "latency-p95", "compareToStable": {"maxRatio": 1.5}},
        {
            "name": "time-per-token",
            "template": "time-per-token-p95",
            "compareToStable": {"maxRatio": 1.5},
        },
        {"name": "error-ratio", "template": "error-ratio", "thresholdRange": {"max": 0.05}},
    )
    checks = measure_now(fleet, analysis, "slow")
    assert [(c.name, c.verdict) for c in checks] == [
        ("latency-p95", Outcome.FAIL),
        ("time-per-token", Outcome.FAIL),
        ("error-ratio", Outcome.PASS),
    ]
    latency = checks[0]
    assert latency.value is not None and latency.stable_value is not None
    assert latency.value > 1.5 * latency.stable_value
    assert latency.message == (
        f"canary {latency.value:.4g} above 1.5 x stable {latency.stable_value:.4g} = {1.5 * latency.stable_value:.4g}"
    )
    assert checks[2].message == "0 <= max 0.05"

    verdict = judge(checks, 0, 0, 2, 1)
    assert (verdict.decision, verdict.failed_checks) == (Decision.CONTINUE, 1)
    assert verdict.message.startswith("1/2 failed measurements: latency-p95: canary ")
    assert "; time-per-token: canary " in verdict.message


def test_a_syntactically_wrong_custom_query_quotes_prometheus(fleet: Fleet) -> None:
    analysis = spec(
        {"name": "error-ratio", "template": "error-ratio", "thresholdRange": {"max": 0.05}},
        {
            "name": "custom",
            "query": "sum(rate(tgi_request_success{ {{ selector }} }[{{ interval }}])",
            "thresholdRange": {"min": 1},
        },
    )
    [_, custom] = queries(analysis, TGI(), NS, "slow", WINDOW)
    assert custom.canary == f"sum(rate(tgi_request_success{{ {selector(NS, 'slow', 'canary')} }}[{WINDOW}])"
    checks = measure_now(fleet, analysis, "slow")
    assert checks[1].verdict is Outcome.ERROR
    column = len(custom.canary) + 1
    prometheus_says = (
        f'bad_data: invalid parameter "query": 1:{column}: parse error: unclosed left parenthesis'
    )
    assert checks[1].message == f"Prometheus rejected the canary query: {prometheus_says}"

    verdict = judge(checks, 0, 0, 2, 3)
    assert (verdict.decision, verdict.reason) == (Decision.PAUSE, QUERY_REJECTED)
    assert verdict.message == (
        f"paused: fix the analysis query in spec.rollout.analysis: custom: Prometheus rejected the canary query: "
        f"{prometheus_says}"
    )
