"""The work queue: one pass per key at a time, coalesced triggers, scheduled passes, backoff.

Time is a `FakeTimer`: the tests move it explicitly, so "nothing happened before the deadline"
is asserted exactly, without sleeping, and the file runs in milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable

import pytest

from llmops import handlers
from llmops.workqueue import ERROR_BACKOFF, MonotonicTimer, WorkQueue
from testkit.fake_time import FakeTimer, settle

Process = Callable[[Hashable], Awaitable[float | None]]


@pytest.fixture
def timer() -> FakeTimer:
    return FakeTimer(start=1000.0)


@pytest.fixture
def calls() -> list[Hashable]:
    return []


@pytest.fixture
async def started(timer: FakeTimer) -> AsyncIterator[Callable[[Process, int], WorkQueue]]:
    """Start queues on the fake timer; stop them after the test."""
    queues: list[WorkQueue] = []

    def start(process: Process, workers: int = 1) -> WorkQueue:
        q = WorkQueue(process, workers=workers, timer=timer)
        q.start()
        queues.append(q)
        return q

    yield start
    for q in queues:
        await q.stop()


def recording(calls: list[Hashable], delays: dict[Hashable, list[float | None]] | None = None) -> Process:
    """A processor that records each key and returns the next requeue delay listed for it."""

    async def process(key: Hashable) -> float | None:
        calls.append(key)
        pending = (delays or {}).get(key)
        return pending.pop(0) if pending else None

    return process


async def test_a_key_is_never_processed_twice_at_once_and_triggers_coalesce(started, calls) -> None:
    running: set[Hashable] = set()
    overlaps = 0
    release = asyncio.Event()

    async def process(key: Hashable) -> float | None:
        nonlocal overlaps
        overlaps += key in running
        running.add(key)
        calls.append(key)
        if len(calls) == 1:
            await release.wait()
        running.discard(key)
        return None

    q = started(process, 4)
    q.trigger("a")
    await settle()
    assert calls == ["a"]
    for _ in range(10):  # ten triggers while "a" is being processed ...
        q.trigger("a")
    await settle()
    assert calls == ["a"]  # ... none starts a second pass beside the first ...
    release.set()
    await settle()
    assert calls == ["a", "a"]  # ... and together they make exactly one more pass
    assert overlaps == 0


async def test_keys_are_processed_concurrently(started) -> None:
    started_keys: list[Hashable] = []
    gate = asyncio.Event()

    async def process(key: Hashable) -> float | None:
        started_keys.append(key)
        await gate.wait()
        return None

    q = started(process, 2)
    q.trigger("a")
    q.trigger("b")
    q.trigger("c")
    await settle()
    assert sorted(started_keys) == ["a", "b"]  # two workers: the third key waits for one
    gate.set()
    await settle()
    assert sorted(started_keys) == ["a", "b", "c"]


async def test_requeue_after_runs_at_the_deadline_not_before(started, timer, calls) -> None:
    q = started(recording(calls, {"a": [60.0]}))
    q.trigger("a")
    await settle()
    assert calls == ["a"]
    await timer.advance(59.9)
    assert calls == ["a"]  # scheduled for +60 s
    await timer.advance(0.1)
    assert calls == ["a", "a"]
    await timer.advance(3600)
    assert calls == ["a", "a"]  # the second pass asked for no requeue


async def test_an_earlier_trigger_wins_and_drops_the_schedule(started, timer, calls) -> None:
    q = started(recording(calls, {"a": [60.0]}))
    q.trigger("a")
    await settle()
    await timer.advance(10)
    q.trigger("a")  # an event arrives before the requeue
    await settle()
    assert calls == ["a", "a"]
    await timer.advance(120)
    assert calls == ["a", "a"]  # the stale schedule for "a" was dropped


async def test_the_earliest_schedule_wins(started, timer, calls) -> None:
    q = started(recording(calls))
    q.schedule("a", 30)
    q.schedule("a", 10)  # earlier: replaces the +30 s
    q.schedule("a", 20)  # later than the pending +10 s: ignored
    await timer.advance(9)
    assert calls == []
    await timer.advance(1)
    assert calls == ["a"]
    await timer.advance(60)
    assert calls == ["a"]  # one pass, not one per schedule


async def test_a_zero_or_negative_delay_runs_at_once(started, calls) -> None:
    q = started(recording(calls))
    q.schedule("a", 0)
    q.schedule("b", -5)
    await settle()
    assert sorted(calls) == ["a", "b"]


async def test_a_failing_key_backs_off_and_does_not_stop_the_others(started, timer, calls) -> None:
    async def process(key: Hashable) -> float | None:
        calls.append(key)
        if key == "bad":
            raise RuntimeError("boom")
        return None

    q = started(process)
    q.trigger("bad")
    q.trigger("good")
    await settle()
    assert calls == ["bad", "good"]
    await timer.advance(ERROR_BACKOFF - 1)
    assert calls == ["bad", "good"]
    await timer.advance(1)
    assert calls == ["bad", "good", "bad"]  # retried after the backoff


async def test_the_real_timer_wakes_on_the_event_before_its_timeout() -> None:
    event = asyncio.Event()
    event.set()
    real = MonotonicTimer()
    before = real.now()
    async with asyncio.timeout(5):
        await real.wait(event, seconds=3600)
    assert real.now() >= before


async def test_with_coalesce_a_burst_after_a_pass_makes_one_more_pass_and_a_quiet_key_runs_at_once(
    timer, calls
) -> None:
    """The operator's queue (coalesce=COALESCE_SECONDS): the first event runs its pass at once;
    the echoes of that pass's writes, arriving within the window after it, make one pass at the
    window's end, not one each; an event after a quiet moment runs at once again."""
    window = handlers.COALESCE_SECONDS
    q = WorkQueue(recording(calls), workers=1, timer=timer, coalesce=window)
    q.start()
    try:
        q.trigger("chat")
        await settle()
        assert calls == ["chat"]  # nothing before it: at once
        for _ in range(5):  # four children applied and the status written, echoed by the watches
            q.trigger("chat")
            await timer.advance(window / 10)
        assert calls == ["chat"]
        await timer.advance(window)
        assert calls == ["chat", "chat"]  # the five echoes: one pass
        await timer.advance(3600)
        assert calls == ["chat", "chat"]  # nothing else came: no third pass
        q.trigger("chat")
        q.trigger("other")
        await settle()
        assert calls[2:] == ["chat", "other"]  # quiet for long enough: at once
    finally:
        await q.stop()


async def test_with_coalesce_a_trigger_during_a_pass_waits_the_window_after_it(timer, calls) -> None:
    gate = asyncio.Event()

    async def slow(key: Hashable) -> float | None:
        calls.append(key)
        if len(calls) == 1:
            await gate.wait()
        return None

    q = WorkQueue(slow, workers=1, timer=timer, coalesce=1.0)
    q.start()
    try:
        q.trigger("a")
        await settle()
        q.trigger("a")  # during the pass
        gate.set()
        await settle()
        assert calls == ["a"]
        await timer.advance(0.9)
        assert calls == ["a"]
        await timer.advance(0.1)
        assert calls == ["a", "a"]
    finally:
        await q.stop()


async def test_with_coalesce_the_end_times_of_keys_long_quiet_are_swept(timer, calls) -> None:
    """Each key's last end is kept for its window only: the keys of deleted objects do not pile up."""
    q = WorkQueue(recording(calls), workers=4, timer=timer, coalesce=1.0)
    q.start()
    try:
        for i in range(1100):
            q.trigger(i)
            if i == 999:
                await settle()
                await timer.advance(2.0)  # the first thousand's windows are over
        await settle()
        assert len(calls) == 1100
        assert len(q._finished) <= 100  # swept when it passed 1,024: only the last hundred are recent
    finally:
        await q.stop()
