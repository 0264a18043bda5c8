"""The gateway in front of a real TGI simulator (in-process), through real HTTP clients.

Both servers run on their own event loops in threads (run_in_thread, run_gateway_in_thread);
the tests talk to them with httpx2 and the real huggingface_hub InferenceClient.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvloop
from huggingface_hub import InferenceClient
from prometheus_client.parser import text_string_to_metric_families

from llmops.gateway import (
    Gateway,
    GatewayConfig,
    InvalidRequestId,
    KeyStore,
    RequestIdSigner,
)
from llmops.gateway.server import ID_HEADER, ID_JSON_FIELD, _with_request_id, with_adapter
from llmops_dev.gateway_thread import run_gateway_in_thread
from llmops_dev.tgisim import Behaviour, Simulator, run_in_thread
from llmops_dev.tgisim.lora import LoraAdapter
from testkit import wait_for

PROMPT = "What is the capital of France?"
ANSWER = "The capital of France is Paris, a city on the Seine."
KEY = b"k" * 32
ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-fedcba9876543210"
DEPLOYMENT = "team-a/chat"


@dataclass
class Stack:
    sim: Simulator
    engine: str
    gateway: Gateway
    url: str
    health: str
    keys_dir: Path


@contextlib.contextmanager
def stack(
    tmp_path: Path,
    *,
    revision: str = "rev-a",
    track: str = "stable",
    auth: bool = True,
    sim: Simulator | None = None,
    deployment: str = DEPLOYMENT,
    **config: Any,
) -> Iterator[Stack]:
    sim = sim or Simulator(Behaviour(answers={PROMPT: ANSWER}), max_input_tokens=1000, max_total_tokens=2000)
    keys_dir = tmp_path / f"keys-{revision}-{track}"
    keys_dir.mkdir(exist_ok=True)
    (keys_dir / "alice").write_text(ALICE + "\n")
    with run_in_thread(sim) as engine:
        gateway = Gateway(
            GatewayConfig(upstream=engine, deployment=deployment, revision=revision, track=track, **config),
            RequestIdSigner(KEY, deployment),
            KeyStore(keys_dir) if auth else None,
        )
        # On uvloop, as `llmops gateway` runs: its transports differ from asyncio's.
        with run_gateway_in_thread(gateway, loop_factory=uvloop.new_event_loop) as (url, health):
            yield Stack(sim, engine, gateway, url, health, keys_dir)


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Stack]:
    with stack(tmp_path) as s:
        yield s


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


# -- proxying --------------------------------------------------------------------------------


def test_huggingface_client_gets_the_engines_answer_through_the_gateway(gw: Stack) -> None:
    via = InferenceClient(model=gw.url, api_key=ALICE)
    direct = InferenceClient(model=gw.engine)
    answer = via.text_generation(PROMPT)
    assert answer == direct.text_generation(PROMPT)
    assert answer.endswith(ANSWER)  # the compat route `/` returns the full text, as TGI's does
    chat = via.chat_completion([{"role": "user", "content": PROMPT}])
    assert chat.choices[0].message.content == ANSWER
    info = httpx2.get(f"{gw.url}/info", headers=bearer(ALICE)).json()
    assert info["model_id"] == "sim/model"
    head = httpx2.head(f"{gw.url}/info", headers=bearer(ALICE))
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == httpx2.head(f"{gw.engine}/info").headers["Content-Length"]
    models = httpx2.get(f"{gw.url}/v1/models", headers=bearer(ALICE))
    assert models.status_code == 200
    tokens = httpx2.post(f"{gw.url}/tokenize", json={"inputs": PROMPT}, headers=bearer(ALICE))
    assert tokens.status_code == 200 and tokens.json()


ADAPTER_ANSWER = "Paris, as the LoRA adapter says."


def test_with_an_adapter_every_generation_route_names_it_and_clients_need_no_change(tmp_path: Path) -> None:
    """The engine serves a LoRA adapter only to requests that name it (TGI: any other name is
    the base model): with --adapter the gateway names it on TGI's routes and the OpenAI ones."""
    sim = Simulator(
        Behaviour(answers={PROMPT: ANSWER}),
        max_input_tokens=1000,
        max_total_tokens=2000,
        lora_adapters=(LoraAdapter("tuned", "/data/adapters/tuned"),),
    )
    sim.set_adapter_behaviour("tuned", Behaviour(answers={PROMPT: ADAPTER_ANSWER}))
    with stack(tmp_path, sim=sim, auth=False, adapter="tuned") as s:
        via, direct = InferenceClient(model=s.url), InferenceClient(model=s.engine)
        # The compat route `/` returns the full text (prompt first), as TGI's does.
        assert direct.text_generation(PROMPT, max_new_tokens=40).endswith(ANSWER)  # the base model
        assert via.text_generation(PROMPT, max_new_tokens=40).endswith(ADAPTER_ANSWER)
        assert "".join(via.text_generation(PROMPT, max_new_tokens=40, stream=True)).startswith(ADAPTER_ANSWER)
        # A client naming another adapter, or the base model, still gets this track's adapter.
        assert via.text_generation(PROMPT, max_new_tokens=40, adapter_id="other").endswith(ADAPTER_ANSWER)
        chat = via.chat_completion([{"role": "user", "content": PROMPT}], model="org/model")
        assert chat.choices[0].message.content == ADAPTER_ANSWER
        completion = httpx2.post(f"{s.url}/v1/completions", json={"prompt": PROMPT, "max_tokens": 40})
        assert completion.json()["choices"][0]["text"] == ADAPTER_ANSWER
        compat = httpx2.post(f"{s.url}/", json={"inputs": PROMPT, "parameters": {"max_new_tokens": 40}})
        assert compat.json()[0]["generated_text"].endswith(ADAPTER_ANSWER)
        # Not a JSON object: passed as it is, and the engine refuses it as it would anyway.
        assert httpx2.post(f"{s.url}/generate", content=b"[1]").status_code == 422


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/generate", {"inputs": "x"}, {"inputs": "x", "parameters": {"adapter_id": "a"}}),
        (
            "/generate_stream",
            {"inputs": "x", "parameters": {"adapter_id": "b", "seed": 1}},
            {"inputs": "x", "parameters": {"adapter_id": "a", "seed": 1}},
        ),
        ("/v1/chat/completions", {"model": "tgi", "messages": []}, {"model": "a", "messages": []}),
        ("/v1/completions", {"prompt": "x"}, {"prompt": "x", "model": "a"}),
        ("/tokenize", {"inputs": "x"}, {"inputs": "x"}),
        ("/generate", {"inputs": "x", "parameters": 3}, {"inputs": "x", "parameters": 3}),
    ],
)
def test_with_adapter_sets_the_field_each_route_reads(path: str, body: Any, expected: Any) -> None:
    assert json.loads(with_adapter(path, json.dumps(body).encode(), "a")) == expected


def test_every_answer_carries_a_signed_request_id_in_header_and_json(gw: Stack) -> None:
    r = httpx2.post(
        f"{gw.url}/generate",
        json={"inputs": PROMPT},
        headers={**bearer(ALICE), "X-Request-ID": "corr-42"},
    )
    assert r.status_code == 200
    rid = r.headers[ID_HEADER]
    assert r.json()[ID_JSON_FIELD] == rid
    assert r.json()["generated_text"] == ANSWER
    assert r.headers["X-Request-ID"] == "corr-42"
    said = RequestIdSigner(KEY, DEPLOYMENT).verify(rid)
    assert (said.deployment, said.revision, said.track) == (DEPLOYMENT, "rev-a", "stable")
    # Errors carry one too (a 401 here), so every answer can be referred to.
    assert ID_HEADER in httpx2.post(f"{gw.url}/generate", json={"inputs": PROMPT}).headers


def test_streaming_gives_the_same_tokens_as_direct_and_each_event_as_it_is_produced(tmp_path: Path) -> None:
    sim = Simulator(
        Behaviour(answers={PROMPT: ANSWER}, time_per_token_seconds=0.05),
        max_input_tokens=1000,
        max_total_tokens=2000,
    )
    with stack(tmp_path, sim=sim) as s:
        # Keep the clients referenced: a collected client closes its open stream.
        direct_client = InferenceClient(model=s.engine)
        gateway_client = InferenceClient(model=s.url, api_key=ALICE)
        direct = list(direct_client.text_generation(PROMPT, stream=True))
        started = time.monotonic()
        arrivals = []
        via = []
        for tok in gateway_client.text_generation(PROMPT, stream=True):
            arrivals.append(time.monotonic() - started)
            via.append(tok)
        assert via == direct and "".join(via).startswith(ANSWER)  # then TGI's end-of-sequence token
        # Unbuffered: the first token arrives long before the last (about 0.05 s apart each).
        assert arrivals[0] < 0.5 * arrivals[-1], arrivals


def test_a_client_that_expects_100_continue_gets_it_before_sending_the_body(gw: Stack) -> None:
    """curl asks for it with bodies over 1 KiB and waits a second for it: it must come at once."""
    body = json.dumps({"inputs": PROMPT}).encode()
    port = int(gw.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(
            b"POST /generate HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer %s\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"
            % (ALICE.encode(), len(body))
        )
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"  # before any byte of the body
        s.sendall(body)
        answer = b""
        while b"generated_text" not in answer:
            chunk = s.recv(65536)
            assert chunk, answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    refused = httpx2.post(
        f"{gw.url}/generate", content=body, headers={"Expect": "something-else", **bearer(ALICE)}
    )
    assert refused.status_code == 417


def test_oversized_request_gets_413_and_a_slow_engine_504(tmp_path: Path) -> None:
    sim = Simulator(Behaviour(latency_seconds=2.0), max_input_tokens=1000, max_total_tokens=2000)
    with stack(tmp_path, sim=sim, max_request_bytes=1024, upstream_timeout=0.5) as s:
        big = httpx2.post(f"{s.url}/generate", json={"inputs": "x" * 5000}, headers=bearer(ALICE))
        assert big.status_code == 413
        slow = httpx2.post(f"{s.url}/generate", json={"inputs": PROMPT}, headers=bearer(ALICE), timeout=10)
        assert slow.status_code == 504
        assert slow.json()["error_type"] == "timeout"


def test_engine_down_gives_502_and_health_passes_the_engines_state_through(tmp_path: Path) -> None:
    sim = Simulator(Behaviour(startup_delay_seconds=3600), max_input_tokens=1000, max_total_tokens=2000)
    with stack(tmp_path, sim=sim) as s:
        assert httpx2.get(f"{s.health}/healthz").status_code == 200
        assert httpx2.get(f"{s.health}/health").status_code == 503  # loading
        s.sim.behaviour = replace(s.sim.behaviour, startup_delay_seconds=0.0)
        assert httpx2.get(f"{s.health}/health").status_code == 200
    gateway = Gateway(
        GatewayConfig(upstream="http://127.0.0.1:9", deployment=DEPLOYMENT, revision="r", track="stable"),
        RequestIdSigner(KEY, DEPLOYMENT),
        None,
    )
    with run_gateway_in_thread(gateway) as (url, health):
        assert httpx2.post(f"{url}/generate", json={"inputs": PROMPT}).status_code == 502
        assert httpx2.get(f"{health}/health").status_code == 503
        assert httpx2.get(f"{health}/metrics").status_code == 503  # `up` stays 0 without the engine


def test_a_client_that_disconnects_cancels_the_engine_request(tmp_path: Path) -> None:
    sim = Simulator(
        Behaviour(answers={PROMPT: ANSWER * 20}, time_per_token_seconds=0.1),
        max_input_tokens=1000,
        max_total_tokens=2000,
    )
    with stack(tmp_path, sim=sim) as s:
        with httpx2.stream(
            "POST",
            f"{s.url}/generate_stream",
            json={"inputs": PROMPT, "parameters": {"max_new_tokens": 500}},
            headers=bearer(ALICE),
        ) as r:
            next(r.iter_lines())
            assert s.sim.inflight == 1
        # Closing the client's connection ends the engine's generation long before its ~50 s.
        wait_for("the engine request to end", lambda: s.sim.inflight == 0, timeout=10)
        metrics = httpx2.get(f"{s.health}/metrics").text
        assert sample(metrics, "llmops_gateway_upstream_errors_total", kind="client_disconnected") == 1


def test_the_engines_own_key_is_enforced_by_the_engine_or_swapped_in_by_the_gateway(tmp_path: Path) -> None:
    """spec.engine.apiKeySecretRef: without client keys the engine checks the client's key, as
    without the gateway; with client keys the gateway checks those and sends the engine its own."""

    def engine() -> Simulator:
        return Simulator(Behaviour(), api_key="engine-key", max_input_tokens=1000, max_total_tokens=2000)

    with stack(tmp_path, sim=engine(), auth=False, engine_api_key="engine-key") as s:
        assert httpx2.post(f"{s.url}/generate", json={"inputs": PROMPT}).status_code == 401
        assert (
            httpx2.post(
                f"{s.url}/generate", json={"inputs": PROMPT}, headers=bearer("engine-key")
            ).status_code
            == 200
        )
    with stack(tmp_path, sim=engine(), engine_api_key="engine-key") as s:
        assert (
            httpx2.post(f"{s.url}/generate", json={"inputs": PROMPT}, headers=bearer(ALICE)).status_code
            == 200
        )
    with stack(tmp_path, sim=engine()) as s:
        r = httpx2.post(f"{s.url}/generate", json={"inputs": PROMPT}, headers=bearer(ALICE))
        assert r.status_code == 401  # the engine's refusal: alice's key is never passed on


# -- API keys --------------------------------------------------------------------------------


def test_no_key_wrong_key_and_revoked_key_get_401_and_a_new_key_works_within_seconds(gw: Stack) -> None:
    def status(key: str | None) -> int:
        headers = bearer(key) if key is not None else {}
        return httpx2.post(f"{gw.url}/generate", json={"inputs": PROMPT}, headers=headers).status_code

    assert status(None) == 401
    assert status("not-a-key") == 401
    assert status(ALICE) == 200
    assert status(BOB) == 401
    (gw.keys_dir / "bob").write_text(BOB)
    wait_for("bob's new key to work", lambda: status(BOB) == 200, timeout=5)
    (gw.keys_dir / "alice").unlink()
    wait_for("alice's revoked key to be refused", lambda: status(ALICE) == 401, timeout=5)
    # Open routes for probes stay open; the rest of the API does not.
    assert httpx2.get(f"{gw.url}/health").status_code == 200
    assert httpx2.get(f"{gw.url}/info").status_code == 401
    with pytest.raises(Exception, match="a valid API key is required"):
        InferenceClient(model=gw.url, api_key="wrong").text_generation(PROMPT)


def test_metrics_count_by_client_name_and_never_show_a_key(gw: Stack) -> None:
    httpx2.post(f"{gw.url}/generate", json={"inputs": PROMPT}, headers=bearer(ALICE))
    httpx2.post(f"{gw.url}/generate", json={"inputs": PROMPT}, headers=bearer("wrong-" + ALICE))
    text = httpx2.get(f"{gw.health}/metrics").text
    assert sample(text, "llmops_gateway_requests_total", route="/generate", code="200", client="alice") == 1
    assert sample(text, "llmops_gateway_auth_failures_total", reason="invalid") == 1
    assert sample(text, "tgi_request_success_total") == 1 or "tgi_request_success" in text
    assert ALICE not in text


def test_key_store_compares_against_every_key_and_ignores_mount_links(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("key-a")
    (tmp_path / "b").write_text("key-b\n")
    (tmp_path / "empty").write_text("")
    (tmp_path / "..data").mkdir()
    store = KeyStore(tmp_path, {"internal": b"key-i"})
    assert store.clients == ["a", "b", "internal"]
    assert store.client_for("key-b") == "b"
    assert store.client_for("key-i") == "internal"
    assert store.client_for("") is None and store.client_for(None) is None
    assert not store.reload()
    (tmp_path / "a").write_text("key-a2")
    assert store.reload() and store.client_for("key-a") is None
    assert KeyStore(tmp_path / "missing").clients == []


# -- request IDs and feedback ----------------------------------------------------------------


def test_request_ids_refuse_forgery_other_deployments_and_garbage() -> None:
    signer = RequestIdSigner(KEY, DEPLOYMENT)
    rid = signer.issue(revision="abc", track="canary", now=1_700_000_000, nonce="n")
    assert signer.verify(rid).revision == "abc"
    prefix, payload, sig = rid.split(".")
    forged_sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    with pytest.raises(InvalidRequestId, match="invalid signature"):
        signer.verify(f"{prefix}.{payload}.{forged_sig}")
    other = RequestIdSigner(b"o" * 32, "team-b/chat").issue(revision="abc", track="canary", now=0)
    with pytest.raises(InvalidRequestId, match="another deployment"):
        signer.verify(other)
    same_name_other_key = RequestIdSigner(b"o" * 32, DEPLOYMENT).issue(revision="abc", track="canary", now=0)
    with pytest.raises(InvalidRequestId, match="invalid signature"):
        signer.verify(same_name_other_key)
    for garbage in ("", "llm1", "llm1..", "llm1.!!!.x", "x" * 1000, "llm1.YQ.YQ"):
        with pytest.raises(InvalidRequestId):
            signer.verify(garbage)


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        # Spliced in before the closing brace: the engine's bytes otherwise go out as they came
        # (spacing, key order, non-ASCII text unescaped).
        (
            '{"generated_text": "café"}\n'.encode(),
            '{"generated_text": "café","llmops_request_id":"ID"}\n'.encode(),
        ),
        (b"{ }", b'{ "llmops_request_id":"ID"}'),
        (b'{"a":{"b":{}}}', b'{"a":{"b":{}},"llmops_request_id":"ID"}'),
        # The engine's own member of that name is replaced, not duplicated.
        (b'{"llmops_request_id":"x","b":2}', b'{"llmops_request_id":"ID","b":2}'),
        # UTF-16 JSON cannot take ASCII bytes: serialised again, as UTF-8.
        ('{"a":1}'.encode("utf-16"), b'{"a":1,"llmops_request_id":"ID"}'),
        # Not an object (the compat route's list, or not JSON at all): as is.
        (b'[{"generated_text":"x"}]', b'[{"generated_text":"x"}]'),
        (b"not json}", b"not json}"),
    ],
)
def test_the_request_id_joins_the_engines_json_object_and_nothing_else_changes(
    engine: bytes, expected: bytes
) -> None:
    body, parsed = _with_request_id(engine, "ID")
    assert body == expected
    if isinstance(parsed, dict):
        assert json.loads(body) == parsed and parsed[ID_JSON_FIELD] == "ID"


def test_feedback_is_counted_for_the_revision_and_track_that_answered(tmp_path: Path) -> None:
    """An answer from the canary, rated after promotion on a stable pod of the new revision."""
    with stack(tmp_path, revision="rev-new", track="canary") as canary:
        r = httpx2.post(f"{canary.url}/generate", json={"inputs": PROMPT}, headers=bearer(ALICE))
        rid = r.headers[ID_HEADER]
    with stack(tmp_path, revision="rev-new", track="stable") as stable:
        for rating in ("down", 2, "up"):
            fb = httpx2.post(
                f"{stable.url}/v1/feedback",
                json={"request_id": rid, "rating": rating, "comment": "meh", "tags": ["tone"]},
                headers=bearer(ALICE),
            )
            assert fb.status_code == 202, fb.text
            assert fb.json()["track"] == "canary"
        text = httpx2.get(f"{stable.health}/metrics").text
        assert sample(text, "llmops_feedback_total", revision="rev-new", track="canary", rating="down") == 1
        assert sample(text, "llmops_feedback_total", revision="rev-new", track="canary", rating="2") == 1
        assert sample(text, "llmops_feedback_total", track="stable") == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", ""),
        (b"[]", ""),
        (json.dumps({"rating": "up"}).encode(), "request_id"),
        (json.dumps({"request_id": "x"}).encode(), "rating"),
        (json.dumps({"request_id": "x", "rating": "sideways"}).encode(), "rating"),
        (json.dumps({"request_id": "x", "rating": 6}).encode(), "rating"),
        (json.dumps({"request_id": "x", "rating": True}).encode(), "rating"),
        (json.dumps({"request_id": "x", "rating": "up", "stars": 5}).encode(), "stars"),
        (json.dumps({"request_id": "x", "rating": "up", "tags": "a"}).encode(), "tags"),
        (json.dumps({"request_id": "x", "rating": "up", "comment": 3}).encode(), "comment"),
        (json.dumps({"request_id": "llm1.forged.sig", "rating": "up"}).encode(), "request_id"),
    ],
)
def test_bad_feedback_gets_400_naming_the_field(gw: Stack, body: bytes, field: str) -> None:
    r = httpx2.post(
        f"{gw.url}/v1/feedback", content=body, headers={**bearer(ALICE), "Content-Type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    if field:
        assert field in r.json()["error"]


def test_feedback_is_authenticated_and_oversized_feedback_gets_413(gw: Stack) -> None:
    rid = httpx2.post(f"{gw.url}/generate", json={"inputs": PROMPT}, headers=bearer(ALICE)).headers[ID_HEADER]
    assert httpx2.post(f"{gw.url}/v1/feedback", json={"request_id": rid, "rating": "up"}).status_code == 401
    huge = {"request_id": rid, "rating": "up", "correction": "x" * 100_000}
    assert httpx2.post(f"{gw.url}/v1/feedback", json=huge, headers=bearer(ALICE)).status_code == 413
