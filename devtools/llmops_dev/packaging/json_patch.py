"""Minimal RFC 6902 JSON-patch operations that turn one object into another.

Used for the kustomize overlays: each overlay patches the base only where the chart, rendered
with the overlay's values, differs from the default render. Maps are compared key by key;
lists of equal length element by element; a list that only gained (or only lost) elements
gets one add (or remove) per element, so a rule added to a ClusterRole reads as that rule;
any other change to a list replaces it whole.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["apply", "diff", "pointer"]

Op = dict[str, Any]


def pointer(parts: list[str | int]) -> str:
    """A JSON pointer (RFC 6901) for a path: ``~`` and ``/`` in keys are escaped."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _subsequence(short: list[Any], long: list[Any]) -> set[int] | None:
    """Indices in ``long`` that hold ``short`` in order (greedy), or None if it is not inside."""
    kept: set[int] = set()
    i = 0
    for j, value in enumerate(long):
        if i < len(short) and short[i] == value:
            kept.add(j)
            i += 1
    return kept if i == len(short) else None


def diff(old: Any, new: Any, path: list[str | int] | None = None) -> list[Op]:
    """The operations that patch ``old`` into ``new`` (empty when they are equal)."""
    path = path or []
    if isinstance(old, dict) and isinstance(new, dict):
        ops: list[Op] = []
        for key in old:
            if key not in new:
                ops.append({"op": "remove", "path": pointer([*path, key])})
        for key, value in new.items():
            if key not in old:
                ops.append({"op": "add", "path": pointer([*path, key]), "value": value})
            else:
                ops.extend(diff(old[key], value, [*path, key]))
        return ops
    if isinstance(old, list) and isinstance(new, list):
        if len(old) == len(new):
            return [
                op for i, (a, b) in enumerate(zip(old, new, strict=True)) for op in diff(a, b, [*path, i])
            ]
        if len(old) < len(new) and (kept := _subsequence(old, new)) is not None:
            # Ascending indices in the new list: each insertion lands where it belongs.
            return [
                {"op": "add", "path": pointer([*path, i]), "value": v}
                for i, v in enumerate(new)
                if i not in kept
            ]
        if len(new) < len(old) and (kept := _subsequence(new, old)) is not None:
            # Descending indices in the old list, so earlier removals do not shift later ones.
            gone = [i for i in range(len(old)) if i not in kept]
            return [{"op": "remove", "path": pointer([*path, i])} for i in reversed(gone)]
    if old == new and type(old) is type(new):
        return []
    if not path:
        raise ValueError("the documents differ at the root: nothing to patch")
    return [{"op": "replace", "path": pointer(path), "value": new}]


def apply(doc: Any, ops: list[Op]) -> Any:
    """Apply ``ops`` (only those ``diff`` emits) to a copy of ``doc``; for tests and checks."""
    out = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = out
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last: Any = int(parts[-1]) if isinstance(parent, list) else parts[-1]
        if op["op"] == "remove":
            del parent[last]
        elif op["op"] == "add" and isinstance(parent, list):
            parent.insert(last, copy.deepcopy(op["value"]))  # RFC 6902: add into a list inserts
        else:
            parent[last] = copy.deepcopy(op["value"])
    return out
