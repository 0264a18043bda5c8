"""The imperative shell of one reconcile pass: observe → plan → act.

    read the LLMDeployment and its children (kube.py) → plan() (pure) →
    apply / delete children → patch status once, only if it changed → post events

Errors are sorted: a transient API failure (5xx, 409, 429, connection) is retried with
backoff via the work queue; anything else is reported in status and retried slowly. One
object's failure never touches another's pass.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Hashable

from llmops.api import conditions as c
from llmops.kube import ApiError, Kube
from llmops.lifecycle.conditions import set_condition
from llmops.lifecycle.plan import plan

__all__ = ["Reconciler"]

log = logging.getLogger("llmops.reconciler")
_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
RESYNC_SECONDS = 300.0
"""A pass at least this often even without events: cheap, and it bounds any missed event."""


class Reconciler:
    """Runs passes for (namespace, name) keys; safe to call from a work queue."""

    def __init__(self, kube: Kube, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.kube = kube
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._failures: dict[Hashable, int] = {}

    async def __call__(self, key: Hashable) -> float | None:
        namespace, name = key  # type: ignore[misc]
        try:
            delay = await asyncio.to_thread(self.reconcile, namespace, name)
        except ApiError as exc:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
            delay = _BACKOFF[min(n, len(_BACKOFF) - 1)]
            log.warning(
                "%s/%s: API error (%s), retrying in %.0fs: %s", namespace, name, exc.status, delay, exc
            )
            if not exc.transient:
                await asyncio.to_thread(self._report, namespace, name, str(exc))
            return delay
        self._failures.pop(key, None)
        return delay

    def reconcile(self, namespace: str, name: str) -> float | None:
        """One pass. Returns seconds until the next pass is wanted (None: the object is gone)."""
        body = self.kube.get_llmd(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None  # owner references garbage-collect the children
        obs = self.kube.observe(namespace, name, time.monotonic())
        now = self.clock()
        result = plan(body, obs, now)
        for obj in result.apply:
            log.info("%s/%s: apply %s %s", namespace, name, obj["kind"], obj["metadata"]["name"])
            self.kube.apply(obj)
        for kind, child in result.delete:
            log.info("%s/%s: delete %s %s", namespace, name, kind, child)
            self.kube.delete(kind, namespace, child)
        if result.status_changed:
            old = body.get("status") or {}
            patch = {k: v for k, v in result.status.items() if old.get(k) != v}
            patch.update({k: None for k in old if k not in result.status})
            self.kube.patch_status(namespace, name, patch)
        for ev in result.events:
            self.kube.event(body, ev.type, ev.reason, ev.message, now)
        # Applying children changes what we observe: look again soon rather than wait for events.
        if result.apply or result.delete:
            return 1.0
        if not result.status_changed:
            log.info("%s/%s: pass: nothing to change", namespace, name)
        return result.requeue_after or RESYNC_SECONDS

    def _report(self, namespace: str, name: str, message: str) -> None:
        """Record a non-transient error in status (best effort)."""
        try:
            body = self.kube.get_llmd(namespace, name)
            if body is None:
                return
            conds = set_condition(
                list((body.get("status") or {}).get("conditions") or []),
                c.PROGRESSING,
                c.FALSE,
                c.RECONCILE_ERROR,
                message[:1000],
                generation=body["metadata"].get("generation"),
                now=self.clock(),
            )
            self.kube.patch_status(namespace, name, {"conditions": conds})
        except ApiError:
            log.exception("%s/%s: could not report the error in status", namespace, name)
