"""Pure analysis: canary verdicts from Prometheus query results; drift statistics (`drift`) and
verdicts with confidence (`confidence`: rates judged on Wilson bounds, paired comparisons of two
revisions), imported from their modules.

No I/O, no clock. The canary state machine (llmops.lifecycle) uses it in three steps:

1. `queries(analysis, engine, namespace, name, window)` → the PromQL of each analysis metric for
   the canary track (and the stable track when compareToStable is set);
2. the shell runs them through `llmops.prom.PromClient.query_all` → one `MetricResults` (canary and
   stable `Value | NoData | Error`) per metric: an observation, plain data; `measure_all` (or
   `measure` for one metric) turns them into `Check`s;
3. `judge(checks, failed, inconclusive, failureLimit, inconclusiveLimit)` → a `Verdict`:
   PromoteStep, Continue, Rollback or Pause, with the updated counters and a message.
"""

from llmops.analysis.checks import Check, Outcome, measure, measure_all
from llmops.analysis.judge import QUERY_REJECTED, Decision, Verdict, judge
from llmops.analysis.queries import (
    CANARY,
    PLACEHOLDERS,
    STABLE,
    MetricQueries,
    UnknownPlaceholder,
    queries,
    render_query,
    unknown_placeholders,
)
from llmops.analysis.results import Error, ErrorKind, MetricResults, NoData, Result, Value

__all__ = [
    "CANARY",
    "PLACEHOLDERS",
    "QUERY_REJECTED",
    "STABLE",
    "Check",
    "Decision",
    "Error",
    "ErrorKind",
    "MetricQueries",
    "MetricResults",
    "NoData",
    "Outcome",
    "Result",
    "UnknownPlaceholder",
    "Value",
    "Verdict",
    "judge",
    "measure",
    "measure_all",
    "queries",
    "render_query",
    "unknown_placeholders",
]
