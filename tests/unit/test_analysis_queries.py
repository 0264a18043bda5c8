"""queries(): the exact PromQL of each analysis metric, per track, scoped by the PodMonitor labels."""

from __future__ import annotations

from typing import Any

import pytest

from llmops.analysis import MetricQueries, UnknownPlaceholder, queries, render_query, unknown_placeholders
from llmops.api.delivery import AnalysisSpec
from llmops.engines import TGI

CANARY = 'namespace="prod",llmops_deployment="chat",llmops_track="canary"'
STABLE = 'namespace="prod",llmops_deployment="chat",llmops_track="stable"'


def analysis(*metrics: dict[str, Any]) -> AnalysisSpec:
    return AnalysisSpec.model_validate({"metrics": list(metrics)})


def test_default_metrics_are_tgi_templates_per_track() -> None:
    got = queries(AnalysisSpec(), TGI(), "prod", "chat", "1m")
    error_ratio = (
        f'(sum(rate(tgi_request_failure{{err!="validation",{CANARY}}}[1m])) or vector(0)) / '
        f"((sum(rate(tgi_request_success{{{CANARY}}}[1m])) or vector(0)) + "
        f"(sum(rate(tgi_request_failure{{{CANARY}}}[1m])) or vector(0)))"
    )
    p95 = "histogram_quantile(0.95, sum by (le) (rate(tgi_request_duration_bucket{%s}[1m])))"
    assert got == [
        MetricQueries("error-ratio", error_ratio, None),  # thresholdRange only: no stable query
        MetricQueries("latency-p95", p95 % CANARY, p95 % STABLE),
    ]


@pytest.mark.parametrize(
    ("template", "canary"),
    [
        (
            "tgi-time-per-token-p95",
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(tgi_request_mean_time_per_token_duration_bucket{{{CANARY}}}[30s])))",
        ),
        ("tgi-queue-size", f"max(tgi_queue_size{{{CANARY}}})"),
    ],
)
def test_other_templates(template: str, canary: str) -> None:
    spec = analysis({"name": "m", "template": template, "thresholdRange": {"max": 1}})
    assert queries(spec, TGI(), "prod", "chat", "30s") == [MetricQueries("m", canary, None)]


def test_custom_query_placeholders_per_track() -> None:
    query = (
        'sum(rate(my_errors{ {{selector}} }[{{ interval }}])) / sum(rate(my_total{namespace="{{ namespace }}",'
        'app="{{  name  }}",track="{{track}}"}[{{interval}}]))'
    )
    spec = analysis({"name": "custom", "query": query, "compareToStable": {"maxRatio": 2}})
    [got] = queries(spec, TGI(), "prod", "chat", "2m")
    assert got.name == "custom"
    assert got.canary == (
        f"sum(rate(my_errors{{ {CANARY} }}[2m])) / "
        'sum(rate(my_total{namespace="prod",app="chat",track="canary"}[2m]))'
    )
    assert got.stable == (
        f"sum(rate(my_errors{{ {STABLE} }}[2m])) / "
        'sum(rate(my_total{namespace="prod",app="chat",track="stable"}[2m]))'
    )


def test_a_query_without_placeholders_is_sent_verbatim() -> None:
    spec = analysis({"name": "m", "query": "vector(1)", "thresholdRange": {"max": 1}})
    assert queries(spec, TGI(), "prod", "chat", "1m") == [MetricQueries("m", "vector(1)", None)]


def test_unknown_placeholder_names_the_metric_and_the_known_ones() -> None:
    spec = analysis(
        {"name": "ok", "template": "tgi-queue-size", "thresholdRange": {"max": 1}},
        {
            "name": "typo",
            "query": "sum(x{pod=~'{{ target }}.*'}[{{interval}}]) + {{}}",
            "thresholdRange": {"max": 1},
        },
    )
    with pytest.raises(UnknownPlaceholder) as err:
        queries(spec, TGI(), "prod", "chat", "1m")
    assert str(err.value) == (
        "analysis metric 'typo': unknown placeholder {{ target }}, {{  }}; "
        "known: {{ namespace }}, {{ name }}, {{ track }}, {{ interval }}, {{ selector }}"
    )
    assert isinstance(err.value, ValueError)  # a spec error, like an unknown template


@pytest.mark.parametrize(
    ("query", "unknown"),
    [
        ("{{ namespace }}{{name}}{{ track}}{{interval }}{{selector}}", []),
        ("{{ service }} {{ namespace }} {{ target }}", ["service", "target"]),
        ("{ single } braces {not_a_placeholder}", []),
    ],
)
def test_unknown_placeholders(query: str, unknown: list[str]) -> None:
    assert unknown_placeholders(query) == unknown


def test_render_query_substitutes_every_occurrence() -> None:
    got = render_query("{{track}}/{{ track }}", namespace="n", name="x", track="stable", interval="1m")
    assert got == "stable/stable"
