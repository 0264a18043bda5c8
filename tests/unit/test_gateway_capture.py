"""Capture in the gateway: records of every generation route, streamed or not, redacted, sampled,
queued and sent to a real HTTP receiver (the store's protocol, or CloudEvents).

The gateway runs in front of the real TGI simulator (in-process threads, as in test_gateway.py);
the receiver is llmops_dev.capture_sink, a small aiohttp server that records what arrives and
answers what a test scripts (413, 400 naming a line, 401, 507, 500).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import pytest
from huggingface_hub import InferenceClient
from prometheus_client.parser import text_string_to_metric_families

from llmops.aioserve import UsageError
from llmops.capture_store import CaptureStore, StoreConfig
from llmops.gateway import Gateway, GatewayConfig, RequestIdSigner
from llmops.gateway.capture import CaptureConfig, Exchange, Identity, request_record
from llmops.gateway.main import _parser, build
from llmops.gateway.metrics import GatewayMetrics
from llmops.gateway.redact import BUILTIN_KINDS, Redactor
from llmops.gateway.sender import (
    CE_TYPE_FEEDBACK,
    CE_TYPE_REQUEST,
    Queued,
    RecordQueue,
    StoreSender,
    _Backoff,
)
from llmops_dev.capture_sink import CaptureSink, run_sink_in_thread
from llmops_dev.gateway_thread import run_gateway_in_thread
from llmops_dev.processes import free_port
from llmops_dev.store_thread import run_store_in_thread
from llmops_dev.tgisim import Behaviour, Simulator, run_in_thread
from testkit import wait_for

PROMPT = "What is the capital of France?"
ANSWER = "The capital of France is Paris; write to ana@example.org."
REDACTED = "The capital of France is Paris; write to [EMAIL]."
KEY = b"k" * 32
DEPLOYMENT = "team-a/chat"
TOKEN = "capture-token-0123456789"
REQUEST_FIELDS = {
    "kind",
    "time",
    "requestId",
    "deployment",
    "revision",
    "track",
    "client",
    "route",
    "response",
    "promptTokens",
    "completionTokens",
    "latencyMs",
    "finishReason",
}


@dataclass
class Capturing:
    url: str
    health: str
    gateway: Gateway
    sink: CaptureSink


@contextlib.contextmanager
def capturing(
    *,
    sample_rate: float = 1.0,
    keep: Any = "Both",
    builtins: tuple[str, ...] = BUILTIN_KINDS,
    patterns: tuple[tuple[str, str], ...] = (),
    sink_mode: bool = False,
    sim: Simulator | None = None,
    rng: random.Random | None = None,
    queue_size: int = 10_000,
) -> Iterator[Capturing]:
    sim = sim or Simulator(Behaviour(answers={PROMPT: ANSWER}), max_input_tokens=1000, max_total_tokens=2000)
    sink = CaptureSink(token=TOKEN)
    with run_in_thread(sim) as engine, run_sink_in_thread(sink) as sink_url:
        capture = CaptureConfig(
            sample_rate=sample_rate,
            keep=keep,
            builtins=builtins,
            patterns=patterns,
            queue_size=queue_size,
            store_url=None if sink_mode else sink_url,
            token=TOKEN,
            sink_url=f"{sink_url}/events" if sink_mode else None,
        )
        gateway = Gateway(
            GatewayConfig(
                upstream=engine, deployment=DEPLOYMENT, revision="rev-a", track="canary", capture=capture
            ),
            RequestIdSigner(KEY, DEPLOYMENT),
            None,
            rng=rng,
        )
        with run_gateway_in_thread(gateway) as (url, health):
            yield Capturing(url, health, gateway, sink)


def metric(health: str, name: str, **labels: str) -> float:
    text = httpx2.get(f"{health}/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def records(sink: CaptureSink, count: int) -> list[dict[str, Any]]:
    wait_for(f"{count} record(s) at the receiver", lambda: len(sink.records) >= count, timeout=10)
    return sink.records


# -- records of each route, streamed and not --------------------------------------------------

ROUTES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "/generate",
        {"inputs": PROMPT, "parameters": {"max_new_tokens": 30, "details": True}},
        {"prompt": PROMPT, "promptTokens": 6, "completionTokens": 10, "finishReason": "eos_token"},
    ),
    (
        "/generate",  # without details TGI says no finish reason; the counts come from its headers
        {"inputs": PROMPT, "parameters": {"max_new_tokens": 30}},
        {"prompt": PROMPT, "promptTokens": 6, "completionTokens": 10, "finishReason": None},
    ),
    (
        "/",  # the compat route answers [GenerateResponse] with the prompt in front: taken off
        {"inputs": PROMPT, "parameters": {"max_new_tokens": 30}},
        {"prompt": PROMPT, "promptTokens": 6, "completionTokens": 10},
    ),
    (
        "/generate_stream",
        {"inputs": PROMPT, "parameters": {"max_new_tokens": 30, "details": True}},
        {"prompt": PROMPT, "promptTokens": 6, "completionTokens": 10, "finishReason": "eos_token"},
    ),
    (
        "/generate_stream",  # without details: one event per token, no prompt count
        {"inputs": PROMPT, "parameters": {"max_new_tokens": 30}},
        {"prompt": PROMPT, "promptTokens": None, "completionTokens": 10, "finishReason": None},
    ),
    (
        "/",
        {"inputs": PROMPT, "stream": True, "parameters": {"max_new_tokens": 30, "details": True}},
        {"prompt": PROMPT, "promptTokens": 6, "completionTokens": 10, "finishReason": "eos_token"},
    ),
    (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 30},
        {"messages": [{"role": "user", "content": PROMPT}], "completionTokens": 10, "finishReason": "stop"},
    ),
    (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 30, "stream": True},
        {"promptTokens": None, "completionTokens": None, "finishReason": "stop"},
    ),
    (
        "/v1/chat/completions",
        {
            "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
            "max_tokens": 30,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        {"messages": [{"role": "user", "content": PROMPT}], "completionTokens": 10, "finishReason": "stop"},
    ),
    (
        "/v1/completions",
        {"prompt": PROMPT, "max_tokens": 30},
        {"prompt": PROMPT, "promptTokens": 6, "completionTokens": 10, "finishReason": "stop"},
    ),
    (
        "/v1/completions",
        {"prompt": PROMPT, "max_tokens": 30, "stream": True},
        {"prompt": PROMPT, "promptTokens": None, "finishReason": "stop"},
    ),
]


def test_a_record_for_every_generation_route_streamed_or_not() -> None:
    with capturing() as c:
        ids = []
        for route, body, _ in ROUTES:
            r = httpx2.post(f"{c.url}{route}", json=body, timeout=30)
            assert r.status_code == 200, r.text
            ids.append(r.headers["X-LLMOps-Request-ID"])
        got = {rec["requestId"]: rec for rec in records(c.sink, len(ROUTES))}
        assert len(got) == len(ROUTES)
        for rid, (route, _, expected) in zip(ids, ROUTES, strict=True):
            rec = got[rid]
            assert rec["route"] == route
            assert (rec["kind"], rec["deployment"], rec["revision"], rec["track"], rec["client"]) == (
                "request",
                DEPLOYMENT,
                "rev-a",
                "canary",
                "anonymous",
            )
            assert rec["response"] == REDACTED, (route, rec)
            assert rec["time"].endswith("Z") and 0 < rec["latencyMs"] < 10_000
            assert set(rec) >= REQUEST_FIELDS
            assert ("messages" in rec) == (route == "/v1/chat/completions")
            for field, value in expected.items():
                assert rec[field] == value, (route, field, rec)
        # Sent in batches to the store's route, with its token, gzipped JSONL.
        headers = c.sink.batches[0]
        assert headers["Content-Type"] == "application/x-ndjson" and headers["Content-Encoding"] == "gzip"
        wait_for(
            "the deliveries counted",
            lambda: metric(c.health, "llmops_capture_records_total", track="canary", kind="request")
            == len(ROUTES),
            timeout=10,
        )


def test_the_stream_is_relayed_as_it_is_produced_while_captured() -> None:
    sim = Simulator(
        Behaviour(answers={PROMPT: ANSWER}, time_per_token_seconds=0.05),
        max_input_tokens=1000,
        max_total_tokens=2000,
    )
    with capturing(sim=sim) as c:
        client = InferenceClient(model=c.url)
        started = time.monotonic()
        arrivals = [time.monotonic() - started for _ in client.text_generation(PROMPT, stream=True)]
        whole = time.monotonic() - started  # the client has read the end of the stream
        assert arrivals[0] < 0.5 * arrivals[-1], arrivals
        (rec,) = records(c.sink, 1)
        assert rec["response"] == REDACTED
        # The latency runs to the end of the stream: at least the time between the tokens.
        assert (rec["completionTokens"] - 1) * 50 <= rec["latencyMs"] <= whole * 1000


def test_keep_prompts_or_responses() -> None:
    with capturing(keep="Prompts") as c:
        httpx2.post(f"{c.url}/generate", json={"inputs": PROMPT}, timeout=30)
        httpx2.post(
            f"{c.url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": PROMPT}]},
            timeout=30,
        )
        plain, chat = records(c.sink, 2)
        assert plain["prompt"] == PROMPT and "response" not in plain
        assert chat["messages"] == [{"role": "user", "content": PROMPT}] and "response" not in chat
        assert plain["completionTokens"] == 10  # the metadata stays
    with capturing(keep="Responses") as c:
        httpx2.post(f"{c.url}/generate", json={"inputs": PROMPT}, timeout=30)
        (rec,) = records(c.sink, 1)
        assert rec["response"] == REDACTED and "prompt" not in rec and "messages" not in rec


def test_prompts_messages_responses_and_feedback_are_redacted_before_they_leave() -> None:
    secret_prompt = "I am ana@example.org, card 4111 1111 1111 1111, account ACC-123456"
    with capturing(patterns=(("ACCOUNT", r"ACC-\d{6}"),)) as c:
        r = httpx2.post(f"{c.url}/generate", json={"inputs": secret_prompt}, timeout=30)
        rid = r.headers["X-LLMOps-Request-ID"]
        httpx2.post(
            f"{c.url}/v1/chat/completions",
            json={"messages": [{"role": "system", "content": "call +44 20 7946 0958"}]},
            timeout=30,
        )
        fb = httpx2.post(
            f"{c.url}/v1/feedback",
            json={
                "request_id": rid,
                "rating": "down",
                "correction": "from 10.0.0.1",
                "comment": "IBAN DE89 3704 0044 0532 0130 00",
                "tags": ["pii"],
            },
            timeout=30,
        )
        assert fb.status_code == 202
        plain, chat, feedback = records(c.sink, 3)
        assert plain["prompt"] == "I am [EMAIL], card [CARD], account [ACCOUNT]"
        assert chat["messages"] == [{"role": "system", "content": "call [PHONE]"}]
        assert feedback == {
            "kind": "feedback",
            "time": feedback["time"],
            "requestId": rid,
            "revision": "rev-a",
            "track": "canary",
            "client": "anonymous",
            "rating": "down",
            "correction": "from [IP]",
            "comment": "IBAN [IBAN]",
            "tags": ["pii"],
        }
        everything = json.dumps(c.sink.records)
        for planted in ("ana@example.org", "4111", "ACC-123456", "7946", "10.0.0.1", "DE89"):
            assert planted not in everything


def test_sampling_keeps_the_share_the_rate_asks_for_and_only_generations() -> None:
    seed, rate, n = 11, 0.3, 120
    draws = random.Random(seed)
    expected = sum(draws.random() < rate for _ in range(n))
    with capturing(sample_rate=rate, rng=random.Random(seed)) as c:
        for _ in range(n):
            assert httpx2.post(f"{c.url}/generate", json={"inputs": "hi"}, timeout=30).status_code == 200
        # Not generations, or not answered 200: never sampled (and the rng is not drawn).
        httpx2.get(f"{c.url}/info", timeout=30)
        httpx2.post(f"{c.url}/tokenize", json={"inputs": "hi"}, timeout=30)
        bad = httpx2.post(f"{c.url}/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": 0}})
        assert bad.status_code == 422
        wait_for("the sampled records", lambda: len(c.sink.records) == expected, timeout=10)
        assert 0.15 * n < expected < 0.45 * n
        assert {r["route"] for r in c.sink.records} == {"/generate"}


# -- the queue and the sender ------------------------------------------------------------------


def queued(i: int, kind: str = "request") -> Queued:
    return Queued.of(
        {
            "kind": kind,
            "time": "2026-11-30T08:00:00.000Z",
            "requestId": f"id-{i}",
            "revision": "rev-a",
            "track": "stable",
            "n": i,
        }
    )


def counter(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def test_a_full_queue_drops_and_counts_instead_of_waiting() -> None:
    metrics = GatewayMetrics()
    queue = RecordQueue(100, metrics)
    accepted = [queue.offer(queued(i)) for i in range(150)]
    assert accepted == [True] * 100 + [False] * 50
    labels = {"revision": "rev-a", "track": "stable", "reason": "queue_full"}
    assert counter(metrics, "llmops_capture_dropped_total", **labels) == 50
    assert counter(metrics, "llmops_capture_queue_records") == 100
    assert [q.request_id for q in queue.take(3, 1 << 20)] == ["id-0", "id-1", "id-2"]
    big = queue.take(1000, 200)  # the byte budget: at least one record, then what fits
    assert 1 <= len(big) < 5


def test_the_gateway_never_waits_for_a_store_that_is_down() -> None:
    # The store's address refuses connections: records queue, then drop (queue_full), while
    # inference is answered as usual.
    sim = Simulator(Behaviour(answers={PROMPT: ANSWER}), max_input_tokens=1000, max_total_tokens=2000)
    with run_in_thread(sim) as engine:
        capture = CaptureConfig(
            sample_rate=1.0, queue_size=100, store_url=f"http://127.0.0.1:{free_port()}", token=TOKEN
        )
        gateway = Gateway(
            GatewayConfig(
                upstream=engine, deployment=DEPLOYMENT, revision="rev-a", track="stable", capture=capture
            ),
            RequestIdSigner(KEY, DEPLOYMENT),
            None,
        )
        with run_gateway_in_thread(gateway) as (url, health), httpx2.Client(timeout=10) as http:
            # Each answer comes as usual: a request that waited on the store would time out.
            for _ in range(250):
                assert http.post(f"{url}/generate", json={"inputs": "hi"}).status_code == 200
            # 250 offered: 100 wait in the queue, one batch (1 to 100 records, what was queued
            # when the sender woke) is out retrying, and the rest is dropped.
            full = wait_for(
                "records dropped as queue_full",
                lambda: metric(health, "llmops_capture_dropped_total", reason="queue_full") or None,
                timeout=10,
            )
            assert 50 <= full <= 149
            assert metric(health, "llmops_capture_queue_records") <= 100


def run(coro: Any) -> Any:
    """Run `coro` on a loop of its own. Not asyncio.run: that also resets the main thread's
    current loop, so a loop an earlier test left there (unclosed) would be garbage-collected
    in some later test, whose pytest then reports it as an unraisable ResourceWarning."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


async def _send(
    sink: CaptureSink, items: list[Queued], token: str = TOKEN, give_up: float = 5.0
) -> GatewayMetrics:
    """Send `items` with a StoreSender to `sink` (started on this loop) until they are done."""
    metrics = GatewayMetrics()
    queue = RecordQueue(10_000, metrics)
    url = await sink.start()
    sender = StoreSender(url, token, queue, metrics, backoff=_Backoff(first=0.01, cap=0.05, give_up=give_up))
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(sender.run(session))
        for item in items:
            queue.offer(item)
        async with asyncio.timeout(20):
            await sender.flush()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await sink.stop()
    return metrics


def _ids(sink: CaptureSink) -> list[str]:
    return [r["requestId"] for r in sink.records]


def test_sender_splits_a_batch_the_store_finds_too_large() -> None:
    sink = CaptureSink(token=TOKEN, answers=[413, 413])
    metrics = run(_send(sink, [queued(i) for i in range(8)]))
    assert sorted(_ids(sink)) == sorted(f"id-{i}" for i in range(8))
    assert (
        counter(metrics, "llmops_capture_records_total", revision="rev-a", track="stable", kind="request")
        == 8
    )


def test_sender_drops_the_line_a_400_names_and_sends_the_rest() -> None:
    sink = CaptureSink(
        token=TOKEN, answers=[(400, {"error": "line 3: time: bad", "line": 3, "field": "time"})]
    )
    metrics = run(_send(sink, [queued(i) for i in range(5)]))
    assert _ids(sink) == ["id-0", "id-1", "id-3", "id-4"]
    dropped = {"revision": "rev-a", "track": "stable", "reason": "rejected"}
    assert counter(metrics, "llmops_capture_dropped_total", **dropped) == 1


def test_sender_retries_507_and_500_then_delivers() -> None:
    sink = CaptureSink(token=TOKEN, answers=[507, 500])
    metrics = run(_send(sink, [queued(i) for i in range(3)]))
    assert _ids(sink) == ["id-0", "id-1", "id-2"]
    assert (
        counter(
            metrics,
            "llmops_capture_dropped_total",
            revision="rev-a",
            track="stable",
            reason="store_unavailable",
        )
        == 0
    )


def test_sender_counts_a_wrong_token_as_rejected_and_a_store_that_stays_down_as_unavailable() -> None:
    sink = CaptureSink(token=TOKEN)
    metrics = run(_send(sink, [queued(0), queued(1, "feedback")], token="wrong"))
    assert sink.records == []
    labels = {"revision": "rev-a", "track": "stable", "reason": "rejected"}
    assert counter(metrics, "llmops_capture_dropped_total", **labels) == 2
    sink = CaptureSink(token=TOKEN, answers=[503] * 100)
    metrics = run(_send(sink, [queued(0)], give_up=0.3))
    labels["reason"] = "store_unavailable"
    assert counter(metrics, "llmops_capture_dropped_total", **labels) == 1


# -- CloudEvents -------------------------------------------------------------------------------


def test_cloudevents_in_binary_mode_one_per_record() -> None:
    with capturing(sink_mode=True) as c:
        r = httpx2.post(f"{c.url}/generate", json={"inputs": PROMPT}, timeout=30)
        rid = r.headers["X-LLMOps-Request-ID"]
        for rating in ("up", 4):
            httpx2.post(f"{c.url}/v1/feedback", json={"request_id": rid, "rating": rating}, timeout=30)
        wait_for("three events", lambda: len(c.sink.events) == 3, timeout=10)
        events = sorted(c.sink.events, key=lambda e: e.attributes["type"], reverse=True)
        request, *feedback = events
        assert request.attributes == {
            "specversion": "1.0",
            "type": CE_TYPE_REQUEST,
            "source": "/llmops/team-a/chat/rev-a",
            "id": rid,
            "subject": rid,
            "time": request.data["time"],
            "inferenceservicename": "chat",
            "namespace": "team-a",
            "endpoint": "canary",
        }
        assert request.content_type == "application/json"
        assert request.data["requestId"] == rid and request.data["response"] == REDACTED
        assert {e.attributes["type"] for e in feedback} == {CE_TYPE_FEEDBACK}
        assert {e.data["rating"] for e in feedback} == {"up", 4}
        ids = {e.attributes["id"] for e in feedback}
        assert len(ids) == 2 and rid not in ids and all(e.attributes["subject"] == rid for e in feedback)
        assert c.sink.records == []  # nothing to a store


def test_cloudevents_sink_retries_5xx_and_drops_what_it_refuses() -> None:
    with capturing(sink_mode=True) as c:
        c.sink.answers.append(503)
        httpx2.post(f"{c.url}/generate", json={"inputs": "one"}, timeout=30)
        wait_for("the first event (after one retry)", lambda: len(c.sink.events) == 1, timeout=10)
        c.sink.answers.append(400)
        httpx2.post(f"{c.url}/generate", json={"inputs": "two"}, timeout=30)  # refused with 400 ...
        wait_for(
            "the refused event counted",
            lambda: metric(c.health, "llmops_capture_dropped_total", reason="rejected") == 1,
            timeout=10,
        )
        httpx2.post(f"{c.url}/generate", json={"inputs": "three"}, timeout=30)
        wait_for("the third event", lambda: len(c.sink.events) == 2, timeout=10)
        assert [e.data["prompt"] for e in c.sink.events] == ["one", "three"]


# -- record assembly edge cases (pure) ---------------------------------------------------------

WHO = Identity("ns/x", "r1", "stable")
PLAIN = Redactor(())


def exchange(
    route: str, request: dict[str, Any], response: bytes, streamed: bool, **headers: str
) -> Exchange:
    return Exchange(
        arrived=1_796_000_000.5,
        latency=0.25,
        request_id="id",
        client="bob",
        route=route,
        request_body=json.dumps(request).encode(),
        response_body=response,
        streamed=streamed,
        headers=headers,
    )


def test_a_stream_cut_at_the_cap_or_by_an_error_keeps_what_came_first() -> None:
    stream = (
        b'data:{"index":1,"token":{"id":1,"text":"Hello","special":false},"generated_text":null,"details":null}\n\n'
        b'data:{"index":2,"token":{"id":2,"text":" world","special":false},"generated_text":null,"details":null}\n\n'
        b'data:{"error":"overloaded","error_type":"overloaded"}\n\n'
        b'data:{"index":3,"tok'
    )
    rec = request_record(exchange("/generate_stream", {"inputs": "x"}, stream, True), WHO, "Both", PLAIN)
    assert (rec["response"], rec["completionTokens"], rec["finishReason"]) == ("Hello world", 2, None)
    assert rec["time"] == "2026-11-30T00:53:20.500Z" and rec["latencyMs"] == 250.0
    assert rec["client"] == "bob" and rec["deployment"] == "ns/x"


def test_a_request_that_is_not_json_still_makes_a_record() -> None:
    rec = request_record(
        Exchange(1.0, 0.1, "id", "c", "/generate", b"\xff{", b'{"generated_text":"ok"}', False, {}),
        WHO,
        "Both",
        PLAIN,
    )
    assert rec["prompt"] is None and rec["response"] == "ok"
    prompts = request_record(
        exchange("/v1/completions", {"prompt": ["a", "b"]}, b"{}", False), WHO, "Both", PLAIN
    )
    assert prompts["prompt"] == "a\nb" and prompts["response"] is None


# -- the flags ---------------------------------------------------------------------------------


def _args(tmp_path: Path, *extra: str) -> Any:
    (tmp_path / "signing-key").write_bytes(KEY)
    return _parser().parse_args(
        [
            *(
                "--upstream",
                "http://127.0.0.1:1",
                "--deployment",
                "ns/x",
                "--revision",
                "r",
                "--track",
                "stable",
            ),
            *("--signing-key-file", str(tmp_path / "signing-key")),
            *extra,
        ]
    )


def test_flags_make_the_capture_config_and_refuse_a_broken_pattern(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert build(_args(tmp_path)).config.capture is None
    (tmp_path / "token").write_text(TOKEN + "\n")
    gw = build(
        _args(
            tmp_path,
            *("--capture-sample-rate", "0.5", "--capture-keep", "Prompts", "--capture-redact", "email,card"),
            *("--capture-pattern", "ACCOUNT=ACC-[0-9]+", "--capture-url", "http://store:8080"),
            *("--capture-token-file", str(tmp_path / "token")),
        )
    )
    assert gw.config.capture == CaptureConfig(
        sample_rate=0.5,
        keep="Prompts",
        builtins=("email", "card"),
        patterns=(("ACCOUNT", "ACC-[0-9]+"),),
        store_url="http://store:8080",
        token=TOKEN,
    )
    with pytest.raises(UsageError, match="'BROKEN'"):
        build(
            _args(
                tmp_path, "--capture-sample-rate", "1", "--capture-pattern", "BROKEN=(", "--capture-url", "x"
            )
        )
    with pytest.raises(UsageError, match="--capture-url"):
        build(_args(tmp_path, "--capture-sample-rate", "1"))
    # A Secret without capture-token (made before it existed): the gateway serves, the store refuses.
    with caplog.at_level(logging.ERROR):
        gw = build(
            _args(
                tmp_path,
                *("--capture-sample-rate", "1", "--capture-url", "http://store:8080"),
                *("--capture-token-file", str(tmp_path / "missing")),
            )
        )
    assert gw.config.capture is not None and gw.config.capture.token == ""
    assert "capture token" in caplog.text


# -- with the real capture store ---------------------------------------------------------------


def test_records_reach_the_real_capture_store_and_read_back_with_their_feedback(tmp_path: Path) -> None:
    store = CaptureStore(
        StoreConfig(
            data_dir=tmp_path / "store",
            token=TOKEN.encode(),
            max_bytes=1 << 30,
            retention=dt.timedelta(days=1),
        )
    )
    sim = Simulator(Behaviour(answers={PROMPT: ANSWER}), max_input_tokens=1000, max_total_tokens=2000)
    with run_in_thread(sim) as engine, run_store_in_thread(store) as (store_url, _):
        capture = CaptureConfig(sample_rate=1.0, builtins=BUILTIN_KINDS, store_url=store_url, token=TOKEN)
        gateway = Gateway(
            GatewayConfig(
                upstream=engine, deployment=DEPLOYMENT, revision="rev-a", track="canary", capture=capture
            ),
            RequestIdSigner(KEY, DEPLOYMENT),
            None,
        )
        with run_gateway_in_thread(gateway) as (url, health):
            rated = httpx2.post(f"{url}/generate", json={"inputs": PROMPT}, timeout=30).headers[
                "X-LLMOps-Request-ID"
            ]
            httpx2.post(
                f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": PROMPT}]}
            )
            fb = httpx2.post(f"{url}/v1/feedback", json={"request_id": rated, "rating": 1}, timeout=30)
            assert fb.status_code == 202
            wait_for(
                "three records acknowledged by the store",
                lambda: metric(health, "llmops_capture_records_total") == 3,
                timeout=10,
            )
        read = httpx2.get(
            f"{store_url}/v1/records",
            params={"feedback": "down"},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        assert read.status_code == 200
        (down,) = [json.loads(line) for line in read.text.splitlines()]
        assert down["requestId"] == rated and down["response"] == REDACTED and down["prompt"] == PROMPT
        assert down["feedback"]["rating"] == 1 and down["feedback"]["track"] == "canary"
        everything = httpx2.get(
            f"{store_url}/v1/records", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ).text.splitlines()
        assert len(everything) == 2
