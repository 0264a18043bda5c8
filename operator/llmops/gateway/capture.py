"""Capture records: what the gateway keeps of a sampled request, and of the feedback on it.

Pure: a record is built from what the proxy saw (the request body, the answer's body or its
stream, a few headers, the times), redacted, and returned as a dict ready for JSON. The proxy
decides which requests are sampled and queues the records; sender.py sends them.

A request record (camelCase, absent values are null):

    {"kind": "request", "time": "2026-11-30T08:00:00.123Z", "requestId": "llm1...",
     "deployment": "ns/name", "revision": "<sha>", "track": "stable", "client": "team-a",
     "route": "/v1/chat/completions",
     "prompt": "..."                     (the prompt routes: /, /generate, /generate_stream,
                                          /v1/completions) or
     "messages": [{"role", "content"}]   (/v1/chat/completions),
     "response": "...",                  (the answer's text; for a stream, assembled from it)
     "promptTokens": 12, "completionTokens": 40, "latencyMs": 812.5, "finishReason": "length"}

`keep` drops the prompt side (Responses) or the response (Prompts). Token counts come from the
engine's answer: OpenAI `usage`, TGI's `details` (generated_tokens, and input_length in a
stream's last event) or its `x-prompt-tokens`/`x-generated-tokens` headers, and for a TGI stream
the number of token events (one per token by the protocol). Null when the engine does not say
(an OpenAI stream without `stream_options.include_usage`). `finishReason` is the engine's own
word (TGI: length, eos_token, stop_sequence; OpenAI: stop, length, ...). `time` is when the
request arrived; `latencyMs` runs to the end of the answer (the whole stream).

A feedback record:

    {"kind": "feedback", "time": "...", "requestId": "llm1...", "revision": "<sha>",
     "track": "canary", "client": "team-a", "rating": "down" | 1..5,
     "correction": "...", "comment": "...", "tags": ["tone"]}

`revision` and `track` are those of the rated answer (from its signed ID). Feedback is always
kept (it is rare and it is the point), whatever `keep` says; the correction and the comment are
redacted like prompts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from llmops.gateway.feedback import Feedback
from llmops.gateway.ids import RequestId
from llmops.gateway.redact import Redactor

__all__ = [
    "CAPTURED_ROUTES",
    "CHAT_ROUTE",
    "CaptureConfig",
    "Exchange",
    "Identity",
    "Keep",
    "feedback_record",
    "request_record",
    "rfc3339",
]

Keep = Literal["Prompts", "Responses", "Both"]
CHAT_ROUTE = "/v1/chat/completions"
COMPLETIONS_ROUTE = "/v1/completions"
CAPTURED_ROUTES: frozenset[str] = frozenset(
    {"/", "/generate", "/generate_stream", CHAT_ROUTE, COMPLETIONS_ROUTE}
)
"""The generation routes (TGI's native ones and the OpenAI-compatible ones); other routes (info,
tokenize, models) carry nothing worth keeping."""
_OPENAI_ROUTES = frozenset({CHAT_ROUTE, COMPLETIONS_ROUTE})


@dataclass(frozen=True)
class CaptureConfig:
    """spec.gateway.capture as the gateway runs it (flags of `llmops gateway`)."""

    sample_rate: float
    keep: Keep = "Both"
    builtins: tuple[str, ...] = ()
    patterns: tuple[tuple[str, str], ...] = ()
    """(placeholder name, regex), applied in this order after the built-in kinds."""
    queue_size: int = 10_000
    store_url: str | None = None
    """The capture store's base URL (records go to {store_url}/v1/records)."""
    token: str = ""
    """The bearer token for the store."""
    sink_url: str | None = None
    """Send CloudEvents here instead of the store."""


@dataclass(frozen=True)
class Identity:
    """Who captures: the gateway's deployment, revision and track."""

    deployment: str
    revision: str
    track: str


@dataclass(frozen=True)
class Exchange:
    """What the proxy saw of one sampled request."""

    arrived: float
    """Unix seconds."""
    latency: float
    """Seconds from arrival to the end of the answer."""
    request_id: str
    client: str
    route: str
    request_body: bytes
    response_body: bytes
    """The whole answer: a JSON document, or the raw SSE stream (possibly cut at the cap)."""
    streamed: bool
    headers: Mapping[str, str]
    """The answer's headers (TGI's x-prompt-tokens and x-generated-tokens are read)."""
    parsed: Any = None
    """The answer's JSON when the proxy parsed it already (to add the request ID)."""


def rfc3339(unix: float) -> str:
    """`2026-11-30T08:00:00.123Z`: RFC 3339 in UTC, milliseconds."""
    return dt.datetime.fromtimestamp(unix, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class _Answer:
    text: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None


def request_record(ex: Exchange, who: Identity, keep: Keep, redactor: Redactor) -> dict[str, Any]:
    """The record of a sampled request, redacted, holding what `keep` asks for."""
    request = _json_object(ex.request_body)
    record: dict[str, Any] = {
        "kind": "request",
        "time": rfc3339(ex.arrived),
        "requestId": ex.request_id,
        "deployment": who.deployment,
        "revision": who.revision,
        "track": who.track,
        "client": ex.client,
        "route": ex.route,
    }
    if keep != "Responses":
        if ex.route == CHAT_ROUTE:
            record["messages"] = _messages(request.get("messages"), redactor)
        else:
            prompt = _prompt(request, ex.route)
            record["prompt"] = redactor.redact(prompt) if prompt is not None else None
    answer = _stream_answer(ex) if ex.streamed else _json_answer(ex)
    if answer.prompt_tokens is None:
        answer.prompt_tokens = _int(ex.headers.get("x-prompt-tokens"))
    if answer.completion_tokens is None:
        answer.completion_tokens = _int(ex.headers.get("x-generated-tokens"))
    if keep != "Prompts":
        text = answer.text
        if ex.route == "/" or _params(request).get("return_full_text") is True:
            text = _without_prompt(text, _prompt(request, ex.route))
        record["response"] = redactor.redact(text) if text is not None else None
    record.update(
        {
            "promptTokens": answer.prompt_tokens,
            "completionTokens": answer.completion_tokens,
            "latencyMs": round(ex.latency * 1000.0, 1),
            "finishReason": answer.finish_reason,
        }
    )
    return record


def feedback_record(
    feedback: Feedback, rated: RequestId, client: str, now: float, redactor: Redactor
) -> dict[str, Any]:
    """The record of one validated feedback on the answer `rated`."""
    rating = feedback.rating
    return {
        "kind": "feedback",
        "time": rfc3339(now),
        "requestId": feedback.request_id,
        "revision": rated.revision,
        "track": rated.track,
        "client": client,
        "rating": int(rating) if rating.isdigit() else rating,
        "correction": redactor.redact(feedback.correction) if feedback.correction is not None else None,
        "comment": redactor.redact(feedback.comment) if feedback.comment is not None else None,
        "tags": list(feedback.tags),
    }


# -- the request -------------------------------------------------------------------------------


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _params(request: Mapping[str, Any]) -> Mapping[str, Any]:
    params = request.get("parameters")
    return params if isinstance(params, dict) else {}


def _prompt(request: Mapping[str, Any], route: str) -> str | None:
    value = request.get("prompt" if route == COMPLETIONS_ROUTE else "inputs")
    if isinstance(value, str):
        return value
    # /v1/completions also takes a list of prompts (token ID lists are not text: nothing kept).
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return None


def _content(value: Any) -> str | None:
    """A message's content: a string, or the text parts of a list of parts (images are not kept)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = [str(p["text"]) for p in value if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "\n".join(texts) if texts else None
    return None


def _messages(value: Any, redactor: Redactor) -> list[dict[str, Any]] | None:
    if not isinstance(value, list):
        return None
    out = []
    for message in value:
        if not isinstance(message, dict):
            continue
        content = _content(message.get("content"))
        out.append(
            {
                "role": message.get("role") if isinstance(message.get("role"), str) else None,
                "content": redactor.redact(content) if content is not None else None,
            }
        )
    return out


# -- the answer --------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _without_prompt(text: str | None, prompt: str | None) -> str | None:
    """TGI's return_full_text (the default of its `/` route) puts the prompt in front of the answer."""
    if text is not None and prompt and text.startswith(prompt):
        return text[len(prompt) :]
    return text


def _usage(answer: _Answer, usage: Any) -> None:
    if isinstance(usage, dict):
        answer.prompt_tokens = _int(usage.get("prompt_tokens"))
        answer.completion_tokens = _int(usage.get("completion_tokens"))


def _json_answer(ex: Exchange) -> _Answer:
    body = ex.parsed
    if body is None:
        try:
            body = json.loads(ex.response_body)
        except (UnicodeDecodeError, ValueError):
            return _Answer()
    if isinstance(body, list) and body:  # TGI's `/` answers [GenerateResponse]
        body = body[0]
    if not isinstance(body, dict):
        return _Answer()
    answer = _Answer()
    if ex.route in _OPENAI_ROUTES:
        choice = _first_choice(body)
        message = choice.get("message")
        if ex.route == CHAT_ROUTE and isinstance(message, dict):
            answer.text = _content(message.get("content"))
        else:
            answer.text = _str(choice.get("text"))
        answer.finish_reason = _str(choice.get("finish_reason"))
        _usage(answer, body.get("usage"))
        return answer
    answer.text = _str(body.get("generated_text"))
    details = body.get("details")
    if isinstance(details, dict):
        answer.finish_reason = _str(details.get("finish_reason"))
        answer.completion_tokens = _int(details.get("generated_tokens"))
    return answer


def _first_choice(body: Mapping[str, Any]) -> Mapping[str, Any]:
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


def _events(stream: bytes) -> Sequence[Any]:
    """The JSON payloads of an SSE stream's `data:` lines (`[DONE]`, comments and a torn last
    event are skipped)."""
    out = []
    for line in stream.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == b"[DONE]":
            continue
        try:
            out.append(json.loads(payload))
        except (UnicodeDecodeError, ValueError):
            continue
    return out


def _stream_answer(ex: Exchange) -> _Answer:
    events = [e for e in _events(ex.response_body) if isinstance(e, dict)]
    if ex.route in _OPENAI_ROUTES:
        return _openai_stream(events, chat=ex.route == CHAT_ROUTE)
    return _tgi_stream(events)


def _tgi_stream(events: Sequence[Mapping[str, Any]]) -> _Answer:
    """TGI's StreamResponse events: one per token; the last carries generated_text and, when the
    request asked for details, finish_reason and the token counts."""
    answer = _Answer()
    pieces: list[str] = []
    tokens = 0
    for event in events:
        token = event.get("token")
        if not isinstance(token, dict):
            continue  # an error event ({"error", "error_type"}) ends the stream
        tokens += 1
        if not token.get("special") and isinstance(token.get("text"), str):
            pieces.append(token["text"])
        details = event.get("details")
        if isinstance(details, dict):
            answer.finish_reason = _str(details.get("finish_reason"))
            answer.prompt_tokens = _int(details.get("input_length"))
            answer.completion_tokens = _int(details.get("generated_tokens"))
        if isinstance(event.get("generated_text"), str):
            answer.text = event["generated_text"]
    if answer.text is None and events:
        answer.text = "".join(pieces)
    if answer.completion_tokens is None and tokens:
        answer.completion_tokens = tokens
    return answer


def _openai_stream(events: Sequence[Mapping[str, Any]], *, chat: bool) -> _Answer:
    """OpenAI chunks: the text in choices[0].delta.content (chat) or choices[0].text; the finish
    reason in the last choice that has one; usage in a last chunk when the client asked for it."""
    answer = _Answer()
    pieces: list[str] = []
    for event in events:
        choice = _first_choice(event)
        if chat:
            delta = choice.get("delta")
            piece = _content(delta.get("content")) if isinstance(delta, dict) else None
        else:
            piece = _str(choice.get("text"))
        if piece:
            pieces.append(piece)
        if reason := _str(choice.get("finish_reason")):
            answer.finish_reason = reason
        if isinstance(event.get("usage"), dict):
            _usage(answer, event["usage"])
    if events:
        answer.text = "".join(pieces)
    return answer
