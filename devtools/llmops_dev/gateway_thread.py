"""Run an `llmops.gateway.Gateway` on its own event loop in a thread (unit tests, benchmarks).

The counterpart of `llmops_dev.tgisim.run_in_thread`: the test or benchmark stays synchronous
(httpx, the real huggingface_hub client) while the gateway serves from a daemon thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from llmops.gateway import Gateway

__all__ = ["run_gateway_in_thread"]


@contextlib.contextmanager
def run_gateway_in_thread(gateway: Gateway, host: str = "127.0.0.1") -> Iterator[tuple[str, str]]:
    """Serve `gateway` on free ports of `host`; yields (API URL, health URL)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="gateway", daemon=True)
    thread.start()
    try:
        urls = asyncio.run_coroutine_threadsafe(gateway.start(host, 0, 0), loop).result(timeout=30)
        try:
            yield urls
        finally:
            asyncio.run_coroutine_threadsafe(gateway.stop(), loop).result(timeout=30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
