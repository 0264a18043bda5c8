"""The evaluation's outputs: exit codes, the summary (the Job's termination message) and per-sample lines.

Exit codes: `EXIT_PASSED` (0) every threshold passed; `EXIT_FAILED` (1) the model failed at least
one threshold, or the dataset is too small to show one (verdict InsufficientSamples, never a pass);
`EXIT_BROKEN` (2) the evaluation itself could not be done, for a reason a retry may fix (unreachable
endpoint, no sample completed, internal error); `EXIT_INVALID` (3) it could not be done because
its input is wrong (a dataset line, a threshold, a Hub dataset that does not exist): a retry would
read the same input. Both say nothing about the model (verdict Broken).

The summary is one compact JSON object, always smaller than `SUMMARY_LIMIT` (4096 bytes, the
Kubernetes termination message limit), written to /dev/termination-log by default::

    {"verdict": "Passed" | "Failed" | "InsufficientSamples" | "Broken",
     "exitCode": 0 | 1 | 2 | 3,
     "message": "one line for people",
     "model": "org/name", "modelRevision": "sha",           (when given)
     "confidence": 0.95,                                     (the level of every interval)
     "counts": {"samples": 200, "completed": 198, "errors": 2, "retried": 4, "retries": 5},
     "metrics": {"exactMatch": {"value": 0.91, "n": 200, "min": 0.8, "passed": true,
                                "verdict": "Passed", "lower": 0.864, "upper": 0.942},
                 "errorRate": {"value": 0.0, "n": 6, "max": 0.01, "passed": false,
                               "verdict": "InsufficientSamples", "lower": 0, "upper": 0.39,
                               "required": 381},
                 "latencyP95": {"value": 0.42}, ...},         (measured metrics, and every threshold)
     "comparison": {"baseline": "http://…", "metrics": {"exactMatch": {"candidate": 0.9,
                    "baseline": 0.92, "delta": -0.02, "n": 200, "wins": 1, "losses": 5,
                    "test": "mcnemar", "pValue": 0.11, "maxDrop": 0.01,
                    "verdict": "Inconclusive"}, ...}},        (only with a baseline endpoint)
     "heldOut": {"verdict": "Failed", "records": 40, "skipped": 0, "minRecords": 30,
                 "message": "…", "counts": {"samples": 40, "completed": 40, "errors": 0},
                 "metrics": {"exactMatch": {"value": 0.5, "n": 40}, ...},
                 "comparison": {"metrics": {...}}},          (only with --held-out-url)
     "tags": {"math": {"n": 50, "exactMatch": 0.88, ...}, ...},
     "tagsOmitted": 3}                                         (only when tags were cut to fit)

`counts.errors` are samples with no answer after every retry; `retried` the samples that needed a
retry, `retries` the retries sent. A thresholded metric always appears with `passed` and `verdict`;
a rate (`RATE_METRICS`) has `n` and, when thresholded, its interval (`lower`, `upper`) and, when
the verdict is InsufficientSamples, `required`, the prompts needed to show the threshold. A metric
that could not be measured has `"value": null`. The comparison section is informative: its
verdicts do not change the exit code (the caller judges it, see
`llmops.analysis.confidence.comparison_verdict`). Only the per-tag breakdown is ever cut to fit
(then the comparison keeps only its deltas, counts, tests and verdicts, `"compact": true`, then
the message is shortened; with a held-out set, its comparison and message, then the bounds and
thresholds of every metric, which the spec holds), never a verdict. Interval bounds are rounded to 4 significant digits. Values are rounded to 6 significant digits.

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
    EVAL_EXIT_INVALID,
    EVAL_EXIT_PASSED,
    VERDICT_BROKEN,
    VERDICT_FAILED,
    VERDICT_INSUFFICIENT_SAMPLES,
    VERDICT_PASSED,
)
from llmops.evaluation.metrics import SampleResult
from llmops.evaluation.thresholds import FAILED, INSUFFICIENT_SAMPLES, Verdict

__all__ = [
    "EXIT_BROKEN",
    "EXIT_FAILED",
    "EXIT_INVALID",
    "EXIT_PASSED",
    "SUMMARY_LIMIT",
    "VERDICT_BROKEN",
    "VERDICT_FAILED",
    "VERDICT_INSUFFICIENT_SAMPLES",
    "VERDICT_PASSED",
    "broken_summary",
    "held_out_section",
    "render_summary",
    "result_summary",
    "sample_line",
]

# The contract with the gate and the rendered Job (llmops.contracts), under this module's names.
EXIT_PASSED = EVAL_EXIT_PASSED
EXIT_FAILED = EVAL_EXIT_FAILED
EXIT_BROKEN = EVAL_EXIT_BROKEN
EXIT_INVALID = EVAL_EXIT_INVALID

SUMMARY_LIMIT = 4096
# Room kept below the limit for a trailing newline and any byte counted differently by the kubelet.
_BUDGET = SUMMARY_LIMIT - 96
_MAX_MESSAGE = 1024
_MAX_NAME = 256
_MAX_OUTPUT = 2000


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else float(f"{value:.{digits}g}")


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


def broken_summary(
    message: str, *, model: str | None = None, revision: str | None = None, retryable: bool = True
) -> dict[str, Any]:
    """The summary of an evaluation that could not be done: EXIT_BROKEN, or EXIT_INVALID when a
    retry would read the same wrong input (not ``retryable``)."""
    return _base(VERDICT_BROKEN, EXIT_BROKEN if retryable else EXIT_INVALID, message, model, revision)


def _reason(v: Verdict) -> str:
    # A rate's reason names its metric already (with its interval); a value's does not.
    return v.reason if v.rate is not None else f"{v.threshold.metric} {v.reason}"


def _overall(verdicts: Sequence[Verdict]) -> tuple[str, int, str]:
    """Failed if a threshold failed; else InsufficientSamples if one cannot be shown; else Passed."""
    failed = [v for v in verdicts if v.outcome == FAILED]
    short = [v for v in verdicts if v.outcome == INSUFFICIENT_SAMPLES]
    if failed:
        return VERDICT_FAILED, EXIT_FAILED, "failed: " + "; ".join(map(_reason, failed + short))
    if short:
        message = "too few samples to show: " + "; ".join(map(_reason, short))
        return VERDICT_INSUFFICIENT_SAMPLES, EXIT_FAILED, message
    return (
        VERDICT_PASSED,
        EXIT_PASSED,
        f"passed {len(verdicts)} threshold(s)" if verdicts else "passed (no thresholds)",
    )


def _metric_entry(value: float | None, counted: tuple[int, int] | None, v: Verdict | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"value": _round(value)}
    if counted is not None:
        entry["n"] = counted[1]
    if v is None:
        return entry
    if v.threshold.min is not None:
        entry["min"] = v.threshold.min
    if v.threshold.max is not None:
        entry["max"] = v.threshold.max
    entry["passed"] = v.passed
    entry["verdict"] = v.outcome
    if v.rate is not None:
        entry["lower"], entry["upper"] = _round(v.rate.lower, 4), _round(v.rate.upper, 4)
        if v.rate.required is not None:
            entry["required"] = v.rate.required
    return entry


def result_summary(
    *,
    values: Mapping[str, float | None],
    verdicts: Sequence[Verdict],
    counts: Mapping[str, int],
    tags: Mapping[str, Mapping[str, float]],
    model: str | None = None,
    revision: str | None = None,
    rate_counts: Mapping[str, tuple[int, int]] | None = None,
    confidence: float | None = None,
    comparison: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary of a completed evaluation: verdict from the threshold verdicts (all must pass)."""
    verdict, code, message = _overall(verdicts)
    summary = _base(verdict, code, message, model, revision)
    if confidence is not None:
        summary["confidence"] = confidence
    summary["counts"] = dict(counts)
    by_metric = {v.threshold.metric: v for v in verdicts}
    metrics: dict[str, dict[str, Any]] = {}
    for name in METRIC_NAMES:
        value = values.get(name)
        v = by_metric.get(name)
        if v is None and value is None:
            continue
        metrics[name] = _metric_entry(value, (rate_counts or {}).get(name), v)
    summary["metrics"] = metrics
    if comparison is not None:
        summary["comparison"] = dict(comparison)
    summary["tags"] = {tag: {k: _round(x) for k, x in entry.items()} for tag, entry in tags.items()}
    return summary


_HELD_OUT_METRICS = ("exactMatch", "contains", "tokenF1", "rougeL", "errorRate")
"""What a correction can score (llmops.api.delivery.HELD_OUT_METRICS)."""


def held_out_section(
    *,
    records: int,
    skipped: int,
    min_records: int,
    values: Mapping[str, float | None],
    verdicts: Sequence[Verdict],
    counts: Mapping[str, int],
    rate_counts: Mapping[str, tuple[int, int]],
    comparison: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The summary's `heldOut` section: the set's verdict (InsufficientSamples below `min_records`,
    whatever its thresholds say), counts, the metrics a correction scores, and the comparison."""
    verdict, _, message = _overall(verdicts)
    if records < min_records:
        verdict = VERDICT_INSUFFICIENT_SAMPLES
        message = f"{records} correction(s) in the window, fewer than minRecords {min_records}"
        if verdicts:
            message += f" ({_overall(verdicts)[2]})"
    elif verdict == VERDICT_PASSED:
        message = f"{records} correction(s): {message}"
    section: dict[str, Any] = {
        "verdict": verdict,
        "records": records,
        "skipped": skipped,
        "minRecords": min_records,
        "message": _clip(message, 512),
        "counts": dict(counts),
    }
    by_metric = {v.threshold.metric: v for v in verdicts}
    section["metrics"] = {
        name: _metric_entry(values.get(name), rate_counts.get(name), by_metric.get(name))
        for name in _HELD_OUT_METRICS
        if values.get(name) is not None or name in by_metric
    }
    if comparison is not None:
        section["comparison"] = {"metrics": dict(comparison.get("metrics") or {})}
    return section


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
    if len(text.encode()) > _BUDGET and "comparison" in trimmed:
        # Then the comparison's per-metric values (each metric's own value is in `metrics`; the
        # delta, the counts and the test stay).
        trimmed["comparison"] = _compact_comparison(trimmed["comparison"])
        text = _dump(trimmed)
    if len(text.encode()) > _BUDGET and "heldOut" in trimmed:
        # Then the held-out set's: its comparison compacted, its message short, its metrics slim.
        held = {**trimmed["heldOut"]}
        if "comparison" in held:
            held["comparison"] = _compact_comparison(held["comparison"])
        held["message"] = _clip(str(held.get("message", "")), 64)
        held["metrics"] = _slim_metrics(held.get("metrics") or {})
        held.pop("counts", None)  # records says how many; errorRate's n the errors
        trimmed["heldOut"] = held
        text = _dump(trimmed)
    if len(text.encode()) > _BUDGET and "heldOut" in trimmed:
        # Both sets together may still not fit: every metric keeps its value, n and verdict (the
        # thresholds are in the spec, and the bounds give way), and the echoed names are shorter
        # (the Job's own labels and flags name the revision).
        trimmed["metrics"] = _slim_metrics(trimmed.get("metrics") or {})
        for key in ("model", "modelRevision"):
            if key in trimmed:
                trimmed[key] = _clip(str(trimmed[key]), 96)
        text = _dump(trimmed)
    excess = len(text.encode()) - _BUDGET
    if excess > 0:
        # Every threshold with its interval and a full comparison: the message (which repeats the
        # metrics' numbers) gives way, never a verdict.
        message = str(trimmed.get("message", ""))
        keep = max(64, len(message.encode()) - excess - 8)
        trimmed["message"] = _clip(message.encode()[:keep].decode(errors="ignore"), keep)
        text = _dump(trimmed)
    if len(text.encode()) > _BUDGET:  # cannot happen with clipped names and messages; fail loudly if it does
        raise AssertionError(f"summary is {len(text.encode())} bytes even without tags")
    return text


_SLIM = ("value", "n", "passed", "verdict", "required")


def _slim_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {name: {k: m[k] for k in _SLIM if k in m} for name, m in metrics.items()}


def _compact_comparison(comparison: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("delta", "n", "wins", "losses", "pValue", "verdict")
    metrics = comparison.get("metrics") or {}
    compact = {name: {k: m[k] for k in keep if k in m} for name, m in metrics.items()}
    # The baseline's URL is in the Job's environment too.
    return {"metrics": compact, "compact": True}


def sample_line(result: SampleResult, *, target: str | None = None) -> str:
    """One JSON line with a sample's outcome, for stdout (`"target": "baseline"` for the baseline's)."""
    c = result.completion
    line: dict[str, Any] = {"target": target} if target else {}
    line |= {
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
