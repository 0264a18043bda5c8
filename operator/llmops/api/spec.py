"""The LLMDeployment spec: what to serve (model, engine), on what (resources, placement), how many
(replicas), and around it (cache, service, security, monitoring), plus the delivery sections
from delivery.py (evaluation, rollout, drift, retrain).

Field names borrow from the anchors where they fit: KServe/Kaito for model and resources,
core/v1 for placement and selectors, the Prometheus Operator for monitoring.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, StringConstraints, ValidationInfo, field_validator, model_validator

from llmops.api.capture import CaptureSpec
from llmops.api.common import (
    DNS1123_LABEL,
    LABEL_VALUE,
    QUALIFIED_NAME,
    SHA40,
    WHITE_SPACE,
    X_LIST_MAP_KEYS,
    X_LIST_TYPE,
    ApiKeySecretRef,
    ApiModel,
    Duration,
    EnvVar,
    FreeForm,
    Image,
    Labels,
    LabelSelector,
    LocalObjectReference,
    ObjectName,
    PositiveQuantity,
    Quantity,
    TokenSecretRef,
    Toleration,
    cel,
    validations,
)
from llmops.api.constants import GPU_PRODUCT_LABELS
from llmops.api.delivery import REPO_ID, DriftSpec, EvaluationSpec, RetrainSpec, RolloutSpec

# A git ref or sha as the Hub accepts it ("main", "v1.0", "refs/pr/3", a 40-hex commit).
REVISION = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"
# An image pinned to a full X.Y.Z tag (vLLM's tags carry a leading v; a suffix such as -rocm is fine)
# or to a digest: never `latest`, never a moving X.Y, so a revision always means the same server.
PINNED_IMAGE = (
    rf"^[^{WHITE_SPACE}@]+:v?[0-9]+\.[0-9]+\.[0-9]+([-.+][0-9A-Za-z.-]+)?(@sha256:[0-9a-f]{{64}})?$"  # name:[v]X.Y.Z[@digest]
    rf"|^[^{WHITE_SPACE}@]+@sha256:[0-9a-f]{{64}}$"  # name@digest
)
ENGINE_TYPES: tuple[str, ...] = ("tgi", "vllm")
# Quantization methods by engine: TGI's --quantize values, and the subset of vLLM's --quantization
# choices that load pre-quantized Hub checkpoints. A value only one engine knows is refused for the
# other by a CEL rule naming the field, so the mistake surfaces at `kubectl apply`, not in a crash loop.
TGI_QUANTIZE = (
    "awq",
    "compressed-tensors",
    "eetq",
    "exl2",
    "gptq",
    "marlin",
    "bitsandbytes",
    "bitsandbytes-nf4",
    "bitsandbytes-fp4",
    "fp8",
)
VLLM_QUANTIZE = (
    "awq",
    "awq_marlin",
    "compressed-tensors",
    "gptq",
    "gptq_marlin",
    "marlin",
    "bitsandbytes",
    "fp8",
    "fbgemm_fp8",
    "gguf",
    "experts_int8",
    "modelopt",
    "mxfp4",
)
QUANTIZE: tuple[str, ...] = TGI_QUANTIZE + tuple(q for q in VLLM_QUANTIZE if q not in TGI_QUANTIZE)
# Variables the operator sets from spec fields: setting them through engine.env would silently
# fight the field (or smuggle a secret around the *SecretRef fields).
RESERVED_ENV: tuple[str, ...] = (
    "MODEL_ID",
    "REVISION",
    "NUM_SHARD",
    "PORT",
    "HOSTNAME",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "API_KEY",
    "VLLM_API_KEY",
    "QUANTIZE",
    "DTYPE",
    "MAX_INPUT_TOKENS",
    "MAX_TOTAL_TOKENS",
    "MAX_CONCURRENT_REQUESTS",
    "MAX_BATCH_PREFILL_TOKENS",
    "LORA_ADAPTERS",
    "LLMOPS_REVISION",
)


def is_pinned_revision(revision: str) -> bool:
    """True for a 40-hex commit sha; anything else is a moving ref (a branch or tag)."""
    return re.fullmatch(SHA40, revision) is not None


ADAPTER_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
"""A LoRA adapter's name: what requests select it by (TGI's adapter_id, the OpenAI ``model``
field). No ``=``, ``@``, ``,`` or ``/``: TGI's LORA_ADAPTERS list is ``id=path`` pairs joined by
commas, and ``@`` starts a Hub revision there."""
ADAPTER_PATH = r"^/data(/[A-Za-z0-9_][A-Za-z0-9._-]*)+$"
"""A LoRA adapter's folder on the model cache (mounted at /data in every server pod): no ``..``
segment, no hidden folder, nothing TGI's LORA_ADAPTERS syntax would read as a separator."""


class AdapterSpec(ApiModel):
    """A LoRA adapter on the model cache, served on top of the model (TGI LORA_ADAPTERS, vLLM
    --lora-modules). The gateway selects it for every request, so clients need no change."""

    name: Annotated[str, StringConstraints(pattern=ADAPTER_NAME)]
    """The adapter's id: requests name it (TGI adapter_id, OpenAI model); a retrain run's report
    names it, by default after the run."""
    path: Annotated[str, StringConstraints(pattern=ADAPTER_PATH, max_length=512)]
    """Its folder on the model cache (a PEFT adapter: adapter_config.json and the weights)."""


def adapter_revision(revision: str, adapter: AdapterSpec) -> str:
    """The revision that names the model with ``adapter`` in the children, status and history:
    ``<revision>+<name>-<8 hex of the path>``, so a different adapter (or the same name at another
    path) is a new revision, and the same one is the same revision wherever it comes from. A
    revision longer than 64 characters (a long ref) is shortened with a hash of it, so that the
    result fits status (at most 137 characters)."""
    if len(revision) > 64:
        revision = f"{revision[:40]}-{hashlib.sha256(revision.encode()).hexdigest()[:8]}"
    digest = hashlib.sha256(adapter.path.encode()).hexdigest()[:8]
    return f"{revision}+{adapter.name}-{digest}"


class ModelSpec(ApiModel):
    """The model: a Hugging Face Hub repository at a revision, optionally with a LoRA adapter."""

    id: Annotated[str, StringConstraints(pattern=REPO_ID, max_length=200)]
    """Hub repository id, org/name (e.g. meta-llama/Llama-3.1-8B-Instruct)."""
    revision: Annotated[str, StringConstraints(pattern=REVISION, max_length=255)] = "main"
    """Commit sha (40 hex) to pin the weights. A branch or tag is accepted but moves under you:
    status reports it as a warning."""
    token_secret_ref: TokenSecretRef | None = None
    """Hub token for gated or private models, passed to the pods as HF_TOKEN."""
    adapter: AdapterSpec | None = None
    """A LoRA adapter on the model cache, served on top of this model for every request (needs
    gateway.enabled, which selects it, and cache.enabled, which holds it). A retrain run that
    reports an adapter serves it this way; commit it here to pin it."""

    @property
    def served_revision(self) -> str:
        """The revision that names what serves: ``revision``, or with an adapter
        ``adapter_revision(revision, adapter)``."""
        if self.adapter is None:
            return self.revision
        return adapter_revision(self.revision, self.adapter)


# The engine type as CEL sees it: the CRD defaults `type`, but a rule must not fail on its absence.
_ENGINE = "(has(self.type) ? self.type : 'tgi')"


def _cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def _only_for(engine: str, field: str, message: str) -> dict[str, str]:
    """A CEL rule refusing `field` unless spec.engine.type is `engine` (the error names the field)."""
    return cel(f"{_ENGINE} == '{engine}' || !has(self.{field})", message, f".{field}")


def _quantize_for(engine: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """A CEL rule refusing a quantize value that `engine` does not know, naming the value."""
    return cel(
        f"{_ENGINE} != '{engine}' || !has(self.quantize) || self.quantize in {_cel_list(allowed)}",
        f"quantize is not supported by engine {engine}; it accepts: {', '.join(allowed)}",
        ".quantize",
        message_expression=(
            f"'quantize ' + self.quantize + ' is not supported by engine {engine}; it accepts: "
            f"{', '.join(allowed)}'"
        ),
    )


_NOT_BOTH_DTYPE_QUANTIZE = cel(
    f"{_ENGINE} != 'tgi' || !has(self.dtype) || !has(self.quantize)",
    "dtype and quantize are mutually exclusive for engine tgi (TGI refuses --dtype with --quantize)",
    ".dtype",
)
_INPUT_LT_TOTAL = cel(
    "!has(self.maxInputTokens) || !has(self.maxTotalTokens) || self.maxInputTokens < self.maxTotalTokens",
    "maxInputTokens must be less than maxTotalTokens",
    ".maxInputTokens",
)
_NO_RESERVED_ENV = cel(
    "!has(self.env) || self.env.all(e, !(e.name in " + _cel_list(RESERVED_ENV) + "))",
    "env must not set variables the operator derives from spec ("
    + ", ".join(RESERVED_ENV)
    + "): use the spec fields (model, engine, resources, *SecretRef) instead",
    ".env",
)
_INPUT_TOKENS_TGI_ONLY = _only_for(
    "tgi",
    "maxInputTokens",
    "maxInputTokens is a TGI setting: engine vllm has no separate prompt limit "
    "(maxTotalTokens sets its --max-model-len)",
)
_GPU_MEMORY_VLLM_ONLY = _only_for(
    "vllm",
    "gpuMemoryUtilization",
    "gpuMemoryUtilization is a vLLM setting (--gpu-memory-utilization): engine tgi does not understand it",
)
_TGI_QUANTIZE = _quantize_for("tgi", TGI_QUANTIZE)
_VLLM_QUANTIZE = _quantize_for("vllm", VLLM_QUANTIZE)
_ENGINE_RULES = (
    _NOT_BOTH_DTYPE_QUANTIZE,
    _INPUT_LT_TOTAL,
    _NO_RESERVED_ENV,
    _INPUT_TOKENS_TGI_ONLY,
    _GPU_MEMORY_VLLM_ONLY,
    _TGI_QUANTIZE,
    _VLLM_QUANTIZE,
)


class EngineSpec(ApiModel):
    """The inference server. Everything engine-specific sits behind llmops.engines; fields that only
    one engine understands are refused for the other (the error names the field)."""

    model_config = ConfigDict(json_schema_extra=validations(*_ENGINE_RULES))

    type: Literal["tgi", "vllm"] = "tgi"
    """The engine: tgi (Hugging Face text-generation-inference) or vllm (vLLM's OpenAI-compatible
    server). See docs/architecture.md ("Engines: TGI and vLLM") for what each is given."""
    image: Annotated[str, StringConstraints(pattern=PINNED_IMAGE, max_length=512)] | None = None
    """Server image, pinned to a full X.Y.Z tag or an @sha256 digest (default: the engine's pinned
    release, ghcr.io/huggingface/text-generation-inference:3.3.7 or vllm/vllm-openai:v0.11.0)."""
    quantize: Literal[QUANTIZE] | None = None  # type: ignore[valid-type]  # pydantic reads the tuple at run time; mypy sees no Literal
    """Weight quantization (TGI --quantize, vLLM --quantization); each engine accepts its own methods."""
    dtype: Literal["float16", "bfloat16"] | None = None
    """Weight dtype (--dtype); with tgi not together with quantize."""
    max_input_tokens: Annotated[int, Field(ge=1)] | None = None
    """Longest prompt in tokens (TGI --max-input-tokens; tgi only)."""
    max_total_tokens: Annotated[int, Field(ge=2)] | None = None
    """Longest prompt plus generation in tokens (TGI --max-total-tokens, vLLM --max-model-len)."""
    max_concurrent_requests: Annotated[int, Field(ge=1)] | None = None
    """Requests served at once (TGI --max-concurrent-requests, beyond which it answers 429; vLLM
    --max-num-seqs, beyond which requests wait in its queue)."""
    max_batch_tokens: Annotated[int, Field(ge=1)] | None = None
    """Tokens one forward pass may process (TGI --max-batch-prefill-tokens, vLLM
    --max-num-batched-tokens)."""
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] | None = None
    """Share of each GPU's memory vLLM may use for weights and KV cache (vLLM
    --gpu-memory-utilization; vllm only)."""
    extra_args: Annotated[list[Annotated[str, StringConstraints(max_length=1024)]], Field(max_length=64)] = []
    """More server arguments, appended verbatim."""
    env: Annotated[
        list[EnvVar], Field(max_length=64, json_schema_extra={X_LIST_TYPE: "map", X_LIST_MAP_KEYS: ["name"]})
    ] = []
    """More plain environment variables (secrets go through the *SecretRef fields)."""
    api_key_secret_ref: ApiKeySecretRef | None = None
    """Require this API key (Bearer) on the generation routes (TGI API_KEY, vLLM VLLM_API_KEY)."""
    startup_timeout_seconds: Annotated[int, Field(ge=60, le=86400)] = 1800
    """Budget of the startup probe: download, shard load and warm-up must finish within it."""

    @model_validator(mode="after")
    def _cross_fields(self) -> Self:
        if self.type == "tgi" and self.dtype is not None and self.quantize is not None:
            raise ValueError(_NOT_BOTH_DTYPE_QUANTIZE["message"])
        if (
            self.max_input_tokens is not None
            and self.max_total_tokens is not None
            and self.max_input_tokens >= self.max_total_tokens
        ):
            raise ValueError(_INPUT_LT_TOTAL["message"])
        if any(e.name in RESERVED_ENV for e in self.env):
            raise ValueError(_NO_RESERVED_ENV["message"])
        return self

    # Field validators (not the model's), so that the error names the field, as the CEL rules'
    # fieldPath does; `type` is declared first, so it is validated before them (info.data).
    @field_validator("max_input_tokens")
    @classmethod
    def _input_tokens_tgi_only(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("type") == "vllm":
            raise ValueError(_INPUT_TOKENS_TGI_ONLY["message"])
        return value

    @field_validator("gpu_memory_utilization")
    @classmethod
    def _gpu_memory_vllm_only(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and info.data.get("type", "tgi") == "tgi":
            raise ValueError(_GPU_MEMORY_VLLM_ONLY["message"])
        return value

    @field_validator("quantize")
    @classmethod
    def _quantize_for_the_engine(cls, value: str | None, info: ValidationInfo) -> str | None:
        engine = info.data.get("type", "tgi")
        allowed = TGI_QUANTIZE if engine == "tgi" else VLLM_QUANTIZE
        if value is not None and value not in allowed:
            raise ValueError(
                f"quantize {value} is not supported by engine {engine}; it accepts: " + ", ".join(allowed)
            )
        return value


_PRODUCT_NEEDS_LABEL = cel(
    "!has(self.product) || self.resourceName in " + str(sorted(GPU_PRODUCT_LABELS)).replace("'", '"'),
    "product is matched against a node label only nvidia.com/gpu and amd.com/gpu nodes carry; "
    "use placement.nodeSelector for other GPU resources",
    ".product",
)


class GpuSpec(ApiModel):
    """GPUs per replica. The model is sharded across them (NUM_SHARD = count)."""

    model_config = ConfigDict(json_schema_extra=validations(_PRODUCT_NEEDS_LABEL))

    count: Annotated[int, Field(ge=1, le=64)] = 1
    """GPUs per replica (all on one node)."""
    resource_name: Annotated[str, StringConstraints(pattern=QUALIFIED_NAME, max_length=317)] = (
        "nvidia.com/gpu"
    )
    """Extended resource name of the GPU."""
    product: Annotated[str, StringConstraints(pattern=LABEL_VALUE, max_length=63)] | None = None
    """GPU model, matched against the vendor's node label (nvidia.com/gpu.product, amd.com/gpu.product-name)."""

    @model_validator(mode="after")
    def _product_has_a_label(self) -> Self:
        if self.product is not None and self.resource_name not in GPU_PRODUCT_LABELS:
            raise ValueError(_PRODUCT_NEEDS_LABEL["message"])
        return self


class ResourcesSpec(ApiModel):
    """Compute per replica."""

    gpu: GpuSpec = Field(default_factory=GpuSpec)
    """GPUs per replica."""
    cpu: Quantity | None = None
    """CPU request (no limit: throttling a server's tokenizer threads only adds latency)."""
    memory: Quantity | None = None
    """Memory request and limit (equal, so an overrun is an OOMKill the operator can report)."""


class PlacementSpec(ApiModel):
    """Where the pods may run, as in a core/v1 PodSpec."""

    node_selector: Labels = {}
    """Node labels the pods require (gpu.product adds the vendor's product label)."""
    tolerations: Annotated[list[Toleration], Field(max_length=32)] = []
    """Taints the pods tolerate (GPU nodes are often tainted)."""
    affinity: FreeForm | None = None
    """A core/v1 Affinity, kept verbatim."""
    priority_class_name: ObjectName | None = None
    """PriorityClass of the pods."""


class DownloadSpec(ApiModel):
    """The Job that pre-fills the cache with huggingface_hub.snapshot_download."""

    enabled: bool = True
    """Download before the server starts (otherwise TGI downloads inside its startup budget)."""
    active_deadline_seconds: Annotated[int, Field(ge=60)] = 3600
    """Deadline of the download Job."""
    image: Image | None = None
    """Image of the download Job (defaults to the operator's image)."""


class CacheSpec(ApiModel):
    """The model cache: one PersistentVolumeClaim mounted at /data, shared by all revisions."""

    enabled: bool = True
    """Use a PVC (otherwise an emptyDir: every pod downloads the model)."""
    size: PositiveQuantity = "100Gi"
    """Size of the PVC."""
    storage_class_name: ObjectName | None = None
    """StorageClass of the PVC (the cluster default if unset)."""
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany"] = "ReadWriteOnce"
    """ReadWriteMany lets replicas on different nodes share the cache."""
    download: DownloadSpec = Field(default_factory=DownloadSpec)
    """The pre-download Job."""


class ServiceSpec(ApiModel):
    """The Service in front of the serving pods."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    """Service type."""
    port: Annotated[int, Field(ge=1, le=65535)] = 80
    """Service port (targets the server's http port)."""


_PEER_SELECTS = cel(
    "has(self.namespaceSelector) || has(self.podSelector)",
    "a peer needs namespaceSelector, podSelector or both",
)


class NetworkPolicyPeer(ApiModel):
    """Who may connect (networking/v1 NetworkPolicyPeer without ipBlock)."""

    model_config = ConfigDict(json_schema_extra=validations(_PEER_SELECTS))

    namespace_selector: LabelSelector | None = None
    """Namespaces allowed (alone: all pods in them)."""
    pod_selector: LabelSelector | None = None
    """Pods allowed (alone: in the LLMDeployment's namespace)."""

    @model_validator(mode="after")
    def _selects(self) -> Self:
        if self.namespace_selector is None and self.pod_selector is None:
            raise ValueError(_PEER_SELECTS["message"])
        return self


class NetworkPolicySpec(ApiModel):
    """Ingress to the serving pods: only from these peers, plus Prometheus from the monitoring namespace."""

    enabled: bool = True
    """Render the NetworkPolicy."""
    from_: Annotated[list[NetworkPolicyPeer], Field(max_length=32, alias="from")] = []
    """Allowed clients. Empty: only pods in the LLMDeployment's namespace."""


class SecuritySpec(ApiModel):
    """Network isolation of the serving pods (their security context is always restricted)."""

    network_policy: NetworkPolicySpec = Field(default_factory=NetworkPolicySpec)
    """The NetworkPolicy."""


class PodMonitorSpec(ApiModel):
    """The PodMonitor scraping the server's /metrics."""

    interval: Duration = "30s"
    """Scrape interval. The capture checks follow it: once per interval (at least 10s apart), over
    a window of four."""
    labels: Labels = {}
    """Extra labels (e.g. the release label your Prometheus selects)."""


class PrometheusRuleSpec(ApiModel):
    """The PrometheusRule with serving alerts."""

    enabled: bool = True
    """Render the PrometheusRule."""
    labels: Labels = {}
    """Extra labels (e.g. the release label your Prometheus selects)."""
    error_ratio: Annotated[float, Field(gt=0, le=1)] = 0.05
    """Alert when more than this share of requests fail (validation errors excluded)."""
    latency_p95_seconds: Annotated[float, Field(gt=0)] = 30.0
    """Alert when the p95 end-to-end request duration exceeds this."""
    queue_size: Annotated[int, Field(ge=1)] = 64
    """Alert when more requests than this wait in a pod's queue."""
    for_: Annotated[Duration, Field(alias="for")] = "10m"
    """How long a condition must hold before the alert fires."""


class PrometheusSpec(ApiModel):
    """The Prometheus the operator queries (canary analysis, drift)."""

    url: (
        Annotated[str, StringConstraints(pattern=rf"^https?://[^{WHITE_SPACE}]+$", max_length=2048)] | None
    ) = None
    """Base URL, e.g. http://prometheus-operated.monitoring.svc:9090 (defaults to the operator's setting)."""


class MonitoringSpec(ApiModel):
    """Metrics and alerts (needs the Prometheus Operator CRDs; skipped, and reported, without them)."""

    enabled: bool = True
    """Render the PodMonitor (and the PrometheusRule if enabled)."""
    namespace: Annotated[str, StringConstraints(pattern=DNS1123_LABEL, max_length=63)] = "monitoring"
    """Namespace of Prometheus: the NetworkPolicy admits scrapes from it."""
    pod_monitor: PodMonitorSpec = Field(default_factory=PodMonitorSpec)
    """The PodMonitor."""
    prometheus_rule: PrometheusRuleSpec = Field(default_factory=PrometheusRuleSpec)
    """The alerts."""
    prometheus: PrometheusSpec = Field(default_factory=PrometheusSpec)
    """The Prometheus to query."""


class GatewayAuthSpec(ApiModel):
    """Who may call the model through the gateway."""

    api_keys_secret_ref: LocalObjectReference | None = None
    """A Secret with one key per client: the data key is the client's name (a label on the
    gateway's metrics), its value the client's API key, sent as `Authorization: Bearer <key>`.
    Changes take effect within seconds, without a restart. Absent: no authentication."""


_CAPTURE_NEEDS_GATEWAY = cel(
    "!has(self.capture) || self.enabled",
    "gateway.capture needs gateway.enabled: the gateway captures",
    ".capture",
)


class GatewaySpec(ApiModel):
    """The gateway container in every server pod, in front of the engine (which then listens on
    localhost only): API keys per client, signed request IDs, user feedback, its own metrics."""

    model_config = ConfigDict(json_schema_extra=validations(_CAPTURE_NEEDS_GATEWAY))

    enabled: bool = True
    """Run the gateway (false: the Service targets the engine directly, as without it)."""
    auth: GatewayAuthSpec = Field(default_factory=GatewayAuthSpec)
    """API keys."""
    max_request_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024
    """Largest request body; larger ones get 413."""
    upstream_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 300
    """How long the engine may take to start answering, or stay silent mid-answer, before 504."""
    capture: CaptureSpec | None = None
    """Opt-in capture of sampled, redacted requests for drift checks and retraining (absent: off)."""

    @model_validator(mode="after")
    def _capture_needs_gateway(self) -> Self:
        if self.capture is not None and not self.enabled:
            raise ValueError(_CAPTURE_NEEDS_GATEWAY["message"])
        return self


DEFAULT_TARGET_QUEUE_DEPTH = 4
"""Requests waiting per replica the autoscaler aims at when neither targetQueueDepth nor a query
is given (a few waiting requests keep the batch full without adding much latency)."""

_MIN_LE_MAX = cel(
    "!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",
    "autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas",
    # No messageExpression with the two numbers: the apiserver estimates string(int) as unbounded
    # and refuses the CRD for its cost; the error's field path and value name them anyway.
    ".minReplicas",
)
_QUEUE_DEPTH_OR_QUERY = cel(
    "!has(self.targetQueueDepth) || !has(self.query)",
    "autoscaling.targetQueueDepth and autoscaling.query are mutually exclusive: "
    "a custom query comes with its own target",
    ".query",
)
_QUERY_HAS_TARGET = cel(
    "has(self.query) == has(self.target)",
    "autoscaling.query and autoscaling.target go together: the query's value is kept near the target",
    ".target",
)
_TARGET_TYPE_NEEDS_QUERY = cel(
    "!has(self.targetType) || has(self.query)",
    "autoscaling.targetType applies to a custom query only (the queue depth is always per replica)",
    ".targetType",
)


class AutoscalingSpec(ApiModel):
    """Replicas that follow the load: a KEDA ScaledObject (when KEDA's CRDs are installed) or a
    HorizontalPodAutoscaler on an External metric scales the stable Deployment between
    minReplicas and maxReplicas. While this section is set the autoscaler owns the replica count:
    spec.replicas is only the count a new stable Deployment starts with (clamped to
    [minReplicas, maxReplicas]); removing the section gives the count back to spec.replicas.
    See docs/autoscaling.md."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            _MIN_LE_MAX, _QUEUE_DEPTH_OR_QUERY, _QUERY_HAS_TARGET, _TARGET_TYPE_NEEDS_QUERY
        )
    )

    min_replicas: Annotated[int, Field(ge=1, le=1000)] = 1
    """Fewest replicas (at least 1: a cold start loads the model for minutes, so no scale to zero)."""
    max_replicas: Annotated[int, Field(ge=1, le=1000)]
    """Most replicas (each takes resources.gpu.count GPUs)."""
    target_queue_depth: Annotated[int, Field(ge=1, le=10000)] | None = None
    """Requests waiting in the engine's queue per replica to aim at (TGI tgi_queue_size, vLLM
    vllm:num_requests_waiting, summed over the stable pods); default 4. Not with query."""
    query: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    """A custom PromQL query returning one number, instead of the queue depth. Placeholders:
    {{ namespace }}, {{ name }}, {{ track }} (stable), {{ interval }} (1m) and {{ selector }}
    (label matchers of the stable pods). Checked against Prometheus: one that does not parse is
    reported in the Autoscaling condition and no autoscaler is rendered."""
    target: Annotated[float, Field(gt=0)] | None = None
    """The value the query is kept near (with query)."""
    target_type: Literal["AverageValue", "Value"] | None = None
    """AverageValue (default): the query's value divided by the replicas is kept near target (a
    total, such as requests waiting); Value: the query's value itself (a ratio, a latency)."""
    polling_interval_seconds: Annotated[int, Field(ge=5, le=3600)] = 30
    """How often KEDA queries Prometheus (KEDA only: a HorizontalPodAutoscaler follows the
    controller-manager's --horizontal-pod-autoscaler-sync-period, 15 s by default)."""
    cooldown_seconds: Annotated[int, Field(ge=0, le=3600)] = 300
    """Scale-down stabilisation window: the replicas never drop below the highest count wanted
    within this many seconds (a reloaded replica costs minutes of model loading)."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"autoscaling.minReplicas ({self.min_replicas}) must be less than or equal to "
                f"autoscaling.maxReplicas ({self.max_replicas})"
            )
        if self.target_queue_depth is not None and self.query is not None:
            raise ValueError(_QUEUE_DEPTH_OR_QUERY["message"])
        if (self.query is None) != (self.target is None):
            raise ValueError(_QUERY_HAS_TARGET["message"])
        if self.target_type is not None and self.query is None:
            raise ValueError(_TARGET_TYPE_NEEDS_QUERY["message"])
        return self

    def start_replicas(self, replicas: int) -> int:
        """The count a new stable Deployment starts with: spec.replicas clamped to [min, max]."""
        return max(self.min_replicas, min(replicas, self.max_replicas))


_EVAL_SCORE_NEEDS_SCHEDULE = cel(
    "!has(self.drift) || !has(self.drift.quality) || (has(self.evaluation) && has(self.evaluation.schedule))",
    "drift.quality needs evaluation.schedule",
    ".drift",
)
_QUALITY_METRIC_THRESHOLDED = cel(
    "!has(self.drift) || !has(self.drift.quality) || !has(self.evaluation)"
    " || self.evaluation.thresholds.exists(t, t.metric == self.drift.quality.metric)",
    "drift.quality.metric must be one of evaluation.thresholds: the gate records only thresholded scores",
    ".drift",
)
_PROMPTS_NEED_CAPTURE = cel(
    "!has(self.drift) || !has(self.drift.prompts) || (has(self.gateway) && has(self.gateway.capture)"
    " && !has(self.gateway.capture.sink)"
    " && (!has(self.gateway.capture.keep) || self.gateway.capture.keep != 'Responses'))",
    "drift.prompts needs gateway.capture sending prompts to the capture store (no sink, keep "
    "Prompts or Both): the store computes the prompts' term histograms",
    ".drift.prompts",
)
_HELD_OUT_NEEDS_CAPTURE = cel(
    "!has(self.evaluation) || !has(self.evaluation.heldOut) || (has(self.gateway) && has(self.gateway.capture)"
    " && !has(self.gateway.capture.sink)"
    " && (!has(self.gateway.capture.keep) || self.gateway.capture.keep != 'Responses'))",
    "evaluation.heldOut.corrections needs gateway.capture sending prompts to the capture store (no "
    "sink, keep Prompts or Both): the evaluation Job reads the corrected prompts from the store",
    ".evaluation.heldOut",
)
_SPEC_ENGINE = "(has(self.engine) && has(self.engine.type) ? self.engine.type : 'tgi')"
_DEPRECATED_TEMPLATES_TGI_ONLY = cel(
    f"{_SPEC_ENGINE} == 'tgi' || !has(self.rollout) || !has(self.rollout.analysis)"
    " || !has(self.rollout.analysis.metrics)"
    " || self.rollout.analysis.metrics.all(m, !has(m.template) || !m.template.startsWith('tgi-'))",
    "rollout.analysis.metrics[].template: the tgi-* names are deprecated aliases for engine tgi only; "
    "use error-ratio, latency-p95, time-per-token-p95 or queue-size",
    ".rollout.analysis.metrics",
)
_GENERATE_ROUTE_TGI_ONLY = cel(
    f"{_SPEC_ENGINE} == 'tgi' || !has(self.evaluation) || !has(self.evaluation.route)"
    " || self.evaluation.route != 'generate'",
    "evaluation.route generate is TGI's native route: engine vllm serves chat and completion",
    ".evaluation.route",
)
_ADAPTER_NEEDS_GATEWAY = cel(
    "!has(self.model.adapter) || !has(self.gateway) || !has(self.gateway.enabled) || self.gateway.enabled",
    "model.adapter needs gateway.enabled: the gateway selects the adapter for every request",
    ".model.adapter",
)
_ADAPTER_NEEDS_CACHE = cel(
    "!has(self.model.adapter) || !has(self.cache) || !has(self.cache.enabled) || self.cache.enabled",
    "model.adapter needs cache.enabled: the adapter is a folder on the model cache",
    ".model.adapter",
)
_RETRAIN_NEEDS_EVALUATION = cel(
    "!has(self.retrain) || has(self.evaluation)",
    "retrain needs evaluation: a retrained model must pass the evaluation gate",
    ".retrain",
)
_NO_WORSE_THAN_THRESHOLDED = cel(
    "!has(self.retrain) || !has(self.retrain.noWorseThan) || !has(self.evaluation)"
    " || self.retrain.noWorseThan.all(r, self.evaluation.thresholds.exists(t, t.metric == r.metric))",
    "retrain.noWorseThan[].metric must be one of evaluation.thresholds: the gate records only "
    "thresholded scores, so only those can be compared with what serves",
    ".retrain.noWorseThan",
)


class LLMDeploymentSpec(ApiModel):
    """Desired state of an LLMDeployment: a model served by an inference engine on GPUs."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            _EVAL_SCORE_NEEDS_SCHEDULE,
            _QUALITY_METRIC_THRESHOLDED,
            _PROMPTS_NEED_CAPTURE,
            _HELD_OUT_NEEDS_CAPTURE,
            _RETRAIN_NEEDS_EVALUATION,
            _NO_WORSE_THAN_THRESHOLDED,
            _DEPRECATED_TEMPLATES_TGI_ONLY,
            _GENERATE_ROUTE_TGI_ONLY,
            _ADAPTER_NEEDS_GATEWAY,
            _ADAPTER_NEEDS_CACHE,
        )
    )

    model: ModelSpec
    """The model to serve."""
    engine: EngineSpec = Field(default_factory=EngineSpec)
    """The inference server."""
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    """Compute per replica."""
    placement: PlacementSpec = Field(default_factory=PlacementSpec)
    """Scheduling constraints."""
    replicas: Annotated[int, Field(ge=0, le=1000)] = 1
    """Serving replicas (each with resources.gpu.count GPUs). 0 scales the model down. With
    autoscaling, only the count a new stable Deployment starts with: the autoscaler owns it."""
    autoscaling: AutoscalingSpec | None = None
    """Replicas that follow the load (absent: spec.replicas, kept by the operator)."""
    cache: CacheSpec = Field(default_factory=CacheSpec)
    """The model cache."""
    service: ServiceSpec = Field(default_factory=ServiceSpec)
    """The Service."""
    security: SecuritySpec = Field(default_factory=SecuritySpec)
    """Network isolation."""
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    """Metrics and alerts."""
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)
    """The gateway in front of the engine."""
    evaluation: EvaluationSpec | None = None
    """The evaluation gate for new revisions (absent: no gate)."""
    rollout: RolloutSpec | None = None
    """Canary rollout of new revisions (absent: a plain rolling update)."""
    drift: DriftSpec | None = None
    """Drift detection on the serving revision."""
    retrain: RetrainSpec | None = None
    """Retraining on drift."""

    @model_validator(mode="after")
    def _sections(self) -> Self:
        wants_schedule = self.drift is not None and self.drift.quality is not None
        if wants_schedule and (self.evaluation is None or self.evaluation.schedule is None):
            raise ValueError(_EVAL_SCORE_NEEDS_SCHEDULE["message"])
        quality = self.drift.quality if self.drift is not None else None
        thresholded = {t.metric for t in self.evaluation.thresholds} if self.evaluation else set()
        if quality is not None and self.evaluation is not None and quality.metric not in thresholded:
            raise ValueError(_QUALITY_METRIC_THRESHOLDED["message"])
        capture = self.gateway.capture
        keeps_prompts = capture is not None and capture.sink is None and capture.keep != "Responses"
        if self.drift is not None and self.drift.prompts is not None and not keeps_prompts:
            raise ValueError(_PROMPTS_NEED_CAPTURE["message"])
        if self.evaluation is not None and self.evaluation.held_out is not None and not keeps_prompts:
            raise ValueError(_HELD_OUT_NEEDS_CAPTURE["message"])
        if self.retrain is not None and self.evaluation is None:
            raise ValueError(_RETRAIN_NEEDS_EVALUATION["message"])
        compared = {r.metric for r in self.retrain.no_worse_than} if self.retrain else set()
        if self.evaluation is not None and not compared <= thresholded:
            raise ValueError(_NO_WORSE_THAN_THRESHOLDED["message"])
        if self.model.adapter is not None and not self.gateway.enabled:
            raise ValueError(_ADAPTER_NEEDS_GATEWAY["message"])
        if self.model.adapter is not None and not self.cache.enabled:
            raise ValueError(_ADAPTER_NEEDS_CACHE["message"])
        if self.engine.type != "tgi":
            templates = [m.template for m in self.rollout.analysis.metrics] if self.rollout else []
            if any(t is not None and t.startswith("tgi-") for t in templates):
                raise ValueError(_DEPRECATED_TEMPLATES_TGI_ONLY["message"])
            if self.evaluation is not None and self.evaluation.route == "generate":
                raise ValueError(_GENERATE_ROUTE_TGI_ONLY["message"])
        return self


__all__ = [
    "ADAPTER_NAME",
    "ADAPTER_PATH",
    "DEFAULT_TARGET_QUEUE_DEPTH",
    "ENGINE_TYPES",
    "PINNED_IMAGE",
    "QUANTIZE",
    "RESERVED_ENV",
    "REVISION",
    "TGI_QUANTIZE",
    "VLLM_QUANTIZE",
    "AdapterSpec",
    "AutoscalingSpec",
    "CacheSpec",
    "DownloadSpec",
    "EngineSpec",
    "GatewayAuthSpec",
    "GatewaySpec",
    "GpuSpec",
    "LLMDeploymentSpec",
    "ModelSpec",
    "MonitoringSpec",
    "NetworkPolicyPeer",
    "NetworkPolicySpec",
    "PlacementSpec",
    "PodMonitorSpec",
    "PrometheusRuleSpec",
    "PrometheusSpec",
    "ResourcesSpec",
    "SecuritySpec",
    "ServiceSpec",
    "adapter_revision",
    "is_pinned_revision",
]
