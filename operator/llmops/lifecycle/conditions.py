"""The one condition helper: set a condition the way Kubernetes API conventions ask.

It stamps ``observedGeneration``, keeps ``lastTransitionTime`` unless the status flips,
truncates times to seconds, and keeps a fixed order (Available first) so that a pass that
changes nothing produces a byte-identical list and therefore no status write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from llmops.api import conditions as c

__all__ = ["ORDER", "find", "is_true", "set_condition", "timestamp"]

ORDER: tuple[str, ...] = (c.AVAILABLE, c.PROGRESSING, c.DEGRADED, c.MODEL_CACHED, c.EVALUATED, c.PROMOTED)


def timestamp(now: dt.datetime) -> str:
    """RFC 3339 in UTC, truncated to seconds (metav1.Time's precision)."""
    return now.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def find(conditions: Iterable[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    return next((cond for cond in conditions if cond.get("type") == type_), None)


def is_true(conditions: Iterable[Mapping[str, Any]], type_: str) -> bool:
    cond = find(conditions, type_)
    return cond is not None and cond.get("status") == c.TRUE


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Return ``conditions`` with ``type_`` set; the input list is not modified."""
    old = find(conditions, type_)
    changed = old is None or old.get("status") != status
    new = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": timestamp(now)
        if changed or not old.get("lastTransitionTime")
        else old["lastTransitionTime"],
    }
    if generation is None:
        del new["observedGeneration"]
    rest = [dict(cond) for cond in conditions if cond.get("type") != type_]
    return sorted([*rest, new], key=_order_key)


def _order_key(cond: Mapping[str, Any]) -> tuple[int, str]:
    t = str(cond.get("type", ""))
    return (ORDER.index(t) if t in ORDER else len(ORDER), t)
