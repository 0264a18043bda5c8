"""A receiver of capture records for tests and benchmarks: the store's POST protocol, and a
CloudEvents endpoint, recording what arrives.

    POST /v1/records   the capture store's protocol (Bearer token, JSONL, optionally gzip):
                       200 {"accepted": n}; 401 on a wrong token
    POST /events       a CloudEvents endpoint in binary mode: 202, the ce-* headers kept
    GET  /count        {"records": n, "events": n, "batches": n}

`answers` scripts the next responses (a status, or a status and a JSON body), so a test can make
the receiver refuse, fail or answer 413 before it accepts. It is not the capture store (no disk,
no fsync): it stands for the store where the gateway's sending is under test, and for the user's
endpoint of `capture.sink.url`.

    python -m llmops_dev.capture_sink --port 0 --token T --count-only   (prints its URL)

`--count-only` (the benchmark's) counts the lines of each batch without parsing or keeping them:
the receiver stands for a store on another machine, and must not take the CPU the gateway
under measurement needs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["CaptureSink", "Event", "run_sink_in_thread"]


@dataclass(frozen=True)
class Event:
    """One CloudEvent received: its ce-* attributes (without the prefix) and its JSON data."""

    attributes: dict[str, str]
    content_type: str
    data: Any


@dataclass
class CaptureSink:
    """The receiver's state: what arrived, and the scripted answers still to give."""

    token: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    batches: list[dict[str, str]] = field(default_factory=list)
    """The headers of each accepted /v1/records batch."""
    answers: list[int | tuple[int, dict[str, Any]]] = field(default_factory=list)
    count_only: bool = False
    counted: int = 0
    """Records received in count-only mode."""
    url: str | None = None
    _runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/records", self._records)
        app.router.add_post("/events", self._event)
        app.router.add_get("/count", self._count)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _scripted(self) -> web.Response | None:
        if not self.answers:
            return None
        answer = self.answers.pop(0)
        status, body = answer if isinstance(answer, tuple) else (answer, {"error": f"scripted {answer}"})
        return web.json_response(body, status=status)

    async def _records(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        if self.token is not None and not hmac.compare_digest(header, f"Bearer {self.token}"):
            return web.json_response({"error": "missing or invalid bearer token"}, status=401)
        raw = await request.read()  # aiohttp inflates Content-Encoding: gzip itself
        if (scripted := self._scripted()) is not None:
            return scripted
        if self.count_only:
            accepted = raw.count(b"\n")
            self.counted += accepted
            return web.json_response({"accepted": accepted})
        lines = [json.loads(line) for line in raw.split(b"\n") if line.strip()]
        self.records += lines
        self.batches.append(dict(request.headers))
        return web.json_response({"accepted": len(lines)})

    async def _event(self, request: web.Request) -> web.Response:
        data = await request.read()
        if (scripted := self._scripted()) is not None:
            return scripted
        attributes = {k.lower()[3:]: v for k, v in request.headers.items() if k.lower().startswith("ce-")}
        self.events.append(Event(attributes, request.headers.get("Content-Type", ""), json.loads(data)))
        return web.Response(status=202)

    async def _count(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "records": len(self.records) + self.counted,
                "events": len(self.events),
                "batches": len(self.batches),
            }
        )


@contextlib.contextmanager
def run_sink_in_thread(sink: CaptureSink, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `sink` from a daemon thread's event loop; yields its base URL. Its lists are appended
    to on that loop: read them with testkit.wait_for."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="capture-sink", daemon=True)
    thread.start()
    try:
        url = asyncio.run_coroutine_threadsafe(sink.start(host), loop).result(timeout=30)
        try:
            yield url
        finally:
            asyncio.run_coroutine_threadsafe(sink.stop(), loop).result(timeout=30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


async def _serve(sink: CaptureSink, port: int) -> None:
    url = await sink.start("127.0.0.1", port)
    print(url, flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m llmops_dev.capture_sink", description=__doc__)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token", default=None)
    p.add_argument("--count-only", action="store_true", help="count records, do not parse or keep them")
    args = p.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(CaptureSink(token=args.token, count_only=args.count_only), args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
