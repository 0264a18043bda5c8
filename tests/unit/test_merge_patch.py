"""The status merge patch: what it sends must turn the old status into exactly the new one."""

from __future__ import annotations

from typing import Any

import pytest

from llmops.reconciler import merge_patch


def apply(doc: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386, as the apiserver applies it."""
    out = dict(doc)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = apply(out[key], value)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # A nested object replaced by a smaller one: the stale keys must go.
        (
            {"evaluation": {"revision": "a", "passed": True, "metrics": [1]}},
            {"evaluation": {"revision": "b", "job": "j"}},
        ),
        ({"phase": "Pending", "canary": {"step": 1}}, {"phase": "Serving"}),
        ({"conditions": [{"type": "A"}]}, {"conditions": []}),
        ({}, {"a": {"b": {"c": 1}}}),
        ({"a": {"b": 1}}, {"a": 2}),
    ],
)
def test_patch_turns_old_into_new(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert apply(old, merge_patch(old, new)) == new


def test_unchanged_keys_are_not_sent() -> None:
    old = {"phase": "Serving", "canary": {"step": 1, "weight": 10}}
    assert merge_patch(old, {"phase": "Serving", "canary": {"step": 2, "weight": 10}}) == {
        "canary": {"step": 2}
    }
