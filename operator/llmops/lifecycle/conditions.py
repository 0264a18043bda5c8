"""The one condition helper: set a condition the way Kubernetes API conventions ask.

It stamps ``observedGeneration``, keeps ``lastTransitionTime`` unless the status flips,
truncates times to seconds, and keeps a fixed order (Available first) so that a pass that
changes nothing produces a byte-identical list and therefore no status write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from llmops.api import conditions as c
from llmops.api.status import ConditionDict
from llmops.contracts import format_timestamp

__all__ = ["ORDER", "find", "is_true", "set_condition"]

ORDER: tuple[str, ...] = (c.AVAILABLE, c.PROGRESSING, c.DEGRADED, c.MODEL_CACHED, c.EVALUATED, c.PROMOTED)


def find(conditions: Iterable[ConditionDict], type_: str) -> ConditionDict | None:
    return next((cond for cond in conditions if cond.get("type") == type_), None)


def is_true(conditions: Iterable[ConditionDict], type_: str) -> bool:
    cond = find(conditions, type_)
    return cond is not None and cond.get("status") == c.TRUE


def set_condition(
    conditions: list[ConditionDict],
    type_: str,
    status: str,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: dt.datetime,
) -> list[ConditionDict]:
    """Return ``conditions`` with ``type_`` set; the input list is not modified."""
    old = find(conditions, type_)
    if old is not None and old.get("status") == status and old.get("lastTransitionTime"):
        since = old["lastTransitionTime"]
    else:
        since = format_timestamp(now)
    new: ConditionDict = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": since,
    }
    if generation is None:
        del new["observedGeneration"]
    rest = [cond.copy() for cond in conditions if cond.get("type") != type_]
    return sorted([*rest, new], key=_order_key)


def _order_key(cond: ConditionDict) -> tuple[int, str]:
    t = cond["type"]
    return (ORDER.index(t) if t in ORDER else len(ORDER), t)
