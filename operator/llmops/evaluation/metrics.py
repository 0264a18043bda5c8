"""From samples and their completions to metric values: per-sample scores, run metrics, per-tag means.

Which samples count for which metric:

- exactMatch, contains, tokenF1, rougeL: samples with references; regexMatch: samples with a
  `pattern`; jsonValid: samples with `expectJson`. A sample whose request failed scores 0 on these,
  so a model cannot pass a quality gate by failing the requests it would have got wrong.
- refusalRate, safetyViolationRate: every completed sample (there is no output to judge otherwise).
- errorRate: every sample; a sample counts as an error when its *first* request failed, whether a
  retry then succeeded or not. The first requests are an unbiased sample of the server's requests
  (a retry is only sent after a failure), so a server that fails 15% of its requests shows an
  errorRate near 0.15 however many retries the evaluation allows; counting only the requests that
  still failed after retries would report the client's persistence, not the server. What failed
  for good (no answer after every retry) is `counts.errors` in the summary.
- retryRate: every sample; the fraction that needed at least one retry (`counts.retries` is the
  number of retries sent).
- latencyP50/P95/P99 and timePerOutputToken: completed samples.
- biasGap: completed samples in counterfactual pairs, scored by `bias_metric` (see `bias`).

The rates (`RATE_METRICS`: 0/1 per sample) are also counted, k of n (`rate_counts`), for their
confidence intervals; `prompt_outcomes` gives one sample's per-prompt values for a paired
comparison of two revisions.

A metric with no sample to measure it is None ("not measured").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmops.api.metric_names import RATE_METRICS, SAMPLE_METRICS
from llmops.evaluation import scorers
from llmops.evaluation.bias import bias_gap
from llmops.evaluation.completion import Completion
from llmops.evaluation.dataset import Sample
from llmops.evaluation.safety import is_refusal, safety_violation

__all__ = [
    "SampleResult",
    "aggregate",
    "applicable_metrics",
    "per_tag",
    "prompt_outcomes",
    "rate_counts",
    "score_sample",
]

_REFERENCE_METRICS = ("exactMatch", "contains", "tokenF1", "rougeL")
# Scored on every completed output, whatever the sample carries.
_OUTPUT_METRICS = ("refusalRate", "safetyViolationRate")


@dataclass(frozen=True, slots=True)
class SampleResult:
    """A sample, its completion and its scores (only the metrics that apply to it)."""

    sample: Sample
    completion: Completion
    scores: Mapping[str, float]
    safety_category: str | None = None


def _sample_applicable(sample: Sample) -> list[str]:
    metrics = list(_REFERENCE_METRICS) if sample.references else []
    if sample.pattern is not None:
        metrics.append("regexMatch")
    if sample.expect_json:
        metrics.append("jsonValid")
    return metrics


def score_sample(sample: Sample, completion: Completion) -> SampleResult:
    """Score one completion with every metric that applies to its sample."""
    text = completion.text
    if text is None:
        return SampleResult(sample, completion, dict.fromkeys(_sample_applicable(sample), 0.0))
    scores: dict[str, float] = {}
    refs = sample.references
    if refs:
        scores["exactMatch"] = scorers.exact_match(text, refs)
        scores["contains"] = scorers.contains(text, refs)
        scores["tokenF1"] = scorers.token_f1(text, refs)
        scores["rougeL"] = scorers.rouge_l(text, refs)
    if sample.pattern is not None:
        scores["regexMatch"] = scorers.regex_match(text, sample.pattern)
    if sample.expect_json:
        scores["jsonValid"] = scorers.json_valid(text)
    scores["refusalRate"] = 1.0 if is_refusal(text) else 0.0
    category = safety_violation(text)
    scores["safetyViolationRate"] = 1.0 if category else 0.0
    return SampleResult(sample, completion, scores, category)


def applicable_metrics(samples: Sequence[Sample], bias_metric: str) -> set[str]:
    """The metrics this dataset can measure (assuming every request succeeds)."""
    found = {
        *_OUTPUT_METRICS,
        "errorRate",
        "retryRate",
        "latencyP50",
        "latencyP95",
        "latencyP99",
        "timePerOutputToken",
    }
    pairs: dict[str, int] = {}
    for s in samples:
        metrics = _sample_applicable(s)
        found.update(metrics)
        if s.counterfactual is not None and (bias_metric in metrics or bias_metric in _OUTPUT_METRICS):
            pairs[s.counterfactual.pair] = pairs.get(s.counterfactual.pair, 0) + 1
    if any(n >= 2 for n in pairs.values()):
        found.add("biasGap")
    return found


def aggregate(results: Sequence[SampleResult], bias_metric: str = "tokenF1") -> dict[str, float | None]:
    """Every metric in METRIC_NAMES over the run; None where nothing measured it."""
    values: dict[str, float | None] = {
        name: scorers.mean([r.scores[name] for r in results if name in r.scores]) for name in SAMPLE_METRICS
    }
    done = [r.completion for r in results if r.completion.ok]
    latencies = [c.latency for c in done if c.latency is not None]
    values["errorRate"] = scorers.error_rate(sum(1 for r in results if _first_failed(r)), len(results))
    values["retryRate"] = scorers.error_rate(sum(1 for r in results if _retried(r)), len(results))
    for name, p in (("latencyP50", 50), ("latencyP95", 95), ("latencyP99", 99)):
        values[name] = scorers.percentile(latencies, p) if latencies else None
    timed = [(c.latency, c.generated_tokens) for c in done if c.latency is not None and c.generated_tokens]
    values["timePerOutputToken"] = scorers.time_per_output_token([t for t, _ in timed], [n for _, n in timed])
    values["biasGap"] = bias_gap(
        (r.sample.counterfactual.pair, r.sample.counterfactual.group, r.scores[bias_metric])
        for r in results
        if r.sample.counterfactual is not None and r.completion.ok and bias_metric in r.scores
    )
    return values


def _first_failed(result: SampleResult) -> bool:
    return result.completion.attempts > 1 or not result.completion.ok


def _retried(result: SampleResult) -> bool:
    return result.completion.attempts > 1


def prompt_outcomes(result: SampleResult) -> dict[str, float]:
    """One sample's per-prompt values: its scores, errorRate (first request failed, 0/1) and
    retryRate (retried, 0/1). What a paired comparison compares prompt by prompt."""
    return {
        **result.scores,
        "errorRate": 1.0 if _first_failed(result) else 0.0,
        "retryRate": 1.0 if _retried(result) else 0.0,
    }


def rate_counts(results: Sequence[SampleResult]) -> dict[str, tuple[int, int]]:
    """For each rate metric some sample measures: (successes, samples) — the k and n of its interval."""
    counts: dict[str, tuple[int, int]] = {}
    for name in RATE_METRICS:
        outcomes = [o[name] for o in map(prompt_outcomes, results) if name in o]
        if outcomes:
            counts[name] = (sum(1 for x in outcomes if x >= 1.0), len(outcomes))
    return counts


def per_tag(results: Sequence[SampleResult]) -> dict[str, dict[str, float]]:
    """For each tag (sorted): `n` (samples) and the mean of each sample metric that applies."""
    by_tag: dict[str, list[SampleResult]] = {}
    for r in results:
        for tag in r.sample.tags:
            by_tag.setdefault(tag, []).append(r)
    out: dict[str, dict[str, float]] = {}
    for tag in sorted(by_tag):
        tagged = by_tag[tag]
        entry: dict[str, float] = {"n": len(tagged)}
        for name in SAMPLE_METRICS:
            value = scorers.mean([r.scores[name] for r in tagged if name in r.scores])
            if value is not None:
                entry[name] = value
        out[tag] = entry
    return out
