"""vLLM's OpenAI-compatible server (the `vllm/vllm-openai` image) as an engine.

Facts behind the choices, from vLLM's source (vllm-project/vllm; file @ commit):

- The image's ENTRYPOINT is `vllm serve`, which takes the model as its first positional argument;
  everything is passed as flags (`--port`, `--served-model-name`, `--revision`, `--download-dir`,
  `--tensor-parallel-size`, `--max-model-len`, `--max-num-seqs`, `--max-num-batched-tokens`,
  `--quantization`, `--dtype`, `--gpu-memory-utilization`). The API key is read from the
  `VLLM_API_KEY` env when `--api-key` is absent, so the Secret never appears in the args; it then
  guards the `/v1` routes only (`/health`, `/metrics`, `/version` stay open).
- Routes: `/health` (200 once the engine runs, 503 when it died), `/metrics`, `/version`,
  `/v1/models`, `/v1/chat/completions`, `/v1/completions`. A request naming a model other than
  the served name is refused with 404, so the served name is pinned to spec.model.id.
  Errors are `{"error": {"message", "type", "param", "code"}}`
  (vllm/entrypoints/openai/protocol.py @ 0052bed36509c7a5a2d8e48265334e40cf2f5a0e, ErrorResponse).
- Metrics (vllm/v1/metrics/loggers.py @ 005a810bc40faa25b8870fbc8559c3462581eee3, PrometheusStatLogger;
  docs/design/metrics.md @ f7e3a0879e633f9924d477b85a3775cb1ae2a2e5): names carry the `vllm:` prefix,
  every series has `model_name` and `engine` labels; counters are exposed with `_total`
  (`vllm:request_success_total{finished_reason}`, `vllm:prompt_tokens_total`); histograms
  `vllm:e2e_request_latency_seconds` (buckets 0.3 … 7680 s), `vllm:request_prompt_tokens` and
  `vllm:request_generation_tokens` (1-2-5 buckets up to max-model-len); gauges
  `vllm:num_requests_running`, `vllm:num_requests_waiting`. Per-token time is
  `vllm:inter_token_latency_seconds` (buckets 0.01 … 80 s): its former name
  `vllm:time_per_output_token_seconds` is deprecated and hidden unless
  --show-hidden-metrics-for-version is given (tests/entrypoints/openai/test_metrics.py
  @ 0419b117e5324b6b9e7a744034cd4a355d613eac lists it under HIDDEN_DEPRECATED_METRICS), so the
  templates never use the old name.
- Failures: vLLM counts only finished requests (`vllm:request_success_total`); a request that
  fails is visible in the HTTP counter `http_requests_total{handler, method, status}` (status
  grouped as 2xx/4xx/5xx, from prometheus_fastapi_instrumentator; docs/design/metrics.md). The
  error ratio is 5xx over all requests on the generation routes: 4xx are the client's fault, as
  TGI's validation errors are excluded there.
- LoRA: `--enable-lora --lora-modules name=path` serves the adapter under its name beside the base
  model; a request selects it by the OpenAI `model` field (the gateway sets it,
  spec.model.adapter). vLLM's default --max-lora-rank is 16.
"""

from __future__ import annotations

from typing import Any

from llmops.api.constants import DEFAULT_VLLM_IMAGE
from llmops.api.spec import LLMDeploymentSpec
from llmops.engines.base import DATA_DIR, TEMPLATES, Metrics, Routes, health_probes, matchers, p95

# vLLM's default port; above 1024, so the non-root server can bind it.
VLLM_PORT = 8000
# The model cache on the shared PVC, where the download Job put the snapshot (HF_HUB_CACHE layout).
HUB_CACHE = f"{DATA_DIR}/hub"
# The generation routes the error ratio is computed over (handler label values).
GENERATION_HANDLERS = "/v1/chat/completions|/v1/completions"

VLLM_METRICS = Metrics(
    request_success="vllm:request_success_total",
    request_failure="http_requests_total",
    request_duration_bucket="vllm:e2e_request_latency_seconds_bucket",
    time_per_token_bucket="vllm:inter_token_latency_seconds_bucket",
    queue_size="vllm:num_requests_waiting",
    input_length_bucket="vllm:request_prompt_tokens_bucket",
    generated_tokens_bucket="vllm:request_generation_tokens_bucket",
)

VLLM_ROUTES = Routes(
    health="/health",
    generate="/v1/completions",
    chat="/v1/chat/completions",
    completions="/v1/completions",
    info="/v1/models",
    metrics="/metrics",
)


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def served_model_name(spec: LLMDeploymentSpec) -> str:
    """The name vLLM serves the model under: the Hub id, so clients (and the evaluation) name it as usual."""
    return spec.model.id


class VLLM:
    """The vLLM engine (stateless; one shared instance)."""

    name = "vllm"
    container_port = VLLM_PORT
    routes = VLLM_ROUTES
    metrics = VLLM_METRICS
    analysis_templates = TEMPLATES

    def image(self, spec: LLMDeploymentSpec) -> str:
        """spec.engine.image (pinned by the CRD's pattern), else the pinned vLLM release."""
        return spec.engine.image or DEFAULT_VLLM_IMAGE

    def args(self, spec: LLMDeploymentSpec) -> list[str]:
        """`vllm serve` arguments: the model, then the flags derived from spec, then extraArgs.

        The revision is not here: it differs per track, and args are the same for every track of
        a revision, so it goes in by env expansion ($(LLMOPS_REVISION), set in env()).
        """
        engine = spec.engine
        args = [
            spec.model.id,
            "--served-model-name", served_model_name(spec),
            "--port", str(VLLM_PORT),
            # Behind the gateway, only the gateway (same pod, loopback) may reach the engine.
            "--host", "127.0.0.1" if spec.gateway.enabled else "0.0.0.0",
            "--revision", "$(LLMOPS_REVISION)",
            "--tokenizer-revision", "$(LLMOPS_REVISION)",
            "--download-dir", HUB_CACHE,
            "--tensor-parallel-size", str(spec.resources.gpu.count),
        ]  # fmt: skip
        optional = {
            "--max-model-len": engine.max_total_tokens,
            "--max-num-seqs": engine.max_concurrent_requests,
            "--max-num-batched-tokens": engine.max_batch_tokens,
            "--quantization": engine.quantize,
            "--dtype": engine.dtype,
            "--gpu-memory-utilization": engine.gpu_memory_utilization,
        }
        for flag, value in optional.items():
            if value is not None:
                args += [flag, str(value)]
        if spec.model.adapter is not None:
            # Served under its name beside the base model; a request selects it by the OpenAI
            # `model` field (the gateway sets it). Ranks above vLLM's default --max-lora-rank (16)
            # need that flag in engine.extraArgs.
            adapter = spec.model.adapter
            args += ["--enable-lora", "--lora-modules", f"{adapter.name}={adapter.path}"]
        return args + list(engine.extra_args)

    def env(self, spec: LLMDeploymentSpec, *, revision: str) -> list[dict[str, Any]]:
        """The server's env: the revision (expanded into args), the HF cache on the shared PVC laid
        out as TGI's and the download Job's, the Secrets by reference. User env comes last and
        replaces same-named defaults, so every name appears once, as server-side apply needs."""
        env: list[dict[str, Any]] = [
            # Under a LoRA adapter, `revision` names model + adapter; the weights are spec.model's.
            {"name": "LLMOPS_REVISION", "value": spec.model.revision if spec.model.adapter else revision},
            {"name": "HF_HOME", "value": DATA_DIR},
            {"name": "HF_HUB_CACHE", "value": HUB_CACHE},
            # The pods run as a non-root uid whose HOME (/root in the image) is not writable;
            # vLLM keeps its compile and config caches under HOME.
            {"name": "HOME", "value": "/tmp"},
            # No usage reports from inside a cluster (vLLM otherwise posts them to its collector).
            {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        ]
        if spec.model.token_secret_ref is not None:
            ref = spec.model.token_secret_ref
            env.append(_secret_env("HF_TOKEN", ref.name, ref.key))
        if spec.engine.api_key_secret_ref is not None:
            key_ref = spec.engine.api_key_secret_ref
            env.append(_secret_env("VLLM_API_KEY", key_ref.name, key_ref.key))
        user = {e.name: e.value for e in spec.engine.env}
        env = [e for e in env if e["name"] not in user]
        env += [{"name": k, "value": v} for k, v in user.items()]
        return env

    def probes(self, spec: LLMDeploymentSpec) -> dict[str, dict[str, Any]]:
        return health_probes(VLLM_ROUTES.health, spec.engine.startup_timeout_seconds)

    def query(self, template: str, *, selector: str, window: str) -> str:
        """PromQL of a canary analysis template over vLLM's metrics (see the module docstring).

        error-ratio: 5xx answers over all answers of the generation routes. The 5xx series exists
        only after the first failure (`or vector(0)`); with no traffic the ratio is NaN (no data).
        """
        m = VLLM_METRICS
        if template == "error-ratio":
            routes = f'handler=~"{GENERATION_HANDLERS}"'
            server_error = 'status="5xx"'
            failed = f"sum(rate({m.request_failure}{matchers(routes, server_error, selector)}[{window}]))"
            answered = f"sum(rate({m.request_failure}{matchers(routes, selector)}[{window}]))"
            return f"({failed} or vector(0)) / ({answered} or vector(0))"
        if template == "latency-p95":
            return p95(m.request_duration_bucket, selector, window)
        if template == "time-per-token-p95":
            return p95(m.time_per_token_bucket, selector, window)
        if template == "queue-size":
            return f"max({m.queue_size}{matchers(selector)})"
        raise ValueError(f"unknown analysis template for vllm: {template!r}")
