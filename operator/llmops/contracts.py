"""What two parts of llmops must agree on, each defined once.

- The exit codes of the Job programs (``llmops eval``, ``llmops download``), which the programs
  return and the rendered Jobs' podFailurePolicy reads.
- The evaluation verdicts in the evaluation summary, which the program writes and the gate reads.
- The timestamp format of status and conditions, written and read back by the lifecycle.

Standard library only, so that every layer may import it: the core (api, render, lifecycle),
which must not import the Job programs, and the Job programs themselves.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

__all__ = [
    "DOWNLOAD_EXIT_OK",
    "DOWNLOAD_EXIT_PERMANENT",
    "DOWNLOAD_EXIT_TRANSIENT",
    "EVAL_EXIT_BROKEN",
    "EVAL_EXIT_FAILED",
    "EVAL_EXIT_PASSED",
    "TIMESTAMP_FORMAT",
    "VERDICT_BROKEN",
    "VERDICT_FAILED",
    "VERDICT_INSUFFICIENT_SAMPLES",
    "VERDICT_PASSED",
    "format_timestamp",
    "parse_timestamp",
]

# ------------------------------------------------------------------ `llmops eval` (evaluation Job)
EVAL_EXIT_PASSED: Final = 0
"""Every threshold passed."""
EVAL_EXIT_FAILED: Final = 1
"""The model failed at least one threshold, or the dataset is too small to show one
(InsufficientSamples): the Job fails at once (podFailurePolicy), no retry can change it."""
EVAL_EXIT_BROKEN: Final = 2
"""The evaluation itself could not be done: it says nothing about the model; the Job may retry."""

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

# ----------------------------------------------------------------------------------- timestamps
TIMESTAMP_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
"""metav1.Time's form: RFC 3339 in UTC, whole seconds."""


def format_timestamp(when: dt.datetime) -> str:
    """``when`` as a status or condition timestamp (UTC, truncated to seconds)."""
    return when.astimezone(dt.UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(value: str) -> dt.datetime:
    """A timestamp in :data:`TIMESTAMP_FORMAT`, as an aware UTC datetime."""
    return dt.datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=dt.UTC)
