"""The capture store's children (render.capture) and the capture stage of plan(): which children
exist when, and CaptureDegraded / status.capture from the store's readiness and Prometheus."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest

from llmops.analysis.results import Error, NoData, Value
from llmops.api import conditions as c
from llmops.api.resource import parse
from llmops.lifecycle.capture import (
    DROPPED,
    REFUSED,
    SCRAPED,
    WRITTEN,
    capture_request,
    check_seconds,
    window,
)
from llmops.lifecycle.observations import MONITORING_API, Observations
from llmops.reconciler import measure_capture
from llmops.render import render
from llmops.render.capture import capture_url
from testkit.planning import (
    T0,
    Children,
    body,
    children_of,
    cond,
    gateway_pod,
    plan,
    rollout,
    to_serving,
    with_status,
)

CAPTURE = {"capture": {"sampleRate": 1.0, "retention": "7d", "maxSize": "2Gi", "store": {"size": "5Gi"}}}
STORE_KINDS = {"PersistentVolumeClaim", "Deployment", "Service", "NetworkPolicy", "PodMonitor"}


def capture_body(**gateway: Any) -> dict[str, Any]:
    return body(gateway={**CAPTURE, **gateway})


def store_objects(children: list[dict[str, Any]] | Children) -> dict[str, dict[str, Any]]:
    objs = children.values() if isinstance(children, dict) else children
    return {o["kind"]: o for o in objs if o["metadata"]["name"] == "m-capture"}


# -- render ---------------------------------------------------------------------------------------


def test_capture_to_the_store_renders_its_five_children() -> None:
    ld = parse(
        capture_body(capture={**CAPTURE["capture"], "store": {"size": "5Gi", "storageClassName": "fast"}})
    )
    objs = store_objects(render(ld))
    assert set(objs) == STORE_KINDS
    pvc = objs["PersistentVolumeClaim"]
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "5Gi"}},
        "storageClassName": "fast",
    }
    dep = objs["Deployment"]["spec"]
    assert dep["replicas"] == 1 and dep["strategy"] == {"type": "Recreate"}
    pod = dep["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("ghcr.io/llmops-io/llmops-operator")
    assert container["command"] == ["llmops"]
    args = container["args"]
    assert args[0] == "capture-store"
    assert dict(zip(args[1::2], args[2::2], strict=True)) == {
        "--port": "8080",
        "--health-port": "9090",
        "--data-dir": "/var/lib/llmops/capture",
        "--token-file": "/etc/llmops/capture/capture-token",
        "--retention": "7d",
        "--max-size": "2Gi",
    }
    assert {v["name"]: v for v in pod["volumes"]}["capture-token"]["secret"] == {
        "secretName": "m-gateway",
        "items": [{"key": "capture-token", "path": "capture-token"}],
        "defaultMode": 0o440,
    }
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    assert objs["Service"]["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert (
        objs["Service"]["spec"]["selector"]
        == dep["selector"]["matchLabels"]
        == {
            "llmops.io/deployment": "m",
            "app.kubernetes.io/component": "capture-store",
        }
    )
    assert capture_url(ld) == "http://m-capture.ns.svc:8080"
    monitor = objs["PodMonitor"]["spec"]
    assert monitor["selector"]["matchLabels"] == dep["selector"]["matchLabels"]
    assert [e["port"] for e in monitor["podMetricsEndpoints"]] == ["metrics"]


def test_the_store_admits_only_the_gateways_and_the_deployments_jobs_and_scrapes() -> None:
    policy = store_objects(render(parse(capture_body())))["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "capture-store"
    api, scrape = policy["ingress"]
    assert api["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert api["from"] == [
        {
            "podSelector": {
                "matchLabels": {"llmops.io/deployment": "m", "app.kubernetes.io/component": "server"}
            }
        },
        {
            "podSelector": {
                "matchLabels": {"llmops.io/deployment": "m"},
                "matchExpressions": [{"key": "batch.kubernetes.io/job-name", "operator": "Exists"}],
            }
        },
    ]
    assert scrape == {
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "ports": [{"port": "metrics", "protocol": "TCP"}],
    }


@pytest.mark.parametrize(
    "spec",
    [
        body(),
        body(gateway={"capture": {"sink": {"url": "http://collector.example/events"}}}),
    ],
    ids=["no capture", "capture to a sink"],
)
def test_no_store_without_capture_or_with_a_sink(spec: dict[str, Any]) -> None:
    assert store_objects(render(parse(spec))) == {}


def test_no_store_policy_or_monitor_when_they_are_disabled() -> None:
    spec = capture_body()
    spec["spec"]["security"] = {"networkPolicy": {"enabled": False}}
    spec["spec"]["monitoring"] = {"enabled": False}
    assert set(store_objects(render(parse(spec)))) == {"PersistentVolumeClaim", "Deployment", "Service"}


# -- the queries ----------------------------------------------------------------------------------


def test_capture_queries_are_the_drops_writes_and_refusals_of_this_deployment_at_the_slot() -> None:
    now = dt.datetime(2026, 11, 30, 12, 0, 44, 500000, tzinfo=dt.UTC)
    at = f"[2m] @ {dt.datetime(2026, 11, 30, 12, 0, 30, tzinfo=dt.UTC).timestamp():.0f}"
    wanted = {q.key: q.promql for q in capture_request(parse(capture_body()), now)}
    sel = 'namespace="ns",llmops_deployment="m"'
    assert wanted == {
        DROPPED: f"sum(increase(llmops_capture_dropped_total{{{sel}}}{at}))",
        SCRAPED: f"max(count_over_time(llmops_capture_queue_records{{{sel}}}{at}))",
        WRITTEN: f"sum(increase(llmops_capture_store_records_written_total{{{sel}}}{at}))",
        REFUSED: f'sum(increase(llmops_capture_store_refused_batches_total{{{sel},reason=~"size_cap|disk_full"}}{at}))',
    }
    # Every pass inside one 30 s slot asks the same question (so gets the same answer).
    later = {q.key: q.promql for q in capture_request(parse(capture_body()), now + dt.timedelta(seconds=15))}
    assert later == wanted
    sink = capture_request(parse(body(gateway={"capture": {"sink": {"url": "http://c.example/e"}}})), now)
    assert [q.key for q in sink] == [DROPPED, SCRAPED]
    assert capture_request(parse(body()), now) == []
    assert measure_capture(None, []) is None
    assert {
        k: type(v)
        for k, v in (measure_capture(None, capture_request(parse(capture_body()), now)) or {}).items()
    } == {
        DROPPED: Error,
        SCRAPED: Error,
        WRITTEN: Error,
        REFUSED: Error,
    }


@pytest.mark.parametrize(
    ("interval", "every", "span"),
    [("30s", 30, "2m"), ("5s", 10, "40s"), ("1s", 10, "40s"), ("15s", 15, "1m"), ("1m30s", 90, "6m")],
)
def test_the_window_and_the_check_follow_the_declared_scrape_interval(
    interval: str, every: float, span: str
) -> None:
    """Four scrapes per window (increase() needs two samples, four survive a missed scrape), read
    once per scrape but no more often than every 10 s."""
    spec = capture_body()
    spec["spec"]["monitoring"] = {"podMonitor": {"interval": interval}}
    ld = parse(spec)
    assert (check_seconds(ld), window(ld)) == (every, span)
    now = dt.datetime(2026, 11, 30, 12, 0, 44, 500000, tzinfo=dt.UTC)
    mark = math.floor(now.timestamp() / every) * every
    assert {q.promql.split("[", 1)[1] for q in capture_request(ld, now)} == {f"{span}] @ {mark:.0f}))"}


# -- the stage ------------------------------------------------------------------------------------


NOW = T0 + dt.timedelta(minutes=10)
"""When the stage's checks run: ten minutes into serving."""


def serving_with_capture() -> tuple[dict[str, Any], Children]:
    b, ch = to_serving(capture_body())
    assert set(store_objects(ch)) == STORE_KINDS - {"PodMonitor"}  # no monitoring API observed
    return b, ch


def check(
    b: dict[str, Any],
    ch: Children,
    measured: dict[str, Any] | None,
    store_ready: bool = True,
    pods: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], float | None]:
    if store_ready:
        rollout(ch, ready=1, name="m-capture")
    else:
        ch[("Deployment", "m-capture")]["status"] = {"readyReplicas": 0}
    p = plan(b, Observations(children=ch, capture=measured, pods=pods or []), NOW)
    return cond(p, c.CAPTURE_DEGRADED), p.status["capture"], p.requeue_after


def test_a_ready_store_without_drops_is_healthy_and_checked_again_soon() -> None:
    b, ch = serving_with_capture()
    condition, status, requeue = check(
        b, ch, {DROPPED: NoData("no series"), WRITTEN: Value(120.4), REFUSED: NoData("x")}
    )
    assert (condition["status"], condition["reason"]) == (c.FALSE, c.CAPTURE_HEALTHY)
    assert status == {
        "storeReady": True,
        "window": "2m",
        "records": 120,
        "dropped": 0,
        "refused": 0,
        "message": condition["message"],
    }
    # T0 + 10 min is 0.123456 s into a slot: back a second into the next one.
    assert requeue == pytest.approx(30 + 1.0 - 0.123456)


def test_a_store_without_a_ready_pod_sets_capture_degraded_with_the_drop_count() -> None:
    b, ch = serving_with_capture()
    condition, status, _ = check(
        b, ch, {DROPPED: Value(37.0), WRITTEN: NoData("x"), REFUSED: NoData("x")}, store_ready=False
    )
    assert (condition["status"], condition["reason"]) == (c.TRUE, c.STORE_UNAVAILABLE)
    assert (
        "m-capture has no ready pod" in condition["message"]
        and "37 record(s) dropped" in condition["message"]
    )
    assert status["storeReady"] is False and status["dropped"] == 37


def test_drops_with_a_ready_store_and_refusals_for_lack_of_room_are_degraded_too() -> None:
    b, ch = serving_with_capture()
    condition, _, _ = check(b, ch, {DROPPED: Value(5.0), WRITTEN: Value(10.0), REFUSED: NoData("x")})
    assert (condition["status"], condition["reason"]) == (c.TRUE, c.RECORDS_DROPPED)
    condition, status, _ = check(b, ch, {DROPPED: Value(0.0), WRITTEN: Value(10.0), REFUSED: Value(3.0)})
    assert (condition["status"], condition["reason"]) == (c.TRUE, c.STORE_FULL)
    assert "refused 3 batch(es)" in condition["message"] and status["refused"] == 3


def test_an_unreadable_prometheus_makes_it_unknown_unless_the_store_is_down() -> None:
    b, ch = serving_with_capture()
    unreachable = Error("connection refused", "unreachable")
    condition, status, _ = check(b, ch, {DROPPED: unreachable, WRITTEN: unreachable, REFUSED: unreachable})
    assert (condition["status"], condition["reason"]) == (c.UNKNOWN, c.OBSERVATION_FAILED)
    assert "connection refused" in condition["message"] and "dropped" not in status
    condition, _, _ = check(b, ch, {DROPPED: unreachable}, store_ready=False)
    assert (condition["status"], condition["reason"]) == (c.TRUE, c.STORE_UNAVAILABLE)
    assert "drops unknown" in condition["message"]


LONG_READY = gateway_pod(T0)
HEALTHY_COUNTS = {DROPPED: NoData("no series"), WRITTEN: Value(9.0), REFUSED: NoData("x")}


@pytest.mark.parametrize("samples", [NoData("no series"), Value(1.0)], ids=["none", "one"])
def test_a_gateway_ready_for_long_with_too_few_samples_in_the_window_is_not_scraped(samples: Any) -> None:
    """No sample under the PodMonitor's labels (scraped under others), or one (scraped less
    often than declared): 'nothing dropped' would mean 'nothing seen'."""
    b, ch = serving_with_capture()
    condition, status, _ = check(b, ch, {**HEALTHY_COUNTS, SCRAPED: samples}, pods=[LONG_READY])
    assert (condition["status"], condition["reason"]) == (c.UNKNOWN, c.NOT_SCRAPED)
    assert condition["message"].startswith(
        "Prometheus holds fewer than 2 samples of any gateway's llmops_capture_queue_records in the last 2m"
    )
    assert "as the PodMonitor the operator renders would" in condition["message"]
    assert "labels namespace and llmops_deployment, at least every 30s" in condition["message"]
    assert status["message"] == condition["message"] and status["dropped"] == 0
    # With the Prometheus Operator's API, the message names the PodMonitor that exists.
    rollout(ch, ready=1, name="m-capture")
    obs = Observations(
        children={**ch, ("PodMonitor", "m"): {"kind": "PodMonitor", "metadata": {"name": "m"}}},
        capture={**HEALTHY_COUNTS, SCRAPED: samples},
        pods=[LONG_READY],
        apis=frozenset({MONITORING_API}),
    )
    named = cond(plan(b, obs, NOW), c.CAPTURE_DEGRADED)
    assert (named["reason"], "as the PodMonitor m does," in named["message"]) == (c.NOT_SCRAPED, True)


@pytest.mark.parametrize(
    ("samples", "pods"),
    [
        (Value(2.0), [LONG_READY]),  # two samples: increase() can count
        (NoData("x"), [gateway_pod(NOW - dt.timedelta(seconds=149))]),  # ready < window + interval
        (NoData("x"), [gateway_pod(NOW - dt.timedelta(seconds=149)), gateway_pod(T0, ready=False)]),
        (NoData("x"), []),  # no gateway is ready: nothing to scrape
        (Error("down", "unreachable"), [LONG_READY]),  # cannot tell: the counts decide
    ],
    ids=["two-samples", "too-young", "others-not-ready", "no-gateway", "unreadable"],
)
def test_the_scrape_is_judged_only_when_it_had_time_and_can_be_read(
    samples: Any, pods: list[dict[str, Any]]
) -> None:
    b, ch = serving_with_capture()
    condition, _, _ = check(b, ch, {**HEALTHY_COUNTS, SCRAPED: samples}, pods=pods)
    assert (condition["status"], condition["reason"]) == (c.FALSE, c.CAPTURE_HEALTHY), condition


def test_drops_seen_and_a_store_down_come_before_a_thin_scrape() -> None:
    b, ch = serving_with_capture()
    thin = {SCRAPED: Value(1.0), WRITTEN: NoData("x"), REFUSED: NoData("x")}
    condition, _, _ = check(b, ch, {**thin, DROPPED: Value(4.0)}, pods=[LONG_READY])
    assert condition["reason"] == c.RECORDS_DROPPED
    condition, _, _ = check(b, ch, {**thin, DROPPED: NoData("x")}, store_ready=False, pods=[LONG_READY])
    assert condition["reason"] == c.STORE_UNAVAILABLE


def test_the_pod_monitor_follows_the_monitoring_api() -> None:
    b, ch = serving_with_capture()
    p = plan(b, Observations(children=ch, apis=frozenset({MONITORING_API})), T0 + dt.timedelta(minutes=10))
    assert [o["metadata"]["name"] for o in p.apply if o["kind"] == "PodMonitor"] == ["m", "m-capture"]


def test_removing_capture_deletes_the_store_with_its_pvc_and_clears_the_status() -> None:
    b, ch = serving_with_capture()
    rollout(ch, ready=1, name="m-capture")
    p = plan(b, Observations(children=ch, capture={DROPPED: NoData("x")}), T0 + dt.timedelta(minutes=10))
    b = with_status(p, b)
    ch = children_of(p, ch)
    for obj in ch.values():
        obj["metadata"].setdefault("ownerReferences", [{"kind": "LLMDeployment", "controller": True}])
    del b["spec"]["gateway"]
    p = plan(b, Observations(children=ch), T0 + dt.timedelta(minutes=11))
    assert sorted(k for k in p.delete if k[1] == "m-capture") == sorted(
        (k, "m-capture") for k in STORE_KINDS - {"PodMonitor"}
    )
    assert "capture" not in p.status
    assert all(x["type"] != c.CAPTURE_DEGRADED for x in p.status["conditions"])


@pytest.mark.parametrize(
    ("spec", "measured", "ready"),
    [
        (capture_body(), {DROPPED: NoData("x"), WRITTEN: Value(4.0), REFUSED: NoData("x")}, True),
        (
            capture_body(),
            {DROPPED: Error("down", "unreachable"), WRITTEN: Error("down", "unreachable")},
            True,
        ),
        (capture_body(), {DROPPED: Value(3.0)}, False),
        (body(gateway={"capture": {"sink": {"url": "http://c.example/e"}}}), {DROPPED: NoData("x")}, None),
        (capture_body(), {**HEALTHY_COUNTS, SCRAPED: NoData("x")}, True),
    ],
    ids=["healthy", "prometheus-down", "store-down", "sink", "not-scraped"],
)
def test_a_steady_capture_status_writes_nothing_on_the_next_pass(
    spec: dict[str, Any], measured: dict[str, Any], ready: bool | None
) -> None:
    b, ch = to_serving(spec)
    if ready is not None:
        rollout(ch, ready=1 if ready else 0, name="m-capture")
    pods = [LONG_READY]
    p = plan(b, Observations(children=ch, capture=measured, pods=pods), T0 + dt.timedelta(minutes=10))
    assert None not in p.status["capture"].values(), "a null would be dropped by the apiserver"
    # What the apiserver stores (merge-patch: nulls removed) is what the next pass starts from.
    b, ch = with_status(p, b), children_of(p, ch)
    p = plan(b, Observations(children=ch, capture=measured, pods=pods), T0 + dt.timedelta(minutes=11))
    assert not p.status_changed and not p.apply


def test_with_prompt_drift_the_store_also_admits_the_operator() -> None:
    b = capture_body()
    b["spec"]["drift"] = {"traffic": {"signals": []}, "prompts": {}}
    api, _ = store_objects(render(parse(b)))["NetworkPolicy"]["spec"]["ingress"]
    assert api["from"][-1] == {
        "namespaceSelector": {},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "llmops-operator"}},
    }
    assert api["ports"] == [{"port": "http", "protocol": "TCP"}]
