"""The held-out set of feedback corrections: the prompts whose feedback carried a `correction`,
read from the capture store, with the correction as the expected answer.

The store splits its records by a hash of their requestId (llmops.capture_store.records.held_out):
this module reads only the `heldout` view (`GET /v1/records?split=heldout&fraction=F
&feedback=corrected&since=…`), while the retrain Job is given the `train` view, so a record the
gate scores is never one a retrain trained on, whatever windows either asks for.

The newest `max_records` corrections of the window are kept (a record delivered twice counts
once); a record the route cannot send (a chat conversation on the completion or generate route)
is skipped and counted. Reading goes through urllib, which honours HTTP(S)_PROXY and NO_PROXY
like the evaluation's own client.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from llmops.evaluation.dataset import DatasetError, Sample, parse_dataset

__all__ = [
    "HeldOutSet",
    "HeldOutSource",
    "HeldOutUnavailable",
    "read_held_out",
    "records_url",
    "samples_of",
]

_READ_TIMEOUT = 60.0


class HeldOutUnavailable(RuntimeError):
    """The capture store could not be read: the evaluation breaks (it says nothing about the model)."""


@dataclass(frozen=True)
class HeldOutSource:
    """Where the corrections come from and how many to score."""

    url: str
    """The capture store's base URL (http://<name>-capture.<ns>.svc:8080)."""
    token: str
    fraction: float
    window_seconds: float
    max_records: int
    min_records: int


@dataclass(frozen=True)
class HeldOutSet:
    """The corrections read: the samples to send, and the records that could not be sent."""

    samples: list[Sample]
    skipped: int = 0


def records_url(source: HeldOutSource, now: dt.datetime) -> str:
    """GET /v1/records for the held-out view's corrected requests of the last window."""
    since = (now - dt.timedelta(seconds=source.window_seconds)).astimezone(dt.UTC)
    query = {
        "since": since.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "feedback": "corrected",
        "split": "heldout",
        "fraction": repr(source.fraction),
    }
    return f"{source.url.rstrip('/')}/v1/records?{urllib.parse.urlencode(query)}"


Opener = Callable[[urllib.request.Request, float], IO[bytes]]


def _open(request: urllib.request.Request, timeout: float) -> IO[bytes]:
    return urllib.request.urlopen(request, timeout=timeout)  # type: ignore[no-any-return]


def read_held_out(
    source: HeldOutSource, *, now: dt.datetime, route: str, opener: Opener = _open
) -> HeldOutSet:
    """The held-out set: the store's corrected records, newest first up to max_records."""
    request = urllib.request.Request(
        records_url(source, now), headers={"Authorization": f"Bearer {source.token}"}
    )
    try:
        with opener(request, _READ_TIMEOUT) as body:
            return samples_of((line.decode() for line in body), source.max_records, route)
    except urllib.error.HTTPError as e:
        raise HeldOutUnavailable(f"the capture store answered {e.code} to GET /v1/records") from None
    except (urllib.error.URLError, OSError) as e:
        raise HeldOutUnavailable(f"cannot read the capture store at {source.url}: {e}") from None


def samples_of(lines: Iterable[str], max_records: int, route: str) -> HeldOutSet:
    """The samples of the store's JSONL: one per request ID (the last delivery wins), the newest
    `max_records` by request time, oldest first; chat records are skipped on a raw-prompt route."""
    newest: dict[str, tuple[str, dict[str, Any]]] = {}
    skipped = 0
    for raw in lines:
        if not raw.strip():
            continue
        record = json.loads(raw)
        line = _dataset_line(record, route)
        if line is None:
            skipped += 1
            continue
        newest[str(record["requestId"])] = (str(record.get("time", "")), line)
        if len(newest) > 2 * max_records:
            newest = _newest(newest, max_records)
    kept = sorted(_newest(newest, max_records).values(), key=lambda x: x[0])
    if not kept:
        return HeldOutSet([], skipped)
    try:
        samples = parse_dataset((json.dumps(line) for _, line in kept), "held-out corrections")
    except DatasetError as e:  # the store validates records: this is a bug, not a bad model
        raise HeldOutUnavailable(str(e)) from None
    return HeldOutSet(samples, skipped)


def _newest(
    entries: Mapping[str, tuple[str, dict[str, Any]]], n: int
) -> dict[str, tuple[str, dict[str, Any]]]:
    # RFC 3339 UTC stamps ending in Z sort as text when they have the same precision, which the
    # gateway's do (milliseconds).
    return dict(sorted(entries.items(), key=lambda kv: kv[1][0])[-n:])


def _dataset_line(record: Mapping[str, Any], route: str) -> dict[str, Any] | None:
    """A dataset line for a captured request and its correction (None when it cannot be sent)."""
    correction = (record.get("feedback") or {}).get("correction")
    if not isinstance(correction, str) or not correction.strip():
        return None
    line: dict[str, Any] = {"id": f"heldout-{record['requestId']}", "reference": correction.strip()}
    prompt, messages = record.get("prompt"), record.get("messages")
    if isinstance(prompt, str) and prompt:
        line["prompt"] = prompt
    elif isinstance(messages, list) and _is_chat(messages) and route == "chat":
        line["messages"] = [{"role": m["role"], "content": m["content"]} for m in messages]
    else:
        return None
    return line


def _is_chat(messages: Any) -> bool:
    return (
        isinstance(messages, list)
        and bool(messages)
        and all(
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and bool(m["role"])
            and isinstance(m.get("content"), str)
            for m in messages
        )
    )
