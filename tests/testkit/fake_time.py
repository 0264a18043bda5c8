"""A fake `llmops.workqueue.Timer`: time stands still until a test calls `advance()`."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["FakeTimer", "settle"]


class FakeTimer:
    """Time that moves only when told: `now()` is what `advance()` made it, and `wait()` returns
    when its event is set or when `advance()` passes its deadline, never on its own."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    async def wait(self, event: asyncio.Event, seconds: float | None) -> None:
        if seconds is None:
            await event.wait()
            return
        deadline: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sleeper = (self._now + seconds, deadline)
        self._sleepers.append(sleeper)
        woken = asyncio.ensure_future(event.wait())
        try:
            if seconds <= 0:
                deadline.set_result(None)
            first: set[asyncio.Future[Any]] = {deadline, woken}
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await woken
            self._sleepers.remove(sleeper)

    async def advance(self, seconds: float) -> None:
        """Move time forward, wake every waiter whose deadline has come, and let them run."""
        self._now += seconds
        for due, deadline in self._sleepers:
            if due <= self._now and not deadline.done():
                deadline.set_result(None)
        await settle()


async def settle(rounds: int = 100) -> None:
    """Run every task that can run until all of them wait again (on an event, a queue or the fake
    timer). Nothing here waits on real time, so after this nothing more happens until the test
    acts: asserting "nothing happened" is then exact, not a race against a sleep."""
    for _ in range(rounds):
        await asyncio.sleep(0)  # a yield to the event loop, no time passes
