"""The TGI simulator's /metrics: TGI's exact names, types and bucket edges, parsed by a real
Prometheus text parser, series that appear only after their first event, and TGI's double
counting of chat requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx2
import pytest
from huggingface_hub import AsyncInferenceClient, InferenceClient
from huggingface_hub.errors import OverloadedError, ValidationError
from prometheus_client.parser import text_string_to_metric_families

from llmops_dev.tgisim import Behaviour, Simulator, run_in_thread

PROMPT = "What is the capital of France?"
ANSWER = "Paris is the capital of France."

DURATIONS = (
    "tgi_request_duration",
    "tgi_request_validation_duration",
    "tgi_request_queue_duration",
    "tgi_request_inference_duration",
    "tgi_request_mean_time_per_token_duration",
)


@pytest.fixture
def sim() -> Simulator:
    return Simulator(Behaviour(answers={PROMPT: ANSWER}), max_input_tokens=1000, max_total_tokens=2000)


@pytest.fixture
def url(sim: Simulator) -> Iterator[str]:
    with run_in_thread(sim) as base:
        yield base


def scrape(url: str) -> str:
    r = httpx2.get(f"{url}/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


def sample(text: str, line_prefix: str) -> float:
    """The value of the one exposition line that starts with `line_prefix` + space."""
    values = [line.split()[-1] for line in text.splitlines() if line.startswith(line_prefix + " ")]
    assert len(values) == 1, (line_prefix, values)
    return float(values[0])


def bucket_edges(text: str, name: str) -> list[str]:
    edges = []
    for family in text_string_to_metric_families(text):
        if family.name == name:
            edges = [s.labels["le"] for s in family.samples if s.name == f"{name}_bucket"]
    return edges


def test_names_and_types_parse_with_a_real_prometheus_parser(sim: Simulator, url: str) -> None:
    client = InferenceClient(model=url)
    client.text_generation(PROMPT)
    client.chat_completion([{"role": "user", "content": PROMPT}])
    with pytest.raises(ValidationError):
        client.text_generation(PROMPT, max_new_tokens=5000)
    sim.behaviour = replace(sim.behaviour, error_rate=1.0)
    with pytest.raises(OverloadedError):
        client.text_generation(PROMPT)

    text = scrape(url)
    types = {family.name: family.type for family in text_string_to_metric_families(text)}
    assert types == {
        "tgi_request_count": "counter",
        "tgi_request_success": "counter",
        "tgi_request_failure": "counter",
        **dict.fromkeys(DURATIONS, "histogram"),
        "tgi_request_input_length": "histogram",
        "tgi_request_generated_tokens": "histogram",
        "tgi_request_max_new_tokens": "histogram",
        "tgi_queue_size": "gauge",
        "tgi_batch_current_size": "gauge",
    }
    # TGI's names carry no _total/_seconds suffix on the wire (the parser adds _total itself).
    assert "_total" not in text and "_seconds" not in text
    assert "# TYPE tgi_request_count counter" in text
    assert sample(text, "tgi_request_count") == 5  # the chat request counts twice
    assert sample(text, "tgi_request_success") == 2
    assert sample(text, 'tgi_request_failure{err="validation"}') == 1
    assert sample(text, 'tgi_request_failure{err="overloaded"}') == 1
    assert sample(text, "tgi_request_generated_tokens_count") == 2
    assert sample(text, "tgi_request_generated_tokens_sum") == 14  # 6 words + </s>, twice


def test_series_appear_only_after_their_first_event(sim: Simulator, url: str) -> None:
    fresh = scrape(url)
    assert "tgi_request_count" not in fresh
    assert "tgi_request_duration" not in fresh
    assert sample(fresh, "tgi_queue_size") == 0
    assert sample(fresh, "tgi_batch_current_size") == 0

    client = InferenceClient(model=url)
    client.text_generation(PROMPT)
    after_success = scrape(url)
    assert sample(after_success, "tgi_request_count") == 1
    assert "tgi_request_failure" not in after_success

    sim.behaviour = replace(sim.behaviour, error_rate=1.0, error_kind="generation")
    with pytest.raises(Exception, match="generation"):
        client.text_generation(PROMPT)
    after_failure = scrape(url)
    assert sample(after_failure, 'tgi_request_failure{err="generation"}') == 1
    assert 'err="overloaded"' not in after_failure


def test_bucket_edges_are_tgis(url: str) -> None:
    InferenceClient(model=url).text_generation(PROMPT)
    text = scrape(url)

    for name in DURATIONS:
        edges = bucket_edges(text, name)
        assert len(edges) == 36 and edges[-1] == "+Inf"
        expected = [0.0001 * 1.5**k for k in range(1, 36)]
        assert [float(e) for e in edges[:-1]] == pytest.approx(expected, rel=1e-12)
    # TGI multiplies step by step, so the first edges carry its float rounding exactly.
    assert bucket_edges(text, "tgi_request_duration")[:2] == [
        "0.00015000000000000001",
        "0.00022500000000000002",
    ]

    # 100 linear buckets: max_input_tokens / 100 for inputs, max_total_tokens / 100 for outputs.
    assert bucket_edges(text, "tgi_request_input_length") == [str(10 * k) for k in range(1, 101)] + ["+Inf"]
    for name in ("tgi_request_generated_tokens", "tgi_request_max_new_tokens"):
        assert bucket_edges(text, name) == [str(20 * k) for k in range(1, 101)] + ["+Inf"]


def test_token_buckets_follow_the_configured_limits() -> None:
    with run_in_thread(Simulator(max_input_tokens=1024, max_total_tokens=2048)) as url:
        InferenceClient(model=url).text_generation("hello")
        text = scrape(url)
    assert bucket_edges(text, "tgi_request_input_length")[:3] == ["10.24", "20.48", "30.72"]
    assert bucket_edges(text, "tgi_request_generated_tokens")[:2] == ["20.48", "40.96"]


def test_openai_routes_count_twice_native_routes_once(url: str) -> None:
    client = InferenceClient(model=url)
    client.chat_completion([{"role": "user", "content": PROMPT}])
    assert sample(scrape(url), "tgi_request_count") == 2

    list(client.chat_completion([{"role": "user", "content": PROMPT}], stream=True))
    assert sample(scrape(url), "tgi_request_count") == 4

    httpx2.post(f"{url}/generate", json={"inputs": PROMPT})
    assert sample(scrape(url), "tgi_request_count") == 5

    r = httpx2.post(f"{url}/v1/completions", json={"prompt": [PROMPT, "other"], "max_tokens": 3})
    assert r.status_code == 200
    text = scrape(url)
    assert sample(text, "tgi_request_count") == 8  # once for the request, once per prompt
    assert sample(text, "tgi_request_success") == 5


def test_histograms_record_input_max_new_tokens_and_latency(sim: Simulator, url: str) -> None:
    sim.behaviour = replace(sim.behaviour, latency_seconds=0.05)
    InferenceClient(model=url).text_generation(PROMPT, max_new_tokens=30)
    text = scrape(url)

    assert sample(text, "tgi_request_input_length_sum") == len(PROMPT.split())
    assert sample(text, "tgi_request_max_new_tokens_sum") == 30
    assert sample(text, "tgi_request_duration_sum") >= 0.05
    assert sample(text, "tgi_request_inference_duration_sum") >= 0.05
    per_token = sample(text, "tgi_request_mean_time_per_token_duration_sum")
    assert per_token == pytest.approx(sample(text, "tgi_request_inference_duration_sum") / 7)
    # The request took at least 50 ms, so it lies above the 43.8 ms edge.
    assert sample(text, 'tgi_request_duration_bucket{le="0.043789389038085935"}') == 0
    assert sample(text, 'tgi_request_duration_bucket{le="+Inf"}') == 1


async def test_batch_gauge_tracks_requests_in_flight() -> None:
    sim = Simulator(Behaviour(latency_seconds=0.3))
    url = await sim.start()
    client = AsyncInferenceClient(model=url)
    try:
        running = asyncio.gather(*(client.text_generation(f"p{i}") for i in range(3)))
        deadline = time.monotonic() + 10
        while sim.metrics.gauges["tgi_batch_current_size"] < 3:
            assert time.monotonic() < deadline, "requests never reached the batch"
            await asyncio.sleep(0.01)
        assert "tgi_batch_current_size 3" in sim.metrics.render()
        await running
        assert "tgi_batch_current_size 0" in sim.metrics.render()
    finally:
        await client.close()
        await sim.stop()
