"""The engine interface and TGI: registry, routes, metric names and the exact PromQL."""

from __future__ import annotations

import pytest

import llmops.api as api
from llmops.api.delivery import DEPRECATED_TEMPLATES, GATEWAY_TEMPLATES
from llmops.engines import Engine, alert_rules, engine_names, get_engine, matchers, selector
from llmops.engines.tgi import TGI

SEL = 'namespace="ns",llmops_deployment="chat",llmops_track="canary"'


def test_registry() -> None:
    assert engine_names() == ("tgi", "vllm")
    engine: Engine = get_engine("tgi")
    assert isinstance(engine, TGI) and engine.name == "tgi"
    with pytest.raises(KeyError, match="unknown engine 'sglang'; known: tgi, vllm"):
        get_engine("sglang")


def test_every_api_engine_type_has_an_engine_and_templates_match_the_api() -> None:
    for engine_type in api.EngineSpec.model_fields["type"].annotation.__args__:  # type: ignore[union-attr]
        engine = get_engine(engine_type)
        # every engine resolves every neutral template; the API adds the deprecated aliases and
        # the gateway's feedback-negative-ratio (built by analysis.queries, the same for every engine)
        assert set(engine.analysis_templates) == set(api.ANALYSIS_TEMPLATES) - set(
            DEPRECATED_TEMPLATES
        ) - set(GATEWAY_TEMPLATES)


def test_routes_and_metric_names() -> None:
    tgi = get_engine("tgi")
    assert (tgi.routes.health, tgi.routes.generate, tgi.routes.metrics) == (
        "/health",
        "/generate",
        "/metrics",
    )
    assert tgi.routes.chat == "/v1/chat/completions"
    assert tgi.metrics.request_success == "tgi_request_success"
    assert tgi.metrics.request_failure == "tgi_request_failure"
    assert tgi.metrics.request_duration_bucket == "tgi_request_duration_bucket"
    assert tgi.metrics.queue_size == "tgi_queue_size"
    assert not any(name.endswith(("_total", "_seconds")) for name in vars(tgi.metrics).values())


def test_selector_and_matchers() -> None:
    assert selector("ns", "chat", "canary") == SEL
    assert selector("ns", "chat") == 'namespace="ns",llmops_deployment="chat"'
    assert matchers('err!="validation"', SEL) == '{err!="validation",' + SEL + "}"
    assert matchers("") == "{}"


def test_error_ratio_counts_failures_over_outcomes_not_one_minus_success_over_count() -> None:
    q = get_engine("tgi").query("error-ratio", selector=SEL, window="2m")
    assert q == (
        f'(sum(rate(tgi_request_failure{{err!="validation",{SEL}}}[2m])) or vector(0))'
        f" / ((sum(rate(tgi_request_success{{{SEL}}}[2m])) or vector(0))"
        f" + (sum(rate(tgi_request_failure{{{SEL}}}[2m])) or vector(0)))"
    )
    assert "tgi_request_count" not in q and "1 -" not in q


def test_latency_queue_and_time_per_token_queries() -> None:
    tgi = get_engine("tgi")
    assert tgi.query("latency-p95", selector=SEL, window="1m") == (
        f"histogram_quantile(0.95, sum by (le) (rate(tgi_request_duration_bucket{{{SEL}}}[1m])))"
    )
    assert tgi.query("time-per-token-p95", selector=SEL, window="5m") == (
        "histogram_quantile(0.95, sum by (le) "
        f"(rate(tgi_request_mean_time_per_token_duration_bucket{{{SEL}}}[5m])))"
    )
    assert tgi.query("queue-size", selector=SEL, window="1m") == f"max(tgi_queue_size{{{SEL}}})"
    with pytest.raises(ValueError, match="unknown analysis template"):
        tgi.query("tgi-nope", selector=SEL, window="1m")
    # the deprecated names are resolved before the engine is asked (analysis.queries)
    with pytest.raises(ValueError, match="unknown analysis template"):
        tgi.query("tgi-queue-size", selector=SEL, window="1m")


def test_alert_rules_compare_the_queries() -> None:
    tgi = get_engine("tgi")
    rules = alert_rules(tgi, selector=SEL, error_ratio=0.05, latency_p95_seconds=30.0, queue_size=64)
    assert rules == {
        "ErrorRatio": tgi.query("error-ratio", selector=SEL, window="5m") + " > 0.05",
        "LatencyP95": tgi.query("latency-p95", selector=SEL, window="5m") + " > 30.0",
        "QueueBacklog": tgi.query("queue-size", selector=SEL, window="5m") + " > 64",
    }


def test_container_pieces() -> None:
    tgi = get_engine("tgi")
    spec = api.LLMDeploymentSpec.model_validate({"model": {"id": "o/m"}, "engine": {"dtype": "bfloat16"}})
    assert tgi.image(spec) == api.DEFAULT_TGI_IMAGE
    assert tgi.args(spec) == []
    env = {e["name"]: e["value"] for e in tgi.env(spec, revision="abc")}
    assert env["DTYPE"] == "bfloat16" and env["REVISION"] == "abc" and env["PORT"] == str(tgi.container_port)
    # the server runs as non-root with all capabilities dropped: it cannot bind a port below 1024
    assert tgi.container_port >= 1024
    assert set(tgi.probes(spec)) == {"startupProbe", "readinessProbe", "livenessProbe"}
