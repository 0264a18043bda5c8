"""The TGI simulator's OpenAI-compatible routes: `/v1/chat/completions` and `/v1/completions`.

As in TGI (server.rs), these wrap the native generation: a chat request is counted in
`tgi_request_count` once here and once more by the generation it runs (the double counting
that makes `1 - success/count` read ~50 % errors), streams end with `data: [DONE]`, and
`stream_options.include_usage` adds a final chunk with empty `choices` and the usage.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aiohttp import web

from llmops_dev.tgisim.text import (
    BodyRejected,
    Generation,
    Params,
    SimError,
    chat_params,
    chat_prompt,
)
from llmops_dev.tgisim.wire import DONE, client_may_leave, json_response, open_sse, read_body, sse

if TYPE_CHECKING:
    from llmops_dev.tgisim.server import Simulator

__all__ = ["chat_route", "completions_route"]


def _envelope(sim: Simulator, kind: str) -> dict[str, Any]:
    return {
        "object": kind,
        "id": "",
        "created": int(time.time()),
        "model": sim.model_id,
        "system_fingerprint": f"{sim.version}-native",
    }


def _usage(gen: Generation) -> dict[str, int]:
    return {
        "prompt_tokens": gen.input_length,
        "completion_tokens": gen.generated_tokens,
        "total_tokens": gen.input_length + gen.generated_tokens,
    }


def _logprobs(gen: Generation, indices: Iterable[int]) -> dict[str, Any]:
    content = []
    for i in indices:
        tok = gen.tokens[i]
        top = gen.top_tokens[i] if gen.top_tokens else []
        content.append(
            {
                "token": tok["text"],
                "logprob": tok["logprob"],
                "top_logprobs": [{"token": t["text"], "logprob": t["logprob"]} for t in top],
            }
        )
    return {"content": content}


async def chat_route(sim: Simulator, request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    if "messages" not in body:
        raise BodyRejected.data("missing field `messages`")
    inputs, key = chat_prompt(body["messages"])
    params = chat_params(body)
    sim.metrics.inc("tgi_request_count")  # the first of TGI's two counts for a chat request
    want_logprobs = body.get("logprobs") is True
    if body.get("stream") is True:
        options = body.get("stream_options")
        usage = isinstance(options, dict) and options.get("include_usage") is True
        return await _chat_stream(
            sim, request, inputs=inputs, key=key, params=params, logprobs=want_logprobs, include_usage=usage
        )
    gen, headers = await sim.generate_once(inputs, params, key)
    out = _envelope(sim, "chat.completion")
    out["choices"] = [
        {
            "index": 0,
            "message": {"role": "assistant", "content": gen.text},
            "logprobs": _logprobs(gen, range(gen.generated_tokens)) if want_logprobs else None,
            "finish_reason": gen.chat_finish_reason(),
        }
    ]
    out["usage"] = _usage(gen)
    return json_response(out, headers=headers)


async def _chat_stream(
    sim: Simulator,
    request: web.Request,
    *,
    inputs: str,
    key: str,
    params: Params,
    logprobs: bool,
    include_usage: bool,
) -> web.StreamResponse:
    response = await open_sse(request, inputs)
    envelope = _envelope(sim, "chat.completion.chunk")
    async with client_may_leave():
        try:
            async with contextlib.aclosing(sim.generate_tokens(inputs, params, key)) as tokens:
                async for index, gen in tokens:
                    tok = gen.tokens[index]
                    last = index == gen.generated_tokens - 1
                    choice = {
                        "index": 0,
                        "delta": {"role": "assistant", "content": "" if tok["special"] else tok["text"]},
                        "logprobs": _logprobs(gen, [index]) if logprobs else None,
                        "finish_reason": gen.chat_finish_reason() if last else None,
                    }
                    await response.write(sse({**envelope, "choices": [choice], "usage": None}))
                    if last and include_usage:
                        await response.write(sse({**envelope, "choices": [], "usage": _usage(gen)}))
        except SimError as exc:
            # An error event in TGI's ErrorResponse shape, then the stream's end as usual.
            await response.write(sse(exc.body()))
        await response.write(DONE)
        await response.write_eof()
    return response


async def completions_route(sim: Simulator, request: web.Request) -> web.StreamResponse:
    body = await read_body(request)
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise BodyRejected.data("prompt: expected a string or a sequence of strings")
    sim.metrics.inc("tgi_request_count")  # counted again per prompt, as in TGI
    if body.get("suffix") is not None:
        sim.metrics.inc("tgi_request_failure", err="validation")
        raise SimError(
            422,
            "suffix not supported",
            "Suffix is not supported and can be achieved by preprocessing the prompt.",
            None,
        )
    if len(prompts) > sim.max_client_batch_size:
        sim.metrics.inc("tgi_request_failure", err="validation")
        raise SimError(
            422,
            "batch size exceeded",
            f"Number of prompts exceeds the maximum allowed batch size of {sim.max_client_batch_size}",
            None,
        )
    stream = body.get("stream") is True
    # TGI: max_tokens defaults to 100 here, details always on, prefill details unless streaming.
    params = chat_params({**body, "max_tokens": body.get("max_tokens") or 100})
    params.decoder_input_details = not stream
    if stream:
        return await _completions_stream(sim, request, prompts, params)
    results = await asyncio.gather(
        *(sim.generate_once(p, replace(params), p) for p in prompts), return_exceptions=True
    )
    gens: list[Generation] = []
    for result in results:
        if isinstance(result, BaseException):
            raise result
        gens.append(result[0])
    out = _envelope(sim, "text_completion")
    out["choices"] = [
        {"index": i, "text": g.text, "logprobs": None, "finish_reason": g.chat_finish_reason()}
        for i, g in enumerate(gens)
    ]
    prompt_tokens = sum(len(g.prefill) for g in gens)
    completion_tokens = sum(g.generated_tokens for g in gens)
    out["usage"] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    return json_response(out)


async def _completions_stream(
    sim: Simulator, request: web.Request, prompts: list[str], params: Params
) -> web.StreamResponse:
    response = await open_sse(request, "".join(prompts))
    envelope = _envelope(sim, "text_completion")
    async with client_may_leave():
        try:
            for number, prompt in enumerate(prompts):
                async with contextlib.aclosing(
                    sim.generate_tokens(prompt, replace(params), prompt)
                ) as tokens:
                    async for index, gen in tokens:
                        tok = gen.tokens[index]
                        last = index == gen.generated_tokens - 1
                        choice = {
                            "index": number,
                            "text": "" if tok["special"] else tok["text"],
                            "logprobs": None,
                            "finish_reason": gen.chat_finish_reason() if last else "",
                        }
                        await response.write(sse({**envelope, "choices": [choice]}))
        except SimError as exc:
            await response.write(sse(exc.body()))
        await response.write(DONE)
        await response.write_eof()
    return response
