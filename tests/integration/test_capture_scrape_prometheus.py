"""CaptureDegraded reads a scrape that cannot show drops as NotScraped, against real Prometheus
servers and without the cluster.

One real gateway (llmops.gateway in a thread, in front of a TGI simulator) is a target of two real
Prometheus servers: one scrapes it every second, labelled as the PodMonitor labels a server pod of
`ns/m`, and also as a user's own job would scrape the same gateway for `team-b/m`, under labels
that carry no `llmops_deployment`; the other scrapes it every 45 s. The spec declares 5s, so the operator checks every 10 s over 40 s.
Each check is the operator's own code: capture_request → measure_capture → plan(), with a gateway
pod that has been ready for an hour. Last, the whole path on the local cluster: the operator, real
server pods, and a Prometheus that scrapes none of them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmops.analysis.results import Value
from llmops.api import conditions as c
from llmops.api.resource import parse
from llmops.contracts import parse_timestamp
from llmops.lifecycle.capture import capture_request
from llmops.lifecycle.observations import Observations
from llmops.prom import PromClient
from llmops.reconciler import measure_capture
from llmops_dev.cluster import Cluster
from llmops_dev.gateway_thread import serve_pod
from llmops_dev.prometheus import Prometheus, Target, write_targets
from llmops_dev.tgisim import Behaviour, Simulator
from testkit import get_json, wait_for
from testkit.operator import OperatorProcess, condition, sample, wait_condition
from testkit.planning import body, cond, gateway_pod, plan, rollout, to_serving

CAPTURE = {"capture": {"sampleRate": 1.0, "store": {"size": "1Gi"}}}
KEY = b"k" * 32


@pytest.fixture(scope="module")
def scrapes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Prometheus]]:
    """Prometheus servers by how they scrape the one gateway: "declared" (every 1 s, as the
    PodMonitor labels it, and as a user's job would), "slow" (every 45 s)."""
    with contextlib.ExitStack() as stack:
        _, target = serve_pod(stack, Simulator(Behaviour(), revision="rev-a"), "ns/m", "stable", KEY)
        own_labels = Target(target.address, {"namespace": "team-b", "app": "m"})
        servers = {}
        for name, interval, targets in (("declared", "1s", [target, own_labels]), ("slow", "45s", [target])):
            state: Path = tmp_path_factory.mktemp(f"scrape-{name}")
            write_targets(state / "targets.json", targets)
            servers[name] = Prometheus.start(state, state / "targets.json", scrape_interval=interval)
            stack.callback(servers[name].stop)
        yield servers


def check(prometheus: Prometheus, namespace: str = "ns") -> dict[str, Any]:
    """One pass of LLMDeployment <namespace>/m now: its CaptureDegraded condition."""
    spec = body(gateway=CAPTURE, monitoring={"podMonitor": {"interval": "5s"}})
    spec["metadata"]["namespace"] = namespace
    b, children = to_serving(spec)
    rollout(children, ready=1, name="m-capture")
    now = dt.datetime.now(dt.UTC)
    measured = measure_capture(prometheus.url, capture_request(parse(b), now))
    pod = gateway_pod(now - dt.timedelta(hours=1))
    return cond(
        plan(b, Observations(children=children, capture=measured, pods=[pod]), now), c.CAPTURE_DEGRADED
    )


def wait_scraped(prometheus: Prometheus, selector: str, what: str, timeout: float) -> None:
    """Until ``prometheus`` holds the one gateway's queue gauge under ``selector``."""
    query = f"count(llmops_capture_queue_records{{{selector}}})"
    with PromClient(prometheus.url) as prom:
        wait_for(what, lambda: isinstance(r := prom.query(query), Value) and r.value == 1, timeout, 0.5)


def test_a_gateway_scraped_as_declared_is_healthy(scrapes: dict[str, Prometheus]) -> None:
    healthy = wait_for(
        "two scrapes inside a check's window",
        lambda: (x := check(scrapes["declared"]))["reason"] == c.CAPTURE_HEALTHY and x,
        timeout=30,
        interval=0.5,
    )
    assert healthy["status"] == c.FALSE and "no record dropped in the last 40s" in healthy["message"]


def test_a_gateway_scraped_under_other_labels_is_not_scraped(scrapes: dict[str, Prometheus]) -> None:
    """team-b/m's gateway is scraped every second, by a job of the user's that does not set the
    PodMonitor's labels: its series carry no llmops_deployment="m"."""
    wait_scraped(scrapes["declared"], 'namespace="team-b"', "the user's job to scrape the gateway", 30)
    found = check(scrapes["declared"], "team-b")
    assert (found["status"], found["reason"]) == (c.UNKNOWN, c.NOT_SCRAPED), found
    assert found["message"].startswith(
        "Prometheus holds fewer than 2 samples of any gateway's llmops_capture_queue_records in the last 40s"
    )
    assert "labels namespace and llmops_deployment, at least every 5s" in found["message"]


def test_a_gateway_scraped_less_often_than_declared_is_not_scraped(scrapes: dict[str, Prometheus]) -> None:
    """Every 45 s against a declared 5s: the gateway is scraped, but a 40 s window never holds the
    two samples increase() needs (it holds the last scrape, or none)."""
    wait_scraped(scrapes["slow"], 'llmops_deployment="m"', "a first scrape every 45 s", 60)
    found = check(scrapes["slow"])
    assert (found["status"], found["reason"]) == (c.UNKNOWN, c.NOT_SCRAPED), found
    assert found["message"].startswith("Prometheus holds fewer than 2 samples"), found


def test_on_the_cluster_a_prometheus_that_scrapes_no_gateway_turns_capture_not_scraped(
    cluster: Cluster, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    """The operator's pass reads the server pods (their gateway container, when they became
    Ready) and asks a real Prometheus that scrapes nothing: once the pod has been ready for a
    window and an interval (40 s + 10 s at a declared 5s), NotScraped instead of CaptureHealthy."""
    empty = Prometheus.start(tmp_path, tmp_path / "no-targets.json", scrape_interval="1s")
    try:
        monitoring = {"prometheus": {"url": empty.url}, "podMonitor": {"interval": "5s"}}
        gateway = {"capture": {"sink": {"url": "http://sink.example/events"}}}
        spec = sample("unseen", "d" * 40, gateway=gateway, monitoring=monitoring)
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=spec)
        wait_condition(cluster, namespace, "unseen", "Available", "True", timeout=120)
        found = wait_condition(
            cluster, namespace, "unseen", "CaptureDegraded", "Unknown", c.NOT_SCRAPED, timeout=120
        )
    finally:
        empty.stop()
    unseen = condition(found, "CaptureDegraded")
    assert unseen["message"].startswith("Prometheus holds fewer than 2 samples of any gateway's"), unseen
    assert found["status"]["capture"]["message"] == unseen["message"]
    # Not before the pod had been ready for a window and an interval: until then, healthy.
    pods = get_json(
        cluster, "pods", "-n", namespace, "-l", "llmops.io/deployment=unseen,llmops.io/track=stable"
    )
    ready = min(
        parse_timestamp(x["lastTransitionTime"])
        for pod in pods["items"]
        for x in pod["status"]["conditions"]
        if x["type"] == "Ready" and x["status"] == "True"
    )
    assert (parse_timestamp(unseen["lastTransitionTime"]) - ready).total_seconds() >= 40 + 10 - 1
