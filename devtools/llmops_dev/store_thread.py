"""Run an `llmops.capture_store.CaptureStore` on its own event loop in a thread (unit tests,
benchmarks): the counterpart of `gateway_thread` for the capture store."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from llmops.capture_store import CaptureStore

__all__ = ["run_store_in_thread"]


@contextlib.contextmanager
def run_store_in_thread(store: CaptureStore, host: str = "127.0.0.1") -> Iterator[tuple[str, str]]:
    """Serve `store` on free ports of `host`; yields (API URL, health URL)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="capture-store", daemon=True)
    thread.start()
    try:
        urls = asyncio.run_coroutine_threadsafe(store.start(host, 0, 0), loop).result(timeout=30)
        try:
            yield urls
        finally:
            asyncio.run_coroutine_threadsafe(store.stop(), loop).result(timeout=30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
