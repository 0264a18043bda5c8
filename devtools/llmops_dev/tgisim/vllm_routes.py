"""The simulator's vLLM mode: vLLM's OpenAI-compatible server (`vllm serve`) on the same core.

Routes as vLLM's API server serves them: `/v1/chat/completions`, `/v1/completions`, `/v1/models`,
`/health`, `/metrics`, `/version`. Facts kept (see llmops.engines.vllm for the sources):

- the API key (`--api-key` or `VLLM_API_KEY`) guards the `/v1` routes only; a wrong or missing
  `Authorization: Bearer` gets 401 `{"error": "Unauthorized"}`;
- a request naming a model other than the served name (or a LoRA module of --lora-modules, which
  then answers with that adapter's behaviour) gets 404 NotFoundError; no model is fine;
- errors are `{"error": {"message", "type", "param", "code"}}`: 400 BadRequestError for invalid
  input (a prompt plus max_tokens over max-model-len), 500 InternalServerError for a failed
  generation (both simulated error kinds: vLLM queues instead of answering 429);
- at most `--max-num-seqs` requests run; the rest wait (`vllm:num_requests_waiting`);
- streams are `data: <json>` events ending with `data: [DONE]`; `stream_options.include_usage`
  adds a last chunk with empty choices and the usage; an error mid-stream is an error event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from llmops_dev.tgisim.text import (
    BodyRejected,
    Generation,
    Params,
    SimError,
    chat_params,
    chat_prompt,
    generate,
    validate,
)
from llmops_dev.tgisim.wire import DONE, client_may_leave, json_response, read_body, sse

if TYPE_CHECKING:
    from llmops_dev.tgisim.server import Simulator

__all__ = ["VLLM_VERSION", "VllmError", "add_routes", "middleware"]

VLLM_VERSION = "0.11.0"
"""What /version reports (the release llmops pins, see llmops.api.constants)."""

CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"
SIM: web.AppKey[Simulator] = web.AppKey("sim")


class VllmError(Exception):
    """An error answer in vLLM's ErrorResponse shape."""

    def __init__(self, status: int, error_type: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message, self.param = status, error_type, message, param

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.status,
            }
        }

    @classmethod
    def bad_request(cls, message: str) -> VllmError:
        return cls(400, "BadRequestError", message)


@web.middleware
async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    sim = request.app[SIM]
    sim._refresh()
    guarded = sim.api_key is not None and request.path.startswith("/v1")
    if guarded and request.headers.get("Authorization") != f"Bearer {sim.api_key}":
        return _counted(sim, request, json_response({"error": "Unauthorized"}, status=401))
    try:
        response = await handler(request)
    except VllmError as exc:
        response = json_response(exc.body(), status=exc.status)
    except BodyRejected as exc:
        response = json_response(VllmError.bad_request(exc.text).body(), status=400)
    return _counted(sim, request, response)


def _counted(sim: Simulator, request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    if request.path in (CHAT, COMPLETIONS):
        sim.metrics.http_request(request.path, request.method, response.status)
    return response


def add_routes(app: web.Application, sim: Simulator) -> None:
    app[SIM] = sim
    app.router.add_post(CHAT, _chat)
    app.router.add_post(COMPLETIONS, _completions)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/health", _health)
    app.router.add_get("/version", _version)
    app.router.add_get("/metrics", _metrics)


def _sim(request: web.Request) -> Simulator:
    return request.app[SIM]


def _check_model(sim: Simulator, body: dict[str, Any]) -> None:
    model = body.get("model")
    if model and model != sim.model_id and model not in sim.adapters:
        raise VllmError(404, "NotFoundError", f"The model `{model}` does not exist.", "model")


@dataclass
class _Timing:
    arrived: float
    scheduled: float = 0.0
    first_token: float = 0.0


@contextlib.asynccontextmanager
async def _slot(sim: Simulator, timing: _Timing) -> AsyncIterator[None]:
    """One of --max-num-seqs running slots; waiting requests are counted in num_requests_waiting."""
    if sim.slots is None:
        sim.slots = asyncio.Semaphore(sim.max_concurrent_requests)
    m = sim.metrics
    m.add_gauge("vllm:num_requests_waiting", 1)
    try:
        await sim.slots.acquire()
    finally:
        m.add_gauge("vllm:num_requests_waiting", -1)
    timing.scheduled = time.perf_counter()
    m.add_gauge("vllm:num_requests_running", 1)
    sim.inflight += 1
    try:
        yield
    finally:
        sim.inflight -= 1
        m.add_gauge("vllm:num_requests_running", -1)
        sim.slots.release()


def _plan(sim: Simulator, inputs: str, params: Params, key: str) -> Generation:
    try:
        input_length, max_new = validate(params, inputs, sim.limits, stream=False)
    except SimError as exc:
        if "tokens" not in exc.message:
            raise VllmError.bad_request(exc.message.removeprefix("Input validation error: ")) from None
        prompt, requested = len(inputs.split()), params.max_new_tokens or 0
        raise VllmError.bad_request(
            f"This model's maximum context length is {sim.limits.max_total_tokens} tokens. However, you "
            f"requested {prompt + requested} tokens ({prompt} in the messages, "
            f"{requested} in the completion). Please reduce the length of the messages or completion."
        ) from None
    return generate(sim._compiled_for(params).book.answer(key), inputs, params, input_length, max_new)


async def _tokens(
    sim: Simulator, inputs: str, params: Params, key: str
) -> AsyncGenerator[tuple[int, Generation]]:
    """One generation: yields (token index, generation) as each token is due, then records the
    finished request's metrics. Raises VllmError (500) for a simulated failure."""
    timing = _Timing(time.perf_counter())
    gen = _plan(sim, inputs, params, key)
    compiled = sim._compiled_for(params)
    sequence, sim._requests = sim._requests, sim._requests + 1
    fails = compiled.dice.fails(sequence)
    async with _slot(sim, timing):
        await asyncio.sleep(compiled.dice.prefill_seconds())
        if fails:
            sim.metrics.success["abort"] += 1
            raise VllmError(500, "InternalServerError", "simulated engine failure")
        timing.first_token = time.perf_counter()
        tpt = compiled.behaviour.time_per_token_seconds
        for index in range(gen.generated_tokens):
            if index and tpt:
                await asyncio.sleep(tpt)
            yield index, gen
    end = time.perf_counter()
    sim.metrics.finished(
        reason="length" if gen.finish_reason == "length" else "stop",
        prompt_tokens=gen.input_length,
        generation_tokens=gen.generated_tokens,
        max_tokens=params.max_new_tokens,
        queued=timing.scheduled - timing.arrived,
        ttft=timing.first_token - timing.arrived,
        inter_token=tpt,
        e2e=end - timing.arrived,
    )


async def _whole(sim: Simulator, inputs: str, params: Params, key: str) -> Generation:
    """A non-streamed generation: the same timing, one sleep for all the tokens."""
    timing = _Timing(time.perf_counter())
    gen = _plan(sim, inputs, params, key)
    compiled = sim._compiled_for(params)
    sequence, sim._requests = sim._requests, sim._requests + 1
    fails = compiled.dice.fails(sequence)
    tpt = compiled.behaviour.time_per_token_seconds
    async with _slot(sim, timing):
        prefill = compiled.dice.prefill_seconds()
        await asyncio.sleep(prefill)
        if fails:
            sim.metrics.success["abort"] += 1
            raise VllmError(500, "InternalServerError", "simulated engine failure")
        timing.first_token = time.perf_counter()
        if gen.generated_tokens > 1 and tpt:
            await asyncio.sleep(tpt * (gen.generated_tokens - 1))
    end = time.perf_counter()
    sim.metrics.finished(
        reason="length" if gen.finish_reason == "length" else "stop",
        prompt_tokens=gen.input_length,
        generation_tokens=gen.generated_tokens,
        max_tokens=params.max_new_tokens,
        queued=timing.scheduled - timing.arrived,
        ttft=timing.first_token - timing.arrived,
        inter_token=tpt,
        e2e=end - timing.arrived,
    )
    return gen


def _usage(gen: Generation) -> dict[str, Any]:
    return {
        "prompt_tokens": gen.input_length,
        "total_tokens": gen.input_length + gen.generated_tokens,
        "completion_tokens": gen.generated_tokens,
        "prompt_tokens_details": None,
    }


def _finish(gen: Generation) -> str:
    return "length" if gen.finish_reason == "length" else "stop"


def _envelope(sim: Simulator, kind: str, prefix: str) -> dict[str, Any]:
    return {
        "id": f"{prefix}-{uuid.uuid4().hex}",
        "object": kind,
        "created": int(time.time()),
        "model": sim.model_id,
    }


def _params(body: dict[str, Any]) -> Params:
    if body.get("n") not in (None, 1):
        raise VllmError.bad_request("the simulator serves n=1 only")
    return chat_params(body)


async def _chat(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    body = await read_body(request)
    _check_model(sim, body)
    if "messages" not in body:
        raise VllmError.bad_request("Field required: messages")
    inputs, key = chat_prompt(body["messages"])
    params = _params(body)
    if body.get("stream") is True:
        return await _chat_stream(request, sim, body, inputs, key, params)
    gen = await _whole(sim, inputs, params, key)
    out = _envelope(sim, "chat.completion", "chatcmpl")
    out["choices"] = [
        {
            "index": 0,
            "message": {"role": "assistant", "content": gen.text, "tool_calls": []},
            "logprobs": None,
            "finish_reason": _finish(gen),
            "stop_reason": None,
        }
    ]
    out["usage"] = _usage(gen)
    out["prompt_logprobs"] = None
    return json_response(out)


async def _open(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
    await response.prepare(request)
    return response


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


async def _chat_stream(
    request: web.Request, sim: Simulator, body: dict[str, Any], inputs: str, key: str, params: Params
) -> web.StreamResponse:
    # Validation errors come before the stream opens (a plain 400), as in vLLM.
    _plan(sim, inputs, params, key)
    response = await _open(request)
    envelope = _envelope(sim, "chat.completion.chunk", "chatcmpl")
    async with client_may_leave():
        try:
            first = {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
            await response.write(sse({**envelope, "choices": [first]}))
            async with contextlib.aclosing(_tokens(sim, inputs, params, key)) as tokens:
                async for index, gen in tokens:
                    tok = gen.tokens[index]
                    last = index == gen.generated_tokens - 1
                    choice = {
                        "index": 0,
                        "delta": {"content": "" if tok["special"] else tok["text"]},
                        "logprobs": None,
                        "finish_reason": _finish(gen) if last else None,
                    }
                    await response.write(sse({**envelope, "choices": [choice]}))
                    if last and _include_usage(body):
                        await response.write(sse({**envelope, "choices": [], "usage": _usage(gen)}))
        except VllmError as exc:
            await response.write(sse(exc.body()))
        await response.write(DONE)
        await response.write_eof()
    return response


async def _completions(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    body = await read_body(request)
    _check_model(sim, body)
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise VllmError.bad_request("the simulator serves one non-empty string prompt per request")
    params = _params(body)
    if body.get("stream") is True:
        _plan(sim, prompt, params, prompt)
        response = await _open(request)
        envelope = _envelope(sim, "text_completion", "cmpl")
        async with client_may_leave():
            try:
                async with contextlib.aclosing(_tokens(sim, prompt, params, prompt)) as tokens:
                    async for index, gen in tokens:
                        tok = gen.tokens[index]
                        last = index == gen.generated_tokens - 1
                        choice = {
                            "index": 0,
                            "text": "" if tok["special"] else tok["text"],
                            "logprobs": None,
                            "finish_reason": _finish(gen) if last else None,
                            "stop_reason": None,
                        }
                        await response.write(sse({**envelope, "choices": [choice]}))
                        if last and _include_usage(body):
                            await response.write(sse({**envelope, "choices": [], "usage": _usage(gen)}))
            except VllmError as exc:
                await response.write(sse(exc.body()))
            await response.write(DONE)
            await response.write_eof()
        return response
    gen = await _whole(sim, prompt, params, prompt)
    out = _envelope(sim, "text_completion", "cmpl")
    out["choices"] = [
        {"index": 0, "text": gen.text, "logprobs": None, "finish_reason": _finish(gen), "stop_reason": None}
    ]
    out["usage"] = _usage(gen)
    return json_response(out)


async def _models(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    card = {
        "id": sim.model_id,
        "object": "model",
        "created": int(sim.started_wall),
        "owned_by": "vllm",
        "root": sim.model_root,
        "parent": None,
        "max_model_len": sim.limits.max_total_tokens,
        "permission": [],
    }
    return json_response({"object": "list", "data": [card]})


async def _health(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    b = sim.behaviour
    if not b.healthy or time.monotonic() - sim._started < b.startup_delay_seconds:
        return web.Response(status=503)
    return web.Response(status=200)


async def _version(request: web.Request) -> web.StreamResponse:
    return json_response({"version": VLLM_VERSION})


async def _metrics(request: web.Request) -> web.StreamResponse:
    return web.Response(text=_sim(request).metrics.render(), content_type="text/plain")
