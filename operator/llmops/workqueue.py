"""A small work queue with controller-runtime's guarantees, for kopf events.

- A key is never processed by two workers at once.
- Triggers that arrive while a key is being processed coalesce into one more pass after it.
- A key can be scheduled for later (requeue-after, or backoff after an error); an earlier
  trigger wins over a later schedule.
- With ``coalesce`` (seconds), a key's passes start at least that long after the previous one
  ended: a trigger after a quiet moment runs at once, and the triggers that come during a pass
  or within that window after it make one pass at its end (a pass's own writes come back as a
  burst of watch events; each used to make a pass that found nothing to do).

Only scheduling lives here, in memory; everything a pass decides lives in the object's status.
Time comes from a `Timer` (real by default): tests pass a fake one and move time explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

__all__ = ["MonotonicTimer", "Timer", "WorkQueue"]

log = logging.getLogger("llmops.workqueue")

K = TypeVar("K", bound=Hashable)
"""A key of the queue (the operator's is (namespace, name))."""

# Backoff after a pass raised: the processor reports its own errors, the queue only retries.
ERROR_BACKOFF = 30.0


class Timer(Protocol):
    """Where the queue's time comes from."""

    def now(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    async def wait(self, event: asyncio.Event, seconds: float | None) -> None:
        """Return when ``event`` is set or ``seconds`` (None: forever) have passed."""
        ...


class MonotonicTimer:
    """Real time: ``time.monotonic`` and asyncio's timeouts."""

    def now(self) -> float:
        return time.monotonic()

    async def wait(self, event: asyncio.Event, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)


class WorkQueue(Generic[K]):
    """Run ``process(key)`` for triggered keys on ``workers`` concurrent workers."""

    def __init__(
        self,
        process: Callable[[K], Awaitable[float | None]],
        *,
        workers: int = 4,
        timer: Timer | None = None,
        coalesce: float = 0.0,
    ) -> None:
        self._process = process
        self._workers = workers
        self._coalesce = coalesce
        self._finished: dict[K, float] = {}
        """When each key's last pass ended (with ``coalesce`` only; swept of the expired ones
        whenever it doubles, so deleted objects' keys do not pile up)."""
        self._sweep_at = 1024
        self._time = timer or MonotonicTimer()
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._seq = 0
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def trigger(self, key: K) -> None:
        """Process ``key`` as soon as possible (once, however often it is triggered); with
        ``coalesce``, not before that long after its last pass ended."""
        if key in self._active:
            self._due.pop(key, None)
            self._dirty.add(key)
            return
        if key in self._queued:
            self._due.pop(key, None)  # it runs soon anyway
            return
        if (wait := self._quiet_left(key)) > 0:
            self.schedule(key, wait)
            return
        self._due.pop(key, None)
        self._queued.add(key)
        self._ready.put_nowait(key)

    def _quiet_left(self, key: K) -> float:
        """Seconds until ``key``'s coalescing window after its last pass is over (<= 0: it is)."""
        finished = self._finished.get(key)
        return 0.0 if finished is None else finished + self._coalesce - self._time.now()

    def schedule(self, key: K, delay: float) -> None:
        """Process ``key`` after ``delay`` seconds unless something triggers it earlier."""
        due = self._time.now() + max(0.0, delay)
        if key in self._queued or (key in self._due and self._due[key] <= due):
            return
        self._due[key] = due
        self._seq += 1
        # The timer sleeps until the earliest due time: wake it only for an earlier one. Each
        # wake-up costs a task (asyncio.wait_for), and with ``coalesce`` most watch events
        # schedule a key for the end of its window, later than what the timer waits for.
        if not self._delayed or due < self._delayed[0][0]:
            self._wakeup.set()
        heapq.heappush(self._delayed, (due, self._seq, key))

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker(i)) for i in range(self._workers)]
        self._tasks.append(asyncio.create_task(self._timer()))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _timer(self) -> None:
        while True:
            now = self._time.now()
            while self._delayed and self._delayed[0][0] <= now:
                due, _, key = heapq.heappop(self._delayed)
                if self._due.get(key) == due:
                    self.trigger(key)
            timeout = self._delayed[0][0] - now if self._delayed else None
            self._wakeup.clear()
            await self._time.wait(self._wakeup, seconds=timeout)

    async def _worker(self, index: int) -> None:
        while True:
            key = await self._ready.get()
            self._queued.discard(key)
            self._active.add(key)
            try:
                delay = await self._process(key)
            except asyncio.CancelledError:
                raise
            except Exception:  # the processor reports its own errors; never let one key stop a worker
                log.exception("processing %s failed", key)
                delay = ERROR_BACKOFF
            finally:
                self._active.discard(key)
                if self._coalesce > 0:
                    self._ended(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self.trigger(key)
            elif delay is not None:
                self.schedule(key, delay)

    def _ended(self, key: K) -> None:
        now = self._time.now()
        self._finished[key] = now
        if len(self._finished) > self._sweep_at:
            self._finished = {k: t for k, t in self._finished.items() if t + self._coalesce > now}
            self._sweep_at = max(1024, 2 * len(self._finished))
