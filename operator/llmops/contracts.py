"""What two parts of llmops must agree on, each defined once.

- The exit codes of the Job programs (``llmops eval``, ``llmops download``), which the programs
  return and the rendered Jobs' podFailurePolicy reads.
- The evaluation verdicts in the evaluation summary, which the program writes and the gate reads.
- The timestamp format of status and conditions, written and read back by the lifecycle.
- The download Job's progress endpoint: its port, its path and the JSON it answers, which
  ``llmops download`` serves and the operator reads while the revision is Caching.

Standard library only, so that every layer may import it: the core (api, render, lifecycle),
which must not import the Job programs, and the Job programs themselves.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "DOWNLOAD_EXIT_OK",
    "DOWNLOAD_EXIT_PERMANENT",
    "DOWNLOAD_EXIT_TRANSIENT",
    "DOWNLOAD_PROGRESS_PATH",
    "DOWNLOAD_PROGRESS_PORT",
    "DOWNLOAD_PROGRESS_PORT_NAME",
    "EVAL_EXIT_BROKEN",
    "EVAL_EXIT_FAILED",
    "EVAL_EXIT_INVALID",
    "EVAL_EXIT_PASSED",
    "TIMESTAMP_FORMAT",
    "VERDICT_BROKEN",
    "VERDICT_FAILED",
    "VERDICT_INSUFFICIENT_SAMPLES",
    "VERDICT_PASSED",
    "DownloadProgress",
    "format_timestamp",
    "parse_status_timestamp",
    "parse_timestamp",
]

# ------------------------------------------------------------------ `llmops eval` (evaluation Job)
EVAL_EXIT_PASSED: Final = 0
"""Every threshold passed."""
EVAL_EXIT_FAILED: Final = 1
"""The model failed at least one threshold, or the dataset is too small to show one
(InsufficientSamples): the Job fails at once (podFailurePolicy), no retry can change it."""
EVAL_EXIT_BROKEN: Final = 2
"""The evaluation itself could not be done, for a reason a retry may fix (the server unreachable,
no answer completed, the capture store or the Hub unreadable, an internal error): it says nothing
about the model; the Job retries up to its backoffLimit."""
EVAL_EXIT_INVALID: Final = 3
"""The evaluation itself could not be done because what it was given is wrong (a dataset line, a
threshold, a Hub dataset, revision or file that does not exist): it says nothing about the model,
and the Job fails at once (podFailurePolicy), since a retry of the same Job reads the same input."""

VERDICT_PASSED: Final = "Passed"
VERDICT_FAILED: Final = "Failed"
VERDICT_BROKEN: Final = "Broken"
VERDICT_INSUFFICIENT_SAMPLES: Final = "InsufficientSamples"
"""No threshold failed, but at least one cannot be shown with this many prompts: never a pass."""

# ---------------------------------------------------------- `llmops download` (the cache's Job)
DOWNLOAD_EXIT_OK: Final = 0
"""The snapshot is in the cache."""
DOWNLOAD_EXIT_PERMANENT: Final = 1
"""Retrying cannot help (repository or revision not found, gated without a token): fail at once."""
DOWNLOAD_EXIT_TRANSIENT: Final = 2
"""Worth a retry (network, timeout)."""
DOWNLOAD_PROGRESS_PORT: Final = 8090
"""Where ``llmops download`` answers ``GET /progress`` in its pod (the container port ``progress``)."""
DOWNLOAD_PROGRESS_PORT_NAME: Final = "progress"
DOWNLOAD_PROGRESS_PATH: Final = "/progress"


@dataclass(frozen=True)
class DownloadProgress:
    """How far a download is, as ``GET /progress`` answers it (JSON keys in camelCase).

    ``bytes_total`` is the size of every file of the snapshot, from the Hub's file listing
    (None when the listing could not be read); ``bytes_per_second`` is the rate over the last
    seconds of the download (None before there are two readings to compare)."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int | None
    bytes_per_second: float | None
    elapsed_seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "filesDone": self.files_done,
            "filesTotal": self.files_total,
            "bytesDone": self.bytes_done,
            "bytesTotal": self.bytes_total,
            "bytesPerSecond": self.bytes_per_second,
            "elapsedSeconds": self.elapsed_seconds,
        }

    @classmethod
    def from_json(cls, data: Any) -> DownloadProgress:
        """Parse an answer; a ValueError names the first field that is missing or wrong."""
        if not isinstance(data, Mapping):
            raise ValueError("the answer is not a JSON object")
        return cls(
            files_done=_count(data, "filesDone"),
            files_total=_count(data, "filesTotal"),
            bytes_done=_count(data, "bytesDone"),
            bytes_total=_count(data, "bytesTotal", optional=True),
            bytes_per_second=_amount(data, "bytesPerSecond", optional=True),
            elapsed_seconds=_amount(data, "elapsedSeconds") or 0.0,
        )


def _count(data: Mapping[str, Any], key: str, optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key}: expected a whole number >= 0, got {value!r}")
    return value


def _amount(data: Mapping[str, Any], key: str, optional: bool = False) -> float | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{key}: expected a number >= 0, got {value!r}")
    return float(value)


# ----------------------------------------------------------------------------------- timestamps
TIMESTAMP_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
"""metav1.Time's form: RFC 3339 in UTC, whole seconds."""


def format_timestamp(when: dt.datetime) -> str:
    """``when`` as a status or condition timestamp (UTC, truncated to seconds)."""
    return when.astimezone(dt.UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(value: str) -> dt.datetime:
    """A timestamp in :data:`TIMESTAMP_FORMAT`, as an aware UTC datetime."""
    return dt.datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=dt.UTC)


def parse_status_timestamp(value: object) -> dt.datetime | None:
    """A status field written by :func:`format_timestamp`, or None while it is unset."""
    return parse_timestamp(str(value)) if value else None
