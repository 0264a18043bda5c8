"""The simulator's vLLM mode against the real huggingface_hub client: vLLM's OpenAI-compatible
routes, served-model-name check, API key on /v1 only, error shape, queueing at --max-num-seqs,
and vLLM's metric names in /metrics."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace

import httpx2
import pytest
from huggingface_hub import AsyncInferenceClient, InferenceClient
from huggingface_hub.errors import HfHubHTTPError
from prometheus_client.parser import text_string_to_metric_families

from llmops_dev.tgisim import Behaviour, Simulator, run_in_thread
from llmops_dev.tgisim.vllm_metrics import E2E_BUCKETS, build_1_2_5_buckets

KEY = "sim-key"
MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
PROMPT = "What is the capital of France?"
ANSWER = "Paris is the capital of France."  # 6 word tokens, then the end-of-sequence token
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def sim() -> Simulator:
    return Simulator(
        Behaviour(answers={PROMPT: ANSWER}),
        engine="vllm",
        model_id=MODEL,
        revision="abc123",
        api_key=KEY,
        max_total_tokens=128,
        max_concurrent_requests=2,
    )


@pytest.fixture
def url(sim: Simulator) -> Iterator[str]:
    with run_in_thread(sim) as base:
        yield base


@pytest.fixture
def client(url: str) -> InferenceClient:
    # base_url: the client posts to <url>/v1/chat/completions and sends `model` as given per call.
    return InferenceClient(base_url=url, api_key=KEY)


def test_chat_completion_through_huggingface_hub(client: InferenceClient) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}]
    out = client.chat_completion(messages, model=MODEL, max_tokens=50, temperature=0.0)
    assert out.choices[0].message.content == ANSWER
    assert out.choices[0].finish_reason == "stop"
    assert out.model == MODEL and out.id.startswith("chatcmpl-")
    assert out.usage.completion_tokens == 7
    short = client.chat_completion(messages, model=MODEL, max_tokens=2)
    assert (short.choices[0].message.content, short.choices[0].finish_reason) == ("Paris is", "length")


def test_chat_stream_ends_with_done_and_usage(client: InferenceClient, url: str) -> None:
    messages = [{"role": "user", "content": PROMPT}]
    chunks = list(
        client.chat_completion(messages, model=MODEL, stream=True, stream_options={"include_usage": True})
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    r = httpx2.post(
        f"{url}/v1/chat/completions",
        json={"messages": messages, "stream": True, "model": MODEL},
        headers=AUTH,
    )
    events = [e.removeprefix("data: ") for e in r.text.split("\n\n") if e]
    assert events[-1] == "[DONE]"


def test_completions_route(url: str) -> None:
    r = httpx2.post(f"{url}/v1/completions", json={"prompt": PROMPT, "max_tokens": 50}, headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "text_completion" and body["choices"][0]["text"] == ANSWER
    assert body["usage"]["completion_tokens"] == 7


def test_wrong_model_and_errors_have_vllm_shape(client: InferenceClient, url: str) -> None:
    with pytest.raises(HfHubHTTPError) as info:
        client.chat_completion([{"role": "user", "content": PROMPT}], model="other/model")
    assert info.value.response is not None and info.value.response.status_code == 404
    error = info.value.response.json()["error"]
    assert error == {
        "message": "The model `other/model` does not exist.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }
    too_long = httpx2.post(f"{url}/v1/completions", json={"prompt": PROMPT, "max_tokens": 500}, headers=AUTH)
    assert too_long.status_code == 400
    assert too_long.json()["error"]["type"] == "BadRequestError"
    assert "maximum context length is 128 tokens" in too_long.json()["error"]["message"]


def test_api_key_guards_the_v1_routes_only(url: str) -> None:
    r = httpx2.post(f"{url}/v1/completions", json={"prompt": PROMPT})
    assert (r.status_code, r.json()) == (401, {"error": "Unauthorized"})
    assert httpx2.get(f"{url}/v1/models").status_code == 401
    models = httpx2.get(f"{url}/v1/models", headers=AUTH).json()
    assert [m["id"] for m in models["data"]] == [MODEL] and models["data"][0]["max_model_len"] == 128
    for path in ("/health", "/metrics", "/version"):
        assert httpx2.get(f"{url}{path}").status_code == 200, path
    assert httpx2.get(f"{url}/version").json() == {"version": "0.11.0"}
    # TGI's native routes do not exist on vLLM
    assert httpx2.post(f"{url}/generate", json={"inputs": PROMPT}).status_code == 404


def test_simulated_failures_are_500s_counted_as_5xx(sim: Simulator, client: InferenceClient) -> None:
    sim.behaviour = replace(sim.behaviour, error_rate=1.0, error_kind="generation")
    with pytest.raises(HfHubHTTPError) as info:
        client.chat_completion([{"role": "user", "content": PROMPT}], model=MODEL)
    assert info.value.response is not None and info.value.response.status_code == 500
    assert (
        sim.metrics.counter(
            "http_requests_total", handler="/v1/chat/completions", method="POST", status="5xx"
        )
        == 1
    )


def test_metrics_use_vllm_names_labels_and_buckets(sim: Simulator, client: InferenceClient, url: str) -> None:
    client.chat_completion([{"role": "user", "content": PROMPT}], model=MODEL, max_tokens=50)
    client.chat_completion([{"role": "user", "content": PROMPT}], model=MODEL, max_tokens=2)
    text = httpx2.get(f"{url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
    }
    base = (("engine", "0"), ("model_name", MODEL))
    for reason in ("stop", "length"):
        labels = tuple(sorted((*base, ("finished_reason", reason))))
        assert samples[("vllm:request_success_total", labels)] == 1
    assert samples[("vllm:generation_tokens_total", base)] == 7 + 2
    assert samples[("vllm:e2e_request_latency_seconds_count", base)] == 2
    assert samples[("vllm:inter_token_latency_seconds_count", base)] == 6 + 1
    assert samples[("vllm:num_requests_waiting", base)] == 0
    buckets = sorted(
        float(s.labels["le"])
        for s in families["vllm:e2e_request_latency_seconds"].samples
        if "le" in s.labels
    )
    assert tuple(buckets[:-1]) == E2E_BUCKETS
    prompt_buckets = [
        float(s.labels["le"])
        for s in families["vllm:request_prompt_tokens"].samples
        if s.name.endswith("_bucket")
    ]
    assert tuple(prompt_buckets[:-1]) == build_1_2_5_buckets(128) == (1, 2, 5, 10, 20, 50, 100)
    assert (
        samples[
            (
                "http_requests_total",
                (("handler", "/v1/chat/completions"), ("method", "POST"), ("status", "2xx")),
            )
        ]
        == 2
    )
    assert not any(name.startswith("tgi_") for name in families)


async def test_requests_beyond_max_num_seqs_wait_in_the_queue(sim: Simulator) -> None:
    sim.behaviour = replace(sim.behaviour, latency_seconds=0.3)
    with run_in_thread(sim) as url:
        async with AsyncInferenceClient(base_url=url, api_key=KEY) as client:
            started = asyncio.get_running_loop().time()
            outs = await asyncio.gather(
                *(
                    client.chat_completion([{"role": "user", "content": PROMPT}], model=MODEL)
                    for _ in range(4)
                )
            )
            elapsed = asyncio.get_running_loop().time() - started
    assert all(o.choices[0].message.content == ANSWER for o in outs)
    # two slots (--max-num-seqs 2): four requests take two rounds of the 0.3 s prefill
    assert elapsed >= 0.6
    assert sim.metrics._histograms["vllm:request_queue_time_seconds"].sum >= 0.5


def test_command_line_takes_vllm_serve_arguments() -> None:
    with subprocess.Popen(
        [
            *(sys.executable, "-m", "llmops_dev.tgisim", "--engine", "vllm", MODEL),
            *("--served-model-name", "served", "--port", "0", "--host", "127.0.0.1"),
            *("--max-model-len", "256", "--max-num-seqs", "8", "--enforce-eager", "--revision", "abc"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={"VLLM_API_KEY": KEY, "PATH": "/usr/bin:/bin"},
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("tgisim: serving served@abc on http://127.0.0.1:"), line
            base = line.rsplit(" ", 1)[1].strip()
            card = httpx2.get(f"{base}/v1/models", headers=AUTH).json()["data"][0]
            assert (card["id"], card["root"], card["max_model_len"]) == ("served", MODEL, 256)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
