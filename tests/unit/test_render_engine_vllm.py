"""vLLM as an engine: the container it is given (args, env, probes) and the exact PromQL of every
engine-neutral analysis template, next to TGI's, so that a change to either is a visible diff."""

from __future__ import annotations

from typing import Any

import pytest

import llmops.api as api
from llmops.analysis.queries import queries
from llmops.api.delivery import AnalysisSpec
from llmops.engines import TEMPLATES, alert_rules, get_engine

SEL = 'namespace="ns",llmops_deployment="chat",llmops_track="canary"'

# The PromQL each engine resolves each neutral template to (window 2m). Pinned on purpose: a
# metric renamed upstream must be a deliberate change here and in docs/analysis.md (test_docs checks it).
EXPECTED: dict[str, dict[str, str]] = {
    "tgi": {
        "error-ratio": (
            f'(sum(rate(tgi_request_failure{{err!="validation",{SEL}}}[2m])) or vector(0))'
            f" / ((sum(rate(tgi_request_success{{{SEL}}}[2m])) or vector(0))"
            f" + (sum(rate(tgi_request_failure{{{SEL}}}[2m])) or vector(0)))"
        ),
        "latency-p95": f"histogram_quantile(0.95, sum by (le) (rate(tgi_request_duration_bucket{{{SEL}}}[2m])))",
        "time-per-token-p95": (
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(tgi_request_mean_time_per_token_duration_bucket{{{SEL}}}[2m])))"
        ),
        "queue-size": f"max(tgi_queue_size{{{SEL}}})",
    },
    "vllm": {
        "error-ratio": (
            "(sum(rate(http_requests_total"
            f'{{handler=~"/v1/chat/completions|/v1/completions",status="5xx",{SEL}}}[2m])) or vector(0))'
            " / (sum(rate(http_requests_total"
            f'{{handler=~"/v1/chat/completions|/v1/completions",{SEL}}}[2m])) or vector(0))'
        ),
        "latency-p95": (
            f"histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{{{SEL}}}[2m])))"
        ),
        "time-per-token-p95": (
            f"histogram_quantile(0.95, sum by (le) (rate(vllm:inter_token_latency_seconds_bucket{{{SEL}}}[2m])))"
        ),
        "queue-size": f"max(vllm:num_requests_waiting{{{SEL}}})",
    },
}


@pytest.mark.parametrize("engine", ["tgi", "vllm"])
@pytest.mark.parametrize("template", TEMPLATES)
def test_each_neutral_template_resolves_to_the_engines_promql(engine: str, template: str) -> None:
    assert get_engine(engine).query(template, selector=SEL, window="2m") == EXPECTED[engine][template]


@pytest.mark.parametrize(
    ("alias", "neutral"),
    [
        ("tgi-error-ratio", "error-ratio"),
        ("tgi-latency-p95", "latency-p95"),
        ("tgi-time-per-token-p95", "time-per-token-p95"),
        ("tgi-queue-size", "queue-size"),
    ],
)
def test_deprecated_tgi_names_resolve_as_their_neutral_names(alias: str, neutral: str) -> None:
    analysis = AnalysisSpec.model_validate(
        {"metrics": [{"name": "m", "template": alias, "compareToStable": {"maxRatio": 2}}]}
    )
    (got,) = queries(analysis, get_engine("tgi"), "ns", "chat", "2m")
    assert got.canary == EXPECTED["tgi"][neutral]
    assert got.stable == EXPECTED["tgi"][neutral].replace('llmops_track="canary"', 'llmops_track="stable"')


def test_vllm_alert_rules_use_vllm_metrics() -> None:
    vllm = get_engine("vllm")
    rules = alert_rules(vllm, selector=SEL, error_ratio=0.05, latency_p95_seconds=30.0, queue_size=64)
    assert rules["LatencyP95"] == vllm.query("latency-p95", selector=SEL, window="5m") + " > 30.0"
    assert rules["QueueBacklog"] == f"max(vllm:num_requests_waiting{{{SEL}}}) > 64"
    assert "tgi_" not in " ".join(rules.values())


def _spec(**engine: Any) -> api.LLMDeploymentSpec:
    return api.LLMDeploymentSpec.model_validate(
        {
            "model": {"id": "org/model", "tokenSecretRef": {"name": "hf"}},
            "engine": {"type": "vllm", **engine},
            "resources": {"gpu": {"count": 4}},
        }
    )


def test_vllm_args_map_the_spec_to_vllm_flags() -> None:
    vllm = get_engine("vllm")
    spec = _spec(
        maxTotalTokens=8192,
        maxConcurrentRequests=64,
        maxBatchTokens=4096,
        quantize="awq",
        dtype="float16",
        gpuMemoryUtilization=0.9,
        extraArgs=["--enforce-eager"],
    )
    assert vllm.args(spec) == [
        "org/model",
        "--served-model-name", "org/model",
        "--port", "8000",
        "--host", "127.0.0.1",  # behind the gateway (spec.gateway, on by default)
        "--revision", "$(LLMOPS_REVISION)",
        "--tokenizer-revision", "$(LLMOPS_REVISION)",
        "--download-dir", "/data/hub",
        "--tensor-parallel-size", "4",
        "--max-model-len", "8192",
        "--max-num-seqs", "64",
        "--max-num-batched-tokens", "4096",
        "--quantization", "awq",
        "--dtype", "float16",
        "--gpu-memory-utilization", "0.9",
        "--enforce-eager",
    ]  # fmt: skip
    assert vllm.image(spec) == api.DEFAULT_VLLM_IMAGE == "vllm/vllm-openai:v0.11.0"
    assert vllm.image(_spec(image="vllm/vllm-openai:v0.11.1")) == "vllm/vllm-openai:v0.11.1"


def test_vllm_env_carries_the_revision_cache_and_secrets_by_reference() -> None:
    vllm = get_engine("vllm")
    spec = _spec(apiKeySecretRef={"name": "keys"}, env=[{"name": "HOME", "value": "/scratch"}])
    env = vllm.env(spec, revision="abc")
    by_name = {e["name"]: e for e in env}
    assert len(by_name) == len(env)  # every name once (server-side apply merges env by name)
    assert by_name["LLMOPS_REVISION"]["value"] == "abc"
    assert (by_name["HF_HOME"]["value"], by_name["HF_HUB_CACHE"]["value"]) == ("/data", "/data/hub")
    assert by_name["VLLM_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "keys", "key": "api-key"}}
    assert by_name["HF_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "hf", "key": "token"}}
    assert by_name["HOME"]["value"] == "/scratch"  # user env wins over the defaults
    assert not any("value" in e and e["value"].startswith("hf_") for e in env)


def test_vllm_probes_and_routes() -> None:
    vllm = get_engine("vllm")
    probes = vllm.probes(_spec(startupTimeoutSeconds=600))
    assert {p["httpGet"]["path"] for p in probes.values()} == {"/health"}
    assert probes["startupProbe"]["failureThreshold"] * probes["startupProbe"]["periodSeconds"] == 600
    assert (vllm.routes.chat, vllm.routes.completions, vllm.routes.metrics) == (
        "/v1/chat/completions",
        "/v1/completions",
        "/metrics",
    )
    assert vllm.container_port == 8000
    assert all(name.startswith(("vllm:", "http_")) for name in vars(vllm.metrics).values())


def test_vllm_serves_a_lora_adapter_as_a_lora_module_on_the_hub_revision() -> None:
    vllm = get_engine("vllm")
    spec = api.parse(
        {
            "apiVersion": "llmops.io/v1alpha1",
            "kind": "LLMDeployment",
            "metadata": {"name": "m", "namespace": "ns"},
            "spec": {
                "model": {
                    "id": "org/model",
                    "revision": "a" * 40,
                    "adapter": {"name": "t", "path": "/data/a/t"},
                },
            },
        }
    ).spec
    args = vllm.args(spec)
    assert args[args.index("--enable-lora") :][:3] == ["--enable-lora", "--lora-modules", "t=/data/a/t"]
    env = {e["name"]: e["value"] for e in vllm.env(spec, revision=spec.model.served_revision)}
    assert env["LLMOPS_REVISION"] == "a" * 40  # the weights' revision, not the adapter's name for it
