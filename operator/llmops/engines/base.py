"""The engine interface: everything that differs between inference servers (TGI and vLLM).

An engine turns the spec into the server container (image, args, env, ports, probes), names its
HTTP routes and Prometheus metrics, and writes the PromQL for the engine-neutral canary analysis
templates (TEMPLATES) and the alerts. Render, lifecycle and analysis only talk to this interface
(ARCHITECTURE principle 6). Everything here is pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from llmops.api.constants import PROM_LABEL_DEPLOYMENT, PROM_LABEL_TRACK
from llmops.api.spec import LLMDeploymentSpec

CONTAINER_NAME = "server"
"""Name of the server container in every engine's pods (the kube adapter reads its status)."""
PORT_NAME = "http"
"""Name of the server's one port: API, health and /metrics."""
DATA_DIR = "/data"
"""Mount path of the model cache."""


@dataclass(frozen=True)
class Routes:
    """HTTP paths of the server."""

    health: str
    """GET: 200 when the model is loaded and can generate."""
    generate: str
    """POST: the engine's native text generation (vLLM has none: its OpenAI completions route)."""
    chat: str
    """POST: OpenAI-compatible chat completions."""
    completions: str
    """POST: OpenAI-compatible (text) completions."""
    info: str
    """GET: model and limits."""
    metrics: str
    """GET: Prometheus exposition."""


@dataclass(frozen=True)
class Metrics:
    """Prometheus metric names of the server, by meaning."""

    request_success: str
    """Counter of finished requests."""
    request_failure: str
    """Counter whose series count failed requests (for vLLM, its HTTP counter by status class)."""
    request_duration_bucket: str
    time_per_token_bucket: str
    queue_size: str
    input_length_bucket: str
    generated_tokens_bucket: str


TEMPLATES: tuple[str, ...] = ("error-ratio", "latency-p95", "time-per-token-p95", "queue-size")
"""The engine-neutral analysis templates; every engine resolves each to PromQL over its own metrics."""


def selector(namespace: str, deployment: str, track: str | None = None) -> str:
    """PromQL label matchers for one LLMDeployment's pods (one track of them if given).

    The labels are the ones the PodMonitor attaches (see render.monitoring).
    """
    parts = [f'namespace="{namespace}"', f'{PROM_LABEL_DEPLOYMENT}="{deployment}"']
    if track is not None:
        parts.append(f'{PROM_LABEL_TRACK}="{track}"')
    return ",".join(parts)


def matchers(*parts: str) -> str:
    """`{a,b}` from non-empty matcher strings (`{}` for none)."""
    return "{" + ",".join(p for p in parts if p) + "}"


class Engine(Protocol):
    """What render, lifecycle and analysis need from an inference server."""

    name: str
    """Engine type as in spec.engine.type."""
    container_port: int
    """Port the server listens on (named PORT_NAME)."""
    routes: Routes
    metrics: Metrics
    analysis_templates: tuple[str, ...]
    """Templates `query` resolves (the engine-neutral TEMPLATES)."""

    def image(self, spec: LLMDeploymentSpec) -> str:
        """The server image."""
        ...

    def args(self, spec: LLMDeploymentSpec) -> list[str]:
        """Container args (after the image's entrypoint)."""
        ...

    def env(self, spec: LLMDeploymentSpec, *, revision: str) -> list[dict[str, Any]]:
        """Container env (core/v1 EnvVar dicts); secrets only as valueFrom.secretKeyRef."""
        ...

    def probes(self, spec: LLMDeploymentSpec) -> dict[str, dict[str, Any]]:
        """{"startupProbe", "readinessProbe", "livenessProbe"} for the server container."""
        ...

    def query(self, template: str, *, selector: str, window: str) -> str:
        """PromQL for an engine-neutral analysis template over the pods `selector` matches, rates
        over `window`. Raises ValueError for a name not in TEMPLATES."""
        ...


def p95(bucket: str, selector: str, window: str) -> str:
    """The 95th percentile of a histogram's `_bucket` series over `window`, across the matched pods."""
    return f"histogram_quantile(0.95, sum by (le) (rate({bucket}{matchers(selector)}[{window}])))"


def alert_rules(
    engine: Engine, *, selector: str, error_ratio: float, latency_p95_seconds: float, queue_size: int
) -> dict[str, str]:
    """The serving alerts' expressions by alert suffix (ErrorRatio, LatencyP95, QueueBacklog), already
    compared: the engine's own PromQL for the neutral templates, over 5-minute rates."""

    def q(template: str) -> str:
        return engine.query(template, selector=selector, window="5m")

    return {
        "ErrorRatio": f"{q('error-ratio')} > {error_ratio}",
        "LatencyP95": f"{q('latency-p95')} > {latency_p95_seconds}",
        "QueueBacklog": f"{q('queue-size')} > {queue_size}",
    }


# Probe cadence, the same for every engine. The startupProbe period is short so a warm pod turns
# Ready soon after the port opens.
STARTUP_PERIOD_SECONDS = 10
READINESS_PERIOD_SECONDS = 10
# /health may run a short generation (TGI's does after a failed check): give it time on a busy GPU.
PROBE_TIMEOUT_SECONDS = 10
# Liveness restarts only after 10 failed checks 30 s apart (5 minutes of /health failing): a
# saturated server that answers 503 on /health for a while is slow, not dead (TGI #3241).
LIVENESS_PERIOD_SECONDS = 30
LIVENESS_FAILURE_THRESHOLD = 10


def health_probes(health_path: str, startup_timeout_seconds: int) -> dict[str, dict[str, Any]]:
    """startupProbe covering ``startup_timeout_seconds`` (loading a large model takes minutes);
    readiness on the engine's health route; lenient liveness."""
    http = {"path": health_path, "port": PORT_NAME}

    def probe(period: int, timeout: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": dict(http),
            "periodSeconds": period,
            "timeoutSeconds": timeout,
            "failureThreshold": failures,
            "successThreshold": 1,
        }

    startup_failures = math.ceil(startup_timeout_seconds / STARTUP_PERIOD_SECONDS)
    return {
        "startupProbe": probe(STARTUP_PERIOD_SECONDS, PROBE_TIMEOUT_SECONDS, startup_failures),
        "readinessProbe": probe(READINESS_PERIOD_SECONDS, PROBE_TIMEOUT_SECONDS, 3),
        "livenessProbe": probe(LIVENESS_PERIOD_SECONDS, LIVENESS_PERIOD_SECONDS, LIVENESS_FAILURE_THRESHOLD),
    }
