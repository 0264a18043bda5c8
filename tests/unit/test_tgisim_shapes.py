"""The TGI simulator's JSON shapes against JSON Schemas of TGI's API.

The schemas are written here from TGI's OpenAPI document (router/src/lib.rs at v3.3.x):
GenerateResponse, StreamResponse, ChatCompletion(+Chunk), CompletionFinal/Chunk, Info,
ErrorResponse, TokenizeResponse. Nullable fields are `[type, "null"]`; objects whose field set
TGI fixes completely forbid extra properties.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import jsonschema
import pytest

from llmops_dev.tgisim import Behaviour, Simulator, run_in_thread


def obj(required: list[str], strict: bool = False, **props: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "required": required, "properties": props}
    if strict:
        schema["additionalProperties"] = False
    return schema


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


UINT = {"type": "integer", "minimum": 0}
STR = {"type": "string"}
FINISH = {"enum": ["length", "eos_token", "stop_sequence"]}
TOKEN = obj(
    ["id", "text", "logprob", "special"],
    strict=True,
    id=UINT,
    text=STR,
    logprob=nullable({"type": "number"}),
    special={"type": "boolean"},
)
PREFILL = obj(["id", "text", "logprob"], strict=True, id=UINT, text=STR, logprob=nullable({"type": "number"}))
DETAILS = obj(
    ["finish_reason", "generated_tokens", "prefill", "tokens"],
    strict=True,
    finish_reason=FINISH,
    generated_tokens=UINT,
    seed=nullable(UINT),
    prefill={"type": "array", "items": PREFILL},
    tokens={"type": "array", "items": TOKEN},
    top_tokens={"type": "array", "items": {"type": "array", "items": TOKEN}},
    best_of_sequences=nullable({"type": "array", "items": obj(["generated_text", "finish_reason"])}),
)
GENERATE_RESPONSE = obj(["generated_text"], strict=True, generated_text=STR, details=nullable(DETAILS))
STREAM_RESPONSE = obj(
    ["index", "token"],
    strict=True,
    index=UINT,
    token=TOKEN,
    top_tokens={"type": "array", "items": TOKEN},
    generated_text=nullable(STR),
    details=nullable(
        obj(
            ["finish_reason", "generated_tokens", "input_length"],
            strict=True,
            finish_reason=FINISH,
            generated_tokens=UINT,
            input_length=UINT,
            seed=nullable(UINT),
        )
    ),
)
USAGE = obj(
    ["prompt_tokens", "completion_tokens", "total_tokens"],
    strict=True,
    prompt_tokens=UINT,
    completion_tokens=UINT,
    total_tokens=UINT,
)
TEXT_MESSAGE = obj(["role", "content"], role=STR, content=STR)
LOGPROBS = obj(
    ["content"],
    content={"type": "array", "items": obj(["token", "logprob", "top_logprobs"], token=STR)},
)
ENVELOPE = {"id": STR, "created": UINT, "model": STR, "system_fingerprint": STR}
CHAT_COMPLETION = obj(
    ["object", "id", "created", "model", "system_fingerprint", "choices", "usage"],
    object={"const": "chat.completion"},
    choices={
        "type": "array",
        "items": obj(
            ["index", "message", "finish_reason"],
            index=UINT,
            message=TEXT_MESSAGE,
            finish_reason=STR,
            logprobs=nullable(LOGPROBS),
        ),
    },
    usage=USAGE,
    **ENVELOPE,
)
CHAT_CHUNK = obj(
    ["object", "id", "created", "model", "system_fingerprint", "choices"],
    object={"const": "chat.completion.chunk"},
    choices={
        "type": "array",
        "items": obj(
            ["index", "delta"],
            index=UINT,
            delta=TEXT_MESSAGE,
            finish_reason=nullable(STR),
            logprobs=nullable(LOGPROBS),
        ),
    },
    usage=nullable(USAGE),
    **ENVELOPE,
)
COMPLETE = obj(["index", "text", "finish_reason"], index=UINT, text=STR, finish_reason=STR)
COMPLETION_FINAL = obj(
    ["object", "id", "created", "model", "system_fingerprint", "choices", "usage"],
    object={"const": "text_completion"},
    choices={"type": "array", "items": COMPLETE},
    usage=USAGE,
    **ENVELOPE,
)
COMPLETION_CHUNK = obj(
    ["object", "id", "created", "model", "system_fingerprint", "choices"],
    object={"const": "text_completion"},
    choices={"type": "array", "items": COMPLETE},
    **ENVELOPE,
)
INFO = obj(
    [
        "model_id",
        "max_concurrent_requests",
        "max_best_of",
        "max_stop_sequences",
        "max_input_tokens",
        "max_total_tokens",
        "validation_workers",
        "max_client_batch_size",
        "router",
        "version",
    ],
    strict=True,
    model_id=STR,
    model_sha=nullable(STR),
    model_pipeline_tag=nullable(STR),
    max_concurrent_requests=UINT,
    max_best_of=UINT,
    max_stop_sequences=UINT,
    max_input_tokens=UINT,
    max_total_tokens=UINT,
    validation_workers=UINT,
    max_client_batch_size=UINT,
    router=STR,
    version=STR,
    sha=nullable(STR),
    docker_label=nullable(STR),
)
ERROR = obj(["error", "error_type"], strict=True, error=STR, error_type=STR)
TOKENIZE = {
    "type": "array",
    "items": obj(["id", "text", "start", "stop"], strict=True, id=UINT, text=STR, start=UINT, stop=UINT),
}


def check(schema: dict[str, Any], instance: Any) -> None:
    jsonschema.Draft202012Validator(schema).validate(instance)


def events(response: httpx2.Response) -> list[Any]:
    assert response.status_code == 200
    blocks = [b.removeprefix("data: ") for b in response.text.split("\n\n") if b]
    return [json.loads(b) for b in blocks if b != "[DONE]"]


@pytest.fixture(scope="module")
def http() -> Iterator[httpx2.Client]:
    sim = Simulator(
        Behaviour(answers={"hello": "Hi there, friend."}), max_input_tokens=100, max_total_tokens=200
    )
    with run_in_thread(sim) as url, httpx2.Client(base_url=url) as client:
        yield client


FULL_PARAMETERS = {
    "details": True,
    "decoder_input_details": True,
    "top_n_tokens": 2,
    "best_of": 2,
    "do_sample": True,
    "max_new_tokens": 10,
}


def test_generate(http: httpx2.Client) -> None:
    out = http.post("/generate", json={"inputs": "hello", "parameters": FULL_PARAMETERS}).json()
    check(GENERATE_RESPONSE, out)
    assert out["details"]["prefill"][0]["logprob"] is None
    assert len(out["details"]["best_of_sequences"]) == 1
    check(GENERATE_RESPONSE, http.post("/generate", json={"inputs": "hello"}).json())
    compat = http.post("/", json={"inputs": "hello", "parameters": {"details": True}}).json()
    assert isinstance(compat, list) and len(compat) == 1
    check(GENERATE_RESPONSE, compat[0])


def test_generate_stream(http: httpx2.Client) -> None:
    body = {"inputs": "hello", "parameters": {"details": True, "top_n_tokens": 2}}
    for route in ("/generate_stream", "/"):
        stream = events(http.post(route, json={**body, "stream": True}))
        assert len(stream) == 4
        for event in stream:
            check(STREAM_RESPONSE, event)


def test_chat(http: httpx2.Client) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    chat = {"messages": messages, "logprobs": True, "top_logprobs": 2}
    out = http.post("/v1/chat/completions", json=chat).json()
    check(CHAT_COMPLETION, out)
    assert out["choices"][0]["message"]["content"] == "Hi there, friend."
    chunks = events(
        http.post(
            "/v1/chat/completions", json={**chat, "stream": True, "stream_options": {"include_usage": True}}
        )
    )
    for chunk in chunks:
        check(CHAT_CHUNK, chunk)


def test_completions(http: httpx2.Client) -> None:
    check(COMPLETION_FINAL, http.post("/v1/completions", json={"prompt": "hello"}).json())
    for chunk in events(http.post("/v1/completions", json={"prompt": ["hello", "x"], "stream": True})):
        check(COMPLETION_CHUNK, chunk)


def test_info_tokenize_and_errors(http: httpx2.Client) -> None:
    check(INFO, http.get("/info").json())
    tokens = http.post("/tokenize", json={"inputs": "hello  big world"}).json()
    check(TOKENIZE, tokens)
    assert [(t["text"], t["start"], t["stop"]) for t in tokens] == [
        ("hello", 0, 5),
        ("big", 7, 10),
        ("world", 11, 16),
    ]
    for body, status in (
        ({"inputs": "hello", "parameters": {"max_new_tokens": 1000}}, 422),
        ({"inputs": "", "parameters": {}}, 422),
        ({"inputs": "hello", "parameters": {"temperature": 0}}, 422),
    ):
        r = http.post("/generate", json=body)
        assert r.status_code == status
        check(ERROR, r.json())
        assert r.json()["error_type"] == "validation"


def test_bodies_axum_rejects_are_plain_text(http: httpx2.Client) -> None:
    missing = http.post("/generate", json={"parameters": {}})
    assert missing.status_code == 422
    assert missing.text.startswith("Failed to deserialize the JSON body")
    wrong_type = http.post("/generate", json={"inputs": "x", "parameters": {"max_new_tokens": "ten"}})
    assert wrong_type.status_code == 422
    broken = http.post("/generate", content=b"{", headers={"content-type": "application/json"})
    assert broken.status_code == 400
