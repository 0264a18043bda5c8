"""The gateway's two HTTP servers: the API port in front of the engine, and the health port.

API port (the Service's target), every path:

    auth   → 401 unless `Authorization: Bearer <key>` names a client (when keys are configured;
             /health and /ping stay open, as in TGI)
    ids    → X-LLMOps-Request-ID (signed) on every answer, also as `llmops_request_id` in the
             JSON object of a non-streamed generation; an incoming X-Request-ID is echoed
    POST /v1/feedback → validated, counted by the rated answer's revision and track
    else   → proxied to the engine on localhost: body up to max_request_bytes (else 413); no
             answer headers within upstream_timeout (or silence that long mid-answer) → 504;
             engine unreachable → 502; the answer streamed back chunk by chunk as it arrives
             (SSE events are not buffered); a client that disconnects cancels the handler
             (handler_cancellation), which closes the engine connection, which stops generation.

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
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from llmops.gateway.feedback import MAX_FEEDBACK_BYTES, FeedbackError, parse_feedback
from llmops.gateway.ids import InvalidRequestId, RequestIdSigner
from llmops.gateway.keys import KeyStore
from llmops.gateway.metrics import GatewayMetrics, route_label

__all__ = ["ID_HEADER", "ID_JSON_FIELD", "OPEN_PATHS", "Gateway", "GatewayConfig"]

log = logging.getLogger("llmops.gateway")

ID_HEADER = "X-LLMOps-Request-ID"
ID_JSON_FIELD = "llmops_request_id"
CORRELATION_HEADER = "X-Request-ID"
OPEN_PATHS: frozenset[str] = frozenset({"/health", "/ping"})
"""Paths that need no API key (TGI's own open routes for probes and load balancers)."""
_INJECT_ROUTES = frozenset({"/", "/generate", "/v1/chat/completions", "/v1/completions"})
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
    )
)
_ANONYMOUS = "anonymous"
_REQUEST_ID = web.RequestKey("llmops_request_id", str)
_CLIENT = web.RequestKey("llmops_client", str)
"""The client label when no keys are configured."""


@dataclass(frozen=True)
class GatewayConfig:
    """What a gateway needs to know (flags of `llmops gateway`)."""

    upstream: str
    """The engine's base URL on localhost, e.g. http://127.0.0.1:8080."""
    deployment: str
    """namespace/name of the LLMDeployment."""
    revision: str
    track: str
    max_request_bytes: int = 4 * 1024 * 1024
    upstream_timeout: float = 300.0
    engine_api_key: str | None = None
    """Sent to the engine as Bearer, in place of the client's key, when the gateway checks client
    keys itself and the engine requires a key too (spec.engine.apiKeySecretRef)."""


def _error(status: int, message: str, error_type: str, headers: dict[str, str] | None = None) -> web.Response:
    """An error in TGI's shape ({"error", "error_type"}), which TGI clients already parse."""
    return web.json_response({"error": message, "error_type": error_type}, status=status, headers=headers)


def _bearer(request: web.BaseRequest) -> str | None:
    value = request.headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _correlation(request: web.BaseRequest) -> str | None:
    value = request.headers.get(CORRELATION_HEADER)
    if value and len(value) <= _MAX_CORRELATION and value.isprintable():
        return value
    return None


class Gateway:
    """One gateway: `start()` serves both ports until `stop()`."""

    def __init__(self, config: GatewayConfig, signer: RequestIdSigner, keys: KeyStore | None) -> None:
        self.config = config
        self.signer = signer
        self.keys = keys
        self.metrics = GatewayMetrics()
        self._session: aiohttp.ClientSession | None = None
        self._runners: list[web.AppRunner] = []
        self._watch: asyncio.Task[None] | None = None
        self.url: str | None = None
        self.health_url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "0.0.0.0", port: int = 0, health_port: int = 0) -> tuple[str, str]:
        """Serve the API and health ports (0 picks a free port); returns both base URLs."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=self.config.upstream_timeout),
        )
        if self.keys is not None:
            self.metrics.clients.set(len(self.keys.clients))
            self._watch = asyncio.create_task(self._watch_keys(), name="api keys")
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
        urls = []
        for app, p in ((self.api_app(), port), (self.health_app(), health_port)):
            # handler_cancellation: a client that goes away cancels its handler, and with it the
            # engine request (aiohttp >= 3.9 leaves handlers running unless asked).
            runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=5)
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
        if self._session is not None:
            await self._session.close()

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

    def api_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=self.config.max_request_bytes)
        app.router.add_post("/v1/feedback", self._feedback)
        app.router.add_route("*", "/{tail:.*}", self._proxy)
        return app

    def health_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/health", self._engine_health)
        app.router.add_get("/metrics", self._metrics)
        return app

    # -- API port ----------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        started = time.monotonic()
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
            response = await handler(request)
        except web.HTTPException as exc:
            # aiohttp's own refusals (413 from client_max_size, 405) in TGI's error shape.
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
        self.metrics.requests.labels(route, str(status), client).inc()
        self.metrics.duration.labels(route).observe(time.monotonic() - started)

    async def _read_body(self, request: web.Request, limit: int) -> bytes:
        """The body, or HTTPRequestEntityTooLarge (413) as soon as it is known to exceed `limit`."""
        if request.content_length is not None and request.content_length > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
        body = await request.read()
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
        return body

    async def _feedback(self, request: web.Request) -> web.StreamResponse:
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

    def _upstream_headers(self, request: web.Request) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        if self.keys is None:
            # No client keys here: the client's Authorization goes through untouched, so an
            # engine with its own key (spec.engine.apiKeySecretRef) still enforces it.
            return headers
        # The client's key is for the gateway; the engine gets its own key or none.
        headers.pop("Authorization", None)
        headers.pop("authorization", None)
        if self.config.engine_api_key:
            headers["Authorization"] = f"Bearer {self.config.engine_api_key}"
        return headers

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await self._read_body(request, self.config.max_request_bytes)
        url = self.config.upstream + request.path_qs
        try:
            async with asyncio.timeout(self.config.upstream_timeout):
                upstream = await self._session.request(
                    request.method,
                    url,
                    headers=self._upstream_headers(request),
                    data=body if body else None,
                    allow_redirects=False,
                )
        except TimeoutError:
            self.metrics.upstream_errors.labels("timeout").inc()
            return _error(
                504, f"the engine did not answer within {self.config.upstream_timeout:g}s", "timeout"
            )
        except aiohttp.ClientError as exc:
            self.metrics.upstream_errors.labels("unreachable").inc()
            return _error(502, f"the engine is not reachable: {type(exc).__name__}", "unavailable")
        try:
            response = await self._relay(request, upstream)
        except BaseException:
            upstream.close()  # drop the connection: the engine stops generating for a gone client
            raise
        upstream.release()
        return response

    async def _relay(self, request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        request_id = request[_REQUEST_ID]
        ctype = upstream.headers.get("Content-Type", "")
        if (
            request.path in _INJECT_ROUTES
            and upstream.status == 200
            and ctype.startswith("application/json")
            and (upstream.content_length or 0) <= _MAX_INJECT_BYTES
        ):
            data = await upstream.read()
            return web.Response(
                status=upstream.status, body=_with_request_id(data, request_id), headers=_copy(upstream)
            )
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=_copy(upstream))
        response.headers[ID_HEADER] = request_id
        if (correlation := _correlation(request)) is not None:
            response.headers[CORRELATION_HEADER] = correlation
        if upstream.content_length is not None and "chunked" not in upstream.headers.get(
            "Transfer-Encoding", ""
        ):
            response.content_length = upstream.content_length
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        except TimeoutError:
            # Headers are gone already: all we can do is cut the answer short.
            self.metrics.upstream_errors.labels("timeout").inc()
            raise
        await response.write_eof()
        return response

    # -- health port -------------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok\n")

    async def _engine_health(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        try:
            async with self._session.get(
                self.config.upstream + "/health", timeout=aiohttp.ClientTimeout(total=30)
            ) as up:
                return web.Response(status=up.status, body=await up.read(), headers=_copy(up))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _error(503, f"the engine is not reachable: {type(exc).__name__}", "unavailable")

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        try:
            async with self._session.get(
                self.config.upstream + "/metrics", timeout=aiohttp.ClientTimeout(total=10)
            ) as up:
                engine = await up.read()
                ok = up.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok, engine = False, b""
        if not ok:
            return web.Response(status=503, text="the engine's /metrics is not reachable\n")
        own = self.metrics.exposition()
        sep = b"" if own.endswith(b"\n") else b"\n"
        return web.Response(body=own + sep + engine, content_type="text/plain", charset="utf-8")


def _copy(upstream: aiohttp.ClientResponse) -> dict[str, str]:
    return {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}


def _with_request_id(data: bytes, request_id: str) -> bytes:
    """The JSON object with `llmops_request_id` added; anything else (a list, invalid JSON) as is."""
    try:
        obj = json.loads(data)
    except ValueError:
        return data
    if not isinstance(obj, dict):
        return data
    obj[ID_JSON_FIELD] = request_id
    return json.dumps(obj, separators=(",", ":")).encode()
