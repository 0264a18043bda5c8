"""The gateway container of a server pod, its volumes, and the Secret with its signing key.

With spec.gateway.enabled the pod runs two containers: `gateway` (the operator's image running
`llmops gateway`) owns the named port the Service targets and a health port for probes and
scrapes; the engine listens on 127.0.0.1 only and declares no port. Probes: the kubelet cannot
reach a localhost-only engine, so the engine's startup and liveness probes ask the gateway's
/health, which passes the engine's /health through (503 while loading, as before), and the
gateway's readiness does the same, so a pod takes traffic only when the engine can generate.

With spec.gateway.capture the gateway gets --capture-* flags: the sample rate, what to keep,
the redactions (built-in kinds and user patterns, which the operator has compiled before it
renders anything), the queue size, and where records go: the capture store's Service
`<name>-capture` on port 8080 with the token from the signing-key Secret, or the CloudEvents sink.

The signing-key Secret `<name>-gateway` holds the HMAC key of request IDs, the API key of
the operator's own Jobs, and the bearer token between the gateways and the capture store
(`capture-token`, made with every Secret so that capture can be turned on later). It must be random and must never change (IDs already handed out would
stop verifying), so render cannot make it: the reconciler creates it once, with key material it
generates, and never writes it again.
"""

from __future__ import annotations

import base64
from typing import Any

from llmops.api.constants import OPERATOR_IMAGE
from llmops.api.resource import LLMDeployment
from llmops.engines import PORT_NAME
from llmops.render.labels import COMPONENT_SERVER, Track, common_labels, metadata
from llmops.render.security import container_security_context

__all__ = [
    "API_KEYS_DIR",
    "CAPTURE_STORE_PORT",
    "CAPTURE_TOKEN",
    "ENGINE_API_KEY_ENV",
    "GATEWAY_CONTAINER",
    "GATEWAY_HEALTH_PORT",
    "GATEWAY_PORT",
    "HEALTH_PORT_NAME",
    "INTERNAL_API_KEY",
    "SIGNING_KEY",
    "capture_args",
    "capture_store_url",
    "gateway_container",
    "gateway_probes",
    "gateway_volumes",
    "signing_secret",
    "signing_secret_name",
]

GATEWAY_CONTAINER = "gateway"
# Not 8000 (vLLM's port) nor 8080 (TGI's): the containers of a pod share one network namespace.
GATEWAY_PORT = 8088
GATEWAY_HEALTH_PORT = 9091
HEALTH_PORT_NAME = "metrics"
"""The gateway's health port: /healthz, /health (the engine's) and /metrics (gateway + engine)."""
SIGNING_KEY = "signing-key"
INTERNAL_API_KEY = "internal-api-key"
CAPTURE_TOKEN = "capture-token"
ENGINE_API_KEY_ENV = "LLMOPS_ENGINE_API_KEY"
SIGNING_VOLUME = "gateway-signing"
API_KEYS_VOLUME = "gateway-api-keys"
SIGNING_DIR = "/etc/llmops/gateway/signing"
API_KEYS_DIR = "/etc/llmops/gateway/api-keys"
ENGINE_HOST = "127.0.0.1"
CAPTURE_STORE_PORT = 8080
"""The port of the capture store's Service `<name>-capture`."""
# Liveness of the gateway process itself (not of the engine): a stuck event loop is restarted.
LIVENESS_PERIOD_SECONDS = 10
LIVENESS_FAILURE_THRESHOLD = 3


def signing_secret_name(name: str) -> str:
    """The Secret with the gateway's signing key: `<name>-gateway`."""
    return f"{name}-gateway"


def signing_secret(
    ld: LLMDeployment, *, signing_key: bytes, internal_api_key: bytes, capture_token: bytes
) -> dict[str, Any]:
    """The signing-key Secret with the given key material (the reconciler generates it)."""
    data = {SIGNING_KEY: signing_key, INTERNAL_API_KEY: internal_api_key, CAPTURE_TOKEN: capture_token}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(ld, signing_secret_name(ld.name), common_labels(ld, COMPONENT_SERVER)),
        "type": "Opaque",
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


def capture_store_url(ld: LLMDeployment) -> str:
    """The capture store's base URL, in the deployment's namespace."""
    return f"http://{ld.name}-capture.{ld.namespace}.svc:{CAPTURE_STORE_PORT}"


def capture_args(ld: LLMDeployment) -> list[str]:
    """The gateway's --capture-* flags (none when capture is off)."""
    capture = ld.spec.gateway.capture
    if capture is None:
        return []
    args = [
        *("--capture-sample-rate", str(capture.sample_rate), "--capture-keep", capture.keep),
        *("--capture-redact", ",".join(capture.redaction.builtins)),
        *("--capture-queue-size", str(capture.queue_size)),
    ]
    for pattern in capture.redaction.patterns:
        args += ["--capture-pattern", f"{pattern.name}={pattern.regex}"]
    if capture.sink is not None:
        return [*args, "--capture-sink-url", capture.sink.url]
    return [
        *args,
        *("--capture-url", capture_store_url(ld)),
        *("--capture-token-file", f"{SIGNING_DIR}/{CAPTURE_TOKEN}"),
    ]


def gateway_volumes(ld: LLMDeployment) -> list[dict[str, Any]]:
    """The signing-key Secret and, with auth, the API keys Secret (both mounted read-only).

    A missing API keys Secret keeps the pods in ContainerCreating (the kubelet retries the mount
    and picks the Secret up once it exists): no crash loop, and no pod serving without keys.
    """
    volumes: list[dict[str, Any]] = [
        {"name": SIGNING_VOLUME, "secret": {"secretName": signing_secret_name(ld.name), "defaultMode": 0o440}}
    ]
    ref = ld.spec.gateway.auth.api_keys_secret_ref
    if ref is not None:
        volumes.append({"name": API_KEYS_VOLUME, "secret": {"secretName": ref.name, "defaultMode": 0o440}})
    return volumes


def gateway_probes(engine_probes: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the engine container's probes, the gateway container's probes) from the engine's own.

    The engine keeps its startup budget and lenient liveness, asked through the gateway's health
    port by number (a named port belongs to the container that declares it); the gateway takes
    the readiness probe and adds a liveness probe of its own.
    """
    engine: dict[str, Any] = {}
    for kind in ("startupProbe", "livenessProbe"):
        probe = dict(engine_probes[kind])
        probe["httpGet"] = {**probe["httpGet"], "port": GATEWAY_HEALTH_PORT}
        engine[kind] = probe
    readiness = dict(engine_probes["readinessProbe"])
    readiness["httpGet"] = {**readiness["httpGet"], "port": HEALTH_PORT_NAME}
    gateway = {
        "readinessProbe": readiness,
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": HEALTH_PORT_NAME},
            "periodSeconds": LIVENESS_PERIOD_SECONDS,
            "timeoutSeconds": 5,
            "failureThreshold": LIVENESS_FAILURE_THRESHOLD,
            "successThreshold": 1,
        },
    }
    return engine, gateway


def gateway_container(
    ld: LLMDeployment,
    *,
    track: Track,
    revision: str,
    engine_port: int,
    probes: dict[str, Any],
    operator_image: str = OPERATOR_IMAGE,
) -> dict[str, Any]:
    """The `gateway` container: `llmops gateway` in front of the engine at 127.0.0.1:`engine_port`."""
    spec = ld.spec
    gw = spec.gateway
    args = [
        "gateway",
        "--port",
        str(GATEWAY_PORT),
        "--health-port",
        str(GATEWAY_HEALTH_PORT),
        "--upstream",
        f"http://{ENGINE_HOST}:{engine_port}",
        "--deployment",
        f"{ld.namespace}/{ld.name}",
        "--revision",
        revision,
        "--track",
        track,
        "--signing-key-file",
        f"{SIGNING_DIR}/{SIGNING_KEY}",
        "--max-request-bytes",
        str(gw.max_request_bytes),
        "--upstream-timeout",
        str(gw.upstream_timeout_seconds),
        *capture_args(ld),
    ]
    if spec.model.adapter is not None:
        # The engine serves the adapter only to requests that name it: the gateway names it.
        args += ["--adapter", spec.model.adapter.name]
    mounts = [{"name": SIGNING_VOLUME, "mountPath": SIGNING_DIR, "readOnly": True}]
    if gw.auth.api_keys_secret_ref is not None:
        args += ["--api-keys-dir", API_KEYS_DIR, "--internal-key-file", f"{SIGNING_DIR}/{INTERNAL_API_KEY}"]
        mounts.append({"name": API_KEYS_VOLUME, "mountPath": API_KEYS_DIR, "readOnly": True})
    env: list[dict[str, Any]] = []
    # The engine's key is the gateway's to send only when it checks client keys itself; without
    # client keys the client's own Authorization reaches the engine, which enforces its key.
    if spec.engine.api_key_secret_ref is not None and gw.auth.api_keys_secret_ref is not None:
        ref = spec.engine.api_key_secret_ref
        env.append(
            {"name": ENGINE_API_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
        )
    container: dict[str, Any] = {
        "name": GATEWAY_CONTAINER,
        "image": operator_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["llmops"],
        "args": args,
        "ports": [
            {"name": PORT_NAME, "containerPort": GATEWAY_PORT, "protocol": "TCP"},
            {"name": HEALTH_PORT_NAME, "containerPort": GATEWAY_HEALTH_PORT, "protocol": "TCP"},
        ],
        **probes,
        # A request, no CPU limit (throttling adds latency to every token); memory bounded.
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }
    if env:
        container["env"] = env
    return container
