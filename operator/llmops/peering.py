"""Which replica acts, with kopf peering: the pure rule and a cached check of the peering object.

kopf pauses a replica's watches while a live peer with a higher (or the same) priority is in
the peering object, but the operator's own work queue keeps running what is already scheduled
(requeues, resyncs, backoffs), so a paused replica would go on reconciling next to the active
one. Before each pass, the queue asks ``PeeringGate.active``; a paused replica drops the key
(kopf lists everything again when it resumes, which triggers every object).

The peering object keeps one entry per replica in ``status``:
``{identity: {priority, lifetime, lastseen}}`` (kopf's ``Peer``); an entry whose
``lastseen + lifetime`` has passed is dead and ignored, as kopf does.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from llmops.kube import ApiError, Kube

__all__ = ["PeeringGate", "outranked"]

CACHE_SECONDS = 2.0
"""How long one read of the peering object answers for (at most one GET per namespace per this)."""


def outranked(peers: Mapping[str, Mapping[str, Any]], identity: str, priority: int, now: dt.datetime) -> bool:
    """Whether a live peer other than ``identity`` has a priority >= ``priority`` (kopf pauses
    on an equal priority too: two replicas with the same priority both stand still)."""
    for peer, info in peers.items():
        if peer == identity or not isinstance(info, Mapping):
            continue
        try:
            seen = dt.datetime.fromisoformat(str(info["lastseen"]))
            lifetime = dt.timedelta(seconds=int(info.get("lifetime", 60)))
        except (KeyError, TypeError, ValueError):
            continue  # not a peer entry kopf would count either
        if seen.tzinfo is None:
            seen = seen.replace(tzinfo=dt.UTC)
        if seen + lifetime > now and int(info.get("priority", 0)) >= priority:
            return True
    return False


class PeeringGate:
    """Answers "may this replica act in this namespace?" from the peering object, cached briefly."""

    def __init__(
        self,
        kube: Kube,
        *,
        name: str,
        identity: str,
        priority: int,
        clusterwide: bool,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.kube, self.name, self.identity, self.priority = kube, name, identity, priority
        self.clusterwide = clusterwide
        self.clock = clock
        self._cache: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def _path(self, namespace: str) -> str:
        if self.clusterwide:
            return f"/apis/kopf.dev/v1/clusterkopfpeerings/{self.name}"
        return f"/apis/kopf.dev/v1/namespaces/{namespace}/kopfpeerings/{self.name}"

    def active(self, namespace: str) -> bool:
        key = "" if self.clusterwide else namespace
        with self._lock:
            cached = self._cache.get(key)
        if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        try:
            body = self.kube.read(self._path(namespace)) or {}
        except ApiError:
            # Unreadable: kopf cannot see its peers either, and pauses only on what it has seen.
            return cached[1] if cached else True
        answer = not outranked(body.get("status") or {}, self.identity, self.priority, self.clock())
        with self._lock:
            self._cache[key] = (time.monotonic(), answer)
        return answer
