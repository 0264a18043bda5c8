"""Names of the LLMDeployment API: group, version, kind, annotations, label keys and images.

Plain constants only, shared by the CRD generator, render, the lifecycle and the kube adapter,
so that a name is spelt in exactly one place.
"""

from typing import Final

GROUP = "llmops.io"
VERSION = "v1alpha1"
# f"{GROUP}/{VERSION}" spelt out, so that type checkers see the literal the resource model pins
# (tests/unit/test_api_models.py checks the two agree).
API_VERSION: Final = "llmops.io/v1alpha1"
KIND: Final = "LLMDeployment"
LIST_KIND = "LLMDeploymentList"
PLURAL = "llmdeployments"
SINGULAR = "llmdeployment"
SHORT_NAMES: tuple[str, ...] = ("llmd",)
# Not "all": `kubectl get all` is for built-in workloads; an operator should not add to it.
CATEGORIES: tuple[str, ...] = ("llmops",)
CRD_NAME = f"{PLURAL}.{GROUP}"

# The operator's own image. It runs the operator, and also the download and evaluation Jobs
# (`llmops download`, `llmops evaluate`), so a cluster pulls one image for all of them.
OPERATOR_IMAGE = "ghcr.io/llmops-io/llmops-operator:0.1.0"
# TGI 3.3.7 (2025-12-18) is the last release; it fixed NUM_SHARD auto-detection.
DEFAULT_TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference:3.3.7"
# vLLM's OpenAI-compatible server image, pinned by release tag. v0.11.0 is the newest release whose
# metric names, flags and entrypoint (`vllm serve`) were checked against vLLM's source for
# llmops.engines.vllm (docs/architecture.md, "Engines: TGI and vLLM"); later tags exist but could
# not be verified here without registry access, so move the pin only after re-checking those facts.
DEFAULT_VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"

# Manual gates are annotations, not spec: they are actions, not desired state, so git (which
# owns spec) never has to carry them. The operator removes nothing; it acts on the value's change.
ANNOTATION_PROMOTE = "llmops.io/promote"
"""Set to the canary revision (or "true") to promote the running canary now, skipping the remaining steps."""
ANNOTATION_ABORT = "llmops.io/abort"
"""Set to "true" to abort the running canary and roll back to the stable revision."""
ANNOTATION_RETRAIN = "llmops.io/retrain"
"""Set to any new value to start a retrain now (within spec.retrain's cooldown and daily cap)."""
ANNOTATION_APPROVE = "llmops.io/approve-retrain"
"""Set to the retrained revision to approve it when `spec.retrain.approval` is Manual."""

# Label keys on every child (and on the pod templates).
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_DEPLOYMENT = f"{GROUP}/deployment"
"""The owning LLMDeployment's name: the key for listing children and selecting pods."""
LABEL_REVISION = f"{GROUP}/revision"
"""The model revision a pod serves, shortened to a valid label value (see render.labels)."""
LABEL_TRACK = f"{GROUP}/track"
"""stable, canary or staging."""
LABEL_SERVING = f"{GROUP}/serving"
""""true" on pods that take production traffic (stable and canary); the Service selects it."""

MANAGED_BY = "llmops-operator"
PART_OF = "llmops"
APP_NAME = "llmops-model"

# Prometheus target labels the PodMonitor attaches (from the pod labels above), so that every
# engine series can be split by deployment, track and revision in PromQL.
PROM_LABEL_DEPLOYMENT = "llmops_deployment"
PROM_LABEL_TRACK = "llmops_track"
PROM_LABEL_REVISION = "llmops_revision"

TRACKS: tuple[str, ...] = ("stable", "canary", "staging")
"""stable and canary take production traffic; staging pods (evaluation) take none."""

# The node label that carries the GPU model, by GPU resource (vendor). Others have none, so
# spec.resources.gpu.product is refused for them.
GPU_PRODUCT_LABELS: dict[str, str] = {
    # NVIDIA GPU Feature Discovery (gpu-operator): nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3
    "nvidia.com/gpu": "nvidia.com/gpu.product",
    # ROCm k8s-device-plugin node labeller (docs "Node Labelling", example for an MI300X:
    # amd.com/gpu.product-name=AMD_Instinct_MI300X_OAM; the legacy beta.amd.com/ prefix is off
    # by default)
    "amd.com/gpu": "amd.com/gpu.product-name",
}
