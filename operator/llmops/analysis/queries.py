"""The PromQL of each canary analysis metric, for the canary and (when compared) the stable track.

Built-in templates are engine-neutral names (error-ratio, latency-p95, time-per-token-p95,
queue-size) that the engine resolves to PromQL over its own metrics (`Engine.query`); the
deprecated tgi-* names resolve as their neutral names. Custom `query` strings have their
placeholders substituted. `feedback-negative-ratio` is not the engine's: it reads the
gateway's `llmops_feedback_total`, the same for every engine. Every query is scoped by the
labels the PodMonitor attaches to the track's pods (namespace, llmops_deployment, llmops_track:
see render.monitoring).

Placeholders of a custom query (Flagger's `{{ name }}` syntax; spaces inside the braces optional):

- `{{ namespace }}`: the LLMDeployment's namespace;
- `{{ name }}`: the LLMDeployment's name (the `llmops_deployment` label);
- `{{ track }}`: `canary`, or `stable` for the compareToStable query;
- `{{ interval }}`: the rate window (the analysis interval), e.g. `1m`;
- `{{ selector }}`: the label matchers of the track's pods, to put inside `{...}`:
  `namespace="ns",llmops_deployment="name",llmops_track="canary"`.

Any other `{{ ... }}` is refused with `UnknownPlaceholder` (Prometheus would only report a parse
error somewhere in the substituted text).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from llmops.api.constants import PROM_LABEL_DEPLOYMENT
from llmops.api.delivery import AnalysisMetric, AnalysisSpec, neutral_template
from llmops.engines.base import Engine, selector

__all__ = [
    "CANARY",
    "FEEDBACK_NEGATIVE_RATIO",
    "PLACEHOLDERS",
    "STABLE",
    "MetricQueries",
    "UnknownPlaceholder",
    "queries",
    "render_query",
    "unknown_placeholders",
]

FEEDBACK_NEGATIVE_RATIO = "feedback-negative-ratio"
"""The built-in template over user feedback (the gateway's llmops_feedback_total)."""
FEEDBACK_METRIC = "llmops_feedback_total"
NEGATIVE_RATINGS_REGEX = "down|1|2"
"""The ratings that count as negative (llmops.gateway.feedback.NEGATIVE_RATINGS)."""
CANARY = "canary"
STABLE = "stable"
PLACEHOLDERS: tuple[str, ...] = ("namespace", "name", "track", "interval", "selector")
"""Names a custom query may use as {{ name }}."""

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)?\s*\}\}")


class UnknownPlaceholder(ValueError):
    """A custom query uses a {{ placeholder }} that is not one of PLACEHOLDERS."""


class MetricQueries(NamedTuple):
    """The PromQL for one analysis metric."""

    name: str
    """The analysis metric's name."""
    canary: str
    """Query over the canary track's pods."""
    stable: str | None
    """The same query over the stable track's pods; None unless compareToStable is set."""


def unknown_placeholders(query: str) -> list[str]:
    """The {{ ... }} placeholders in `query` that are not known, in order of appearance."""
    found = [m.group(1) or "" for m in _PLACEHOLDER.finditer(query)]
    return [p for p in found if p not in PLACEHOLDERS]


def _braced(placeholder: str) -> str:
    return "{{ " + placeholder + " }}"


def render_query(query: str, *, namespace: str, name: str, track: str, interval: str) -> str:
    """`query` with its placeholders substituted. Raises UnknownPlaceholder naming the unknown ones."""
    unknown = unknown_placeholders(query)
    if unknown:
        known = ", ".join(_braced(p) for p in PLACEHOLDERS)
        shown = ", ".join(_braced(p) for p in unknown)
        raise UnknownPlaceholder(f"unknown placeholder {shown}; known: {known}")
    values = {
        "namespace": namespace,
        "name": name,
        "track": track,
        "interval": interval,
        "selector": selector(namespace, name, track),
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], query)


def feedback_negative_ratio(namespace: str, name: str, track: str, window: str) -> str:
    """Negative ratings over all ratings of answers produced by `track`.

    The track is the `track` label the gateway takes from the rated answer's signed request ID,
    not the pod's llmops_track: feedback that arrives at a stable pod about a canary answer
    counts for the canary. Summed over every pod of the deployment. No negative rating yet
    reads 0; no rating at all reads no data (the measurement is inconclusive, not passing).
    """
    base = f'namespace="{namespace}",{PROM_LABEL_DEPLOYMENT}="{name}",track="{track}"'
    negative = f'sum(rate({FEEDBACK_METRIC}{{{base},rating=~"{NEGATIVE_RATINGS_REGEX}"}}[{window}]))'
    every = f"sum(rate({FEEDBACK_METRIC}{{{base}}}[{window}]))"
    return f"({negative} or vector(0)) / {every}"


def _one(
    metric: AnalysisMetric, engine: Engine, *, namespace: str, name: str, track: str, window: str
) -> str:
    if metric.template == FEEDBACK_NEGATIVE_RATIO:
        return feedback_negative_ratio(namespace, name, track, window)
    if metric.template is not None:
        template = neutral_template(metric.template)
        return engine.query(template, selector=selector(namespace, name, track), window=window)
    assert metric.query is not None  # the model allows exactly one of template and query
    try:
        return render_query(metric.query, namespace=namespace, name=name, track=track, interval=window)
    except UnknownPlaceholder as exc:
        raise UnknownPlaceholder(f"analysis metric {metric.name!r}: {exc}") from None


def queries(
    analysis: AnalysisSpec, engine: Engine, namespace: str, name: str, window: str
) -> list[MetricQueries]:
    """The PromQL of every metric in spec.rollout.analysis, in spec order.

    `window` is the rate window (normally analysis.interval). Raises UnknownPlaceholder (a
    ValueError naming the metric) for a custom query with an unknown placeholder, and the
    engine's ValueError for a template it does not have: both are spec errors.
    """
    out = []
    for metric in analysis.metrics:
        canary = _one(metric, engine, namespace=namespace, name=name, track=CANARY, window=window)
        stable = None
        if metric.compare_to_stable is not None:
            stable = _one(metric, engine, namespace=namespace, name=name, track=STABLE, window=window)
        out.append(MetricQueries(metric.name, canary, stable))
    return out
