"""Hugging Face text-generation-inference (TGI) as an engine.

Facts behind the choices (see shared notes, "TGI"): the image sets PORT=80 (we use 8080, see
TGI_PORT) and HF_HOME=/data;
Kubernetes sets HOSTNAME to the pod name, which TGI cannot bind, so HOSTNAME=0.0.0.0 (127.0.0.1
behind the gateway, spec.gateway); NUM_SHARD
auto-detection was wrong before 3.3.7, so it is set to the GPU count; the port only opens after
download, shard load and warm-up, so a startupProbe carries that whole budget; /health can turn
unhealthy under a full queue (TGI #3241), so liveness is lenient; /metrics is served on the main
port (the separate prometheus port serves nothing); metric names have no _total/_seconds suffix.
A LoRA adapter (spec.model.adapter) goes in LORA_ADAPTERS as `name=path`: TGI loads it at startup
and a request uses it only when it names it (`parameters.adapter_id`, or the OpenAI `model`
field; any other name, unknown ones included, gets the base model), so the gateway names it.
"""

from __future__ import annotations

from typing import Any

from llmops.api.constants import DEFAULT_TGI_IMAGE
from llmops.api.spec import LLMDeploymentSpec
from llmops.engines.base import DATA_DIR, TEMPLATES, Metrics, Routes, health_probes, matchers, p95

# 8080, not the image's default 80: the server runs as a non-root user with every capability
# dropped, and a non-root process cannot bind a port below 1024 unless the node's runtime lowers
# net.ipv4.ip_unprivileged_port_start (not all do). The Service still listens on spec.service.port.
TGI_PORT = 8080

TGI_METRICS = Metrics(
    request_success="tgi_request_success",
    request_failure="tgi_request_failure",
    request_duration_bucket="tgi_request_duration_bucket",
    time_per_token_bucket="tgi_request_mean_time_per_token_duration_bucket",
    queue_size="tgi_queue_size",
    input_length_bucket="tgi_request_input_length_bucket",
    generated_tokens_bucket="tgi_request_generated_tokens_bucket",
)

TGI_ROUTES = Routes(
    health="/health",
    generate="/generate",
    chat="/v1/chat/completions",
    completions="/v1/completions",
    info="/info",
    metrics="/metrics",
)


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


class TGI:
    """The TGI engine (stateless; one shared instance)."""

    name = "tgi"
    container_port = TGI_PORT
    routes = TGI_ROUTES
    metrics = TGI_METRICS
    analysis_templates = TEMPLATES

    def image(self, spec: LLMDeploymentSpec) -> str:
        """spec.engine.image (pinned by the CRD's pattern), else the pinned TGI release."""
        return spec.engine.image or DEFAULT_TGI_IMAGE

    def args(self, spec: LLMDeploymentSpec) -> list[str]:
        """Only spec.engine.extraArgs: everything else goes through env, which TGI's launcher reads
        for every flag, so the image's entrypoint stays untouched."""
        return list(spec.engine.extra_args)

    def env(self, spec: LLMDeploymentSpec, *, revision: str) -> list[dict[str, Any]]:
        """The launcher's env. User env comes last and replaces same-named defaults (reserved
        names are refused by the CRD), so every name appears once, as server-side apply needs."""
        engine = spec.engine
        env: list[dict[str, Any]] = [
            # Behind the gateway, only the gateway (same pod, loopback) may reach the engine.
            {"name": "HOSTNAME", "value": "127.0.0.1" if spec.gateway.enabled else "0.0.0.0"},
            {"name": "PORT", "value": str(TGI_PORT)},
            {"name": "MODEL_ID", "value": spec.model.id},
            # Under a LoRA adapter, `revision` names model + adapter; the weights are spec.model's.
            {"name": "REVISION", "value": spec.model.revision if spec.model.adapter else revision},
            {"name": "NUM_SHARD", "value": str(spec.resources.gpu.count)},
            {"name": "HF_HOME", "value": DATA_DIR},
            {"name": "HUGGINGFACE_HUB_CACHE", "value": f"{DATA_DIR}/hub"},
        ]
        if spec.model.adapter is not None:
            # TGI loads it at startup; a request selects it by adapter_id (the gateway sets it).
            adapter = spec.model.adapter
            env.append({"name": "LORA_ADAPTERS", "value": f"{adapter.name}={adapter.path}"})
        if spec.model.token_secret_ref is not None:
            ref = spec.model.token_secret_ref
            env.append(_secret_env("HF_TOKEN", ref.name, ref.key))
        if engine.api_key_secret_ref is not None:
            key_ref = engine.api_key_secret_ref
            env.append(_secret_env("API_KEY", key_ref.name, key_ref.key))
        optional = {
            "QUANTIZE": engine.quantize,
            "DTYPE": engine.dtype,
            "MAX_INPUT_TOKENS": engine.max_input_tokens,
            "MAX_TOTAL_TOKENS": engine.max_total_tokens,
            "MAX_CONCURRENT_REQUESTS": engine.max_concurrent_requests,
            "MAX_BATCH_PREFILL_TOKENS": engine.max_batch_tokens,
        }
        env += [{"name": k, "value": str(v)} for k, v in optional.items() if v is not None]
        user = {e.name: e.value for e in engine.env}
        env = [e for e in env if e["name"] not in user]
        env += [{"name": k, "value": v} for k, v in user.items()]
        return env

    def probes(self, spec: LLMDeploymentSpec) -> dict[str, dict[str, Any]]:
        return health_probes(TGI_ROUTES.health, spec.engine.startup_timeout_seconds)

    def query(self, template: str, *, selector: str, window: str) -> str:
        """PromQL of a canary analysis template.

        error-ratio is failures (validation errors excluded: those are the client's fault) over
        successes plus failures. Not `1 - success/count`: chat requests increment
        tgi_request_count twice, which would read as ~50 % errors. `or vector(0)` because the
        `err` series (and tgi_request_success) only exist after their first event.
        """
        m = TGI_METRICS
        if template == "error-ratio":
            not_validation = matchers('err!="validation"', selector)
            failed = f"sum(rate({m.request_failure}{not_validation}[{window}]))"
            all_failed = f"sum(rate({m.request_failure}{matchers(selector)}[{window}]))"
            succeeded = f"sum(rate({m.request_success}{matchers(selector)}[{window}]))"
            # Every term falls back to 0, so all-failures reads 1 and no traffic reads NaN (no data).
            return f"({failed} or vector(0)) / (({succeeded} or vector(0)) + ({all_failed} or vector(0)))"
        if template == "latency-p95":
            return p95(m.request_duration_bucket, selector, window)
        if template == "time-per-token-p95":
            return p95(m.time_per_token_bucket, selector, window)
        if template == "queue-size":
            return f"max({m.queue_size}{matchers(selector)})"
        raise ValueError(f"unknown analysis template for tgi: {template!r}")
