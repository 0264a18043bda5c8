"""The minimal JSON-patch diff behind the kustomize overlays."""

from __future__ import annotations

from typing import Any

import pytest

from llmops_dev.packaging.json_patch import apply, diff, pointer

BASE: dict[str, Any] = {
    "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "a"}},
    "spec": {"replicas": 1, "args": ["run", "--standalone"], "rules": [{"r": 1}, {"r": 3}]},
}


@pytest.mark.parametrize(
    ("change", "ops"),
    [
        (
            {"spec": {**BASE["spec"], "replicas": 2}},
            [{"op": "replace", "path": "/spec/replicas", "value": 2}],
        ),
        (
            {"spec": {**BASE["spec"], "args": ["run", "--peering=x"]}},
            [{"op": "replace", "path": "/spec/args/1", "value": "--peering=x"}],
        ),
        (
            {"spec": {**BASE["spec"], "rules": [{"r": 1}, {"r": 2}, {"r": 3}, {"r": 4}]}},
            [
                {"op": "add", "path": "/spec/rules/1", "value": {"r": 2}},
                {"op": "add", "path": "/spec/rules/3", "value": {"r": 4}},
            ],
        ),
        ({"spec": {**BASE["spec"], "rules": [{"r": 3}]}}, [{"op": "remove", "path": "/spec/rules/0"}]),
        (
            {"spec": {**BASE["spec"], "rules": [{"r": 9}]}},
            [{"op": "replace", "path": "/spec/rules", "value": [{"r": 9}]}],
        ),
        (
            {"metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "a", "k~/": "v"}}},
            [{"op": "add", "path": "/metadata/labels/k~0~1", "value": "v"}],
        ),
        ({"metadata": {"name": "x"}}, [{"op": "remove", "path": "/metadata/labels"}]),
        (
            {"spec": {**BASE["spec"], "replicas": "1"}},
            [{"op": "replace", "path": "/spec/replicas", "value": "1"}],
        ),
    ],
    ids=[
        "scalar",
        "list-item",
        "inserts",
        "removal",
        "list-replaced",
        "escaped-key",
        "key-removed",
        "type-change",
    ],
)
def test_diff_is_minimal_and_applies_back(change: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    new = {**BASE, **change}
    assert diff(BASE, new) == ops
    assert apply(BASE, ops) == new


def test_equal_documents_need_no_patch() -> None:
    assert diff(BASE, {**BASE}) == []


def test_pointer_escapes_rfc6901() -> None:
    assert pointer(["metadata", "annotations", "a/b~c", 0]) == "/metadata/annotations/a~1b~0c/0"
