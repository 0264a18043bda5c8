"""Pure scoring functions: text scorers for one output and the statistics over a whole run.

Text scorers return a float in [0, 1] and take the best over several references.

- `exact_match`: equal after `normalize` (strip, lower case, collapse whitespace).
- `contains`: a normalised reference is a substring of the normalised output.
- `regex_match`: `re.search` finds the pattern anywhere in the raw output.
- `token_f1`: SQuAD's F1 over bag-of-words tokens after SQuAD's answer normalisation (lower case,
  no punctuation, no articles a/an/the, collapsed whitespace). Two empty answers score 1.
- `rouge_l`: ROUGE-L F-measure (beta = 1): the longest common subsequence of tokens (lower case,
  split on anything not a letter or digit, as the `rouge_score` package does without stemming),
  P = LCS/len(output), R = LCS/len(reference), F = 2PR/(P+R).
- `json_valid`: the output with surrounding whitespace stripped is one JSON document.

Run statistics:

- `percentile`: the nearest-rank method: the smallest value such that at least p % of the values
  are less than or equal to it, i.e. sorted[ceil(p/100 * n) - 1]. It always returns an observed
  value (no interpolation), so a p99 over 50 samples is the maximum.
- `time_per_output_token`: total latency over total generated tokens of completed requests. It
  includes prefill and queueing (TGI's non-streaming API exposes no time to first token), so it is
  an upper bound of the decode time per token, weighted by tokens rather than by requests.
- `error_rate`: a count over a total (which count is `metrics`' business: for errorRate, the samples
  whose first request failed).
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Sequence

__all__ = [
    "contains",
    "error_rate",
    "exact_match",
    "json_valid",
    "mean",
    "normalize",
    "percentile",
    "regex_match",
    "rouge_l",
    "time_per_output_token",
    "token_f1",
]

_WHITESPACE = re.compile(r"\s+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ROUGE_TOKEN = re.compile(r"[^a-z0-9]+")


def normalize(text: str) -> str:
    """Strip, lower-case and collapse runs of whitespace to one space."""
    return _WHITESPACE.sub(" ", text.strip().lower())


def exact_match(output: str, references: Sequence[str]) -> float:
    """1.0 if the normalised output equals any normalised reference, else 0.0."""
    out = normalize(output)
    return 1.0 if any(out == normalize(ref) for ref in references) else 0.0


def contains(output: str, references: Sequence[str]) -> float:
    """1.0 if any normalised reference occurs in the normalised output, else 0.0."""
    out = normalize(output)
    return 1.0 if any(normalize(ref) in out for ref in references) else 0.0


def regex_match(output: str, pattern: re.Pattern[str]) -> float:
    """1.0 if the pattern matches anywhere in the output, else 0.0."""
    return 1.0 if pattern.search(output) is not None else 0.0


def _squad_tokens(text: str) -> list[str]:
    text = text.lower().translate(_PUNCTUATION)
    return _ARTICLES.sub(" ", text).split()


def _f1(prediction: list[str], truth: list[str]) -> float:
    if not prediction or not truth:
        # SQuAD 2.0's convention: agreeing that there is no answer is a perfect score.
        return 1.0 if prediction == truth else 0.0
    common = sum((Counter(prediction) & Counter(truth)).values())
    if common == 0:
        return 0.0
    precision = common / len(prediction)
    recall = common / len(truth)
    return 2 * precision * recall / (precision + recall)


def token_f1(output: str, references: Sequence[str]) -> float:
    """SQuAD-style token F1, the best over the references."""
    prediction = _squad_tokens(output)
    return max((_f1(prediction, _squad_tokens(ref)) for ref in references), default=0.0)


def _rouge_tokens(text: str) -> list[str]:
    return [t for t in _ROUGE_TOKEN.split(text.lower()) if t]


def _lcs_length(a: list[str], b: list[str]) -> int:
    # One row of the classic DP table, over the shorter sequence: O(len(a) * len(b)) time, O(min) memory.
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(output: str, references: Sequence[str]) -> float:
    """ROUGE-L F-measure (LCS-based), the best over the references."""
    candidate = _rouge_tokens(output)
    best = 0.0
    for ref in references:
        reference = _rouge_tokens(ref)
        if not candidate or not reference:
            continue
        lcs = _lcs_length(candidate, reference)
        if lcs == 0:
            continue
        precision, recall = lcs / len(candidate), lcs / len(reference)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def json_valid(output: str) -> float:
    """1.0 if the whole output (whitespace stripped) parses as JSON, else 0.0."""
    try:
        json.loads(output.strip())
    except ValueError:
        return 0.0
    return 1.0


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (see the module docstring); `values` must not be empty, 0 < p <= 100."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < p <= 100:
        raise ValueError(f"percentile {p} is outside (0, 100]")
    ordered = sorted(values)
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[rank - 1]


def mean(values: Sequence[float]) -> float | None:
    """The arithmetic mean, or None for no values (a metric that could not be measured)."""
    return sum(values) / len(values) if values else None


def time_per_output_token(latencies: Sequence[float], tokens: Sequence[int]) -> float | None:
    """Σ latency / Σ generated tokens over requests that generated at least one token; None if none did."""
    total_time = sum(t for t, n in zip(latencies, tokens, strict=True) if n > 0)
    total_tokens = sum(n for n in tokens if n > 0)
    return total_time / total_tokens if total_tokens else None


def error_rate(errors: int, total: int) -> float | None:
    """errors / total; None for nothing counted."""
    return errors / total if total else None
