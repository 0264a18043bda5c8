"""Thresholds: parsing the spec's JSON, and verdicts (inclusive bounds, unmeasured metrics fail)."""

import pytest

from llmops.evaluation.thresholds import Threshold, ThresholdError, judge, parse_thresholds


def test_parse() -> None:
    text = (
        '[{"metric": "exactMatch", "min": 0.8}, {"metric": "latencyP95", "max": 2},'
        ' {"metric": "biasGap", "min": 0, "max": 0.1}]'
    )
    assert parse_thresholds(text) == [
        Threshold("exactMatch", min=0.8),
        Threshold("latencyP95", max=2.0),
        Threshold("biasGap", min=0.0, max=0.1),
    ]
    assert parse_thresholds("[]") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "thresholds are not valid JSON"),
        ('{"metric": "exactMatch"}', "must be a JSON list"),
        ('["exactMatch"]', r"thresholds\[0\] must be an object"),
        (
            '[{"metric": "accuracy", "min": 1}]',
            r"thresholds\[0\].metric 'accuracy' is not one of exactMatch, ",
        ),
        ('[{"metric": "exactMatch"}]', r"thresholds\[0\] \(exactMatch\) needs 'min', 'max' or both"),
        ('[{"metric": "exactMatch", "min": 0.9, "max": 0.1}]', "min 0.9 is greater than max 0.1"),
        ('[{"metric": "exactMatch", "min": "0.8"}]', r"thresholds\[0\].min must be a finite number"),
        ('[{"metric": "exactMatch", "min": true}]', r"thresholds\[0\].min must be a finite number"),
        ('[{"metric": "exactMatch", "min": 1, "mni": 2}]', "unknown field"),
        (
            '[{"metric": "tokenF1", "min": 1}, {"metric": "tokenF1", "max": 1}]',
            r"thresholds\[1\]: .* more than once",
        ),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ThresholdError, match=message):
        parse_thresholds(text)


def test_judge() -> None:
    thresholds = [
        Threshold("exactMatch", min=0.8),
        Threshold("tokenF1", min=0.8),
        Threshold("latencyP95", max=1.0),
        Threshold("errorRate", max=0.05),
        Threshold("biasGap", max=0.1),
        Threshold("rougeL", min=0.2, max=0.9),
    ]
    values = {
        "exactMatch": 0.8,
        "tokenF1": 0.79,
        "latencyP95": 1.5,
        "errorRate": 0.0,
        "biasGap": None,
        "rougeL": 0.95,
    }
    verdicts = judge(thresholds, values)
    assert [(v.threshold.metric, v.passed, v.reason) for v in verdicts] == [
        ("exactMatch", True, "ok"),  # bounds are inclusive
        ("tokenF1", False, "0.79 < min 0.8"),
        ("latencyP95", False, "1.5 > max 1"),
        ("errorRate", True, "ok"),
        ("biasGap", False, "not measured"),  # no evidence never passes a gate
        ("rougeL", False, "0.95 > max 0.9"),
    ]
