"""Watch-fed copies of the operator's children, so that a pass reads them without a request.

One ``Informer`` keeps the objects of one kind, in one namespace or in all of them, that carry
the label ``LABEL_DEPLOYMENT`` (the apiserver applies the selector): a list, then a watch from the list's
resourceVersion with bookmarks, again and again (the apiserver ends a watch after a few
minutes). A watch the apiserver can no longer resume (410 Gone: its history was compacted)
lists again, and objects missing from the new list count as deleted. Every change calls
``on_change`` with a ``Change`` naming the owner, whose pass it triggers.

Why: a pass used to list every child kind and the pods with a label selector, about ten reads
per pass; at 1,000 LLMDeployments created at once that was most of the apiserver's work, and
the operator was 2.3 times slower than ``kubectl apply`` of the same children.

Staleness: a child the operator has just written may not have reached the watch yet, so the
operator stores the object its own apply answered (``remember``) and forgets the ones it deleted;
a copy only ever moves to a newer resourceVersion. What remains stale is what others changed in
the last moment, which the watch event about it corrects and follows with a pass.
Memory: copies are kept as compact JSON deflated against the first object of their kind (a
``Packer``), parsed for each pass that reads them (which also means no pass shares an object with
the cache or another pass); of ``managedFields`` (often half an object), only our own managers'
fields are kept. The children of one LLMDeployment differ from another's in a few names and
numbers, so a Deployment of 5.2 KiB as the apiserver answers it keeps in about 300 bytes, a Pod of
5.8 KiB in about 400: 1,000 LLMDeployments' copies took 24 MiB as plain JSON.
JSON through orjson: decoding every watch event and packing every copy with the standard
library's ``json`` was most of the operator's JSON work at scale (docs/architecture.md, "JSON").
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from llmops.api.constants import LABEL_DEPLOYMENT
from llmops.lifecycle.ownership import FIELD_MANAGER

__all__ = ["Change", "Gone", "Informer", "Latest", "Lister", "Packer", "Watcher", "newer"]

log = logging.getLogger("llmops.informer")

WATCH_TIMEOUT_SECONDS = 290
"""Server-side end of one watch (the apiserver picks at random between this and twice it otherwise)."""
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)
"""Waits before listing or watching again after a failure, growing, bounded."""

Lister = Callable[[], tuple[list[dict[str, Any]], str]]
"""Lists the kind (selector applied): the items and the list's resourceVersion."""
Watcher = Callable[[str], Iterator[Mapping[str, Any]]]
"""Watches the kind from a resourceVersion: the watch events, until the server ends the watch.
Raises ``Gone`` when that resourceVersion is too old to resume from."""


@dataclass(frozen=True)
class Change:
    """A labelled object of ``kind`` changed or went away; ``deployment`` is its label's value."""

    kind: str
    namespace: str
    deployment: str
    deleted: bool
    version: str = field(default="", compare=False)
    """For a deletion: the resourceVersion it was seen at (the DELETED event's, or the list's that
    no longer had the object); copies of the owner older than it may be stale."""


class Gone(Exception):
    """The watch cannot resume from its resourceVersion (HTTP 410): list again."""


def newer(candidate: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    """Whether ``candidate`` is the same or a later version than ``current``."""
    if current is None:
        return True
    return _later_or_same(_version(candidate), _version(current))


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _later_or_same(candidate: str, current: str) -> bool:
    """resourceVersions are etcd revisions (integers) on every apiserver we know; anything else
    is taken as later."""
    try:
        return int(candidate) >= int(current)
    except ValueError:
        return True


class Packer:
    """Objects as compact JSON deflated against a dictionary: the JSON of the first object packed.

    Objects of one kind that the operator renders share most of their text, so with the first as
    zlib's preset dictionary the others keep in a few hundred bytes (a parsed Deployment or Pod
    takes ten times its JSON's size in Python objects, and the JSON three times its deflated
    size alone). The dictionary never changes once set, so every packed object unpacks with it.
    Level 1: packing and unpacking together cost less than parsing the JSON."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._zdict: bytes | None = None

    def pack(self, obj: Mapping[str, Any]) -> bytes:
        raw = orjson.dumps(obj)
        zdict = self._zdict
        if zdict is None:
            with self._lock:
                if self._zdict is None:
                    self._zdict = raw
                zdict = self._zdict
        deflate = zlib.compressobj(1, zlib.DEFLATED, zlib.MAX_WBITS, 9, zlib.Z_DEFAULT_STRATEGY, zdict)
        return deflate.compress(raw) + deflate.flush()

    def unpack(self, packed: bytes) -> Any:
        assert self._zdict is not None, "unpack before any pack"
        inflate = zlib.decompressobj(zdict=self._zdict)
        return orjson.loads(inflate.decompress(packed) + inflate.flush())


_Key = tuple[str, str]
"""(namespace, name) of an object, or (namespace, label value) of an owner."""


class _Copy(NamedTuple):
    """One object as kept: where it is, its version and owner, and the rest packed (see ``Packer``)."""

    key: _Key
    version: str
    owner: str
    packed: bytes

    @classmethod
    def of(cls, obj: Mapping[str, Any], packer: Packer) -> _Copy:
        return cls(_key(obj), _version(obj), _owner(obj) or "", packer.pack(obj))

    @property
    def owner_key(self) -> _Key:
        return (self.key[0], self.owner)


def _key(obj: Mapping[str, Any]) -> _Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name")))


def slim(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """The copy kept in memory, with its kind (lists leave it out). Of ``managedFields``, the
    fields owned by our own managers stay (``llmops`` and its hand-over manager: a field another
    manager took from them is a manual edit the plan reverts, see lifecycle.ownership); the
    other managers' entries stay without their fields (``fieldsV1``, most of an object's size)."""
    obj.setdefault("kind", kind)
    meta = obj.get("metadata") or {}
    if entries := meta.get("managedFields"):
        meta["managedFields"] = [
            e if str(e.get("manager", "")).startswith(FIELD_MANAGER) else _without_fields(e) for e in entries
        ]
    return obj


def _without_fields(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "fieldsV1"}


def _owner(obj: Mapping[str, Any]) -> str | None:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_DEPLOYMENT)


class Informer:
    """The labelled objects of one kind in one namespace (``namespace=None``: in every namespace,
    one watch for all), by namespace and name, kept by list and watch."""

    def __init__(
        self,
        kind: str,
        namespace: str | None,
        lister: Lister,
        watcher: Watcher,
        on_change: Callable[[Change], None] = lambda change: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.kind, self.namespace = kind, namespace
        self._list, self._watch, self._on_change, self._sleep = lister, watcher, on_change, sleep
        self._lock = threading.Lock()
        self._packer = Packer()
        self._objects: dict[_Key, _Copy] = {}
        self._by_owner: dict[_Key, set[_Key]] = {}
        """(namespace, label value) → keys: a pass reads its own children without scanning."""
        self._synced = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.version: str | None = None
        """The resourceVersion the next watch starts from (None: list first)."""
        self.lists = 0
        """Lists made (the first, and one after each 410 Gone), for tests and the bench."""

    # ------------------------------------------------------------- reading
    def of(self, namespace: str, deployment: str) -> list[dict[str, Any]]:
        """The objects in ``namespace`` labelled with ``deployment``."""
        with self._lock:
            keys = sorted(self._by_owner.get((namespace, deployment), ()))
            packed = [self._objects[key].packed for key in keys]
        return [self._packer.unpack(p) for p in packed]  # a fresh object per pass: none shares the cache

    def wait_synced(self, timeout: float) -> bool:
        """Whether the first list has landed (waiting at most ``timeout`` seconds for it)."""
        return self._synced.wait(timeout)

    # ------------------------------------------------- the operator's writes
    def remember(self, obj: dict[str, Any]) -> None:
        """An object the operator has just written, as the apiserver answered it."""
        self._put(self._copy(obj), notify=False)

    def forget(self, namespace: str, name: str) -> None:
        """An object the operator has just deleted."""
        with self._lock:
            self._drop((namespace, name))

    # ------------------------------------------------------------ running
    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.run, name=f"informer-{self.kind}-{self.namespace or '*'}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        """List, then watch from the last version seen, until stopped; a failure retries after a
        wait, from where the watch was (a watch cut by the network resumes without a list)."""
        failures = 0
        while not self._stopped.is_set():
            try:
                if self.version is None:
                    self.version = self.relist()
                self.follow(self.version)
                failures = 0
            except Gone:
                log.info("%s in %s: the watch's version is gone, listing again", self.kind, self._where)
                self.version = None
            except Exception as exc:  # the network, the apiserver: never let the thread die
                wait = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                log.warning("%s in %s: %s; again in %.1fs", self.kind, self._where, exc, wait)
                self._sleep(wait)

    @property
    def _where(self) -> str:
        return self.namespace or "every namespace"

    def relist(self) -> str:
        """Replace the copies with a fresh list; returns its resourceVersion. An object that
        vanished meanwhile (its DELETED event lost with the watch) counts as deleted."""
        items, version = self._list()
        self.lists += 1
        fresh = {copy.key: copy for copy in (self._copy(o) for o in items)}
        with self._lock:
            old, self._objects = self._objects, fresh
            self._by_owner = {}
            for key, copy in fresh.items():
                self._by_owner.setdefault(copy.owner_key, set()).add(key)
        if not self._synced.is_set():  # the first list: the passes that asked for it read it
            self._synced.set()
            return version
        for key, copy in fresh.items():
            if key not in old or old[key].version != copy.version:
                self._notify(key[0], copy.owner)
        for key, copy in old.items():
            if key not in fresh:
                self._notify(key[0], copy.owner, deleted=True, version=version)
        return version

    def follow(self, version: str) -> None:
        """Apply one watch's events from ``version``; ``self.version`` follows them."""
        for event in self._watch(version):
            if self._stopped.is_set():
                break
            type_, obj = event.get("type"), event.get("object") or {}
            if type_ == "ERROR":
                if obj.get("code") == 410:
                    raise Gone(str(obj.get("message")))
                raise RuntimeError(f"watch error: {obj.get('message') or obj}")
            self.version = (obj.get("metadata") or {}).get("resourceVersion") or self.version
            if type_ == "BOOKMARK":
                continue
            if type_ == "DELETED":
                with self._lock:
                    self._drop(_key(obj))
                self._notify(_key(obj)[0], _owner(obj), deleted=True, version=_version(obj))
            elif type_ in ("ADDED", "MODIFIED"):
                self._put(self._copy(dict(obj)), notify=True)

    def _copy(self, obj: dict[str, Any]) -> _Copy:
        return _Copy.of(slim(obj, self.kind), self._packer)

    def _put(self, copy: _Copy, notify: bool) -> None:
        with self._lock:
            current = self._objects.get(copy.key)
            if current is not None and not _later_or_same(copy.version, current.version):
                return
            self._drop(copy.key)
            self._objects[copy.key] = copy
            self._by_owner.setdefault(copy.owner_key, set()).add(copy.key)
        if notify:
            self._notify(copy.key[0], copy.owner)

    def _drop(self, key: _Key) -> None:
        """Remove one copy and its index entry (the lock held)."""
        copy = self._objects.pop(key, None)
        if copy is not None:
            keys = self._by_owner.get(copy.owner_key, set())
            keys.discard(key)
            if not keys:
                self._by_owner.pop(copy.owner_key, None)

    def _notify(self, namespace: str, owner: str | None, deleted: bool = False, version: str = "") -> None:
        """Trigger the pass of the owner in the object's own namespace (an informer of every
        namespace sees all of them)."""
        if owner:
            self._on_change(Change(self.kind, namespace, owner, deleted, version))


class Latest:
    """The latest copy of each object of one kind, by (namespace, name), fed by a watch that runs
    elsewhere (kopf's, for the LLMDeployments) and by the answers to the operator's own writes.

    A pass reads its LLMDeployment here instead of asking the apiserver: the watch event that
    triggered the pass carried the whole object already (at 100 LLMDeployments created at once,
    the per-pass GET was a fifth of the operator's requests). A copy only ever moves to a newer
    resourceVersion, so a late watch event never hides the status the operator has just written.
    A deletion leaves a tombstone with the deletion's version, so that the answer to a write
    made just before it cannot bring the object back; ``TOMBSTONES`` of them are kept, the oldest
    dropped first. ``managedFields`` are left out (the operator never reads its owner's); copies are
    packed as the informers' are (``Packer``).
    An object never seen (the watch has not delivered it yet) is not here: the caller reads it;
    one deleted is known as such (a child's deletion event, which follows its owner's, need not
    ask the apiserver whether the owner is gone)."""

    TOMBSTONES = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._packer = Packer()
        self._copies: dict[tuple[str, str], tuple[str, bytes]] = {}
        self._tombstones: dict[tuple[str, str], str] = {}
        """Deleted keys and the version of their deletion, oldest first (dicts keep order)."""
        self._live: set[tuple[str, str]] = set()
        """Every key put and not deleted since, its copy forgotten or not."""
        self._doubts: dict[tuple[str, str], str] = {}
        """Forgotten keys and the version of the doubt: a watch event not newer is not taken."""

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A fresh copy of the object (None: never seen, or deleted)."""
        with self._lock:
            copy = self._copies.get((namespace, name))
        return self._packer.unpack(copy[1]) if copy else None

    def deleted(self, namespace: str, name: str) -> bool:
        """Whether the watch reported the object deleted (and nothing made it again since)."""
        with self._lock:
            return (namespace, name) in self._tombstones

    def put(self, obj: Mapping[str, Any], read: bool = False) -> None:
        """An object as a watch event or a write's answer had it (ignored if not newer), or as
        the apiserver answered a read (``read``: it settles a doubt, whatever its version)."""
        meta = obj.get("metadata") or {}
        key, version = (str(meta.get("namespace") or ""), str(meta.get("name"))), _version(obj)
        slimmed = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        packed = self._packer.pack(slimmed)
        with self._lock:
            doubt = self._doubts.get(key)
            if doubt is not None and not read and not _later_than(version, doubt):
                return  # may have been sent before the doubt arose: the next read asks
            self._doubts.pop(key, None)
            current = self._copies.get(key)
            deleted = self._tombstones.get(key)
            if current is not None and not _later_or_same(version, current[0]):
                return
            if deleted is not None:
                if not _later_than(version, deleted):
                    return
                del self._tombstones[key]  # made again under the same name
            self._copies[key] = (version, packed)
            self._live.add(key)

    def keys(self) -> list[tuple[str, str]]:
        """(namespace, name) of every object seen and not deleted, for work that concerns them all."""
        with self._lock:
            return list(self._live)

    def gone(self, namespace: str, name: str) -> None:
        """The apiserver answered 404 for a key whose deletion no watch event reported (kopf's
        watch was cut meanwhile): no longer among ``keys()``."""
        with self._lock:
            self._copies.pop((namespace, name), None)
            self._live.discard((namespace, name))
            self._doubts.pop((namespace, name), None)

    def forget(self, namespace: str, name: str, since: str = "") -> None:
        """Drop the copy (not a tombstone): the next read asks the apiserver. For a doubt the
        watch cannot settle: a watch that was cut and listed again reports no deletion for an
        object deleted meanwhile, so its copy would outlive it. With ``since`` (the version the
        doubt arose at, a child's deletion), a watch event no newer than it does not bring the
        copy back before that read: kopf may deliver it after the child's deletion was seen, and
        a pass that read it would skip the read the doubt asked for."""
        with self._lock:
            self._copies.pop((namespace, name), None)
            if since:
                self._doubts[(namespace, name)] = since

    def delete(self, obj: Mapping[str, Any]) -> None:
        """The object's deletion, as its watch event had it."""
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name")))
        with self._lock:
            self._copies.pop(key, None)
            self._live.discard(key)
            self._doubts.pop(key, None)
            self._tombstones.pop(key, None)
            self._tombstones[key] = _version(obj)
            while len(self._tombstones) > self.TOMBSTONES:
                del self._tombstones[next(iter(self._tombstones))]

    def __len__(self) -> int:
        with self._lock:
            return len(self._copies)


def _later_than(candidate: str, current: str) -> bool:
    """Strictly later (non-integer versions: taken as later, as in ``_later_or_same``)."""
    try:
        return int(candidate) > int(current)
    except ValueError:
        return True


def watch_lines(chunks: Iterator[bytes]) -> Iterator[Mapping[str, Any]]:
    """The watch events of a streamed answer: one JSON object per line."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield orjson.loads(line)
    if pending.strip():
        yield orjson.loads(pending)
