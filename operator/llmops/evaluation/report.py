"""The evaluation's outputs: exit codes, the summary (the Job's termination message) and per-sample lines.

Exit codes: `EXIT_PASSED` (0) every threshold passed; `EXIT_FAILED` (1) the model failed at least
one threshold; `EXIT_BROKEN` (2) the evaluation itself could not be done (bad dataset or flags,
unreachable endpoint, no sample completed, internal error): say nothing about the model.

The summary is one compact JSON object, always smaller than `SUMMARY_LIMIT` (4096 bytes, the
Kubernetes termination message limit), written to /dev/termination-log by default::

    {"verdict": "Passed" | "Failed" | "Broken",
     "exitCode": 0 | 1 | 2,
     "message": "one line for people",
     "model": "org/name", "modelRevision": "sha",           (when given)
     "counts": {"samples": 200, "completed": 198, "errors": 2, "retries": 5},
     "metrics": {"exactMatch": {"value": 0.91, "min": 0.8, "passed": true},
                 "latencyP95": {"value": 0.42}, ...},         (measured metrics, and every threshold)
     "tags": {"math": {"n": 50, "exactMatch": 0.88, ...}, ...},
     "tagsOmitted": 3}                                         (only when tags were cut to fit)

A thresholded metric always appears with `passed`; a metric that could not be measured has
`"value": null`. Only the per-tag breakdown is ever cut to fit, never a verdict. Values are
rounded to 6 significant digits.

Per-sample results are JSON Lines on stdout, one per sample, in completion order::

    {"id": "q1", "tags": ["math"], "latency": 0.101, "generatedTokens": 7, "attempts": 1,
     "scores": {"exactMatch": 1.0, ...}, "error": null, "output": "..."}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from llmops.api.metric_names import METRIC_NAMES
from llmops.contracts import (
    EVAL_EXIT_BROKEN,
    EVAL_EXIT_FAILED,
    EVAL_EXIT_PASSED,
    VERDICT_BROKEN,
    VERDICT_FAILED,
    VERDICT_PASSED,
)
from llmops.evaluation.metrics import SampleResult
from llmops.evaluation.thresholds import Verdict

__all__ = [
    "EXIT_BROKEN",
    "EXIT_FAILED",
    "EXIT_PASSED",
    "SUMMARY_LIMIT",
    "VERDICT_BROKEN",
    "VERDICT_FAILED",
    "VERDICT_PASSED",
    "broken_summary",
    "render_summary",
    "result_summary",
    "sample_line",
]

# The contract with the gate and the rendered Job (llmops.contracts), under this module's names.
EXIT_PASSED = EVAL_EXIT_PASSED
EXIT_FAILED = EVAL_EXIT_FAILED
EXIT_BROKEN = EVAL_EXIT_BROKEN

SUMMARY_LIMIT = 4096
# Room kept below the limit for a trailing newline and any byte counted differently by the kubelet.
_BUDGET = SUMMARY_LIMIT - 96
_MAX_MESSAGE = 1024
_MAX_NAME = 256
_MAX_OUTPUT = 2000


def _round(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.6g}")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _base(
    verdict: str, exit_code: int, message: str, model: str | None, revision: str | None
) -> dict[str, Any]:
    summary: dict[str, Any] = {"verdict": verdict, "exitCode": exit_code}
    summary["message"] = _clip(message, _MAX_MESSAGE)
    if model:
        summary["model"] = _clip(model, _MAX_NAME)
    if revision:
        summary["modelRevision"] = _clip(revision, _MAX_NAME)
    return summary


def broken_summary(message: str, *, model: str | None = None, revision: str | None = None) -> dict[str, Any]:
    """The summary of an evaluation that could not be done."""
    return _base(VERDICT_BROKEN, EXIT_BROKEN, message, model, revision)


def result_summary(
    *,
    values: Mapping[str, float | None],
    verdicts: Sequence[Verdict],
    counts: Mapping[str, int],
    tags: Mapping[str, Mapping[str, float]],
    model: str | None = None,
    revision: str | None = None,
) -> dict[str, Any]:
    """The summary of a completed evaluation: verdict from the threshold verdicts (all must pass)."""
    failed = [v for v in verdicts if not v.passed]
    if failed:
        verdict, code = VERDICT_FAILED, EXIT_FAILED
        message = "failed: " + "; ".join(f"{v.threshold.metric} {v.reason}" for v in failed)
    else:
        verdict, code = VERDICT_PASSED, EXIT_PASSED
        message = f"passed {len(verdicts)} threshold(s)" if verdicts else "passed (no thresholds)"
    summary = _base(verdict, code, message, model, revision)
    summary["counts"] = dict(counts)
    by_metric = {v.threshold.metric: v for v in verdicts}
    metrics: dict[str, dict[str, Any]] = {}
    for name in METRIC_NAMES:
        value = values.get(name)
        v = by_metric.get(name)
        if v is None and value is None:
            continue
        entry: dict[str, Any] = {"value": _round(value)}
        if v is not None:
            if v.threshold.min is not None:
                entry["min"] = v.threshold.min
            if v.threshold.max is not None:
                entry["max"] = v.threshold.max
            entry["passed"] = v.passed
        metrics[name] = entry
    summary["metrics"] = metrics
    summary["tags"] = {tag: {k: _round(x) for k, x in entry.items()} for tag, entry in tags.items()}
    return summary


def _dump(summary: Mapping[str, Any]) -> str:
    return json.dumps(summary, separators=(",", ":"), ensure_ascii=False)


def render_summary(summary: Mapping[str, Any]) -> str:
    """Serialise the summary compactly, dropping per-tag entries (last first) until it fits the limit."""
    text = _dump(summary)
    if len(text.encode()) <= _BUDGET:
        return text
    tags: Mapping[str, Any] = summary.get("tags", {})
    trimmed = {k: v for k, v in summary.items() if k != "tags"}
    trimmed["tags"] = {}
    trimmed["tagsOmitted"] = len(tags)
    text = _dump(trimmed)
    # Add tags back one at a time while they fit: linear in what is kept, whatever the dataset's tag count.
    for name, entry in tags.items():
        trimmed["tags"][name] = entry
        trimmed["tagsOmitted"] -= 1
        candidate = _dump(trimmed)
        if len(candidate.encode()) > _BUDGET:
            del trimmed["tags"][name]
            trimmed["tagsOmitted"] += 1
            break
        text = candidate
    if len(text.encode()) > _BUDGET:  # cannot happen with clipped names and messages; fail loudly if it does
        raise AssertionError(f"summary is {len(text.encode())} bytes even without tags")
    return text


def sample_line(result: SampleResult) -> str:
    """One JSON line with a sample's outcome, for stdout."""
    c = result.completion
    line: dict[str, Any] = {
        "id": result.sample.id,
        "tags": list(result.sample.tags),
        "latency": None if c.latency is None else round(c.latency, 6),
        "generatedTokens": c.generated_tokens,
        "attempts": c.attempts,
        "scores": dict(result.scores),
        "error": c.error,
    }
    if result.safety_category:
        line["safety"] = result.safety_category
    if c.text is not None:
        line["output"] = _clip(c.text, _MAX_OUTPUT)
    return json.dumps(line, ensure_ascii=False)
