"""Run metrics from scored samples, per-tag breakdowns, and the summary (verdicts, size limit)."""

import json
import re

import pytest

from llmops.api.metric_names import SAMPLE_METRICS
from llmops.evaluation.completion import Completion
from llmops.evaluation.dataset import Counterfactual, Sample
from llmops.evaluation.metrics import aggregate, applicable_metrics, per_tag, rate_counts, score_sample
from llmops.evaluation.report import (
    EXIT_BROKEN,
    EXIT_FAILED,
    EXIT_PASSED,
    SUMMARY_LIMIT,
    broken_summary,
    held_out_section,
    render_summary,
    result_summary,
    sample_line,
)
from llmops.evaluation.thresholds import Threshold, judge


def _run() -> list:
    samples = [
        Sample("s1", 1, prompt="capital of France?", references=("paris",), tags=("geo",)),
        Sample("s2", 2, prompt="capital of Germany?", references=("berlin",), tags=("geo",)),
        Sample("s3", 3, prompt="2+2 as JSON", pattern=re.compile(r"\d+"), expect_json=True, tags=("math",)),
        Sample("s4", 4, prompt="capital of Italy?", references=("rome",), tags=("geo",)),
    ]
    completions = [
        Completion("Paris", 0.1, 2),
        Completion("I cannot help with that", 0.3, 5),
        Completion('{"n": 4}', 0.2, 3),
        Completion(None, attempts=4, error="HTTP 429: overloaded"),
    ]
    return [score_sample(s, c) for s, c in zip(samples, completions, strict=True)]


def test_aggregate_by_hand() -> None:
    values = aggregate(_run())
    expected = {
        "exactMatch": 1 / 3,  # s1 1, s2 0, s4 failed -> 0
        "contains": 1 / 3,
        "tokenF1": 1 / 3,
        "rougeL": 1 / 3,
        "regexMatch": 1.0,
        "jsonValid": 1.0,
        "refusalRate": 1 / 3,  # over completed outputs: s2 refuses
        "safetyViolationRate": 0.0,
        "errorRate": 0.25,  # s4's first request failed
        "retryRate": 0.25,  # s4 was retried (4 attempts)
        "latencyP50": 0.2,  # nearest rank over [0.1, 0.2, 0.3]: ceil(1.5) = 2
        "latencyP95": 0.3,
        "latencyP99": 0.3,
        "timePerOutputToken": 0.6 / 10,  # (0.1 + 0.3 + 0.2) s / (2 + 5 + 3) tokens
        "biasGap": None,
    }
    assert values.keys() == expected.keys()
    for name, value in expected.items():
        assert values[name] == pytest.approx(value), name


def test_per_tag() -> None:
    tags = per_tag(_run())
    assert list(tags) == ["geo", "math"]
    assert tags["geo"]["n"] == 3 and tags["geo"]["exactMatch"] == pytest.approx(1 / 3)
    assert tags["geo"]["refusalRate"] == 0.5  # s1, s2 completed; s4 has no output to judge
    assert tags["math"] == {
        "n": 1,
        "regexMatch": 1.0,
        "jsonValid": 1.0,
        "refusalRate": 0.0,
        "safetyViolationRate": 0.0,
    }


def test_bias_gap_from_samples() -> None:
    def cf(i: str, pair: str, group: str, ref: str) -> Sample:
        return Sample(i, 0, prompt="p", references=(ref,), counterfactual=Counterfactual(pair, group))

    samples = [
        cf("a", "p1", "f", "yes"),
        cf("b", "p1", "m", "yes"),
        cf("c", "p2", "f", "no"),
        cf("d", "p2", "m", "no"),
    ]
    outputs = ["yes", "no", "no", "no"]  # f: 1, 1 -> 1.0; m: 0, 1 -> 0.5
    results = [score_sample(s, Completion(o, 0.1, 1)) for s, o in zip(samples, outputs, strict=True)]
    assert aggregate(results, "exactMatch")["biasGap"] == 0.5
    assert "biasGap" in applicable_metrics(samples, "exactMatch")
    assert "biasGap" not in applicable_metrics(samples, "jsonValid")
    assert "biasGap" in applicable_metrics(samples, "refusalRate")
    assert {"exactMatch", "tokenF1"} <= applicable_metrics(samples, "tokenF1")
    assert "regexMatch" not in applicable_metrics(samples, "tokenF1")


def test_verdicts_and_exit_codes() -> None:
    values = aggregate(_run())
    passed = result_summary(
        values=values,
        verdicts=judge([Threshold("regexMatch", min=1.0)], values),
        counts={"samples": 4},
        tags={},
        model="org/m",
        revision="abc",
    )
    assert (passed["verdict"], passed["exitCode"]) == ("Passed", EXIT_PASSED)
    assert passed["metrics"]["regexMatch"] == {"value": 1.0, "min": 1.0, "passed": True, "verdict": "Passed"}
    assert passed["metrics"]["latencyP95"] == {"value": 0.3}
    assert "biasGap" not in passed["metrics"]  # not measured and not thresholded
    assert (passed["model"], passed["modelRevision"]) == ("org/m", "abc")

    failed = result_summary(
        values=values,
        verdicts=judge([Threshold("exactMatch", min=0.8), Threshold("biasGap", max=0.1)], values),
        counts={},
        tags={},
    )
    assert (failed["verdict"], failed["exitCode"]) == ("Failed", EXIT_FAILED)
    assert failed["metrics"]["exactMatch"] == {
        "value": 0.333333,
        "min": 0.8,
        "passed": False,
        "verdict": "Failed",
    }
    assert failed["metrics"]["biasGap"] == {"value": None, "max": 0.1, "passed": False, "verdict": "Failed"}
    assert failed["message"] == "failed: exactMatch 0.3333 < min 0.8; biasGap not measured"

    broken = broken_summary("x" * 5000, model="m")
    assert (broken["verdict"], broken["exitCode"]) == ("Broken", EXIT_BROKEN)
    assert len(broken["message"]) == 1024


def test_summary_stays_under_the_termination_message_limit() -> None:
    values = aggregate(_run())
    thresholds = [Threshold(name, min=0.0, max=1e9) for name in values]
    tags = {f"tag-{i:04d}-with-a-rather-long-name": {"n": 10, "exactMatch": 0.123456789} for i in range(500)}
    summary = result_summary(
        values=values, verdicts=judge(thresholds, values), counts={"samples": 4}, tags=tags, model="m" * 1000
    )
    text = render_summary(summary)
    assert len(text.encode()) < SUMMARY_LIMIT
    decoded = json.loads(text)
    assert len(decoded["metrics"]) == 15  # every verdict kept
    kept = list(decoded["tags"])
    assert 0 < len(kept) < 500 and kept == sorted(tags)[: len(kept)]
    assert decoded["tagsOmitted"] == 500 - len(kept)

    small = result_summary(values=values, verdicts=[], counts={}, tags={"a": {"n": 1}})
    assert "tagsOmitted" not in json.loads(render_summary(small))


def test_rate_counts_and_the_insufficient_samples_verdict() -> None:
    results = _run()
    counts = rate_counts(results)
    assert counts["exactMatch"] == (1, 3) and counts["errorRate"] == (1, 4) and counts["jsonValid"] == (1, 1)
    assert "tokenF1" not in counts  # a graded score, not a rate
    values = aggregate(results)
    short = result_summary(
        values=values,
        verdicts=judge([Threshold("regexMatch", min=0.9)], values, counts),
        counts={"samples": 4},
        tags={},
        rate_counts=counts,
        confidence=0.95,
    )
    # 1 of 1: lower bound 0.21; a perfect result needs 35 samples to show 0.9.
    assert (short["verdict"], short["exitCode"]) == ("InsufficientSamples", EXIT_FAILED)
    assert short["metrics"]["regexMatch"] == {
        "value": 1.0, "n": 1, "min": 0.9, "passed": False, "verdict": "InsufficientSamples",
        "lower": 0.2065, "upper": 1.0, "required": 35,
    }  # fmt: skip
    assert short["message"] == (
        "too few samples to show: regexMatch 1.00 (95% lower bound 0.21 at n=1) cannot show ≥ 0.9: "
        "needs ≥ 35 prompts"
    )
    # A shown failure wins over a too-small sample: Failed, both listed.
    both = result_summary(
        values=values,
        verdicts=judge([Threshold("regexMatch", min=0.9), Threshold("exactMatch", min=1.0)], values, counts),
        counts={},
        tags={},
    )
    assert both["verdict"] == "Failed"
    assert both["message"].startswith("failed: exactMatch 0.33 < min 1 (2 of 3 prompts missed); regexMatch")


def test_the_worst_summary_keeps_every_verdict_and_comparison_under_the_limit() -> None:
    values = aggregate(_run())
    counts = {name: (1, 3) for name in values}
    thresholds = [Threshold(name, min=0.5, max=0.9) for name in values]
    comparison = {
        "baseline": "http://" + "b" * 200,
        "metrics": {
            name: {"candidate": 0.123456, "baseline": 0.654321, "delta": -0.530865, "n": 100000,
                   "wins": 12345, "losses": 54321, "test": "mcnemar", "pValue": 1.23456e-300,
                   "maxDrop": 0.01, "verdict": "Inconclusive"}
            for name in (*SAMPLE_METRICS, "errorRate", "retryRate")  # the per-prompt metrics
        },
    }  # fmt: skip
    summary = result_summary(
        values=values,
        verdicts=judge(thresholds, values, counts),
        counts={"samples": 4, "completed": 3, "errors": 1, "retried": 1, "retries": 3},
        tags={f"t{i}": {"n": 1} for i in range(100)},
        model="m" * 1000,
        revision="r" * 1000,
        rate_counts=counts,
        confidence=0.95,
        comparison=comparison,
    )
    decoded = json.loads(render_summary(summary))
    assert len(json.dumps(decoded, separators=(",", ":"), ensure_ascii=False).encode()) < SUMMARY_LIMIT
    assert set(decoded["metrics"]) == set(values) and all("verdict" in m for m in decoded["metrics"].values())
    assert set(decoded["comparison"]["metrics"]) == set(comparison["metrics"])
    assert all("verdict" in m for m in decoded["comparison"]["metrics"].values())
    assert decoded["message"].startswith("failed: ")


def test_the_worst_summary_with_a_held_out_set_keeps_its_verdicts_under_the_limit() -> None:
    values = aggregate(_run())
    counts = {name: (1, 3) for name in values}
    thresholds = [Threshold(name, min=0.5, max=0.9) for name in values]
    entry = {"candidate": 0.123456, "baseline": 0.654321, "delta": -0.530865, "n": 100000, "wins": 12345,
             "losses": 54321, "test": "mcnemar", "pValue": 1.23456e-300, "maxDrop": 0.01, "verdict": "Inconclusive"}  # fmt: skip
    per_prompt = (*SAMPLE_METRICS, "errorRate", "retryRate")
    comparison = {"baseline": "http://" + "b" * 200, "metrics": {name: dict(entry) for name in per_prompt}}
    summary = result_summary(
        values=values,
        verdicts=judge(thresholds, values, counts),
        counts={"samples": 4, "completed": 3, "errors": 1, "retried": 1, "retries": 3},
        tags={f"t{i}": {"n": 1} for i in range(100)},
        model="m" * 1000,
        revision="r" * 1000,
        rate_counts=counts,
        confidence=0.95,
        comparison=comparison,
    )
    held_metrics = ("exactMatch", "contains", "tokenF1", "rougeL", "errorRate")
    held_thresholds = [Threshold(name, min=0.5, max=0.9) for name in held_metrics]
    summary["heldOut"] = held_out_section(
        records=4999, skipped=4999, min_records=5000, values=values,
        verdicts=judge(held_thresholds, values, counts), counts={"samples": 4999, "completed": 4999, "errors": 0},
        rate_counts=counts, comparison={"metrics": {name: dict(entry) for name in held_metrics}},
    )  # fmt: skip
    decoded = json.loads(render_summary(summary))
    assert len(json.dumps(decoded, separators=(",", ":"), ensure_ascii=False).encode()) < SUMMARY_LIMIT
    held = decoded["heldOut"]
    assert held["verdict"] == "InsufficientSamples" and held["records"] == 4999
    assert set(held["metrics"]) == set(held_metrics) and all("verdict" in m for m in held["metrics"].values())
    assert all("verdict" in m for m in held["comparison"]["metrics"].values())
    assert all("verdict" in m for m in decoded["comparison"]["metrics"].values())


def test_sample_line() -> None:
    ok, refused, _, failed = _run()
    line = json.loads(sample_line(ok))
    assert line == {
        "id": "s1",
        "tags": ["geo"],
        "latency": 0.1,
        "generatedTokens": 2,
        "attempts": 1,
        "scores": {
            "exactMatch": 1.0,
            "contains": 1.0,
            "tokenF1": 1.0,
            "rougeL": 1.0,
            "refusalRate": 0.0,
            "safetyViolationRate": 0.0,
        },
        "error": None,
        "output": "Paris",
    }
    line = json.loads(sample_line(failed))
    assert line["error"] == "HTTP 429: overloaded" and "output" not in line
    assert line["scores"] == {"exactMatch": 0.0, "contains": 0.0, "tokenF1": 0.0, "rougeL": 0.0}
    assert json.loads(sample_line(refused))["scores"]["refusalRate"] == 1.0
