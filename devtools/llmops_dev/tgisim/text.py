"""The text side of the TGI simulator: request parsing and validation, tokens, JSON shapes.

Everything here is pure. A "token" is a whitespace-delimited word carrying its leading
whitespace (so tokens concatenate back to the text, like TGI's ` word` tokens); an answer that
ends before `max_new_tokens` ends with the special `</s>` token (finish reason `eos_token`).
Error messages and error types copy TGI's router (validation.rs, infer/mod.rs), and the JSON
shapes follow TGI's OpenAPI document (GenerateResponse, StreamResponse, ChatCompletion...).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmops_dev.tgisim.behaviour import message_text

__all__ = [
    "BodyRejected",
    "Generation",
    "Limits",
    "Params",
    "SimError",
    "chat_params",
    "chat_prompt",
    "count_tokens",
    "generate",
    "parse_params",
    "tokenize",
    "validate",
]

_WORD = re.compile(r"\s*\S+")
EOS = {"id": 2, "text": "</s>", "logprob": -0.0005, "special": True}


class SimError(Exception):
    """A TGI error answer: HTTP status, `{error, error_type}` body, `tgi_request_failure` label."""

    def __init__(self, status: int, error_type: str, message: str, metric: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.metric = metric

    def body(self) -> dict[str, str]:
        return {"error": self.message, "error_type": self.error_type}

    @classmethod
    def validation(cls, detail: str) -> SimError:
        return cls(422, "validation", f"Input validation error: {detail}", "validation")

    @classmethod
    def overloaded(cls) -> SimError:
        return cls(429, "overloaded", "Model is overloaded", "overloaded")

    @classmethod
    def generation(cls, detail: str) -> SimError:
        return cls(424, "generation", f"Request failed during generation: {detail}", "generation")


class BodyRejected(Exception):
    """A body axum's Json extractor rejects before TGI's handler runs: plain text, no metrics."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text

    @classmethod
    def data(cls, detail: str) -> BodyRejected:
        return cls(422, f"Failed to deserialize the JSON body into the target type: {detail}")


@dataclass(frozen=True)
class Limits:
    """The router limits that validation checks (TGI launcher flags of the same names)."""

    max_input_tokens: int
    max_total_tokens: int
    max_best_of: int = 2
    max_stop_sequences: int = 4
    max_top_n_tokens: int = 5


@dataclass
class Params:
    """TGI's GenerateParameters; None means unset."""

    details: bool = False
    decoder_input_details: bool = False
    do_sample: bool = False
    max_new_tokens: int | None = None
    return_full_text: bool | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    top_n_tokens: int | None = None
    truncate: int | None = None
    best_of: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    typical_p: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    adapter_id: str | None = None
    """The LoRA adapter to generate with (TGI: an id not loaded gets the base model)."""


_BOOL = ("details", "decoder_input_details", "do_sample", "return_full_text", "watermark")
_INT = ("max_new_tokens", "seed", "top_n_tokens", "truncate", "best_of", "top_k")
_FLOAT = ("temperature", "top_p", "typical_p", "repetition_penalty", "frequency_penalty")


def parse_params(raw: Any) -> Params:
    """Deserialize `parameters` as TGI's serde does: absent means defaults with do_sample=true."""
    if raw is None:
        return Params(do_sample=True)
    if not isinstance(raw, Mapping):
        raise BodyRejected.data("parameters: invalid type: expected struct GenerateParameters")
    params = Params()
    for key, value in raw.items():
        if value is None:
            continue
        if key in _BOOL:
            if not isinstance(value, bool):
                raise BodyRejected.data(f"parameters.{key}: invalid type: expected a boolean")
        elif key in _INT:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BodyRejected.data(f"parameters.{key}: invalid value: expected an unsigned integer")
        elif key in _FLOAT:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise BodyRejected.data(f"parameters.{key}: invalid type: expected f32")
            value = float(value)
        elif key == "stop" and (not isinstance(value, list) or not all(isinstance(s, str) for s in value)):
            raise BodyRejected.data("parameters.stop: invalid type: expected a sequence of strings")
        elif key == "adapter_id" and not isinstance(value, str):
            raise BodyRejected.data("parameters.adapter_id: invalid type: expected a string")
        if hasattr(params, key):
            setattr(params, key, value)
    return params


def validate(params: Params, inputs: str, limits: Limits, *, stream: bool) -> tuple[int, int]:
    """TGI's checks (validation.rs); returns (input_length, max_new_tokens) or raises SimError."""
    best_of = params.best_of
    if best_of is not None and best_of != 1:
        if stream:
            raise SimError.validation("`best_of` != 1 is not supported when streaming tokens")
        if best_of == 0 or best_of > limits.max_best_of:
            raise SimError.validation(f"`best_of` must be > 0 and <= {limits.max_best_of}. Given: {best_of}")
        if not params.do_sample:
            raise SimError.validation("you must use sampling when `best_of` is > 1")
        if params.seed is not None:
            raise SimError.validation("`seed` must not be set when `best_of` > 1")
    if stream and params.decoder_input_details:
        raise SimError.validation("`decoder_input_details` == true is not supported when streaming tokens")
    checks: tuple[tuple[float | None, Callable[[float], bool], str], ...] = (
        (params.temperature, lambda v: v > 0, "`temperature` must be strictly positive"),
        (params.repetition_penalty, lambda v: v > 0, "`repetition_penalty` must be strictly positive"),
        (params.frequency_penalty, lambda v: -2 <= v <= 2, "`frequency_penalty` must be >= -2.0 and <= 2.0"),
        (params.top_p, lambda v: 0 < v < 1, "`top_p` must be > 0.0 and < 1.0"),
        (params.typical_p, lambda v: 0 < v < 1, "`typical_p` must be > 0.0 and < 1.0"),
        (params.top_k, lambda v: v > 0, "`top_k` must be strictly positive"),
        (params.max_new_tokens, lambda v: v > 0, "`max_new_tokens` must be strictly positive"),
    )
    for value, ok, message in checks:
        if value is not None and not ok(value):
            raise SimError.validation(message)
    if len(params.stop) > limits.max_stop_sequences:
        raise SimError.validation(
            f"`stop` supports up to {limits.max_stop_sequences} stop sequences. Given: {len(params.stop)}"
        )
    if params.top_n_tokens is not None and params.top_n_tokens > limits.max_top_n_tokens:
        raise SimError.validation(
            f"`top_n_tokens` must be >= 0 and <= {limits.max_top_n_tokens}. Given: {params.top_n_tokens}"
        )
    if params.truncate is not None and not 0 < params.truncate <= limits.max_input_tokens:
        raise SimError.validation(
            f"`truncate` must be strictly positive and less than {limits.max_input_tokens}. "
            f"Given: {params.truncate}"
        )
    if not inputs:
        raise SimError.validation("`inputs` cannot be empty")
    input_length = count_tokens(inputs)
    if params.truncate is not None:
        input_length = min(input_length, params.truncate)
    if input_length > limits.max_input_tokens:
        raise SimError.validation(
            f"`inputs` must have less than {limits.max_input_tokens} tokens. Given: {input_length}"
        )
    max_new = params.max_new_tokens
    if max_new is None:
        # TGI fills the remaining budget when max_new_tokens is unset (validation.rs).
        max_new = max(limits.max_total_tokens - input_length, 1)
    if input_length + max_new > limits.max_total_tokens:
        raise SimError.validation(
            f"`inputs` tokens + `max_new_tokens` must be <= {limits.max_total_tokens}. "
            f"Given: {input_length} `inputs` tokens and {max_new} `max_new_tokens`"
        )
    return input_length, max_new


def tokenize(text: str) -> list[str]:
    """Words with their leading whitespace: `"".join(tokenize(t)) == t.rstrip()`."""
    return _WORD.findall(text)


def count_tokens(text: str) -> int:
    return len(text.split())


def token(text: str) -> dict[str, Any]:
    """A deterministic TGI Token for a word: id and logprob derived from its CRC."""
    crc = zlib.crc32(text.encode())
    return {
        "id": 100 + crc % 32000,
        "text": text,
        "logprob": -round((crc >> 16) % 2000 / 1000, 4),
        "special": False,
    }


@dataclass
class Generation:
    """One simulated generation, ready to be shaped into any of TGI's responses."""

    tokens: list[dict[str, Any]]
    text: str
    finish_reason: str
    seed: int | None
    input_length: int
    prefill: list[dict[str, Any]]
    top_tokens: list[list[dict[str, Any]]]

    @property
    def generated_tokens(self) -> int:
        return len(self.tokens)

    def details(self, best_of: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "finish_reason": self.finish_reason,
            "generated_tokens": self.generated_tokens,
            "seed": self.seed,
            "prefill": self.prefill,
            "tokens": self.tokens,
        }
        if self.top_tokens:
            out["top_tokens"] = self.top_tokens
        if best_of is not None and best_of > 1:
            # Sampling is simulated deterministically, so every candidate is the same sequence.
            other = {k: v for k, v in out.items() if k != "best_of_sequences"}
            out["best_of_sequences"] = [{"generated_text": self.text, **other} for _ in range(best_of - 1)]
        return out

    def stream_details(self) -> dict[str, Any]:
        return {
            "finish_reason": self.finish_reason,
            "generated_tokens": self.generated_tokens,
            "seed": self.seed,
            "input_length": self.input_length,
        }

    def chat_finish_reason(self) -> str:
        # TGI's FinishReason::format(true): eos and stop sequences both read "stop" to OpenAI clients.
        return "length" if self.finish_reason == "length" else "stop"


def generate(answer: str, inputs: str, params: Params, input_length: int, max_new_tokens: int) -> Generation:
    """Emit `answer` as tokens, honouring max_new_tokens and stop sequences like TGI."""
    tokens: list[dict[str, Any]] = []
    text = ""
    finish = None
    for word in tokenize(answer):
        if len(tokens) >= max_new_tokens:
            finish = "length"
            break
        tokens.append(token(word))
        text += word
        if any(stop and stop in text for stop in params.stop):
            finish = "stop_sequence"
            break
    if finish is None:
        if len(tokens) >= max_new_tokens:
            finish = "length"
        else:
            tokens.append(dict(EOS))
            finish = "eos_token"
    seed = params.seed
    if seed is None and params.do_sample:
        seed = zlib.crc32(inputs.encode())
    prefill: list[dict[str, Any]] = []
    if params.decoder_input_details:
        words = tokenize(inputs)[-input_length:]
        prefill = [{"id": t["id"], "text": t["text"], "logprob": t["logprob"]} for t in map(token, words)]
        if prefill:
            prefill[0]["logprob"] = None
    top: list[list[dict[str, Any]]] = []
    if params.top_n_tokens:
        top = [
            [t]
            + [
                {**t, "id": (t["id"] + k) % 32000, "logprob": t["logprob"] - k}
                for k in range(1, params.top_n_tokens)
            ]
            for t in tokens
        ]
    return Generation(tokens, text, finish, seed, input_length, prefill, top)


def chat_prompt(messages: Any) -> tuple[str, str]:
    """Render chat messages with a simple chat template; returns (templated input, answer key).

    The answer key is the last user message's text, which is how datasets name their prompts.
    """
    if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
        raise BodyRejected.data("messages: invalid type: expected a sequence")
    parts = []
    for message in messages:
        role = message.get("role")
        if not isinstance(role, str):
            raise BodyRejected.data("messages: missing field `role`")
        parts.append(f"<|{role}|>\n{message_text(message.get('content'))}</s>\n")
    parts.append("<|assistant|>\n")
    templated = "".join(parts)
    for message in reversed(messages):
        if message.get("role") == "user":
            return templated, message_text(message.get("content"))
    return templated, templated


def chat_params(body: Mapping[str, Any]) -> Params:
    """ChatRequest → GenerateParameters the way TGI's `try_into_generate` maps them."""
    raw: dict[str, Any] = {
        "max_new_tokens": body.get("max_tokens", body.get("max_completion_tokens")),
        "seed": body.get("seed"),
        "top_p": body.get("top_p"),
        "frequency_penalty": body.get("frequency_penalty"),
        "temperature": body.get("temperature"),
        "details": True,
    }
    stop = body.get("stop")
    raw["stop"] = [stop] if isinstance(stop, str) else stop
    if body.get("logprobs") and body.get("top_logprobs"):
        raw["top_n_tokens"] = body.get("top_logprobs")
    # TGI reads the OpenAI `model` field as the LoRA adapter to use, unless it is "tgi".
    model = body.get("model")
    if isinstance(model, str) and model != "tgi":
        raw["adapter_id"] = model
    params = parse_params(raw)
    # Temperature 0 means greedy decoding (TGI drops the temperature and turns sampling off).
    if params.temperature == 0:
        params.temperature = None
        params.do_sample = False
    else:
        params.do_sample = True
    return params
