"""The evaluation client against the TGI simulator (and its vLLM mode): every test runs on both
transports, the real huggingface_hub client and the lean aiohttp path, which must behave the same."""

import dataclasses
import json
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from llmops.evaluation.client import (
    TRANSPORTS,
    ClientConfig,
    EndpointUnreachable,
    normalize_endpoint,
    run_requests,
)
from llmops.evaluation.completion import Completion
from llmops.evaluation.dataset import Sample, parse_dataset
from llmops_dev.tgisim import Behaviour, Simulator

ANSWERS = {f"Question {i}?": f"Answer number {i}" for i in range(12)}


def _prompts() -> list[Sample]:
    return parse_dataset([json.dumps({"prompt": p, "reference": r}) for p, r in ANSWERS.items()], "d")


_TRANSPORT = ["huggingface_hub"]  # set per test by the autouse `transport` fixture


@pytest.fixture(autouse=True, params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    _TRANSPORT[0] = request.param
    return str(request.param)


def _config(url: str, **changes: object) -> ClientConfig:
    # Tiny backoff and timeouts keep the unit tier fast; the retry logic is the same at any scale.
    base = ClientConfig(
        endpoint=url,
        api_key="sim-key",
        concurrency=4,
        timeout=5.0,
        retries=3,
        backoff_base=0.001,
        transport=_TRANSPORT[0],
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # A short shutdown timeout: the timeout tests leave slow requests in flight when they end.
    simulator = Simulator(
        Behaviour(answers=ANSWERS, latency_seconds=0.001), api_key="sim-key", shutdown_timeout=0.1
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


def _closed_port() -> int:
    # Bind, note the port, close: nothing listens there, so connecting is refused at once.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_prompts_are_answered_with_tokens_and_latency(sim: Simulator) -> None:
    assert sim.url is not None
    seen: list[int] = []
    completions, retries = await run_requests(_prompts(), _config(sim.url), lambda i, _: seen.append(i))
    assert [c.text for c in completions] == list(ANSWERS.values())  # in sample order, prompt not echoed
    assert sorted(seen) == list(range(len(ANSWERS)))
    assert retries == 0
    for c in completions:
        assert c.ok and c.attempts == 1 and c.error is None
        assert c.generated_tokens is not None and c.generated_tokens >= 3  # "Answer number N" (+ eos)
        assert c.latency is not None and 0.001 <= c.latency < 5


async def test_chat_samples_use_chat_completion(sim: Simulator) -> None:
    assert sim.url is not None
    lines = [
        json.dumps({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": p}]})
        for p in list(ANSWERS)[:3]
    ]
    completions, _ = await run_requests(parse_dataset(lines, "chat"), _config(sim.url))
    assert [c.text for c in completions] == list(ANSWERS.values())[:3]
    assert all(c.generated_tokens and c.generated_tokens >= 3 for c in completions)


async def test_429_is_retried_with_backoff(sim: Simulator) -> None:
    assert sim.url is not None
    # The simulator fails exactly every other request with 429 (deterministic, in arrival order);
    # at concurrency 1 each failed sample's retry lands on a succeeding slot.
    sim.behaviour = dataclasses.replace(sim.behaviour, error_rate=0.5, error_kind="overloaded")
    completions, retries = await run_requests(_prompts(), _config(sim.url, concurrency=1))
    assert [c.text for c in completions] == list(ANSWERS.values())
    assert [c.attempts for c in completions] == [1] + [2] * (len(ANSWERS) - 1)
    assert retries == len(ANSWERS) - 1


async def test_retries_are_bounded(sim: Simulator) -> None:
    assert sim.url is not None
    sim.behaviour = dataclasses.replace(sim.behaviour, error_rate=0.5, error_kind="overloaded")
    completions, retries = await run_requests(_prompts(), _config(sim.url, concurrency=1, retries=0))
    assert retries == 0
    assert [c.ok for c in completions] == [i % 2 == 0 for i in range(len(ANSWERS))]
    failed = completions[1]
    assert failed.attempts == 1 and failed.error is not None and failed.error.startswith("HTTP 429")


async def test_generation_errors_are_not_retried(sim: Simulator) -> None:
    assert sim.url is not None
    sim.behaviour = dataclasses.replace(sim.behaviour, error_rate=1.0, error_kind="generation")
    completions, retries = await run_requests(_prompts()[:3], _config(sim.url))
    assert retries == 0
    assert all(not c.ok and c.attempts == 1 and (c.error or "").startswith("HTTP 424") for c in completions)


async def test_wrong_api_key_is_a_final_401(sim: Simulator) -> None:
    assert sim.url is not None
    completions, _ = await run_requests(_prompts()[:2], _config(sim.url, api_key="wrong"))
    assert all(c.attempts == 1 and (c.error or "").startswith("HTTP 401") for c in completions)


async def test_unreachable_endpoint_names_the_url(transport: str) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(EndpointUnreachable) as caught:
        await run_requests(_prompts(), _config(url, retries=2))
    message = str(caught.value)
    error = {"huggingface_hub": "ConnectError", "aiohttp": "ClientConnectorError"}[transport]
    assert message.startswith(f"endpoint {url} unreachable after 3 attempt(s): {error}")


async def test_a_timeout_before_any_answer_is_unreachable(sim: Simulator) -> None:
    assert sim.url is not None
    sim.behaviour = dataclasses.replace(sim.behaviour, latency_seconds=2.0)
    with pytest.raises(
        EndpointUnreachable, match=rf"endpoint {sim.url} unreachable after 1 attempt\(s\): timed out"
    ):
        await run_requests(_prompts()[:1], _config(sim.url, timeout=0.05, retries=0))


async def test_after_an_answer_a_timeout_only_fails_its_sample(sim: Simulator) -> None:
    assert sim.url is not None

    def slow_down(index: int, completion: Completion) -> None:
        # Once the endpoint has answered, it becomes too slow: the rest are per-sample errors.
        sim.behaviour = dataclasses.replace(sim.behaviour, latency_seconds=5.0)

    # The timeout leaves the first answer room on a loaded 2-core machine (0.1 s did not).
    completions, _ = await run_requests(
        _prompts()[:3], _config(sim.url, concurrency=1, timeout=0.5, retries=0), slow_down
    )
    assert completions[0].ok
    assert [c.error for c in completions[1:]] == ["timed out after 0.5s"] * 2


async def test_no_hub_token_is_sent_to_the_model_server(monkeypatch: pytest.MonkeyPatch) -> None:
    # huggingface_hub falls back to the local Hub token when api_key is None; the evaluation
    # must not leak HF_TOKEN to a model server. A real server records what the real client sends.
    monkeypatch.setenv("HF_TOKEN", "hf_" + "s" * 34)
    seen: list[str | None] = []

    async def generate(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        body = [{"generated_text": "ok", "details": {"finish_reason": "eos_token", "generated_tokens": 1}}]
        return web.json_response(body)

    async def chat(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        message = {"role": "assistant", "content": "ok"}
        body = {
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "created": 0,
            "id": "x",
        }
        return web.json_response(
            {**body, "model": "m", "object": "chat.completion", "system_fingerprint": ""}
        )

    async def complete(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"choices": [{"index": 0, "text": "ok"}], "usage": {"completion_tokens": 1}})

    app = web.Application()
    app.router.add_post("/", generate)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", complete)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        for route in ("chat", "completion", "generate"):
            await run_requests(_prompts()[:1], _config(url, api_key=None, route=route))
            await run_requests(_prompts()[:1], _config(url, api_key="tgi-key", route=route))
    finally:
        await runner.cleanup()
    assert seen == [None, "Bearer tgi-key"] * 3


async def test_chat_is_the_default_route_and_names_the_served_model() -> None:
    # vLLM refuses a model other than its served name: the client must send the configured one.
    vllm = Simulator(
        Behaviour(answers=ANSWERS),
        engine="vllm",
        model_id="org/served",
        api_key="sim-key",
        max_total_tokens=512,
    )
    await vllm.start()
    try:
        assert vllm.url is not None
        completions, _ = await run_requests(_prompts(), _config(vllm.url, model="org/served"))
        assert [c.text for c in completions] == list(ANSWERS.values())
        raw, _ = await run_requests(_prompts(), _config(vllm.url, model="org/served", route="completion"))
        assert [c.text for c in raw] == list(ANSWERS.values())
        wrong, _ = await run_requests(_prompts()[:1], _config(vllm.url, model="org/other"))
        assert wrong[0].error is not None and "HTTP 404" in wrong[0].error
    finally:
        await vllm.stop()


async def test_completion_route_refuses_chat_samples_before_sending() -> None:
    chat = parse_dataset([json.dumps({"id": "c1", "messages": [{"role": "user", "content": "hi"}]})], "d")
    with pytest.raises(ValueError, match="sample 'c1' \\(line 1\\) has messages; use route chat"):
        await run_requests(chat, _config("http://127.0.0.1:9", route="completion"))


def test_normalize_endpoint() -> None:
    assert normalize_endpoint(" http://svc.ns:80/v1/ ") == "http://svc.ns:80"
    assert normalize_endpoint("https://x/") == "https://x"
    with pytest.raises(ValueError, match="must be an http"):
        normalize_endpoint("svc.ns:80")
