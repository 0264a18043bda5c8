"""The gateway's two HTTP servers: the API port in front of the engine, and the health port.

API port (the Service's target), every path:

    auth   → 401 unless `Authorization: Bearer <key>` names a client (when keys are configured;
             /health and /ping stay open, as in TGI)
    ids    → X-LLMOps-Request-ID (signed) on every answer, also as `llmops_request_id` in the
             JSON object of a non-streamed generation; an incoming X-Request-ID is echoed
    POST /v1/feedback → validated, counted by the rated answer's revision and track
    adapter → with --adapter (a LoRA adapter the engine serves, spec.model.adapter), a generation
             request is made to name it before it goes on: `parameters.adapter_id` on TGI's
             native routes (/, /generate, /generate_stream), the `model` field on the OpenAI
             routes (TGI reads it as the adapter id, vLLM as the served name). The engine serves
             any other name from the base model, so without this the adapter would never answer;
             with it, clients need no change. A body that is not a JSON object goes on as it is.
    else   → proxied to the engine on localhost (upstream.py's keep-alive client; the port
             itself is aiohttp's low-level server, one handler with no router or middleware
             chain, both for less CPU per request): body up to max_request_bytes (else 413); no
             answer headers within upstream_timeout (or silence that long mid-answer) → 504;
             engine unreachable → 502; the answer streamed back chunk by chunk as it arrives
             (SSE events are not buffered); a client that disconnects cancels the handler
             (handler_cancellation), which closes the engine connection, which stops generation.

Capture (when configured, see capture.py and sender.py): a sampled generation answered 200 is
recorded once its answer has gone out (the stream is relayed as before; its bytes are kept
aside, up to 4 MiB, and read after the last one), redacted, and offered to the bounded queue;
feedback is recorded too. Nothing in the request path waits for the store.

Health port: /healthz (the gateway itself), /health (the engine's /health passed through, so
probes still tell a loading model, 503, from a broken one), /metrics (the gateway's series
followed by the engine's exposition: one scrape target per pod, and `up` stays 0 until the
engine answers, as before the gateway).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from llmops.gateway.capture import (
    CAPTURED_ROUTES,
    CaptureConfig,
    Exchange,
    Identity,
    feedback_record,
    request_record,
)
from llmops.gateway.feedback import MAX_FEEDBACK_BYTES, FeedbackError, parse_feedback
from llmops.gateway.ids import InvalidRequestId, RequestIdSigner
from llmops.gateway.keys import KeyStore
from llmops.gateway.metrics import GatewayMetrics, route_label
from llmops.gateway.redact import Redactor
from llmops.gateway.sender import CloudEventsSender, Queued, RecordQueue, Sender, StoreSender
from llmops.gateway.upstream import UpstreamAnswer, UpstreamPool, UpstreamUnavailable

__all__ = ["ID_HEADER", "ID_JSON_FIELD", "OPEN_PATHS", "Gateway", "GatewayConfig", "with_adapter"]

log = logging.getLogger("llmops.gateway")

ID_HEADER = "X-LLMOps-Request-ID"
ID_JSON_FIELD = "llmops_request_id"
_ID_JSON_FIELD_BYTES = ID_JSON_FIELD.encode()
CORRELATION_HEADER = "X-Request-ID"
OPEN_PATHS: frozenset[str] = frozenset({"/health", "/ping"})
"""Paths that need no API key (TGI's own open routes for probes and load balancers)."""
_INJECT_ROUTES = frozenset({"/", "/generate", "/v1/chat/completions", "/v1/completions"})
_ADAPTER_PARAMETER_ROUTES = frozenset({"/", "/generate", "/generate_stream"})
"""TGI's native routes: the adapter goes in `parameters.adapter_id`."""
_ADAPTER_MODEL_ROUTES = frozenset({"/v1/chat/completions", "/v1/completions"})
"""The OpenAI routes: the adapter goes in `model` (TGI maps it to adapter_id unless it is "tgi")."""
_MAX_INJECT_BYTES = 8 * 1024 * 1024
_MAX_CORRELATION = 200
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
        # The gateway has read the whole body before it asks the engine: nothing to wait for.
        "Expect",
    )
)
_ANONYMOUS = "anonymous"
"""The client label when no keys are configured."""
_REQUEST_ID = web.RequestKey("llmops_request_id", str)
_CLIENT = web.RequestKey("llmops_client", str)
_ARRIVED = web.RequestKey("llmops_arrived", float)
"""Unix time of the request's arrival (a capture record's `time`)."""
_STARTED = web.RequestKey("llmops_started", float)
"""time.monotonic() at arrival (a capture record's latency)."""
_MAX_CAPTURE_BYTES = 4 * 1024 * 1024
"""A streamed answer is kept for its record up to this size; past it the record has what came first."""
_FLUSH_SECONDS = 5.0
"""On stop, how long queued records may take to go out."""


@dataclass(frozen=True)
class GatewayConfig:
    """What a gateway needs to know (flags of `llmops gateway`)."""

    upstream: str
    """The engine's base URL on localhost, e.g. http://127.0.0.1:8080."""
    deployment: str
    """namespace/name of the LLMDeployment."""
    revision: str
    track: str
    adapter: str | None = None
    """The LoRA adapter the engine serves (spec.model.adapter.name): every generation names it."""
    max_request_bytes: int = 4 * 1024 * 1024
    upstream_timeout: float = 300.0
    engine_api_key: str | None = None
    """Sent to the engine as Bearer, in place of the client's key, when the gateway checks client
    keys itself and the engine requires a key too (spec.engine.apiKeySecretRef)."""
    capture: CaptureConfig | None = None
    """spec.gateway.capture (None: nothing is captured)."""


@dataclass
class _Kept:
    """The answer of a sampled request, kept aside while it is relayed."""

    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    parsed: Any = None
    streamed: bool = False

    def add(self, chunk: bytes) -> None:
        if self.size < _MAX_CAPTURE_BYTES:
            self.chunks.append(chunk[: _MAX_CAPTURE_BYTES - self.size])
            self.size += len(self.chunks[-1])


def _error(status: int, message: str, error_type: str, headers: dict[str, str] | None = None) -> web.Response:
    """An error in TGI's shape ({"error", "error_type"}), which TGI clients already parse."""
    return web.json_response({"error": message, "error_type": error_type}, status=status, headers=headers)


def _bearer(request: web.BaseRequest) -> str | None:
    value = request.headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _continue(request: web.BaseRequest) -> None:
    """Answer `Expect: 100-continue` (curl sends it with bodies over 1 KiB, then waits a second
    for the answer before sending the body). aiohttp's Application did it for us; its low-level
    server does not. Only an authenticated request gets here, so a refused client sends no body."""
    expect = request.headers.get("Expect")
    if expect is None:
        return
    if expect.lower() != "100-continue" or request.version != aiohttp.HttpVersion11:
        raise web.HTTPExpectationFailed(reason=f"unknown Expect: {expect}")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the answer proper has not started


def _correlation(request: web.BaseRequest) -> str | None:
    value = request.headers.get(CORRELATION_HEADER)
    if value and len(value) <= _MAX_CORRELATION and value.isprintable():
        return value
    return None


class Gateway:
    """One gateway: `start()` serves both ports until `stop()`."""

    def __init__(
        self,
        config: GatewayConfig,
        signer: RequestIdSigner,
        keys: KeyStore | None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.signer = signer
        self.keys = keys
        self.metrics = GatewayMetrics()
        self._counted: dict[tuple[str, int, str], tuple[Any, Any]] = {}
        self._engine: UpstreamPool | None = None
        self._runners: list[web.BaseRunner] = []
        self._watch: asyncio.Task[None] | None = None
        self.url: str | None = None
        self.health_url: str | None = None
        self._rng = rng or random.Random()
        self._identity = Identity(config.deployment, config.revision, config.track)
        self.capture = config.capture
        self.sender: Sender | None = None
        self._redactor = Redactor(())
        self._capture_session: aiohttp.ClientSession | None = None
        self._sending: asyncio.Task[None] | None = None
        if config.capture is not None:
            self._redactor = Redactor(config.capture.builtins, config.capture.patterns)
            self.sender = _sender(config, self.metrics)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "0.0.0.0", port: int = 0, health_port: int = 0) -> tuple[str, str]:
        """Serve the API and health ports (0 picks a free port); returns both base URLs."""
        # No cap on connections to the engine (the engine's own concurrency limit answers 429,
        # as without the gateway); the read timeout bounds both the wait for the answer's head
        # and any silence mid-answer (both 504s of upstream_timeout).
        self._engine = UpstreamPool(self.config.upstream, read_timeout=self.config.upstream_timeout)
        if self.keys is not None:
            self.metrics.clients.set(len(self.keys.clients))
            self._watch = asyncio.create_task(self._watch_keys(), name="api keys")
        if self.sender is not None:
            # trust_env: a proxy in the environment is honoured (in the dev cluster it is how a
            # pod reaches a Service by name).
            self._capture_session = aiohttp.ClientSession(
                trust_env=True, timeout=aiohttp.ClientTimeout(total=30, sock_connect=5)
            )
            self._sending = asyncio.create_task(self.sender.run(self._capture_session), name="capture")
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
        urls = []
        health = web.AppRunner(
            self.health_app(), access_log=None, handler_cancellation=True, shutdown_timeout=5
        )
        runners = (self._api_runner(), health)
        for runner, p in zip(runners, (port, health_port), strict=True):
            await runner.setup()
            await web.TCPSite(runner, host, p, reuse_address=True).start()
            self._runners.append(runner)
            urls.append(f"http://{shown}:{runner.addresses[0][1]}")
        self.url, self.health_url = urls
        return self.url, self.health_url

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        if self._engine is not None:
            self._engine.close()
        await self._stop_capture()

    async def _stop_capture(self) -> None:
        """Give queued records a few seconds to go out, then stop the sender."""
        sender, task = self.sender, self._sending
        if sender is None or task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_FLUSH_SECONDS):
                await sender.flush()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._capture_session is not None:
            await self._capture_session.close()

    async def _watch_keys(self) -> None:
        assert self.keys is not None
        keys = self.keys
        while True:
            await asyncio.sleep(1.0)
            try:
                if await asyncio.to_thread(keys.reload):
                    self.metrics.clients.set(len(keys.clients))
            except Exception:
                log.exception("reloading the API keys failed; keeping the current ones")

    # -- apps --------------------------------------------------------------------------------

    def _api_runner(self) -> web.BaseRunner:
        """The API port on aiohttp's low-level server: one handler, no application, router or
        middleware chain to go through per request (the proxy has one route and a feedback path)."""
        limit, loop = self.config.max_request_bytes, asyncio.get_running_loop()

        def request(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> web.BaseRequest:
            # request.read() answers 413 past the limit, as Application's client_max_size did.
            return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=limit)

        server = web.Server(
            self._serve_api,
            request_factory=request,
            # A client that goes away cancels its handler, and with it the engine request
            # (aiohttp >= 3.9 leaves handlers running unless asked).
            handler_cancellation=True,
            access_log=None,
        )
        return web.ServerRunner(server, shutdown_timeout=5)

    def health_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/health", self._engine_health)
        app.router.add_get("/metrics", self._metrics)
        return app

    # -- API port ----------------------------------------------------------------------------

    async def _serve_api(self, request: web.BaseRequest) -> web.StreamResponse:
        """Every request of the API port: authenticate, give it an ID, route it, count it."""
        started = time.monotonic()
        request[_STARTED] = started
        request[_ARRIVED] = time.time()
        route = route_label(request.path)
        client = _ANONYMOUS
        request_id = self.signer.issue(
            revision=self.config.revision, track=self.config.track, now=time.time()
        )
        request[_REQUEST_ID] = request_id
        ids = {ID_HEADER: request_id}
        if (correlation := _correlation(request)) is not None:
            ids[CORRELATION_HEADER] = correlation
        response: web.StreamResponse
        if self.keys is not None and request.path not in OPEN_PATHS:
            presented = _bearer(request)
            found = self.keys.client_for(presented)
            if found is None:
                reason = "missing" if presented is None else "invalid"
                self.metrics.auth_failures.labels(reason).inc()
                response = _error(
                    401,
                    "a valid API key is required: Authorization: Bearer <key>",
                    "authentication",
                    headers={"WWW-Authenticate": "Bearer", **ids},
                )
                self._count(route, response.status, "unauthenticated", started)
                return response
            client = found
            request[_CLIENT] = client
        try:
            await _continue(request)
            if request.path == "/v1/feedback" and request.method == "POST":
                response = await self._feedback(request)
            else:
                response = await self._proxy(request)
        except web.HTTPException as exc:
            # aiohttp's own refusals (413 from client_max_size) in TGI's error shape.
            response = _error(exc.status, exc.reason, "validation" if exc.status < 500 else "gateway")
        except (asyncio.CancelledError, ConnectionResetError):
            # The client went away (cancelled handler, or a write to its closed connection).
            self.metrics.upstream_errors.labels("client_disconnected").inc()
            self._count(route, 499, client, started)
            raise
        if not response.prepared:
            response.headers.update(ids)
        self._count(route, response.status, client, started)
        return response

    def _count(self, route: str, status: int, client: str, started: float) -> None:
        counted = self._counted.get((route, status, client))
        if counted is None:
            # labels() takes a lock and builds its key on every call; the children are kept
            # here instead (bounded as the labels are: fixed routes, status codes, clients).
            counted = (
                self.metrics.requests.labels(route, str(status), client),
                self.metrics.duration.labels(route),
            )
            self._counted[(route, status, client)] = counted
        requests, duration = counted
        requests.inc()
        duration.observe(time.monotonic() - started)

    async def _read_body(self, request: web.BaseRequest, limit: int) -> bytes:
        """The body, or HTTPRequestEntityTooLarge (413) as soon as it is known to exceed `limit`."""
        if request.content_length is not None and request.content_length > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
        body = await request.read()
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
        return body

    async def _feedback(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            raw = await self._read_body(request, MAX_FEEDBACK_BYTES)
        except web.HTTPRequestEntityTooLarge:
            self.metrics.feedback_refused.labels("too_large").inc()
            return _error(413, f"the feedback body is larger than {MAX_FEEDBACK_BYTES} bytes", "validation")
        try:
            feedback = parse_feedback(raw)
            rated = self.signer.verify(feedback.request_id)
        except FeedbackError as exc:
            self.metrics.feedback_refused.labels("invalid").inc()
            return web.json_response(
                {"error": str(exc), "error_type": "validation", "field": exc.field}, status=400
            )
        except InvalidRequestId as exc:
            self.metrics.feedback_refused.labels("request_id").inc()
            return web.json_response(
                {"error": str(exc), "error_type": "validation", "field": "request_id"}, status=400
            )
        self.metrics.feedback.labels(rated.revision, rated.track, feedback.rating).inc()
        if self.sender is not None:
            client = request.get(_CLIENT, _ANONYMOUS)
            record = feedback_record(feedback, rated, client, time.time(), self._redactor)
            self.sender.queue.offer(Queued.of(record))
        log.info(
            "feedback %s on an answer of revision %s (%s) from client %s",
            feedback.rating,
            rated.revision,
            rated.track,
            request.get(_CLIENT, _ANONYMOUS),
        )
        return web.json_response(
            {
                "status": "accepted",
                "revision": rated.revision,
                "track": rated.track,
                "rating": feedback.rating,
            },
            status=202,
        )

    def _upstream_headers(self, request: web.BaseRequest) -> list[tuple[str, str]]:
        if self.keys is None:
            # No client keys here: the client's Authorization goes through untouched, so an
            # engine with its own key (spec.engine.apiKeySecretRef) still enforces it.
            return [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        # The client's key is for the gateway; the engine gets its own key or none.
        headers = [
            (k, v)
            for k, v in request.headers.items()
            if k.lower() not in _HOP_BY_HOP and k.lower() != "authorization"
        ]
        if self.config.engine_api_key:
            headers.append(("Authorization", f"Bearer {self.config.engine_api_key}"))
        return headers

    async def _proxy(self, request: web.BaseRequest) -> web.StreamResponse:
        assert self._engine is not None
        body = await self._read_body(request, self.config.max_request_bytes)
        sent = body
        if self.config.adapter is not None and request.method == "POST":
            sent = with_adapter(request.path, body, self.config.adapter)
        try:
            upstream = await self._engine.request(
                request.method, request.path_qs, self._upstream_headers(request), sent
            )
        except TimeoutError:
            self.metrics.upstream_errors.labels("timeout").inc()
            return _error(
                504, f"the engine did not answer within {self.config.upstream_timeout:g}s", "timeout"
            )
        except UpstreamUnavailable as exc:
            self.metrics.upstream_errors.labels("unreachable").inc()
            return _error(502, f"the engine is not reachable: {exc}", "unavailable")
        kept = _Kept() if upstream.status == 200 and self._sampled(request) else None
        try:
            response = await self._relay(request, upstream, kept)
        except BaseException:
            upstream.close()  # drop the connection: the engine stops generating for a gone client
            raise
        upstream.release()
        if kept is not None:
            latency = time.monotonic() - request[_STARTED]
            # After this handler returns the answer goes out; the record is made after that.
            asyncio.get_running_loop().call_soon(self._record, request, body, upstream, kept, latency)
        return response

    def _sampled(self, request: web.BaseRequest) -> bool:
        return (
            self.capture is not None
            and request.method == "POST"
            and request.path in CAPTURED_ROUTES
            and self._rng.random() < self.capture.sample_rate
        )

    def _record(
        self, request: web.BaseRequest, body: bytes, upstream: UpstreamAnswer, kept: _Kept, latency: float
    ) -> None:
        assert self.capture is not None and self.sender is not None
        exchange = Exchange(
            arrived=request[_ARRIVED],
            latency=latency,
            request_id=request[_REQUEST_ID],
            client=request.get(_CLIENT, _ANONYMOUS),
            route=request.path,
            request_body=body,
            response_body=b"".join(kept.chunks),
            streamed=kept.streamed,
            headers={k.lower(): v for k, v in upstream.headers},
            parsed=kept.parsed,
        )
        try:
            record = request_record(exchange, self._identity, self.capture.keep, self._redactor)
        except Exception:  # the answer is out already: log what could not be recorded, keep capturing
            log.exception("capture: making the record of %s failed", request.path)
            return
        self.sender.queue.offer(Queued.of(record))

    async def _relay(
        self, request: web.BaseRequest, upstream: UpstreamAnswer, kept: _Kept | None
    ) -> web.StreamResponse:
        request_id = request[_REQUEST_ID]
        ctype = upstream.content_type
        if (
            request.path in _INJECT_ROUTES
            and upstream.status == 200
            and ctype.startswith("application/json")
            and (upstream.content_length or 0) <= _MAX_INJECT_BYTES
        ):
            data = await upstream.read()
            body, parsed = _with_request_id(data, request_id)
            if kept is not None:
                kept.parsed = parsed
                if parsed is None:
                    kept.add(data)
            return web.Response(status=upstream.status, body=body, headers=_copy(upstream))
        if kept is not None:
            kept.streamed = ctype.startswith("text/event-stream")
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=_copy(upstream))
        response.headers[ID_HEADER] = request_id
        if (correlation := _correlation(request)) is not None:
            response.headers[CORRELATION_HEADER] = correlation
        if upstream.content_length is not None:  # else chunked (or until the engine closes)
            response.content_length = upstream.content_length
        await response.prepare(request)
        try:
            async for chunk in upstream.pieces():
                await response.write(chunk)
                if kept is not None:
                    kept.add(chunk)
        except TimeoutError:
            # Headers are gone already: all we can do is cut the answer short.
            self.metrics.upstream_errors.labels("timeout").inc()
            raise
        await response.write_eof()
        return response

    # -- health port -------------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok\n")

    async def _engine_get(self, path: str, silence: float) -> tuple[UpstreamAnswer, bytes]:
        """GET `path` from the engine: its answer and whole body."""
        assert self._engine is not None
        up = await self._engine.request("GET", path, [], b"", silence=silence)
        try:
            body = await up.read()
        except BaseException:
            up.close()
            raise
        up.release()
        return up, body

    async def _engine_health(self, request: web.Request) -> web.StreamResponse:
        try:
            up, body = await self._engine_get("/health", silence=30)
        except (UpstreamUnavailable, TimeoutError) as exc:
            return _error(503, f"the engine is not reachable: {exc}", "unavailable")
        return web.Response(status=up.status, body=body, headers=_copy(up))

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        try:
            up, engine = await self._engine_get("/metrics", silence=10)
            ok = up.status == 200
        except (UpstreamUnavailable, TimeoutError):
            ok, engine = False, b""
        if not ok:
            return web.Response(status=503, text="the engine's /metrics is not reachable\n")
        own = self.metrics.exposition()
        sep = b"" if own.endswith(b"\n") else b"\n"
        return web.Response(body=own + sep + engine, content_type="text/plain", charset="utf-8")


def _copy(upstream: UpstreamAnswer) -> list[tuple[str, str]]:
    """The answer's end-to-end headers (every line: several Set-Cookie stay several)."""
    return [(k, v) for k, v in upstream.headers if k.lower() not in _HOP_BY_HOP]


def with_adapter(path: str, body: bytes, adapter: str) -> bytes:
    """The request body of a generation on ``path`` naming ``adapter``; other bodies as they are.

    TGI's native routes take it as ``parameters.adapter_id``, the OpenAI routes as ``model``. A
    client's own choice is replaced: this track serves the model with this adapter only."""
    if path not in _ADAPTER_PARAMETER_ROUTES and path not in _ADAPTER_MODEL_ROUTES:
        return body
    try:
        obj = json.loads(body)
    except ValueError:
        return body
    if not isinstance(obj, dict):
        return body  # the engine refuses it with its own validation error
    if path in _ADAPTER_MODEL_ROUTES:
        obj["model"] = adapter
    else:
        parameters = obj.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            return body
        obj["parameters"] = {**(parameters or {}), "adapter_id": adapter}
    return json.dumps(obj, separators=(",", ":")).encode()


def _with_request_id(data: bytes, request_id: str) -> tuple[bytes, Any]:
    """The JSON object with `llmops_request_id` added; anything else (a list, invalid JSON) as is.
    Also the parsed JSON (None when it is not JSON), which a capture record reads.

    The member is spliced in before the object's closing brace, so the engine's bytes go out as
    they came (no second serialisation, non-ASCII text not escaped); an object that has the
    member already, or JSON in UTF-16 or UTF-32, is serialised again with the gateway's value."""
    try:
        obj = json.loads(data)
    except ValueError:
        return data, None
    if not isinstance(obj, dict):
        return data, obj
    if ID_JSON_FIELD in obj or not json.detect_encoding(data).startswith("utf-8"):
        obj[ID_JSON_FIELD] = request_id
        return json.dumps(obj, separators=(",", ":")).encode(), obj
    end = data.rindex(b"}")  # valid JSON whose value is an object: its last brace closes it
    member = b'"' + _ID_JSON_FIELD_BYTES + b'":' + json.dumps(request_id).encode()
    obj[ID_JSON_FIELD] = request_id
    return data[:end] + (b"," if len(obj) > 1 else b"") + member + data[end:], obj


def _sender(config: GatewayConfig, metrics: GatewayMetrics) -> Sender:
    """The sender the capture config asks for: the CloudEvents sink, or the capture store."""
    capture = config.capture
    assert capture is not None
    queue = RecordQueue(capture.queue_size, metrics)
    if capture.sink_url:
        return CloudEventsSender(capture.sink_url, config.deployment, queue, metrics)
    if not capture.store_url:
        raise ValueError("capture needs a store URL or a sink URL")
    return StoreSender(capture.store_url, capture.token, queue, metrics)
