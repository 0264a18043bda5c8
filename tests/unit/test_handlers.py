"""The kopf wiring: every handler that can touch the work queue runs on the event loop.

kopf runs a plain (synchronous) handler in a thread pool; the work queue is an asyncio.Queue,
which must only be used from the loop's own thread. A synchronous handler calling
``queue.trigger`` from a worker thread wakes no waiting worker, so a trigger could sit in the
queue until some other event happened to run the loop (found by ``make bench-scale``).
"""

from __future__ import annotations

import inspect

import kopf

import llmops.handlers  # noqa: F401 - registers the handlers


def _our_handlers() -> list[tuple[str, object]]:
    registry = kopf.get_default_registry()
    handlers = [
        *registry._watching.get_all_handlers(),
        *registry._indexing.get_all_handlers(),
        *registry._activities.get_all_handlers(),
    ]
    return [(h.id, h.fn) for h in handlers if getattr(h.fn, "__module__", "") == "llmops.handlers"]


def test_every_handler_is_a_coroutine() -> None:
    handlers = _our_handlers()
    assert {"llmdeployment_event", "optional_api_event", "llmdeployment_keys"} <= {hid for hid, _ in handlers}
    sync = [hid for hid, fn in handlers if not inspect.iscoroutinefunction(fn)]
    assert sync == [], f"handlers kopf would run in a thread, off the work queue's loop: {sync}"
