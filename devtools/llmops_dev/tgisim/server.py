"""The TGI simulator's server: `Simulator`, one simulated TGI pod on aiohttp (or, with
engine="vllm", one vLLM pod: see vllm_routes).

It serves TGI's native routes (`/`, `/generate`, `/generate_stream`, `/tokenize`) and its open
ones (`/health`, `/info`, `/metrics`, `/v1/models`), registers the OpenAI-compatible routes of
openai_routes, and adds `/__sim/behaviour` and `/__sim/state` for tests. Generation follows
TGI's order: count the request, take a concurrency permit (else 429 overloaded), validate, then
generate, recording TGI's metrics at each step. With LoRA adapters (lora.py) a request that names
a loaded one answers with that adapter's behaviour. Latency is `asyncio.sleep`, so one process
serves many concurrent requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from llmops_dev.tgisim import vllm_routes
from llmops_dev.tgisim.behaviour import AnswerBook, Behaviour, BehaviourWatcher, Dice
from llmops_dev.tgisim.lora import LoraAdapter, adapter_behaviour_file
from llmops_dev.tgisim.metrics import TgiMetrics
from llmops_dev.tgisim.openai_routes import chat_route, completions_route
from llmops_dev.tgisim.text import (
    BodyRejected,
    Generation,
    Limits,
    Params,
    SimError,
    generate,
    parse_params,
    token,
    tokenize,
    validate,
)
from llmops_dev.tgisim.vllm_metrics import VllmMetrics
from llmops_dev.tgisim.wire import client_may_leave, json_response, open_sse, read_body, sse

__all__ = ["VERSION", "Simulator"]

log = logging.getLogger(__name__)

VERSION = "3.3.7-sim"
"""What /info reports as TGI's version (the last TGI release, marked as simulated)."""

# TGI's "base routes": only these require the API key; health, info and metrics stay open.
_PROTECTED = frozenset(
    ("POST", path)
    for path in ("/", "/generate", "/generate_stream", "/v1/chat/completions", "/v1/completions", "/tokenize")
)


def _inputs(body: dict[str, Any]) -> str:
    inputs = body.get("inputs")
    if not isinstance(inputs, str):
        raise BodyRejected.data("missing field `inputs`" if inputs is None else "inputs: expected a string")
    return inputs


@dataclass(frozen=True)
class _Compiled:
    """A behaviour with what is derived from it, swapped in one assignment (thread-safe enough
    for `run_in_thread`, where tests set `sim.behaviour` from another thread)."""

    behaviour: Behaviour
    book: AnswerBook
    dice: Dice
    base_dir: Path
    source: Path | None

    @classmethod
    def of(cls, behaviour: Behaviour, base_dir: Path, source: Path | None = None) -> _Compiled:
        return cls(behaviour, AnswerBook(behaviour, base_dir), Dice(behaviour), base_dir, source)


class Simulator:
    """One simulated TGI server (one TGI pod).

    `behaviour` may be replaced at any time (`dataclasses.replace` it; Behaviour is frozen).
    With `behaviour_file` or `behaviour_dir` the file is read at construction and again on
    every request after it changes; the last change wins, whether a file write, an
    assignment or `POST /__sim/behaviour`. `metrics` holds TGI's metrics, `inflight` the
    requests holding a concurrency permit, `url` the base URL once started.
    """

    def __init__(
        self,
        behaviour: Behaviour | None = None,
        *,
        model_id: str = "sim/model",
        revision: str = "main",
        api_key: str | None = None,
        max_input_tokens: int = 1024,
        max_total_tokens: int = 2048,
        max_concurrent_requests: int = 128,
        behaviour_dir: Path | None = None,
        behaviour_file: Path | None = None,
        num_shard: int = 1,
        pipeline_tag: str | None = "text-generation",
        shutdown_timeout: float = 2.0,
        engine: str = "tgi",
        model_root: str | None = None,
        lora_adapters: tuple[LoraAdapter, ...] = (),
    ) -> None:
        if engine not in ("tgi", "vllm"):
            raise ValueError(f"engine must be tgi or vllm, got {engine!r}")
        if engine == "vllm":
            # vLLM has one limit, --max-model-len, on prompt plus completion.
            max_input_tokens = max_total_tokens - 1
        if max_input_tokens >= max_total_tokens:
            raise ValueError("`max_input_tokens` must be < `max_total_tokens`")  # the launcher's check
        self.engine = engine
        self.model_id = model_id
        self.model_root = model_root or model_id
        self.revision = revision
        self.api_key = api_key
        self.num_shard = num_shard
        self.pipeline_tag = pipeline_tag
        self.max_concurrent_requests = max_concurrent_requests
        self.max_client_batch_size = 4  # TGI's default --max-client-batch-size
        self.version = VERSION
        self.limits = Limits(max_input_tokens, max_total_tokens)
        self.metrics: Any = (
            VllmMetrics(model_id, max_total_tokens)
            if engine == "vllm"
            else TgiMetrics(max_input_tokens, max_total_tokens)
        )
        self.slots: asyncio.Semaphore | None = None  # vLLM mode: --max-num-seqs running slots
        self.started_wall = time.time()
        self.shutdown_timeout = shutdown_timeout
        self.url: str | None = None
        self.inflight = 0
        self._requests = 0
        self._initial = behaviour or Behaviour()
        self._compiled = _Compiled.of(self._initial, Path.cwd())
        # LoRA adapters (LORA_ADAPTERS): each answers with its own behaviour once it has one
        # (set_adapter_behaviour, or DIR/adapter-<id>.json), else as the base model.
        self.adapters = {a.id: a for a in lora_adapters}
        self._adapter_compiled: dict[str, _Compiled] = {}
        self._adapter_watchers = {
            a.id: BehaviourWatcher(
                file=adapter_behaviour_file(behaviour_dir, a.id), directory=None, revision=revision
            )
            for a in lora_adapters
            if behaviour_dir is not None
        }
        self._watcher = None
        if behaviour_file is not None or behaviour_dir is not None:
            self._watcher = BehaviourWatcher(file=behaviour_file, directory=behaviour_dir, revision=revision)
        self._refresh()
        self._started = time.monotonic()
        self._runner: web.AppRunner | None = None
        self._auth = f"Bearer {api_key}".lower() if api_key is not None else None

    # -- behaviour ---------------------------------------------------------------------------

    @property
    def behaviour(self) -> Behaviour:
        return self._compiled.behaviour

    @behaviour.setter
    def behaviour(self, value: Behaviour) -> None:
        self._compiled = _Compiled.of(value, self._compiled.base_dir)

    def set_adapter_behaviour(self, adapter_id: str, behaviour: Behaviour | None) -> None:
        """How LoRA adapter ``adapter_id`` answers (None: as the base model). It must be loaded."""
        if adapter_id not in self.adapters:
            raise KeyError(f"adapter {adapter_id!r} is not in LORA_ADAPTERS")
        if behaviour is None:
            self._adapter_compiled.pop(adapter_id, None)
        else:
            self._adapter_compiled[adapter_id] = _Compiled.of(behaviour, self._compiled.base_dir)

    def _compiled_for(self, params: Params) -> _Compiled:
        """The behaviour a request gets: its adapter's, if it names one that is loaded and has one;
        else the base model's (TGI serves an unknown adapter_id from the base model, no error)."""
        adapter = params.adapter_id
        if adapter is not None and adapter in self.adapters:
            return self._adapter_compiled.get(adapter, self._compiled)
        return self._compiled

    def _refresh_adapters(self) -> None:
        for adapter_id, watcher in self._adapter_watchers.items():
            change = watcher.poll()
            if change is None:
                continue
            behaviour, path = change
            try:
                if behaviour is None or path is None:
                    self._adapter_compiled.pop(adapter_id, None)
                else:
                    self._adapter_compiled[adapter_id] = _Compiled.of(behaviour, path.parent, path)
            except (OSError, ValueError) as exc:
                log.warning("keeping adapter %s's current behaviour: %s", adapter_id, exc)

    def _refresh(self) -> None:
        """Pick up a changed behaviour file (cheap: one or two stat calls per request)."""
        self._refresh_adapters()
        if self._watcher is None:
            return
        change = self._watcher.poll()
        if change is None:
            return
        behaviour, path = change
        try:
            if behaviour is None:
                self._compiled = _Compiled.of(self._initial, Path.cwd())
            else:
                assert path is not None
                self._compiled = _Compiled.of(behaviour, path.parent, path)
        except (OSError, ValueError) as exc:
            log.warning("keeping the current behaviour: %s", exc)

    # -- lifecycle ---------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        if self.engine == "vllm":
            app = web.Application(middlewares=[vllm_routes.middleware], client_max_size=64 * 1024 * 1024)
            vllm_routes.add_routes(app, self)
            self._admin_routes(app)
            return app
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_post("/", self._compat_generate)
        app.router.add_post("/generate", self._generate_route)
        app.router.add_post("/generate_stream", self._generate_stream_route)
        app.router.add_post("/v1/chat/completions", functools.partial(chat_route, self))
        app.router.add_post("/v1/completions", functools.partial(completions_route, self))
        app.router.add_post("/tokenize", self._tokenize_route)
        for path in ("/", "/health", "/ping"):
            app.router.add_get(path, self._health_route)
        app.router.add_get("/info", self._info_route)
        app.router.add_get("/metrics", self._metrics_route)
        app.router.add_get("/v1/models", self._models_route)
        self._admin_routes(app)
        return app

    def _admin_routes(self, app: web.Application) -> None:
        app.router.add_get("/__sim/behaviour", self._get_behaviour_route)
        app.router.add_post("/__sim/behaviour", self._patch_behaviour_route)
        app.router.add_put("/__sim/behaviour", self._put_behaviour_route)
        app.router.add_get("/__sim/state", self._state_route)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 picks a free port); returns the base URL."""
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=self.shutdown_timeout)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._started = time.monotonic()
        bound = runner.addresses[0][1]
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
        self.url = f"http://[{shown}]:{bound}" if ":" in shown else f"http://{shown}:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # -- plumbing ----------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self._refresh()
        # TGI compares the whole header, case-insensitively, with "Bearer <key>".
        if (
            self._auth is not None
            and (request.method, request.path) in _PROTECTED
            and request.headers.get("Authorization", "").lower() != self._auth
        ):
            return web.Response(status=401)
        try:
            return await handler(request)
        except BodyRejected as exc:
            return web.Response(status=exc.status, text=exc.text)
        except SimError as exc:
            return json_response(exc.body(), status=exc.status)

    def _fail(self, error: SimError) -> SimError:
        if error.metric is not None:
            self.metrics.inc("tgi_request_failure", err=error.metric)
        return error

    def _admit(self, compiled: _Compiled) -> bool:
        """TGI's concurrency permit, plus the simulated error draw. True: fail in generation."""
        sequence, self._requests = self._requests, self._requests + 1
        fails = compiled.dice.fails(sequence)
        overloaded = fails and compiled.behaviour.error_kind == "overloaded"
        if overloaded or self.inflight >= self.max_concurrent_requests:
            raise self._fail(SimError.overloaded())
        return fails and compiled.behaviour.error_kind == "generation"

    def _plan(
        self, compiled: _Compiled, inputs: str, params: Params, key: str, *, stream: bool
    ) -> Generation:
        try:
            input_length, max_new = validate(params, inputs, self.limits, stream=stream)
        except SimError as exc:
            raise self._fail(exc) from None
        self.metrics.observe("tgi_request_input_length", input_length)
        self.metrics.observe("tgi_request_max_new_tokens", max_new)
        return generate(compiled.book.answer(key), inputs, params, input_length, max_new)

    def _succeeded(self, gen: Generation, t0: float, t_queued: float, chars: int) -> dict[str, str]:
        """Record TGI's success metrics; returns the /generate timing headers."""
        t_end = time.perf_counter()
        total, validation, inference = t_end - t0, t_queued - t0, t_end - t_queued
        per_token = inference / gen.generated_tokens
        m = self.metrics
        m.inc("tgi_request_success")
        m.observe("tgi_request_duration", total)
        m.observe("tgi_request_validation_duration", validation)
        m.observe("tgi_request_queue_duration", 0.0)  # no queue: every request joins the batch
        m.observe("tgi_request_inference_duration", inference)
        m.observe("tgi_request_mean_time_per_token_duration", per_token)
        m.observe("tgi_request_generated_tokens", gen.generated_tokens)
        return {
            "x-compute-type": "gpu+optimized",
            "x-compute-time": repr(total),
            "x-compute-characters": str(chars),
            "x-total-time": str(int(total * 1000)),
            "x-validation-time": str(int(validation * 1000)),
            "x-queue-time": "0",
            "x-inference-time": str(int(inference * 1000)),
            "x-time-per-token": str(int(per_token * 1000)),
            "x-prompt-tokens": str(gen.input_length),
            "x-generated-tokens": str(gen.generated_tokens),
        }

    async def generate_once(self, inputs: str, params: Params, key: str) -> tuple[Generation, dict[str, str]]:
        """TGI's generate_internal: one non-streamed generation, or SimError."""
        t0 = time.perf_counter()
        self.metrics.inc("tgi_request_count")
        compiled = self._compiled_for(params)
        fail_in_generation = self._admit(compiled)
        self.inflight += 1
        try:
            gen = self._plan(compiled, inputs, params, key, stream=False)
            t_queued = time.perf_counter()
            self.metrics.add_gauge("tgi_batch_current_size", 1)
            try:
                prefill = compiled.dice.prefill_seconds()
                if fail_in_generation:
                    await asyncio.sleep(prefill)
                    raise self._fail(SimError.generation("simulated failure"))
                tpt = compiled.behaviour.time_per_token_seconds
                await asyncio.sleep(prefill + tpt * (gen.generated_tokens - 1))
            finally:
                self.metrics.add_gauge("tgi_batch_current_size", -1)
            return gen, self._succeeded(gen, t0, t_queued, len(inputs))
        finally:
            self.inflight -= 1

    async def generate_tokens(
        self, inputs: str, params: Params, key: str
    ) -> AsyncGenerator[tuple[int, Generation]]:
        """TGI's generate_stream_internal: yields (token index, generation) as tokens are due.

        Raises SimError (already counted) for what TGI sends as an error event. Close it with
        contextlib.aclosing so that an abandoned stream releases its permit.
        """
        t0 = time.perf_counter()
        self.metrics.inc("tgi_request_count")
        # TGI rejects these two before taking a concurrency permit.
        if (params.best_of or 1) != 1:
            raise self._fail(SimError.validation("`best_of` != 1 is not supported when streaming tokens"))
        if params.decoder_input_details:
            raise self._fail(
                SimError.validation("`decoder_input_details` == true is not supported when streaming tokens")
            )
        compiled = self._compiled_for(params)
        fail_in_generation = self._admit(compiled)
        self.inflight += 1
        try:
            gen = self._plan(compiled, inputs, params, key, stream=True)
            t_queued = time.perf_counter()
            self.metrics.add_gauge("tgi_batch_current_size", 1)
            try:
                await asyncio.sleep(compiled.dice.prefill_seconds())
                if fail_in_generation:
                    raise self._fail(SimError.generation("simulated failure"))
                tpt = compiled.behaviour.time_per_token_seconds
                for index in range(gen.generated_tokens):
                    if index and tpt:
                        await asyncio.sleep(tpt)
                    if index == gen.generated_tokens - 1:
                        self._succeeded(gen, t0, t_queued, len(inputs))
                    yield index, gen
            finally:
                self.metrics.add_gauge("tgi_batch_current_size", -1)
        finally:
            self.inflight -= 1

    # -- TGI's native routes -----------------------------------------------------------------

    def _full_text(self, inputs: str, params: Params, gen: Generation) -> str:
        return inputs + gen.text if params.return_full_text else gen.text

    async def _generate_json(self, inputs: str, params: Params) -> tuple[dict[str, Any], dict[str, str]]:
        gen, headers = await self.generate_once(inputs, params, inputs)
        out: dict[str, Any] = {"generated_text": self._full_text(inputs, params, gen)}
        if params.details or params.decoder_input_details:
            out["details"] = gen.details(params.best_of)
        return out, headers

    async def _stream_generate(self, request: web.Request, inputs: str, params: Params) -> web.StreamResponse:
        response = await open_sse(request, inputs)
        async with client_may_leave():
            try:
                async with contextlib.aclosing(self.generate_tokens(inputs, params, inputs)) as tokens:
                    async for index, gen in tokens:
                        event: dict[str, Any] = {
                            "index": index + 1,
                            "token": gen.tokens[index],
                            "generated_text": None,
                            "details": None,
                        }
                        if gen.top_tokens:
                            event["top_tokens"] = gen.top_tokens[index]
                        if index == gen.generated_tokens - 1:
                            event["generated_text"] = self._full_text(inputs, params, gen)
                            if params.details:
                                event["details"] = gen.stream_details()
                        await response.write(sse(event))
            except SimError as exc:
                # Once the SSE stream is open TGI reports every error as an event (HTTP 200).
                await response.write(sse(exc.body()))
            await response.write_eof()
        return response

    async def _compat_generate(self, request: web.Request) -> web.StreamResponse:
        body = await read_body(request)
        inputs, params = _inputs(body), parse_params(body.get("parameters"))
        if params.return_full_text is None:
            # TGI's compat route defaults return_full_text to true for text-generation models
            # (and for models without a pipeline tag): the prompt comes back in front.
            params = replace(params, return_full_text=self.pipeline_tag in (None, "text-generation"))
        if body.get("stream") is True:
            return await self._stream_generate(request, inputs, params)
        out, headers = await self._generate_json(inputs, params)
        return json_response([out], headers=headers)

    async def _generate_route(self, request: web.Request) -> web.StreamResponse:
        body = await read_body(request)
        out, headers = await self._generate_json(_inputs(body), parse_params(body.get("parameters")))
        return json_response(out, headers=headers)

    async def _generate_stream_route(self, request: web.Request) -> web.StreamResponse:
        body = await read_body(request)
        return await self._stream_generate(request, _inputs(body), parse_params(body.get("parameters")))

    async def _tokenize_route(self, request: web.Request) -> web.StreamResponse:
        inputs = _inputs(await read_body(request))
        out, offset = [], 0
        for piece in tokenize(inputs):
            word = piece.lstrip()
            offset += len(piece)
            out.append({"id": token(word)["id"], "text": word, "start": offset - len(word), "stop": offset})
        return json_response(out)

    # -- open routes -------------------------------------------------------------------------

    async def _health_route(self, request: web.Request) -> web.StreamResponse:
        b = self.behaviour
        if not b.healthy or time.monotonic() - self._started < b.startup_delay_seconds:
            return json_response({"error": "unhealthy", "error_type": "healthcheck"}, status=503)
        return web.Response(status=200)

    def info(self) -> dict[str, Any]:
        """TGI's Info document for this simulated server."""
        return {
            "model_id": self.model_id,
            "model_sha": self.revision,
            "model_pipeline_tag": self.pipeline_tag,
            "max_concurrent_requests": self.max_concurrent_requests,
            "max_best_of": self.limits.max_best_of,
            "max_stop_sequences": self.limits.max_stop_sequences,
            "max_input_tokens": self.limits.max_input_tokens,
            "max_total_tokens": self.limits.max_total_tokens,
            "validation_workers": 2,
            "max_client_batch_size": self.max_client_batch_size,
            "router": "text-generation-router",
            "version": self.version,
            "sha": None,
            "docker_label": None,
        }

    async def _info_route(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.info())

    async def _metrics_route(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=self.metrics.render(), content_type="text/plain")

    async def _models_route(self, request: web.Request) -> web.StreamResponse:
        model = {"id": self.model_id, "object": "model", "created": 0, "owned_by": self.model_id}
        return json_response({"object": "list", "data": [model]})

    # -- simulator administration (not part of TGI) ------------------------------------------

    async def _get_behaviour_route(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.behaviour.to_dict())

    async def _set_behaviour(self, request: web.Request, *, merge: bool) -> web.StreamResponse:
        try:
            patch = json.loads(await request.read())
            if not isinstance(patch, dict):
                raise ValueError("the behaviour must be a JSON object")
            new = self.behaviour.merged(patch) if merge else Behaviour.from_dict(patch)
            compiled = _Compiled.of(new, self._compiled.base_dir, self._compiled.source)
        except (OSError, ValueError) as exc:
            return json_response({"error": str(exc), "error_type": "behaviour"}, status=400)
        self._compiled = compiled
        return json_response(new.to_dict())

    async def _patch_behaviour_route(self, request: web.Request) -> web.StreamResponse:
        return await self._set_behaviour(request, merge=True)

    async def _put_behaviour_route(self, request: web.Request) -> web.StreamResponse:
        return await self._set_behaviour(request, merge=False)

    async def _state_route(self, request: web.Request) -> web.StreamResponse:
        source = self._compiled.source
        return json_response(
            {
                "model_id": self.model_id,
                "revision": self.revision,
                "num_shard": self.num_shard,
                "inflight": self.inflight,
                "requests": self._requests,
                "known_prompts": len(self._compiled.book),
                "behaviour_source": str(source) if source else None,
                "watching": self._watcher.describe() if self._watcher else None,
                "adapters": {
                    a: str(c.source) if (c := self._adapter_compiled.get(a)) and c.source else None
                    for a in self.adapters
                },
            }
        )
