"""Run one of the operator image's servers (the gateway, the capture store) until SIGTERM.

Both programs are an aiohttp server object with ``start(host, port, health_port)`` (returning
the two URLs it listens on) and ``stop()`` (which answers what is in flight first). This is
their shared ``main`` body: build the server from the flags, where a ``UsageError`` is a
message and exit status 2 rather than a traceback, then serve until SIGTERM or SIGINT, the
signals a kubelet and a terminal send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from typing import Protocol, TypeVar

import uvloop

__all__ = ["Server", "UsageError", "run_until_signalled"]


class UsageError(Exception):
    """Flags (or the files they name) that cannot make a server: the message says which."""


class Server(Protocol):
    async def start(self, host: str, port: int, health_port: int) -> tuple[str, str]: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=Server)


async def _serve(
    server: Server, host: str, port: int, health_port: int, started: Callable[[str, str], None]
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    url, health = await server.start(host, port, health_port)
    started(url, health)
    try:
        await stop.wait()
    finally:
        await server.stop()


def run_until_signalled(
    program: str,
    build: Callable[[], S],
    address: tuple[str, int, int],
    started: Callable[[S, str, str], None],
    *,
    fast_loop: bool = False,
) -> int:
    """Exit status of ``program``: 2 when ``build`` raises UsageError, else 0 after serving on
    ``address`` (host, port, health port) until a signal; ``started`` logs where it listens.
    ``fast_loop``: serve on uvloop, for a server whose every request is event-loop work (the
    gateway: two sockets and a few tasks per request, for about an eighth less CPU)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        server = build()
    except UsageError as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        return 2
    with asyncio.Runner(loop_factory=uvloop.new_event_loop if fast_loop else None) as runner:
        runner.run(_serve(server, *address, lambda url, health: started(server, url, health)))
    return 0
