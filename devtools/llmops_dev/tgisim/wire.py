"""Wire helpers of the TGI simulator: compact JSON bodies, SSE events, request bodies.

TGI (axum) frames each server-sent event as `data: <json>` plus a blank line; the OpenAI
routes end with `data: [DONE]`, the native `/generate_stream` does not. Bodies that axum's Json
extractor rejects get its plain-text errors before any TGI handler (or metric) runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from llmops_dev.tgisim.text import BodyRejected

__all__ = ["DONE", "client_may_leave", "json_bytes", "json_response", "open_sse", "read_body", "sse"]

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def sse(obj: Any) -> bytes:
    """One SSE event carrying `obj` as JSON."""
    return b"data: " + json_bytes(obj) + b"\n\n"


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json_bytes(obj), status=status, headers=headers, content_type="application/json")


async def read_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or BodyRejected with axum's status and wording."""
    try:
        body = json.loads(await request.read())
    except ValueError as exc:
        raise BodyRejected(400, f"Failed to parse the request body as JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BodyRejected.data("invalid type: expected a JSON object")
    return body


async def open_sse(request: web.Request, inputs: str) -> web.StreamResponse:
    """Start a 200 event stream with the headers TGI's streaming routes send."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "x-compute-type": "gpu+optimized",
            "x-compute-characters": str(len(inputs)),
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    return response


@contextlib.asynccontextmanager
async def client_may_leave() -> AsyncIterator[None]:
    """End a stream quietly when the client hangs up mid-way (its generation is dropped)."""
    try:
        yield
    except ConnectionResetError:
        log.debug("client closed the stream early")
