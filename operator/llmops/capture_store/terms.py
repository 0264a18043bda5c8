"""Hashed-term histograms of the captured prompts (`GET /v1/terms`), for the prompt-content
drift signal: the operator compares two windows' histograms without ever seeing a prompt.

A prompt's text is its `prompt` string, or the content of its `messages` from the user (a
system prompt is the same on every request and would only dilute a change in what users ask).
It is lower-cased and split into words (`\\w+`); each distinct word of a prompt counts once
(a document frequency: one long prompt does not outweigh many short ones) in the bucket
``blake2b(word) mod buckets``. blake2b, not Python's hash(): that one is salted per process,
and the reference window is asked for again at every check, maybe from a restarted store.

The records are streamed segment member by segment member (`iter_requests`): memory is the
histogram plus one member, whatever the window holds.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.capture_store.records import Query, RecordError, parse_query
from llmops.capture_store.segments import iter_requests

__all__ = [
    "DEFAULT_BUCKETS",
    "MAX_BUCKETS",
    "TermHistogram",
    "bucket_of",
    "parse_terms_query",
    "prompt_text",
    "term_histogram",
    "terms_of",
]

DEFAULT_BUCKETS = 1024
MAX_BUCKETS = 65536
_WORD = re.compile(r"\w+")
_USER_ROLES = frozenset({"user", None})
_MEMO_LIMIT = 200_000
"""Words whose bucket one histogram remembers (about 20 MB at most)."""


@dataclass(frozen=True)
class TermHistogram:
    """Per bucket, how many prompts of the window have a term hashed there; `prompts` counts
    the prompts (records with no text are not counted)."""

    counts: tuple[int, ...]
    prompts: int

    def as_json(self) -> dict[str, Any]:
        return {"buckets": len(self.counts), "prompts": self.prompts, "counts": list(self.counts)}


def prompt_text(record: Mapping[str, Any]) -> str:
    """The text a user sent: `prompt`, or the user messages' content joined (text parts of a
    content list included)."""
    prompt = record.get("prompt")
    if isinstance(prompt, str):
        return prompt
    parts: list[str] = []
    for message in record.get("messages") or []:
        if not isinstance(message, Mapping) or message.get("role") not in _USER_ROLES:
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):  # OpenAI content parts: [{"type": "text", "text": ...}]
            parts += [p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)]
    return "\n".join(parts)


def terms_of(text: str) -> set[str]:
    """The distinct lower-cased words of `text`."""
    return set(_WORD.findall(text.lower()))


def bucket_of(term: str, buckets: int) -> int:
    """The term's bucket: stable across processes, machines and Python versions."""
    digest = hashlib.blake2b(term.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


def histogram_of(records: Iterable[Mapping[str, Any]], buckets: int) -> TermHistogram:
    """The histogram of the prompts of `records` (one pass, nothing kept but the counts)."""
    counts = [0] * buckets
    prompts = 0
    # Words repeat across prompts: hashing each once per histogram is most of the speed. The
    # memo is bounded, since a window's vocabulary is not.
    memo: dict[str, int] = {}
    for record in records:
        terms = terms_of(prompt_text(record))
        if not terms:
            continue
        prompts += 1
        hit: set[int] = set()
        for term in terms:
            bucket = memo.get(term)
            if bucket is None:
                if len(memo) >= _MEMO_LIMIT:
                    memo.clear()
                bucket = memo[term] = bucket_of(term, buckets)
            hit.add(bucket)
        for bucket in hit:
            counts[bucket] += 1
    return TermHistogram(tuple(counts), prompts)


def term_histogram(root: Path, query: Query, buckets: int = DEFAULT_BUCKETS) -> TermHistogram:
    """The histogram of the request records in `query`'s window and revision, read from disk."""
    return histogram_of(iter_requests(root, query), buckets)


def parse_terms_query(params: Mapping[str, str]) -> tuple[Query, int]:
    """`GET /v1/terms` parameters (since, until, revision, buckets), or RecordError naming one."""
    raw = params.get("buckets") or str(DEFAULT_BUCKETS)
    try:
        buckets = int(raw)
    except ValueError:
        raise RecordError(0, "buckets", f"must be an integer, got {raw[:32]!r}") from None
    if not 1 <= buckets <= MAX_BUCKETS:
        raise RecordError(0, "buckets", f"must be 1 to {MAX_BUCKETS}, got {buckets}")
    rest = {k: v for k, v in params.items() if k != "buckets"}
    if "feedback" in rest:
        raise RecordError(0, "feedback", "unknown parameter (since, until, revision, buckets)")
    try:
        return parse_query(rest), buckets
    except RecordError as exc:
        if exc.field and exc.field not in ("since", "until"):
            raise RecordError(0, exc.field, "unknown parameter (since, until, revision, buckets)") from None
        raise
