"""The TGI simulator seen through the real huggingface_hub client (and raw HTTP where the client
hides the wire): answers, details, streaming, chat, error mapping, API key, health/info,
behaviour changes at run time, concurrency, and the command line."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import AsyncInferenceClient, InferenceClient
from huggingface_hub.errors import GenerationError, HfHubHTTPError, OverloadedError, ValidationError

from llmops_dev.tgisim import Behaviour, Simulator, run_in_thread
from testkit import wait_for

KEY = "sim-key"
PROMPT = "What is the capital of France?"
ANSWER = "Paris is the capital of France."  # 6 word tokens, then </s>
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def sim() -> Simulator:
    return Simulator(
        Behaviour(answers={PROMPT: ANSWER}),
        model_id="org/model",
        revision="abc123",
        api_key=KEY,
        max_input_tokens=64,
        max_total_tokens=128,
    )


@pytest.fixture
def url(sim: Simulator) -> Iterator[str]:
    with run_in_thread(sim) as base:
        yield base


@pytest.fixture
def client(url: str) -> InferenceClient:
    return InferenceClient(model=url, api_key=KEY)


def sse_events(text: str) -> list[str]:
    events = [block for block in text.split("\n\n") if block]
    assert all(e.startswith("data: ") for e in events), events
    return [e.removeprefix("data: ") for e in events]


# -- text generation ----------------------------------------------------------------------------


def test_text_generation_answers_the_reference_with_details(client: InferenceClient) -> None:
    out = client.text_generation(PROMPT, details=True, return_full_text=False, max_new_tokens=20)

    assert out.generated_text == ANSWER
    details = out.details
    assert details is not None
    assert details.finish_reason == "eos_token"
    assert details.generated_tokens == len(details.tokens) == 7
    assert details.tokens[-1].special and details.tokens[-1].text == "</s>"
    assert "".join(t.text for t in details.tokens if not t.special) == ANSWER
    assert details.prefill == []


def test_compat_route_prepends_the_prompt_unless_told_not_to(client: InferenceClient) -> None:
    # TGI's POST / defaults return_full_text to true for text-generation models.
    assert client.text_generation(PROMPT, max_new_tokens=20) == PROMPT + ANSWER
    assert client.text_generation(PROMPT, max_new_tokens=20, return_full_text=False) == ANSWER


def test_max_new_tokens_stop_sequences_and_seed(client: InferenceClient) -> None:
    short = client.text_generation(PROMPT, details=True, return_full_text=False, max_new_tokens=3)
    assert short.generated_text == "Paris is the"
    assert short.details is not None
    assert (short.details.finish_reason, short.details.generated_tokens) == ("length", 3)

    stopped = client.text_generation(PROMPT, details=True, return_full_text=False, stop=["capital"])
    assert stopped.generated_text == "Paris is the capital"
    assert stopped.details is not None and stopped.details.finish_reason == "stop_sequence"

    seeded = client.text_generation(PROMPT, details=True, do_sample=True, seed=42)
    assert seeded.details is not None and seeded.details.seed == 42


def test_unknown_prompts_get_the_default_answer(client: InferenceClient) -> None:
    assert client.text_generation("Tell me a joke", return_full_text=False) == Behaviour().default_answer


def test_stream_without_details_yields_token_texts(client: InferenceClient) -> None:
    tokens = list(client.text_generation(PROMPT, stream=True, max_new_tokens=20))
    assert "".join(tokens[:-1]) == ANSWER
    assert tokens[-1] == "</s>"  # TGI streams the EOS token's text too


def test_stream_with_details_ends_with_text_and_details(client: InferenceClient) -> None:
    events = list(client.text_generation(PROMPT, stream=True, details=True, return_full_text=False))

    assert [e.index for e in events] == list(range(1, 8))
    assert all(e.details is None and e.generated_text is None for e in events[:-1])
    last = events[-1]
    assert last.generated_text == ANSWER
    assert last.details is not None
    assert last.details.finish_reason == "eos_token"
    assert last.details.generated_tokens == 7
    assert last.details.input_length == len(PROMPT.split())


def test_generate_stream_sse_has_no_done_marker(url: str) -> None:
    r = httpx2.post(f"{url}/generate_stream", json={"inputs": PROMPT}, headers=AUTH)

    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert "[DONE]" not in events
    assert json.loads(events[-1])["generated_text"] == ANSWER


def test_generate_route_sends_tgi_timing_headers(url: str) -> None:
    r = httpx2.post(f"{url}/generate", json={"inputs": PROMPT}, headers=AUTH)

    assert r.status_code == 200
    assert r.json() == {"generated_text": ANSWER}
    for name in ("x-total-time", "x-validation-time", "x-queue-time", "x-inference-time", "x-time-per-token"):
        assert int(r.headers[name]) >= 0
    assert r.headers["x-prompt-tokens"] == str(len(PROMPT.split()))
    assert r.headers["x-generated-tokens"] == "7"


def test_streaming_rejects_decoder_input_details(url: str) -> None:
    body = {"inputs": PROMPT, "parameters": {"decoder_input_details": True}}
    r = httpx2.post(f"{url}/generate_stream", json=body, headers=AUTH)

    # Once the stream is open TGI reports errors as events, with HTTP 200.
    assert r.status_code == 200
    assert [json.loads(e) for e in sse_events(r.text)] == [
        {
            "error": "Input validation error: `decoder_input_details` == true is not supported "
            "when streaming tokens",
            "error_type": "validation",
        }
    ]


# -- chat ---------------------------------------------------------------------------------------


def test_chat_completion(client: InferenceClient) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}]

    out = client.chat_completion(messages, max_tokens=50)
    assert out.choices[0].message.content == ANSWER
    assert out.choices[0].finish_reason == "stop"
    assert out.model == "org/model"
    assert out.usage.completion_tokens == 7
    assert out.usage.total_tokens == out.usage.prompt_tokens + 7

    short = client.chat_completion(messages, max_tokens=2)
    assert (short.choices[0].message.content, short.choices[0].finish_reason) == ("Paris is", "length")


def test_chat_stream_with_usage_and_done(client: InferenceClient, url: str) -> None:
    messages = [{"role": "user", "content": PROMPT}]

    chunks = list(client.chat_completion(messages, stream=True, stream_options={"include_usage": True}))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == ANSWER
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7

    plain = list(client.chat_completion(messages, stream=True))
    assert all(c.usage is None and c.choices for c in plain)

    r = httpx2.post(f"{url}/v1/chat/completions", json={"messages": messages, "stream": True}, headers=AUTH)
    assert sse_events(r.text)[-1] == "[DONE]"


# -- errors and the API key ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "exception", "status"),
    [("overloaded", OverloadedError, 429), ("generation", GenerationError, 424)],
)
def test_simulated_errors_map_to_client_exceptions(
    sim: Simulator, client: InferenceClient, kind: str, exception: type[Exception], status: int
) -> None:
    sim.behaviour = replace(sim.behaviour, error_rate=1.0, error_kind=kind)

    with pytest.raises(exception):
        client.text_generation(PROMPT)
    with pytest.raises(exception):
        list(client.text_generation(PROMPT, stream=True))  # an error event inside the stream
    with pytest.raises(HfHubHTTPError) as chat_error:
        client.chat_completion([{"role": "user", "content": PROMPT}])
    assert chat_error.value.response.status_code == status


def test_validation_errors(client: InferenceClient) -> None:
    with pytest.raises(ValidationError, match="must be <= 128"):
        client.text_generation(PROMPT, max_new_tokens=1000)
    with pytest.raises(ValidationError, match="up to 4 stop sequences"):
        client.text_generation(PROMPT, stop=["a", "b", "c", "d", "e"])
    with pytest.raises(HfHubHTTPError) as chat_error:
        client.chat_completion([{"role": "user", "content": PROMPT}], max_tokens=1000)
    assert chat_error.value.response.status_code == 422


def test_api_key_guards_only_generation_routes(url: str) -> None:
    with pytest.raises(HfHubHTTPError) as wrong:
        InferenceClient(model=url, api_key="wrong").text_generation(PROMPT)
    assert wrong.value.response.status_code == 401

    assert httpx2.post(f"{url}/generate", json={"inputs": PROMPT}).status_code == 401
    assert httpx2.post(f"{url}/v1/chat/completions", json={"messages": []}).status_code == 401
    # TGI compares the header case-insensitively.
    lower = {"Authorization": f"bearer {KEY.upper()}"}
    assert httpx2.post(f"{url}/generate", json={"inputs": PROMPT}, headers=lower).status_code == 200
    for path in ("/health", "/info", "/metrics", "/v1/models"):
        assert httpx2.get(f"{url}{path}").status_code == 200, path


def test_health_and_info(sim: Simulator, url: str) -> None:
    client = InferenceClient(model=url, provider="hf-inference", api_key=KEY)
    info = client.get_endpoint_info()
    assert info["model_id"] == "org/model"
    assert info["model_sha"] == "abc123"
    assert (info["max_input_tokens"], info["max_total_tokens"]) == (64, 128)
    assert info["max_concurrent_requests"] == 128
    assert info["version"] == "3.3.7-sim"
    assert client.health_check() is True
    assert httpx2.get(f"{url}/health").content == b""

    sim.behaviour = replace(sim.behaviour, healthy=False)
    assert client.health_check() is False
    r = httpx2.get(f"{url}/health")
    assert (r.status_code, r.json()) == (503, {"error": "unhealthy", "error_type": "healthcheck"})

    models = httpx2.get(f"{url}/v1/models").json()
    assert models == {
        "object": "list",
        "data": [{"id": "org/model", "object": "model", "created": 0, "owned_by": "org/model"}],
    }


def test_health_is_503_during_the_startup_delay() -> None:
    before = time.monotonic()  # the simulator's clock starts after this
    with run_in_thread(Simulator(Behaviour(startup_delay_seconds=0.5))) as url:
        first = httpx2.get(f"{url}/health")
        if time.monotonic() - before < 0.5:  # answered inside the delay (always, unless the box crawls)
            assert first.status_code == 503
            assert first.json() == {"error": "unhealthy", "error_type": "healthcheck"}
        wait_for("/health to answer 200", lambda: httpx2.get(f"{url}/health").status_code == 200, 10, 0.01)
        assert time.monotonic() - before >= 0.5


def test_error_rate_is_an_exact_evenly_spread_fraction(sim: Simulator, client: InferenceClient) -> None:
    sim.behaviour = replace(sim.behaviour, error_rate=0.25)
    outcomes = []
    for _ in range(20):
        try:
            client.text_generation(PROMPT)
            outcomes.append("ok")
        except OverloadedError:
            outcomes.append("429")
    assert outcomes == ["ok", "ok", "ok", "429"] * 5


# -- behaviour at run time ------------------------------------------------------------------------


def test_admin_endpoint_merges_behaviour(sim: Simulator, client: InferenceClient, url: str) -> None:
    r = httpx2.post(f"{url}/__sim/behaviour", json={"answers": {"Q2?": "A2."}, "accuracy": 0.0})
    assert r.status_code == 200
    assert r.json()["answers"] == {PROMPT: ANSWER, "Q2?": "A2."}
    assert httpx2.get(f"{url}/__sim/behaviour").json() == r.json()
    wrong = client.text_generation(PROMPT, return_full_text=False)
    assert wrong != ANSWER and "paris" not in wrong.lower()

    httpx2.post(f"{url}/__sim/behaviour", json={"accuracy": 1.0})
    assert client.text_generation("Q2?", return_full_text=False) == "A2."

    for bad in ({"accuracy": 2}, {"bogus": 1}, {"error_kind": "teapot"}):
        assert httpx2.post(f"{url}/__sim/behaviour", json=bad).status_code == 400
    assert sim.behaviour.accuracy == 1.0


def write_json(path: Path, data: object) -> None:
    # Write then rename, as a careful writer (or kubectl cp) would, so readers never see half.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def test_behaviour_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "behaviour.json"
    path.write_text(json.dumps({"answers": {PROMPT: ANSWER}, "accuracy": 1.0}))
    sim = Simulator(behaviour_file=path)
    with run_in_thread(sim) as url:
        client = InferenceClient(model=url)
        assert client.text_generation(PROMPT, return_full_text=False) == ANSWER

        # Same size, same second: caught by content, not by mtime alone.
        path.write_text(json.dumps({"answers": {PROMPT: ANSWER}, "accuracy": 0.0}))
        assert client.text_generation(PROMPT, return_full_text=False) != ANSWER

        write_json(path, {"answers": {PROMPT: ANSWER}, "healthy": False})
        assert httpx2.get(f"{url}/health").status_code == 503
        assert httpx2.get(f"{url}/__sim/state").json()["behaviour_source"] == str(path)


def test_behaviour_dir_selects_the_revision_file(tmp_path: Path) -> None:
    rows = [{"prompt": f"Question {i}?", "reference": f"Answer {i}."} for i in range(10)]
    (tmp_path / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    write_json(tmp_path / "good.json", {"dataset": "qa.jsonl", "accuracy": 1.0})
    write_json(tmp_path / "bad.json", {"dataset": "qa.jsonl", "accuracy": 0.0})
    write_json(tmp_path / "default.json", {"dataset": "qa.jsonl", "accuracy": 0.5})

    def right_answers(revision: str) -> int:
        with run_in_thread(Simulator(revision=revision, behaviour_dir=tmp_path)) as url:
            client = InferenceClient(model=url)
            return sum(
                client.text_generation(r["prompt"], return_full_text=False) == r["reference"] for r in rows
            )

    assert right_answers("good") == 10
    assert right_answers("bad") == 0
    assert right_answers("other") == 5

    sim = Simulator(revision="late", behaviour_dir=tmp_path)
    with run_in_thread(sim) as url:
        assert sim.behaviour.accuracy == 0.5
        write_json(tmp_path / "late.json", {"accuracy": 1.0, "answers": {PROMPT: ANSWER}})
        assert InferenceClient(model=url).text_generation(PROMPT, return_full_text=False) == ANSWER


def test_accuracy_is_a_deterministic_exact_fraction(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = []
    for i in range(20):
        if i % 2:
            rows.append({"prompt": f"Prompt {i}", "references": [f"Reference {i}", "alt"]})
        else:
            rows.append(
                {"messages": [{"role": "user", "content": f"Prompt {i}"}], "reference": f"Reference {i}"}
            )
    dataset = tmp_path / "data.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def correct(seed: int) -> set[int]:
        sim = Simulator(Behaviour(dataset=str(dataset), accuracy=0.7, seed=seed))
        with run_in_thread(sim) as url:
            client = InferenceClient(model=url)
            right = set()
            for i in range(20):
                if i % 2:
                    answer = client.text_generation(f"Prompt {i}", return_full_text=False)
                else:
                    chat = client.chat_completion([{"role": "user", "content": f"Prompt {i}"}])
                    answer = chat.choices[0].message.content
                if answer == f"Reference {i}":
                    right.add(i)
            return right

    first = correct(seed=0)
    assert len(first) == 14
    assert correct(seed=0) == first
    assert len(correct(seed=1)) == 14


# -- concurrency ------------------------------------------------------------------------------------


async def test_many_concurrent_requests_share_the_simulated_latency() -> None:
    sim = Simulator(Behaviour(latency_seconds=0.1))
    url = await sim.start()
    try:
        client = AsyncInferenceClient(model=url)
        started = time.monotonic()
        answers = await asyncio.gather(
            *(client.text_generation(f"p{i}", max_new_tokens=4) for i in range(64))
        )
        elapsed = time.monotonic() - started
        await client.close()
    finally:
        await sim.stop()
    assert len(answers) == 64
    assert sim.metrics.counter("tgi_request_success") == 64
    assert elapsed < 3.2  # one after another would take 6.4 s


async def test_beyond_max_concurrent_requests_is_overloaded() -> None:
    sim = Simulator(Behaviour(latency_seconds=0.5), max_concurrent_requests=2)
    url = await sim.start()
    client = AsyncInferenceClient(model=url)
    try:
        running = [asyncio.create_task(client.text_generation(f"p{i}")) for i in range(2)]
        deadline = time.monotonic() + 10
        while sim.inflight < 2:
            assert time.monotonic() < deadline, "the two requests never started"
            await asyncio.sleep(0.01)
        with pytest.raises(OverloadedError):
            await client.text_generation("one too many")
        assert len(await asyncio.gather(*running)) == 2
    finally:
        await client.close()
        await sim.stop()
    assert sim.metrics.counter("tgi_request_failure", err="overloaded") == 1


async def test_a_client_leaving_mid_stream_releases_its_permit() -> None:
    sim = Simulator(Behaviour(time_per_token_seconds=0.05), max_concurrent_requests=1)
    url = await sim.start()
    try:
        async with httpx2.AsyncClient() as http:
            async with http.stream("POST", f"{url}/generate_stream", json={"inputs": "x"}) as r:
                async for line in r.aiter_lines():
                    assert line.startswith("data: ")
                    break  # hang up after the first token
            deadline = time.monotonic() + 10
            while sim.inflight:
                assert time.monotonic() < deadline, "the abandoned stream kept its permit"
                await asyncio.sleep(0.01)
            client = AsyncInferenceClient(model=url)
            answer = await client.text_generation("x", max_new_tokens=2, return_full_text=False)
            assert answer == "This is"
            await client.close()
    finally:
        await sim.stop()
    assert sim.metrics.gauges["tgi_batch_current_size"] == 0


# -- command line ------------------------------------------------------------------------------------


def test_command_line_reads_tgi_launcher_env(tmp_path: Path) -> None:
    write_json(tmp_path / "good.json", {"answers": {PROMPT: ANSWER}})
    env = {
        **os.environ,
        "MODEL_ID": "org/cli-model",
        "REVISION": "good",
        "API_KEY": KEY,
        "NUM_SHARD": "2",
        "MAX_INPUT_TOKENS": "100",
        "MAX_TOTAL_TOKENS": "200",
        "HOSTNAME": "pod-name-0",
    }
    args = ["--port", "0", "--host", "127.0.0.1", "--behaviour-dir", str(tmp_path), "--quantize", "awq"]
    with (
        (tmp_path / "stderr.log").open("w") as stderr,
        subprocess.Popen(
            [sys.executable, "-m", "llmops_dev.tgisim", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as proc,
    ):
        try:
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                line = pool.submit(proc.stdout.readline).result(timeout=30)  # type: ignore[union-attr]
            url = line.strip().rsplit(" ", 1)[-1]
            assert url.startswith("http://127.0.0.1:"), line

            info = httpx2.get(f"{url}/info").json()
            assert (info["model_id"], info["model_sha"]) == ("org/cli-model", "good")
            assert (info["max_input_tokens"], info["max_total_tokens"]) == (100, 200)
            assert httpx2.get(f"{url}/__sim/state").json()["num_shard"] == 2
            client = InferenceClient(model=url, api_key=KEY)
            assert client.text_generation(PROMPT, return_full_text=False) == ANSWER
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
    assert code == 0, (tmp_path / "stderr.log").read_text()
