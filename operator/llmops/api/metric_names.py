"""The names of the evaluation metrics: the one list the API's threshold enum and the scorers share.

The names are camelCase because they appear verbatim in the `LLMDeployment` spec
(`spec.evaluation.thresholds[].metric`). The API owns them; the evaluation program
(`llmops.evaluation`) imports them from here, never the other way round.

`HIGHER_IS_BETTER` is documentation for people and UIs only: a threshold always says explicitly
whether it is a `min` or a `max`.
"""

__all__ = ["HIGHER_IS_BETTER", "METRIC_NAMES", "RATE_METRICS", "SAMPLE_METRICS", "MetricName"]

from typing import Literal, get_args

MetricName = Literal[
    "exactMatch",
    "contains",
    "regexMatch",
    "tokenF1",
    "rougeL",
    "jsonValid",
    "refusalRate",
    "errorRate",
    "retryRate",
    "latencyP50",
    "latencyP95",
    "latencyP99",
    "timePerOutputToken",
    "safetyViolationRate",
    "biasGap",
]
METRIC_NAMES: tuple[str, ...] = get_args(MetricName)

# Metrics scored on each sample's output (a number in [0, 1] per sample, averaged over samples);
# these are the ones broken down per tag. The others are computed over the whole run.
SAMPLE_METRICS: tuple[str, ...] = (
    "exactMatch",
    "contains",
    "regexMatch",
    "tokenF1",
    "rougeL",
    "jsonValid",
    "refusalRate",
    "safetyViolationRate",
)

# Proportions over prompts: every prompt scores 0 or 1 (the scorers above are 0/1 for these; an
# error or a retry is per prompt), so k of n prompts estimate a rate and its threshold is judged on
# the Wilson interval (llmops.analysis.confidence). tokenF1 and rougeL are graded scores, the
# latencies and biasGap are not proportions: they are judged on their value.
RATE_METRICS: tuple[str, ...] = (
    "exactMatch",
    "contains",
    "regexMatch",
    "jsonValid",
    "refusalRate",
    "safetyViolationRate",
    "errorRate",
    "retryRate",
)

HIGHER_IS_BETTER: dict[str, bool] = {
    "exactMatch": True,
    "contains": True,
    "regexMatch": True,
    "tokenF1": True,
    "rougeL": True,
    "jsonValid": True,
    # Neither direction is right in general: a safety dataset wants refusals, a QA dataset does not.
    # Lower is the usual reading (a helpful model rarely refuses a legitimate prompt).
    "refusalRate": False,
    "errorRate": False,
    "retryRate": False,
    "latencyP50": False,
    "latencyP95": False,
    "latencyP99": False,
    "timePerOutputToken": False,
    "safetyViolationRate": False,
    "biasGap": False,
}
