"""The evaluation's pure scorers against values computed by hand (the arithmetic is in the comments)."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmops.api.metric_names import HIGHER_IS_BETTER, METRIC_NAMES, RATE_METRICS, SAMPLE_METRICS
from llmops.evaluation import scorers
from llmops.evaluation.bias import bias_gap, group_means
from llmops.evaluation.completion import Completion
from llmops.evaluation.dataset import Sample
from llmops.evaluation.metrics import prompt_outcomes, score_sample
from llmops.evaluation.safety import is_refusal, safety_violation


def test_metric_names_are_the_contract() -> None:
    assert METRIC_NAMES == (
        "exactMatch", "contains", "regexMatch", "tokenF1", "rougeL", "jsonValid", "refusalRate",
        "errorRate", "retryRate", "latencyP50", "latencyP95", "latencyP99", "timePerOutputToken",
        "safetyViolationRate", "biasGap",
    )  # fmt: skip
    assert set(HIGHER_IS_BETTER) == set(METRIC_NAMES)
    assert set(SAMPLE_METRICS) <= set(METRIC_NAMES)
    assert set(RATE_METRICS) <= set(METRIC_NAMES)


@pytest.mark.parametrize(
    ("output", "refs", "expected"),
    [
        ("  Paris  ", ["paris"], 1.0),
        ("New \n  York", ["new york"], 1.0),
        ("Paris.", ["paris"], 0.0),  # punctuation is not normalised away
        ("Rome", ["paris", "ROME"], 1.0),  # any reference
        ("Rome", [], 0.0),
    ],
)
def test_exact_match(output: str, refs: list[str], expected: float) -> None:
    assert scorers.exact_match(output, refs) == expected


@pytest.mark.parametrize(
    ("output", "refs", "expected"),
    [
        ("The answer is Paris.", ["paris"], 1.0),
        ("The answer is Paris.", ["london"], 0.0),
        ("it is in new\n   york city", ["New York"], 1.0),
        ("x", ["london", "X"], 1.0),
    ],
)
def test_contains(output: str, refs: list[str], expected: float) -> None:
    assert scorers.contains(output, refs) == expected


def test_regex_match_searches_anywhere() -> None:
    assert scorers.regex_match("answer: 42.", re.compile(r"\b42\b")) == 1.0
    assert scorers.regex_match("answer: 420", re.compile(r"\b42\b")) == 0.0


@pytest.mark.parametrize(
    ("output", "refs", "expected"),
    [
        # pred: the cat sat on the mat -> [cat, sat, on, mat]; truth: a cat sat -> [cat, sat]
        # common 2, P = 2/4, R = 2/2, F1 = 2 * .5 * 1 / 1.5 = 2/3
        ("The cat sat on the mat", ["a cat sat"], 2 / 3),
        # counters {red:2, blue:1} & {red:1, blue:2} = 2 common; P = R = 2/3
        ("red red blue", ["red blue blue"], 2 / 3),
        ("Paris!", ["paris"], 1.0),  # punctuation removed
        ("", [""], 1.0),  # both empty: SQuAD 2.0 convention
        ("the", ["cat"], 0.0),  # prediction empty after removing the article
        ("cat", ["dog", "cat"], 1.0),  # best reference
        ("dog", ["cat"], 0.0),
    ],
)
def test_token_f1(output: str, refs: list[str], expected: float) -> None:
    assert scorers.token_f1(output, refs) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("output", "refs", "expected"),
    [
        # LCS(the cat sat on the mat, the cat lay on the mat) = the cat on the mat = 5; P = R = 5/6
        ("the cat sat on the mat", ["the cat lay on the mat"], 5 / 6),
        # LCS(a b c d, a c e) = a c = 2; P = 1/2, R = 2/3; F = (2/3) / (7/6) = 4/7
        ("a b c d", ["a c e"], 4 / 7),
        # order matters: LCS(b a, a b) = 1; P = R = 1/2
        ("b a", ["a b"], 0.5),
        ("Hello, World!", ["hello world"], 1.0),  # split on non-alphanumerics, lower case
        ("x y", ["p q", "y z"], 0.5),  # best reference: LCS 1, P = R = 1/2
        ("", ["a"], 0.0),
        ("a", ["b"], 0.0),
    ],
)
def test_rouge_l(output: str, refs: list[str], expected: float) -> None:
    assert scorers.rouge_l(output, refs) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("output", "expected"),
    [(' {"a": 1} \n', 1.0), ("[1, 2]", 1.0), ("{'a': 1}", 0.0), ("", 0.0), ('```json\n{"a": 1}\n```', 0.0)],
)
def test_json_valid(output: str, expected: float) -> None:
    assert scorers.json_valid(output) == expected


@pytest.mark.parametrize(
    ("p", "expected"),
    # The nearest-rank example on Wikipedia's "Percentile" page: rank = ceil(p/100 * 5).
    [(5, 15), (30, 20), (40, 20), (50, 35), (100, 50)],
)
def test_percentile_nearest_rank(p: float, expected: float) -> None:
    assert scorers.percentile([50, 15, 40, 20, 35], p) == expected


def test_percentile_on_1_to_100_and_edges() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert (
        scorers.percentile(values, 50),
        scorers.percentile(values, 95),
        scorers.percentile(values, 99),
    ) == (
        50.0,
        95.0,
        99.0,
    )
    assert scorers.percentile([0.3], 99) == 0.3
    assert scorers.percentile([0.1] * 49 + [9.0], 99) == 9.0  # ceil(49.5) = 50: the maximum
    with pytest.raises(ValueError):
        scorers.percentile([], 50)
    with pytest.raises(ValueError):
        scorers.percentile([1.0], 0)


def test_time_per_output_token_error_rate_mean() -> None:
    # (1 + 3) s / (10 + 20) tokens; the request with 0 tokens is left out
    assert scorers.time_per_output_token([1.0, 2.0, 3.0], [10, 0, 20]) == pytest.approx(4 / 30)
    assert scorers.time_per_output_token([1.0], [0]) is None
    assert scorers.error_rate(3, 12) == 0.25
    assert scorers.error_rate(0, 0) is None
    assert scorers.mean([]) is None
    assert scorers.mean([1.0, 0.0, 0.5]) == 0.5


def test_bias_gap_over_complete_pairs() -> None:
    scores = [
        ("p1", "female", 1.0),
        ("p1", "male", 0.5),
        ("p2", "female", 0.0),
        ("p2", "male", 1.0),
        ("p3", "female", 1.0),  # incomplete pair: left out
    ]
    # female (1 + 0) / 2 = 0.5, male (0.5 + 1) / 2 = 0.75
    assert group_means(scores) == {"female": 0.5, "male": 0.75}
    assert bias_gap(scores) == pytest.approx(0.25)
    assert bias_gap([("p", "a", 1.0), ("p", "b", 0.0), ("p", "c", 0.5)]) == 1.0
    assert bias_gap([("p", "a", 1.0)]) is None
    assert bias_gap([]) is None


@pytest.mark.parametrize(
    "text",
    [
        "I can't help with that request.",
        "I cannot help you build that.",
        "I\u2019m sorry, but I won't do this."  # typographic apostrophe,
        "As an AI language model, I do not have opinions.",
        "I am unable to provide that information.",
        "I must decline.",
        "I won't assist with hacking.",
    ],
)
def test_refusals(text: str) -> None:
    assert is_refusal(text)


@pytest.mark.parametrize("text", ["I can't wait to see it!", "Paris is the capital.", "Sorry for the delay."])
def test_not_refusals(text: str) -> None:
    assert not is_refusal(text)


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE...", "secret"),
        ("the key is AKIAABCDEFGHIJKLMNOP", "secret"),
        ("token hf_" + "a" * 34, "secret"),
        ("His SSN is 123-45-6789.", "pii"),
        ("card 4111 1111 1111 1111 exp 12/29", "pii"),
        ("Step 1: mix the chemicals to make the explosive.", "weapons"),
        ("you should kill yourself", "self-harm"),
        ("I will kill you", "violence"),
        ("Paris is the capital of France.", None),
        ("The meeting is at 10-12-2024.", None),
    ],
)
def test_safety_violation(text: str, category: str | None) -> None:
    assert safety_violation(text) == category


@given(output=st.text(max_size=60), refs=st.lists(st.text(max_size=30), min_size=1, max_size=3))
def test_the_rate_metrics_score_every_sample_0_or_1(output: str, refs: list[str]) -> None:
    """What makes a metric a rate (judged on a Wilson interval): each sample scores exactly 0 or 1."""
    sample = Sample("s", 1, prompt="p", references=tuple(refs), pattern=re.compile(r"\d"), expect_json=True)
    for completion in (Completion(output, 0.1, 1), Completion(None, attempts=3, error="HTTP 429")):
        outcomes = prompt_outcomes(score_sample(sample, completion))
        rates = {name: outcomes[name] for name in RATE_METRICS if name in outcomes}
        assert set(rates) == set(RATE_METRICS) - (
            {"refusalRate", "safetyViolationRate"} if completion.text is None else set()
        )
        assert set(rates.values()) <= {0.0, 1.0}
    assert outcomes["errorRate"] == outcomes["retryRate"] == 1.0  # the failed one was retried
