"""Sending capture records out of the pod: a bounded queue, and a sender that never blocks a request.

The proxy offers each record to the `RecordQueue` (O(1); when it holds `queue_size` records the
new one is dropped and counted, reason `queue_full`). One sender task drains it:

- `StoreSender` (the capture store, `POST {url}/v1/records`): batches of up to 1000 records or
  1 MiB, JSONL (`application/x-ndjson`), gzip-compressed, `Authorization: Bearer <token>`.
  The store answers 200 `{"accepted": n}` once the batch is fsynced. 413: the batch is split in
  halves (a single record too large is dropped, `rejected`). 400 names the malformed line
  (`{"line": n}`): that record is dropped (`rejected`) and the rest sent again. 401 and other
  4xx: the batch is dropped (`rejected`). 507 (disk or size cap), 5xx, 429, timeouts and
  connection errors: retried with backoff (0.5 s doubling to 10 s) for up to `give_up` seconds,
  then dropped (`store_unavailable`); meanwhile new records wait in the queue.
- `CloudEventsSender` (spec.gateway.capture.sink.url): one HTTP POST per record in CloudEvents'
  binary mode (the record is the JSON body; the attributes are `ce-` headers), up to eight in
  flight, with the same retry and drop rules (`rejected` for 4xx other than 429).

      ce-specversion: 1.0
      ce-type:        io.llmops.capture.request | io.llmops.capture.feedback
      ce-source:      /llmops/<namespace>/<name>/<revision>    (the revision that answered)
      ce-id:          the request ID (feedback: "<request ID>/feedback/<random>", unique per event
                      even when two replicas take feedback on the same answer)
      ce-subject:     the request ID (the key to join a feedback event to its request event)
      ce-time:        the record's time
      ce-inferenceservicename, ce-namespace, ce-endpoint (the track): the extension attributes
                      KServe's payload logger sets, so its consumers can route our events too

Counters (the PodMonitor adds llmops_deployment): llmops_capture_records_total{revision, track,
kind} for records delivered, llmops_capture_dropped_total{revision, track, reason}.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from llmops.gateway.metrics import GatewayMetrics

__all__ = [
    "CE_TYPE_FEEDBACK",
    "CE_TYPE_REQUEST",
    "CloudEventsSender",
    "Queued",
    "RecordQueue",
    "Sender",
    "StoreSender",
]

log = logging.getLogger("llmops.gateway.capture")

CE_TYPE_REQUEST = "io.llmops.capture.request"
CE_TYPE_FEEDBACK = "io.llmops.capture.feedback"
MAX_BATCH_RECORDS = 1000
MAX_BATCH_BYTES = 1024 * 1024
SINK_CONCURRENCY = 8


@dataclass(frozen=True)
class Queued:
    """A record ready to go: its JSON, and what the counters and CloudEvents headers need."""

    body: bytes
    kind: str
    revision: str
    track: str
    request_id: str
    time: str

    @classmethod
    def of(cls, record: dict[str, Any]) -> Queued:
        return cls(
            json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode(),
            record["kind"],
            record["revision"],
            record["track"],
            record["requestId"],
            record["time"],
        )


class RecordQueue:
    """The bounded queue between the proxy and the sender."""

    def __init__(self, size: int, metrics: GatewayMetrics) -> None:
        self.size = size
        self.metrics = metrics
        self._items: deque[Queued] = deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: Queued) -> bool:
        """Queue `item`, or drop and count it when the queue is full (never waits)."""
        if len(self._items) >= self.size:
            self.metrics.capture_dropped.labels(item.revision, item.track, "queue_full").inc()
            return False
        self._items.append(item)
        self.metrics.capture_queue.set(len(self._items))
        self._ready.set()
        return True

    async def wait(self) -> None:
        """Until the queue holds something."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()

    def take(self, records: int, size: int) -> list[Queued]:
        """Up to `records` items and about `size` bytes (at least one item when not empty)."""
        out: list[Queued] = []
        total = 0
        while self._items and len(out) < records:
            item = self._items[0]
            if out and total + len(item.body) + 1 > size:
                break
            out.append(self._items.popleft())
            total += len(item.body) + 1
        self.metrics.capture_queue.set(len(self._items))
        return out


class Sender(Protocol):
    queue: RecordQueue
    inflight: int

    async def run(self, session: aiohttp.ClientSession) -> None: ...

    async def flush(self) -> None: ...


class _Retry(Exception):
    """A temporary failure: try the same records again after a pause."""


@dataclass
class _Backoff:
    first: float = 0.5
    cap: float = 10.0
    give_up: float = 60.0

    def delay(self, attempt: int) -> float:
        return float(min(self.cap, self.first * 2**attempt))


class _Base:
    def __init__(self, queue: RecordQueue, metrics: GatewayMetrics, backoff: _Backoff | None = None) -> None:
        self.queue = queue
        self.metrics = metrics
        self.backoff = backoff or _Backoff()
        self.inflight = 0
        """Records taken from the queue and not yet delivered or dropped."""
        self._progress = asyncio.Event()
        self._last_warning = 0.0

    async def flush(self) -> None:
        """Until every queued record is delivered or dropped (the caller bounds the wait)."""
        while len(self.queue) or self.inflight:
            self._progress.clear()
            await self._progress.wait()

    def _taken(self, count: int) -> None:
        self.inflight += count

    def _done(self, count: int) -> None:
        self.inflight -= count
        self._progress.set()

    def _sent(self, items: Sequence[Queued]) -> None:
        for item in items:
            self.metrics.capture_records.labels(item.revision, item.track, item.kind).inc()

    def _dropped(self, items: Sequence[Queued], reason: str) -> None:
        for item in items:
            self.metrics.capture_dropped.labels(item.revision, item.track, reason).inc()

    def _warn(self, message: str, *args: Any) -> None:
        """Log at most one warning every 30 s (a store that is down would flood the log)."""
        now = time.monotonic()
        if now - self._last_warning >= 30.0:
            self._last_warning = now
            log.warning(message, *args)

    async def _with_retries(
        self, items: list[Queued], attempt_once: Callable[[list[Queued]], Awaitable[None]]
    ) -> None:
        """Call `attempt_once(items)` until it does not raise _Retry, or give up after
        backoff.give_up seconds and count the items as store_unavailable."""
        deadline = time.monotonic() + self.backoff.give_up
        for attempt in itertools.count():
            try:
                await attempt_once(items)
                return
            except _Retry as exc:
                pause = self.backoff.delay(attempt)
                if time.monotonic() + pause > deadline:
                    self._warn("capture: giving up on %d record(s): %s", len(items), exc)
                    self._dropped(items, "store_unavailable")
                    return
                self._warn("capture: %s; retrying", exc)
                await asyncio.sleep(pause)


def _retryable(status: int) -> bool:
    return status in (429, 507) or status >= 500


class StoreSender(_Base):
    """Batches to the capture store."""

    def __init__(
        self,
        url: str,
        token: str,
        queue: RecordQueue,
        metrics: GatewayMetrics,
        backoff: _Backoff | None = None,
        linger: float = 0.05,
    ) -> None:
        super().__init__(queue, metrics, backoff)
        self.url = url.rstrip("/") + "/v1/records"
        self.token = token
        self.linger = linger
        self._session: aiohttp.ClientSession | None = None

    async def run(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        while True:
            await self.queue.wait()
            if len(self.queue) < MAX_BATCH_RECORDS:
                await asyncio.sleep(self.linger)  # let a batch form under load
            batch = self.queue.take(MAX_BATCH_RECORDS, MAX_BATCH_BYTES)
            self._taken(len(batch))
            try:
                await self._deliver(batch)
            finally:
                self._done(len(batch))

    async def _deliver(self, batch: list[Queued]) -> None:
        pending = [batch]
        while pending:
            items = pending.pop()
            if items:
                await self._with_retries(items, lambda i: self._post(i, pending))

    async def _post(self, items: list[Queued], pending: list[list[Queued]]) -> None:
        assert self._session is not None
        body = b"".join(item.body + b"\n" for item in items)
        # Large batches are compressed in a thread, so the event loop keeps relaying answers.
        if len(body) > 65536:
            compressed = await asyncio.to_thread(gzip.compress, body, 1)
        else:
            compressed = gzip.compress(body, 1)
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/x-ndjson",
            "Content-Encoding": "gzip",
        }
        try:
            async with self._session.post(self.url, data=compressed, headers=headers) as r:
                status = r.status
                answer = await r.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Retry(f"the capture store is unreachable: {type(exc).__name__}") from None
        if status == 200:
            self._sent(items)
        elif _retryable(status):
            raise _Retry(f"the capture store answered {status}: {_message(answer)}")
        elif status == 413 and len(items) > 1:
            half = len(items) // 2
            pending += [items[half:], items[:half]]
        elif status == 400 and (line := _bad_line(answer, len(items))) is not None:
            self._warn("capture: the store refused record %d of a batch: %s", line, _message(answer))
            self._dropped([items[line - 1]], "rejected")
            pending.append(items[: line - 1] + items[line:])
        else:
            self._warn("capture: the store refused a batch with %d: %s", status, _message(answer))
            self._dropped(items, "rejected")


class CloudEventsSender(_Base):
    """One CloudEvent per record to the user's endpoint."""

    def __init__(
        self,
        url: str,
        deployment: str,
        queue: RecordQueue,
        metrics: GatewayMetrics,
        backoff: _Backoff | None = None,
        concurrency: int = SINK_CONCURRENCY,
    ) -> None:
        super().__init__(queue, metrics, backoff)
        self.url = url
        self.namespace, _, self.name = deployment.partition("/")
        self.concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None

    async def run(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        async with asyncio.TaskGroup() as group:
            for _ in range(self.concurrency):
                group.create_task(self._worker())

    async def _worker(self) -> None:
        while True:
            await self.queue.wait()
            for item in self.queue.take(1, MAX_BATCH_BYTES):
                self._taken(1)
                try:
                    await self._with_retries([item], self._post)
                finally:
                    self._done(1)

    def headers(self, item: Queued) -> dict[str, str]:
        """The CloudEvents binary-mode headers of one record."""
        feedback = item.kind == "feedback"
        return {
            "Content-Type": "application/json",
            "ce-specversion": "1.0",
            "ce-type": CE_TYPE_FEEDBACK if feedback else CE_TYPE_REQUEST,
            "ce-source": f"/llmops/{self.namespace}/{self.name}/{item.revision}",
            "ce-id": f"{item.request_id}/feedback/{secrets.token_urlsafe(9)}"
            if feedback
            else item.request_id,
            "ce-subject": item.request_id,
            "ce-time": item.time,
            "ce-inferenceservicename": self.name,
            "ce-namespace": self.namespace,
            "ce-endpoint": item.track,
        }

    async def _post(self, items: list[Queued]) -> None:
        assert self._session is not None
        (item,) = items
        try:
            async with self._session.post(self.url, data=item.body, headers=self.headers(item)) as r:
                status = r.status
                answer = await r.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Retry(f"the capture sink is unreachable: {type(exc).__name__}") from None
        if 200 <= status < 300:
            self._sent(items)
        elif _retryable(status):
            raise _Retry(f"the capture sink answered {status}: {_message(answer)}")
        else:
            self._warn("capture: the sink refused an event with %d: %s", status, _message(answer))
            self._dropped(items, "rejected")


def _message(answer: bytes) -> str:
    return answer[:200].decode(errors="replace").strip()


def _bad_line(answer: bytes, size: int) -> int | None:
    """The 1-based line a 400 names (`{"line": n}`), if it is one of the batch's."""
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        body = json.loads(answer)
        line = body.get("line") if isinstance(body, dict) else None
        if isinstance(line, int) and not isinstance(line, bool) and 1 <= line <= size:
            return line
    return None
