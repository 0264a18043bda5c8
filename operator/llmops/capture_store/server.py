"""The capture store's two HTTP servers: the records API and the health port.

API port (the Service `<name>-capture`, port 8080), every route behind
`Authorization: Bearer <capture token>` (compared in constant time; 401 otherwise):

    POST /v1/records   a JSONL batch (Content-Type application/x-ndjson, optionally
                       Content-Encoding gzip) → 200 {"accepted": n} once written and fsynced;
                       400 naming the line and field of a malformed record (nothing is written);
                       413 past --max-batch-bytes (compressed or not); 507 when the size cap or a
                       full volume refuses it (nothing is written, existing segments intact)
    GET /v1/records    ?since=&until=&revision=&feedback=&split=&fraction= → the request records, streamed as JSONL,
                       each with the latest feedback on it merged in as `feedback` (or null)
    GET /v1/terms      ?since=&until=&revision=&buckets= → {"buckets", "prompts", "counts"}: the
                       hashed-term histogram of the prompts in that window (capture_store.terms),
                       for the operator's prompt-content drift signal

Health port: /healthz (the process), /ready (the segments are loaded), /metrics.

Durability with throughput: a batch is acknowledged only after fsync, but fsyncs are shared.
Handlers queue their compressed members and wait; one committer takes everything queued,
appends it in a worker thread, fsyncs each touched file once and then answers every waiting
handler. While it syncs, new batches queue up for the next round, so under concurrency one
fsync covers many batches (`group_commit=False` syncs batch by batch, for the benchmark).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from llmops.capture_store.metrics import StoreMetrics
from llmops.capture_store.records import Record, RecordError, parse_batch, parse_query
from llmops.capture_store.segments import SegmentKey, Segments, StoreFull, compress, read_records
from llmops.capture_store.terms import parse_terms_query, term_histogram

__all__ = ["CaptureStore", "StoreConfig"]

log = logging.getLogger("llmops.capture_store")
_STREAM_LINES = 512
_REFUSALS = {"size": "size_cap", "disk": "disk_full"}


@dataclass(frozen=True)
class StoreConfig:
    """What a store needs to know (flags of `llmops capture-store`)."""

    data_dir: Path
    token: bytes
    max_bytes: int
    """The size cap (spec.gateway.capture.maxSize)."""
    retention: dt.timedelta
    max_batch_bytes: int = 16 * 1024 * 1024
    """Largest batch body, compressed or decompressed."""
    sweep_interval: float = 30.0
    """Seconds between retention sweeps."""
    group_commit: bool = True


@dataclass
class _Pending:
    batch: list[tuple[SegmentKey, bytes]]
    counts: dict[str, int]
    size: int
    done: asyncio.Future[BaseException | None]


class CaptureStore:
    """The store: segments on disk, the committer, the sweeper and the two servers."""

    def __init__(self, config: StoreConfig, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.config = config
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.metrics = StoreMetrics()
        self.metrics.max_bytes.set(config.max_bytes)
        self.segments = Segments(config.data_dir, config.max_bytes, config.retention)
        # The committer's own thread: in the default executor it would queue behind the handlers'
        # parsing and compression, and every waiting batch would wait for those too.
        self._commit_thread = ThreadPoolExecutor(1, thread_name_prefix="capture-commit")
        self._lock = threading.Lock()
        """Serialises the committer and the sweeper (both mutate `segments`, in worker threads)."""
        self._queue: list[_Pending] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._runners: list[web.AppRunner] = []
        self._gauges()

    # -- servers -------------------------------------------------------------------------------

    def api_app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_batch_bytes + 1)
        app.router.add_post("/v1/records", self._post)
        app.router.add_get("/v1/records", self._get)
        app.router.add_get("/v1/terms", self._terms)
        return app

    def health_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/ready", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self, host: str, port: int, health_port: int) -> tuple[str, str]:
        """Sweep once, start the committer and sweeper, then listen; returns both base URLs."""
        await asyncio.to_thread(self._sweep)
        self._tasks = [
            asyncio.create_task(self._committer(), name="committer"),
            asyncio.create_task(self._sweeper(), name="sweeper"),
        ]
        urls = []
        for app, wanted in ((self.api_app(), port), (self.health_app(), health_port)):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, host, wanted)
            await site.start()
            self._runners.append(runner)
            bound = runner.addresses[0][1]
            urls.append(f"http://{host}:{bound}")
        return urls[0], urls[1]

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._commit_thread.shutdown(wait=True)
        with self._lock:
            self.segments.close()

    # -- handlers ------------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.config.token)

    def _refuse(self, status: int, counted_as: str, message: str, **extra: Any) -> web.Response:
        self.metrics.refused.labels(counted_as).inc()
        return web.json_response({"error": message, **extra}, status=status)

    async def _post(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._refuse(401, "unauthorized", "missing or invalid bearer token")
        limit = self.config.max_batch_bytes
        if request.content_length is not None and request.content_length > limit:
            return self._refuse(413, "too_large", f"the batch is larger than {limit} bytes")
        try:
            # aiohttp inflates a gzip body itself, and counts the inflated bytes against the limit.
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(413, "too_large", f"the batch is larger than {limit} bytes (decompressed)")
        try:
            records, batch = await asyncio.to_thread(self._prepare, body)
        except RecordError as exc:
            return self._refuse(400, "malformed", str(exc), line=exc.line, field=exc.field)
        if not records:
            return web.json_response({"accepted": 0})
        counts: dict[str, int] = {}
        for rec in records:
            counts[rec.kind] = counts.get(rec.kind, 0) + 1
        pending = _Pending(
            batch, counts, sum(len(m) for _, m in batch), asyncio.get_running_loop().create_future()
        )
        self._queue.append(pending)
        self._wake.set()
        outcome = await pending.done
        if isinstance(outcome, StoreFull):
            return self._refuse(507, _REFUSALS[outcome.reason], str(outcome), reason=outcome.reason)
        if outcome is not None:
            log.error("writing a batch failed: %s", outcome)
            return self._refuse(500, "error", f"writing failed: {outcome}")
        return web.json_response({"accepted": len(records)})

    def _prepare(self, body: bytes) -> tuple[list[Record], list[tuple[SegmentKey, bytes]]]:
        """Validate and group the batch, one gzip member per segment (worker thread)."""
        records = parse_batch(body)
        grouped: dict[SegmentKey, list[bytes]] = {}
        for rec in records:
            grouped.setdefault(SegmentKey.of(rec), []).append(rec.line)
        return records, [(key, compress(lines)) for key, lines in sorted(grouped.items())]

    async def _get(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self._refuse(401, "unauthorized", "missing or invalid bearer token")
        try:
            query = parse_query(request.query)
        except RecordError as exc:
            return web.json_response({"error": str(exc), "field": exc.field}, status=400)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        lines = read_records(self.config.data_dir, query)
        while chunk := await asyncio.to_thread(_take, lines, _STREAM_LINES):
            self.metrics.reads.inc(len(chunk))
            await response.write(b"".join(chunk))
        await response.write_eof()
        return response

    async def _terms(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._refuse(401, "unauthorized", "missing or invalid bearer token")
        try:
            query, buckets = parse_terms_query(request.query)
        except RecordError as exc:
            return web.json_response({"error": str(exc), "field": exc.field}, status=400)
        histogram = await asyncio.to_thread(term_histogram, self.config.data_dir, query, buckets)
        return web.json_response(histogram.as_json())

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.exposition(), content_type="text/plain")

    # -- committer and sweeper -----------------------------------------------------------------

    async def _committer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                take = len(self._queue) if self.config.group_commit else 1
                group, self._queue = self._queue[:take], self._queue[take:]
                try:
                    loop = asyncio.get_running_loop()
                    outcomes = await loop.run_in_executor(self._commit_thread, self._commit, group)
                except BaseException as exc:  # a bug: answer every waiter rather than hang them
                    outcomes = [exc] * len(group)
                for pending, outcome in zip(group, outcomes, strict=True):
                    if not pending.done.done():
                        pending.done.set_result(outcome)

    def _commit(self, group: list[_Pending]) -> list[BaseException | None]:
        """Append every batch of the group, then fsync each touched file once (worker thread)."""
        outcomes: list[BaseException | None] = []
        fds: list[int] = []
        with self._lock:
            for pending in group:
                try:
                    touched, deleted = self.segments.write(pending.batch)
                except (StoreFull, OSError) as exc:
                    outcomes.append(exc)
                    continue
                fds += touched
                self.metrics.deleted.labels("size_cap").inc(len(deleted))
                outcomes.append(None)
            started = time.perf_counter()
            try:
                self.segments.sync(fds)
            except OSError as exc:
                return [o if o is not None else exc for o in outcomes]
            self.metrics.fsync.observe(time.perf_counter() - started)
            self.metrics.group.observe(len(group))
            for pending, outcome in zip(group, outcomes, strict=True):
                if outcome is None:
                    for kind, n in pending.counts.items():
                        self.metrics.records.labels(kind).inc(n)
                    self.metrics.bytes.inc(pending.size)
            self._gauges()
        return outcomes

    def _sweep(self) -> None:
        with self._lock:
            gone = self.segments.sweep(self.clock())
            self.metrics.deleted.labels("retention").inc(len(gone))
            self._gauges()
        for key in gone:
            log.info("retention: deleted %s", key.relpath)

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_interval)
            try:
                await asyncio.to_thread(self._sweep)
            except OSError as exc:
                log.warning("retention sweep failed: %s", exc)

    def _gauges(self) -> None:
        self.metrics.segments.set(len(self.segments.sizes))
        self.metrics.stored.set(self.segments.total_bytes)
        discarded = self.segments.discarded_bytes
        if discarded:
            self.metrics.discarded.inc(discarded)
            self.segments.discarded_bytes = 0


def _take(lines: Iterator[bytes], n: int) -> list[bytes]:
    out = []
    for line in lines:
        out.append(line)
        if len(out) >= n:
            break
    return out
