"""The work queue: one pass per key at a time, coalesced triggers, scheduled passes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable

from llmops.workqueue import WorkQueue


async def _until(predicate: Callable[[], bool]) -> None:
    """Wait for a condition, with a deadline."""
    async with asyncio.timeout(5):
        while not predicate():  # noqa: ASYNC110 - polls a plain condition, not an awaitable
            await asyncio.sleep(0.001)


async def test_a_key_is_never_processed_twice_at_once_and_triggers_coalesce() -> None:
    running: set[Hashable] = set()
    overlaps = 0
    calls: list[Hashable] = []
    release = asyncio.Event()

    async def process(key: Hashable) -> float | None:
        nonlocal overlaps
        if key in running:
            overlaps += 1
        running.add(key)
        calls.append(key)
        if len(calls) == 1:
            await release.wait()
        running.discard(key)
        return None

    q = WorkQueue(process, workers=4)
    q.start()
    try:
        q.trigger("a")
        await _until(lambda: calls == ["a"])
        for _ in range(10):  # ten triggers while "a" is being processed ...
            q.trigger("a")
        release.set()
        await _until(lambda: len(calls) == 2)  # ... make exactly one more pass
        await asyncio.sleep(0.05)
        assert calls == ["a", "a"]
        assert overlaps == 0
    finally:
        await q.stop()


async def test_keys_are_processed_concurrently() -> None:
    started: list[Hashable] = []
    gate = asyncio.Event()

    async def process(key: Hashable) -> float | None:
        started.append(key)
        await gate.wait()
        return None

    q = WorkQueue(process, workers=2)
    q.start()
    try:
        q.trigger("a")
        q.trigger("b")
        await _until(lambda: sorted(started) == ["a", "b"])
        gate.set()
    finally:
        await q.stop()


async def test_requeue_after_and_earlier_trigger_wins() -> None:
    now = [0.0]
    calls: list[Hashable] = []

    async def process(key: Hashable) -> float | None:
        calls.append(key)
        return 60.0 if len(calls) == 1 else None

    q = WorkQueue(process, workers=1, clock=lambda: now[0])
    q.start()
    try:
        q.trigger("a")
        await _until(lambda: len(calls) == 1)
        await asyncio.sleep(0.02)
        assert len(calls) == 1  # scheduled for t=60, the clock says 0
        q.trigger("a")  # an event arrives first
        await _until(lambda: len(calls) == 2)
        now[0] = 120.0
        q.schedule("b", 0)
        await _until(lambda: "b" in calls)
        await asyncio.sleep(0.02)
        assert calls.count("a") == 2  # the stale schedule for "a" was dropped
    finally:
        await q.stop()


async def test_a_failing_key_does_not_stop_the_others() -> None:
    calls: list[Hashable] = []

    async def process(key: Hashable) -> float | None:
        calls.append(key)
        if key == "bad":
            raise RuntimeError("boom")
        return None

    q = WorkQueue(process, workers=1)
    q.start()
    try:
        q.trigger("bad")
        q.trigger("good")
        await _until(lambda: "good" in calls)
    finally:
        await q.stop()
