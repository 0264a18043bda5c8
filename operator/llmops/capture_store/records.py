"""The records the gateways send, validated line by line, and the read side's filters.

A batch is JSONL: one JSON object per line, each a record of one of two kinds (camelCase):

    {"kind": "request", "time": "2026-11-30T08:00:00.123Z", "requestId": "...", "revision": "...",
     "deployment": "ns/name", "track": "stable", "client": "team-a", "route": "/generate",
     "prompt": "...", "messages": [...], "response": "...", "promptTokens": 12,
     "completionTokens": 40, "latencyMs": 812.5, "finishReason": "length"}
    {"kind": "feedback", "time": "...", "requestId": "...", "revision": "...", "track": "canary",
     "client": "team-a", "rating": "down", "correction": "...", "comment": "...", "tags": ["tone"]}

`kind`, `time` (RFC 3339 in UTC), `requestId` and `revision` are required; the fields above have
the types shown when present; other fields are kept as they are (a newer gateway may add some
during a rollout, and refusing them would drop its records). A malformed line is refused with
its line number and the field.

On read, `feedback=` selects request records by the feedback joined to them: `any` (all),
`with` / `without` (some feedback or none), `up` (positive: "up", 4 or 5) and `down` (negative:
"down", 1 or 2; the same ratings llmops_feedback_total counts as negative). A rating of 3 is
neither up nor down. `corrected` keeps those whose feedback carries a non-empty `correction`.

`split=heldout` or `split=train` with `fraction=` (in (0, 1)) divides the request records by a
hash of their `requestId` (blake2b, see :func:`held_out`): a fixed share `fraction` of every
window is held out, the rest is for training, and the two views never share a record. The split
depends on the requestId alone, so it is the same in every window, on every day and for every
reader: the gate's held-out set of corrections (`split=heldout&feedback=corrected`) and the
retrain Job's export (`split=train`) stay apart whatever windows each asks for.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "FEEDBACK_FILTERS",
    "SPLITS",
    "FeedbackFilter",
    "Query",
    "Record",
    "RecordError",
    "Split",
    "held_out",
    "matches_feedback",
    "parse_batch",
    "parse_query",
    "parse_time",
]

KINDS = ("request", "feedback")
FeedbackFilter = Literal["any", "with", "without", "up", "down", "corrected"]
FEEDBACK_FILTERS: tuple[FeedbackFilter, ...] = ("any", "with", "without", "up", "down", "corrected")
Split = Literal["all", "heldout", "train"]
SPLITS: tuple[Split, ...] = ("all", "heldout", "train")
_POSITIVE = frozenset({"up", "4", "5"})
_NEGATIVE = frozenset({"down", "1", "2"})
_REQUIRED = ("kind", "time", "requestId", "revision")
_STRINGS = (
    "requestId",
    "revision",
    "deployment",
    "track",
    "client",
    "route",
    "response",
    "finishReason",
    "correction",
    "comment",
)
_NUMBERS = ("promptTokens", "completionTokens", "latencyMs")
_MAX_ID = 512


class RecordError(ValueError):
    """A malformed line of a batch (or a bad query parameter): `line` is 1-based (0: none)."""

    def __init__(self, line: int, field: str, message: str) -> None:
        where = f"line {line}: " if line else ""
        super().__init__(f"{where}{field}: {message}" if field else f"{where}{message}")
        self.line = line
        self.field = field


@dataclass(frozen=True)
class Record:
    """One validated record: its segment coordinates and its line, re-serialised compactly."""

    kind: str
    day: dt.date
    revision: str
    line: bytes
    """The record as one JSONL line (with its newline)."""


def parse_time(value: Any, field: str, line: int = 0) -> dt.datetime:
    """An RFC 3339 timestamp in UTC (``Z`` or ``+00:00``)."""
    if not isinstance(value, str):
        raise RecordError(line, field, "must be an RFC 3339 timestamp string")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(line, field, f"{value[:64]!r} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None or parsed.utcoffset() != dt.timedelta(0):
        raise RecordError(line, field, f"{value[:64]!r} must be in UTC (end with Z)")
    return parsed.astimezone(dt.UTC)


def _check(obj: Mapping[str, Any], line: int) -> dt.datetime:
    for name in _REQUIRED:
        if name not in obj:
            raise RecordError(line, name, "is required")
    if obj["kind"] not in KINDS:
        raise RecordError(line, "kind", f"must be one of {', '.join(KINDS)}, got {obj['kind']!r}")
    for name in _STRINGS:
        if name in obj and obj[name] is not None and not isinstance(obj[name], str):
            raise RecordError(line, name, "must be a string")
    for name in ("requestId", "revision"):
        if not obj[name] or len(obj[name]) > _MAX_ID:
            raise RecordError(line, name, f"must be 1 to {_MAX_ID} characters")
    for name in _NUMBERS:
        value = obj.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise RecordError(line, name, "must be a number")
    if obj["kind"] == "feedback":
        rating = obj.get("rating")
        if rating is None:
            raise RecordError(line, "rating", "is required in a feedback record")
        if str(rating) not in _POSITIVE | _NEGATIVE | {"3"}:
            raise RecordError(line, "rating", f'must be "up", "down" or 1 to 5, got {rating!r}')
        tags = obj.get("tags")
        if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            raise RecordError(line, "tags", "must be a list of strings")
    return parse_time(obj["time"], "time", line)


def parse_batch(body: bytes) -> list[Record]:
    """Every record of a JSONL batch, or RecordError naming the first malformed line."""
    records = []
    for number, raw in enumerate(body.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise RecordError(number, "", f"not JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise RecordError(number, "", "must be a JSON object")
        when = _check(obj, number)
        line = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        records.append(Record(obj["kind"], when.date(), obj["revision"], line))
    return records


@dataclass(frozen=True)
class Query:
    """`GET /v1/records` parameters: request records with since <= time < until."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    revision: str | None = None
    feedback: FeedbackFilter = "any"
    split: Split = "all"
    fraction: float = 0.0
    """With split heldout or train: the share held out."""

    def keeps_split(self, request_id: str) -> bool:
        if self.split == "all":
            return True
        return held_out(request_id, self.fraction) == (self.split == "heldout")

    def keeps_time(self, when: dt.datetime) -> bool:
        return (self.since is None or when >= self.since) and (self.until is None or when < self.until)


def parse_query(params: Mapping[str, str]) -> Query:
    """The query of `params`, or RecordError naming the parameter."""
    known = ("since", "until", "revision", "feedback", "split", "fraction")
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise RecordError(0, unknown[0], f"unknown parameter ({', '.join(known)})")
    since = parse_time(params["since"], "since") if params.get("since") else None
    until = parse_time(params["until"], "until") if params.get("until") else None
    if since and until and until <= since:
        raise RecordError(0, "until", "must be after since")
    feedback = params.get("feedback") or "any"
    if feedback not in FEEDBACK_FILTERS:
        raise RecordError(0, "feedback", f"must be one of {', '.join(FEEDBACK_FILTERS)}, got {feedback!r}")
    split, fraction = _split(params)
    return Query(since, until, params.get("revision") or None, feedback, split, fraction)


def _split(params: Mapping[str, str]) -> tuple[Split, float]:
    split = params.get("split") or "all"
    if split not in SPLITS:
        raise RecordError(0, "split", f"must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "all":
        if params.get("fraction"):
            raise RecordError(0, "fraction", "goes with split=heldout or split=train")
        return "all", 0.0
    try:
        fraction = float(params.get("fraction") or "")
    except ValueError:
        raise RecordError(0, "fraction", f"split={split} needs a fraction in (0, 1)") from None
    if not 0 < fraction < 1:
        raise RecordError(0, "fraction", f"must be in (0, 1), got {fraction}")
    return split, fraction


def held_out(request_id: str, fraction: float) -> bool:
    """Whether the request `request_id` is in the held-out share `fraction` of the split: the first
    8 bytes of blake2b(requestId) read as a number in [0, 1). Request IDs are signed random
    tokens (llmops.gateway.ids), so any fixed share of them is a uniform sample of the traffic."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def matches_feedback(wanted: FeedbackFilter, feedback: Mapping[str, Any] | None) -> bool:
    """Whether a request record whose joined feedback is `feedback` passes the filter."""
    if wanted == "any":
        return True
    if wanted == "with":
        return feedback is not None
    if wanted == "without":
        return feedback is None
    if feedback is None:
        return False
    if wanted == "corrected":
        correction = feedback.get("correction")
        return isinstance(correction, str) and correction.strip() != ""
    rating = str(feedback.get("rating"))
    return rating in (_POSITIVE if wanted == "up" else _NEGATIVE)
