"""Which fields of a child our field manager still owns: manual edits are found and reverted.

A child is applied with server-side apply under the field manager ``llmops``; right after,
``metadata.managedFields`` says ``llmops`` owns every field of the applied manifest. When
another manager changes one of those values (``kubectl scale``, ``kubectl edit``, a
``kubectl apply --server-side --force-conflicts``), the apiserver moves that field to the
other manager; when it removes one (a Service port renumbered), our entry loses it. So a
field of the desired manifest that ``llmops`` no longer owns is drift: the plan re-applies the
child, and force takes the field back. A child nobody touched has every field owned, so a
quiet pass still writes nothing.

The manifest is turned into the same path notation as ``fieldsV1`` (``f:field``,
``k:{"name":…}`` for items of lists keyed by name, port…). Lists whose keys are not listed
here are treated as atomic, and an ownership found above or below a path counts (we own the
whole list, or something in it): a list-type mistake here never makes a steady object look
drifted, at worst it misses an edit inside that list. Pure: no I/O.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

__all__ = ["FIELD_MANAGER", "drifted_fields", "manifest_paths", "owned_fields", "owns"]

FIELD_MANAGER = "llmops"
"""The field manager of every server-side apply the operator makes."""

_UNTRACKED_TOP = frozenset({"apiVersion", "kind", "status"})
_UNTRACKED_METADATA = frozenset(
    {"name", "namespace", "uid", "resourceVersion", "generation", "managedFields"}
)
_KEYS_BY_FIELD: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "ownerReferences": ("uid",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
    "resourceClaims": ("name",),
    "groups": ("name",),  # PrometheusRule spec.groups: x-kubernetes-list-map-keys [name]
}
"""List-map keys of the lists our children carry (Kubernetes' patchMergeKey/listMapKeys)."""
_KEY_DEFAULTS = {"protocol": "TCP"}
"""Key fields the apiserver defaults before it records the key."""

Path = tuple[str, ...]


def _list_keys(field: str, parent: Path) -> tuple[str, ...] | None:
    if field == "ports":
        if parent and parent[-1].startswith("k:") and len(parent) >= 2 and parent[-2] in _CONTAINER_LISTS:
            return ("containerPort", "protocol")
        if parent == ("f:spec",):  # a Service's ports
            return ("port", "protocol")
        return None
    return _KEYS_BY_FIELD.get(field)


_CONTAINER_LISTS = frozenset({"f:containers", "f:initContainers", "f:ephemeralContainers"})


def _item_key(item: Mapping[str, Any], keys: Sequence[str]) -> str:
    return "k:" + json.dumps(
        {k: item.get(k, _KEY_DEFAULTS.get(k)) for k in keys if k in item or k in _KEY_DEFAULTS},
        sort_keys=True,
        separators=(",", ":"),
    )


def _walk(value: Any, path: Path) -> Iterator[Path]:
    if isinstance(value, Mapping):
        if not value:
            yield path
        for key, sub in value.items():
            if sub is not None:
                yield from _walk(sub, (*path, f"f:{key}"))
        return
    if isinstance(value, list) and value and all(isinstance(x, Mapping) for x in value):
        keys = _list_keys(path[-1][2:], path[:-1])
        if keys:
            for item in value:
                yield from _walk(item, (*path, _item_key(item, keys)))
            return
    yield path  # a scalar, or a list we treat as atomic


def manifest_paths(obj: Mapping[str, Any]) -> list[Path]:
    """The leaf paths a server-side apply of ``obj`` makes its manager own, in fieldsV1 notation."""
    out: list[Path] = []
    for key, value in obj.items():
        if key in _UNTRACKED_TOP or value is None:
            continue
        if key == "metadata":
            for mkey, mvalue in value.items():
                if mkey not in _UNTRACKED_METADATA and mvalue is not None:
                    out.extend(_walk(mvalue, ("f:metadata", f"f:{mkey}")))
            continue
        out.extend(_walk(value, (f"f:{key}",)))
    return out


def owned_fields(obj: Mapping[str, Any], manager: str = FIELD_MANAGER) -> dict[str, Any]:
    """The fieldsV1 tree ``manager`` owns on the main resource (its subresource entries aside)."""
    tree: dict[str, Any] = {}
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == manager and not entry.get("subresource"):
            _merge(tree, entry.get("fieldsV1") or {})
    return tree


def _merge(into: dict[str, Any], more: Mapping[str, Any]) -> None:
    for key, sub in more.items():
        _merge(into.setdefault(key, {}), sub or {})


def _key_matches(mine: str, theirs: str) -> bool:
    if mine == theirs:
        return True
    a, b = _key_fields(mine), _key_fields(theirs)
    return a is not None and b is not None and all(a.get(k, _KEY_DEFAULTS.get(k)) == v for k, v in b.items())


@functools.lru_cache(maxsize=4096)
def _key_fields(element: str) -> Mapping[str, Any] | None:
    """The fields of a ``k:{…}`` path element (None for any other element), parsed once: every
    pass compares the same few keys again."""
    if not element.startswith("k:"):
        return None
    try:
        fields = json.loads(element[2:])
    except ValueError:
        return None
    return MappingProxyType(fields) if isinstance(fields, dict) else None


def _owns(tree: Mapping[str, Any], path: Path) -> bool:
    node = tree
    for element in path:
        if not any(k != "." for k in node) and node is not tree:
            return True  # we own an enclosing field whole (an atomic list or map)
        if element in node:  # the usual case: the apiserver wrote the key as we render it
            node = node[element]
            continue
        match = next((k for k in node if _key_matches(element, k)), None)
        if match is None:
            return False
        node = node[match]
    return True


def owns(obj: Mapping[str, Any], path: Path, manager: str = FIELD_MANAGER) -> bool:
    """Whether ``manager`` owns the field at ``path`` (fieldsV1 notation, e.g. ("f:spec",
    "f:replicas")) on the observed ``obj``."""
    tree = owned_fields(obj, manager)
    return bool(tree) and _owns(tree, path)


def drifted_fields(
    desired: Mapping[str, Any], observed: Mapping[str, Any] | None, content_key: str | None = None
) -> list[str]:
    """Fields of ``desired`` that our manager no longer owns on ``observed`` (readable, sorted).

    Empty when the object is absent or carries no managedFields at all (nothing to compare).
    ``content_key`` names desired's content (the plan passes its applied hash, a digest of the
    manifest): the answer for the same manifest and the same fields of ours is then remembered,
    so the passes over a steady child, nearly all of them, do not walk it again.
    """
    if not observed or not (observed.get("metadata") or {}).get("managedFields"):
        return []
    if content_key is None:
        return _drifted(desired, owned_fields(observed))
    entries = [
        e.get("fieldsV1")
        for e in observed["metadata"]["managedFields"]
        if e.get("manager") == FIELD_MANAGER and not e.get("subresource")
    ]
    ours = hashlib.sha256(json.dumps(entries, separators=(",", ":")).encode()).digest()
    key = (content_key, ours)
    if (known := _DRIFT_MEMO.get(key)) is None:
        known = tuple(_drifted(desired, owned_fields(observed)))
        # Passes run on several threads: evicting (iterate, then delete) while another thread
        # inserts would raise, or two threads would delete the same oldest entry.
        with _DRIFT_MEMO_LOCK:
            _DRIFT_MEMO[key] = known
            while len(_DRIFT_MEMO) > _DRIFT_MEMO_SIZE:
                del _DRIFT_MEMO[next(iter(_DRIFT_MEMO))]
    return list(known)


def _drifted(desired: Mapping[str, Any], tree: Mapping[str, Any]) -> list[str]:
    return sorted(".".join(p[2:] for p in path) for path in manifest_paths(desired) if not _owns(tree, path))


_DRIFT_MEMO: dict[tuple[str, bytes], tuple[str, ...]] = {}
"""A memo of ``drifted_fields`` by (manifest digest, digest of our fieldsV1): the same inputs
always give the same answer, so it is not state; bounded, the oldest entries dropped first. Keyed
by digests, not the fields themselves (a few KB each: a full memo would weigh hundreds of MiB)."""
_DRIFT_MEMO_LOCK = threading.Lock()
_DRIFT_MEMO_SIZE = 65_536
"""Four steady children for each of 16,000 LLMDeployments (an entry takes about 330 bytes: 21 MiB when full)."""
