"""Segments on disk: append-only gzip-compressed JSONL, one file per UTC day, revision and kind.

    <root>/<YYYY-MM-DD>/<revision, percent-encoded>.requests.jsonl.gz
    <root>/<YYYY-MM-DD>/<revision, percent-encoded>.feedback.jsonl.gz

Each accepted batch is appended as one gzip member per segment it touches (a file of several
members is a valid gzip file), and is acknowledged only after `sync` fsynced every touched file
(and the folder of a new one). So a crash can only leave a torn *last* member: a reader decodes
member by member and stops at the first one that is incomplete or corrupt (its gzip trailer
carries a CRC and the length), and the writer, the first time it opens a segment after a start,
truncates the file back to the end of its last complete member before appending.

Bounds. Retention deletes whole segments whose day ended more than `retention` ago. The size
cap deletes the oldest day's segments, whole, when a batch would take the total past
`max_bytes`, and refuses the batch (StoreFull) while the newest day alone leaves no room. A
full disk (ENOSPC, EDQUOT, EFBIG) rolls the batch's partial appends back (ftruncate to the
previous sizes) and refuses it the same way: existing segments stay intact.

Reads take no lock: they list the folders and open what they find (a segment deleted by
retention in between is skipped; one deleted while open stays readable until closed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from llmops.capture_store.records import Query, Record, matches_feedback, parse_time

__all__ = [
    "SEGMENT_SUFFIXES",
    "SegmentKey",
    "Segments",
    "StoreFull",
    "complete_length",
    "compress",
    "iter_requests",
    "list_segments",
    "read_members",
    "read_records",
]

log = logging.getLogger("llmops.capture_store")

SEGMENT_SUFFIXES = {"request": ".requests.jsonl.gz", "feedback": ".feedback.jsonl.gz"}
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_READ_CHUNK = 256 * 1024
_MAX_OPEN = 64
"""Segment files kept open for appending (a day's revisions); the least recently used close first."""


class StoreFull(Exception):
    """A batch refused for lack of room: `reason` is "size" (the cap) or "disk" (the file system)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, order=True)
class SegmentKey:
    """Which segment a record goes to."""

    day: dt.date
    revision: str
    kind: str

    @property
    def relpath(self) -> str:
        return f"{self.day.isoformat()}/{quote(self.revision, safe='')}{SEGMENT_SUFFIXES[self.kind]}"

    @classmethod
    def of(cls, record: Record) -> SegmentKey:
        return cls(record.day, record.revision, record.kind)

    @classmethod
    def parse(cls, day_dir: str, filename: str) -> SegmentKey | None:
        """The key of a segment file, None for anything else in the folders."""
        try:
            day = dt.date.fromisoformat(day_dir)
        except ValueError:
            return None
        for kind, suffix in SEGMENT_SUFFIXES.items():
            if filename.endswith(suffix) and len(filename) > len(suffix):
                return cls(day, unquote(filename[: -len(suffix)]), kind)
        return None


def list_segments(root: Path) -> list[tuple[SegmentKey, Path]]:
    """Every segment under `root`, oldest day first."""
    out = []
    try:
        days = sorted(os.scandir(root), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    for day in days:
        if not day.is_dir():
            continue
        try:
            files = sorted(os.listdir(day.path))
        except FileNotFoundError:
            continue
        for name in files:
            key = SegmentKey.parse(day.name, name)
            if key is not None:
                out.append((key, Path(day.path) / name))
    return sorted(out)


def _members(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, int]]:
    """(content, end offset) of each complete gzip member in the byte stream; stops at the first
    incomplete or corrupt one."""
    offset = 0
    pending = b""
    source = iter(chunks)
    while True:
        inflater = zlib.decompressobj(wbits=31)
        parts: list[bytes] = []
        consumed = 0
        data = pending
        while True:
            if not data:
                data = next(source, b"")
                if not data:
                    return  # end of file inside a member (or no more members): torn or done
            try:
                parts.append(inflater.decompress(data))
            except zlib.error:
                return  # corrupt: nothing after this point can be trusted
            if inflater.eof:
                used = len(data) - len(inflater.unused_data)
                consumed += used
                pending = inflater.unused_data
                break
            consumed += len(data)
            data = b""
        offset += consumed
        yield b"".join(parts), offset


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(_READ_CHUNK):
            yield chunk


def read_members(path: Path) -> Iterator[bytes]:
    """The content of each complete member of a segment (a torn or corrupt tail is left out)."""
    for content, _ in _members(_file_chunks(path)):
        yield content


def complete_length(path: Path) -> int:
    """The length of the segment's prefix made of complete members."""
    end = 0
    for _content, offset in _members(_file_chunks(path)):
        end = offset
    return end


def _lines(content: bytes) -> Iterator[bytes]:
    """The complete lines of a member (the store writes whole lines; a partial one is dropped)."""
    lines = content.split(b"\n")
    for line in lines[:-1]:
        if line.strip():
            yield line


@dataclass
class Segments:
    """The writer's view of the segments under `root` (one writer thread at a time)."""

    root: Path
    max_bytes: int
    retention: dt.timedelta
    sizes: dict[SegmentKey, int] = field(default_factory=dict)
    discarded_bytes: int = 0
    """Torn tails cut off since the start."""
    _fds: dict[SegmentKey, int] = field(default_factory=dict)
    _checked: set[SegmentKey] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sizes = {key: path.stat().st_size for key, path in list_segments(self.root)}

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes.values())

    def path(self, key: SegmentKey) -> Path:
        return self.root / key.relpath

    # -- writing -------------------------------------------------------------------------------

    def _open(self, key: SegmentKey) -> int:
        fd = self._fds.pop(key, None)
        if fd is None:
            path = self.path(key)
            new_dir = not path.parent.exists()
            path.parent.mkdir(parents=True, exist_ok=True)
            if new_dir:
                _fsync_dir(self.root)
            existed = path.exists()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            if not existed:
                _fsync_dir(path.parent)
            if key not in self._checked:
                self._recover(key, fd)
            if len(self._fds) >= _MAX_OPEN:
                oldest = next(iter(self._fds))
                os.close(self._fds.pop(oldest))
        self._fds[key] = fd  # most recently used last
        return fd

    def _recover(self, key: SegmentKey, fd: int) -> None:
        """Cut a torn tail left by a crash, once per segment and start, before appending to it."""
        self._checked.add(key)
        size = os.fstat(fd).st_size
        good = complete_length(self.path(key)) if size else 0
        if good < size:
            os.ftruncate(fd, good)
            os.fsync(fd)
            self.discarded_bytes += size - good
            log.warning("%s: discarded a torn tail of %d bytes", key.relpath, size - good)
        self.sizes[key] = good

    def _make_room(self, days: set[dt.date], need: int) -> list[SegmentKey]:
        """Delete the oldest days' segments until `need` more bytes fit under the cap; refuse
        when only the newest day would be left."""
        deleted: list[SegmentKey] = []
        while self.total_bytes + need > self.max_bytes:
            stored = {k.day for k in self.sizes}
            newest = max(stored | days)
            oldest = min(stored) if stored else newest
            if oldest >= newest:
                raise StoreFull(
                    "size",
                    f"the newest day's segments ({self.total_bytes} bytes) and this batch ({need} bytes) "
                    f"exceed maxSize ({self.max_bytes} bytes)",
                )
            for key in [k for k in self.sizes if k.day == oldest]:
                self._delete(key)
                deleted.append(key)
        return deleted

    def write(self, batch: list[tuple[SegmentKey, bytes]]) -> tuple[list[int], list[SegmentKey]]:
        """Append each (segment, gzip member) of one batch, all or nothing. Returns the file
        descriptors to fsync and the segments the size cap deleted. Raises StoreFull."""
        need = sum(len(member) for _, member in batch)
        deleted = self._make_room({key.day for key, _ in batch}, need)
        before: list[tuple[SegmentKey, int]] = []
        try:
            for key, member in batch:
                fd = self._open(key)
                before.append((key, self.sizes.get(key, 0)))
                _write_all(fd, member)
                self.sizes[key] = self.sizes.get(key, 0) + len(member)
        except OSError as exc:
            self._roll_back(before)
            if exc.errno in _FULL_ERRNOS:
                raise StoreFull("disk", f"the volume is full: {os.strerror(exc.errno or 0)}") from None
            raise
        return [self._fds[key] for key, _ in before], deleted

    def _roll_back(self, before: list[tuple[SegmentKey, int]]) -> None:
        for key, size in before:
            fd = self._fds.get(key)
            if fd is not None:
                os.ftruncate(fd, size)
            self.sizes[key] = size

    @staticmethod
    def sync(fds: Iterable[int]) -> None:
        for fd in set(fds):
            os.fsync(fd)

    # -- deleting ------------------------------------------------------------------------------

    def _delete(self, key: SegmentKey) -> None:
        fd = self._fds.pop(key, None)
        if fd is not None:
            os.close(fd)
        path = self.path(key)
        path.unlink(missing_ok=True)
        self.sizes.pop(key, None)
        self._checked.discard(key)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # the day's folder, once empty

    def expired(self, now: dt.datetime) -> list[SegmentKey]:
        """Segments whose whole day ended more than `retention` before `now`."""
        cutoff = now - self.retention
        return [
            k
            for k in self.sizes
            if dt.datetime.combine(k.day + dt.timedelta(days=1), dt.time(), dt.UTC) <= cutoff
        ]

    def sweep(self, now: dt.datetime) -> list[SegmentKey]:
        """Apply retention: delete the expired segments (and pick up segments added by hand)."""
        for key, path in list_segments(self.root):
            if key not in self.sizes:
                self.sizes[key] = path.stat().st_size
        gone = self.expired(now)
        for key in gone:
            self._delete(key)
        return gone

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def compress(lines: Iterable[bytes]) -> bytes:
    """One gzip member holding `lines`."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    return packer.compress(b"".join(lines)) + packer.flush()


# -- reading -----------------------------------------------------------------------------------


def _feedback_index(segments: list[tuple[SegmentKey, Path]], query: Query) -> dict[str, dict[str, Any]]:
    """requestId → the latest feedback on it (by time), from every feedback segment that can hold
    feedback on the requests asked for: the revision's, from the first day asked for on (feedback
    arrives after its answer, possibly days later)."""
    index: dict[str, dict[str, Any]] = {}
    first = query.since.date() if query.since else None
    for key, path in segments:
        if key.kind != "feedback" or (query.revision and key.revision != query.revision):
            continue
        if first is not None and key.day < first:
            continue
        for content in _safe_members(path):
            for line in _lines(content):
                fb = json.loads(line)
                old = index.get(fb["requestId"])
                if old is None or str(fb.get("time")) >= str(old.get("time")):
                    index[fb["requestId"]] = fb
    return index


def _safe_members(path: Path) -> Iterator[bytes]:
    try:
        yield from read_members(path)
    except FileNotFoundError:
        return  # deleted by retention or the size cap between listing and opening


def _joined(fb: dict[str, Any] | None) -> dict[str, Any] | None:
    if fb is None:
        return None
    return {k: v for k, v in fb.items() if k not in ("kind", "requestId", "revision")}


def iter_requests(
    root: Path, query: Query, segments: list[tuple[SegmentKey, Path]] | None = None
) -> Iterator[dict[str, Any]]:
    """The request records in `query`'s window and revision (feedback is not looked at), one at
    a time: a member is the most held in memory. Ordered by day, then revision, then arrival."""
    first = query.since.date() if query.since else None
    last = query.until.date() if query.until else None
    for key, path in list_segments(root) if segments is None else segments:
        if key.kind != "request" or (query.revision and key.revision != query.revision):
            continue
        if (first is not None and key.day < first) or (last is not None and key.day > last):
            continue
        for content in _safe_members(path):
            for line in _lines(content):
                rec = json.loads(line)
                if query.keeps_time(parse_time(rec["time"], "time")):
                    yield rec


def read_records(root: Path, query: Query) -> Iterator[bytes]:
    """The request records `query` asks for, as JSONL lines, each with its `feedback` (the latest
    feedback on it, or null). Ordered by day, then revision, then arrival."""
    segments = list_segments(root)
    feedback = _feedback_index(segments, query)
    for rec in iter_requests(root, query, segments):
        if not query.keeps_split(rec["requestId"]):
            continue
        fb = feedback.get(rec["requestId"])
        if not matches_feedback(query.feedback, fb):
            continue
        rec["feedback"] = _joined(fb)
        yield json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
