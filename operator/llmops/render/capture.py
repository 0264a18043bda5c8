"""The capture store's children, rendered when spec.gateway.capture is set without a sink.

    <name>-capture  PersistentVolumeClaim  the segments (spec.gateway.capture.store: size, class)
    <name>-capture  Deployment             one pod running `llmops capture-store` from the
                                           operator's image; Recreate, since the claim is
                                           ReadWriteOnce and two pods must never append at once
    <name>-capture  Service                port 8080 (`http`), the gateways' and readers' URL
    <name>-capture  NetworkPolicy          ingress to 8080 only from this LLMDeployment's server
                                           pods (the gateways) and its Jobs (the retrain Job reads);
                                           to the health port from the monitoring namespace
    <name>-capture  PodMonitor             scrapes the store's /metrics (the gateways' health
                                           port is an endpoint of the PodMonitor `<name>`)

The bearer token is `capture-token` of the Secret `<name>-gateway` (render.gateway), mounted as
a file. Removing capture (or switching to a sink) deletes all five, the PVC with its records
included: captured prompts are personal data, and keeping them after capture was turned off
would keep them without a retention policy. Copy them out first (GET /v1/records).
"""

from __future__ import annotations

from typing import Any

from llmops.api.constants import LABEL_COMPONENT, LABEL_DEPLOYMENT, OPERATOR_IMAGE, PROM_LABEL_DEPLOYMENT
from llmops.api.resource import LLMDeployment
from llmops.render.gateway import CAPTURE_TOKEN, signing_secret_name
from llmops.render.labels import COMPONENT_SERVER, common_labels, metadata
from llmops.render.monitoring import pod_monitor_for
from llmops.render.networkpolicy import NAMESPACE_NAME_LABEL
from llmops.render.security import container_security_context, pod_security_context

__all__ = [
    "CAPTURE_HEALTH_PORT",
    "CAPTURE_PORT",
    "COMPONENT_CAPTURE",
    "capture_deployment",
    "capture_network_policy",
    "capture_pod_monitor",
    "capture_pvc",
    "capture_service",
    "capture_store_enabled",
    "capture_store_name",
    "capture_url",
]

COMPONENT_CAPTURE = "capture-store"
CAPTURE_CONTAINER = "capture-store"
CAPTURE_PORT = 8080
CAPTURE_HEALTH_PORT = 9090
API_PORT_NAME = "http"
HEALTH_PORT_NAME = "metrics"
DATA_VOLUME = "segments"
TOKEN_VOLUME = "capture-token"
DATA_DIR = "/var/lib/llmops/capture"
TOKEN_DIR = "/etc/llmops/capture"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
"""Set by the Job controller on every pod of a Job: with llmops.io/deployment, this LLMDeployment's Jobs."""


def capture_store_enabled(ld: LLMDeployment) -> bool:
    """Capture is on and goes to the store (not to a CloudEvents sink)."""
    capture = ld.spec.gateway.capture
    return ld.spec.gateway.enabled and capture is not None and capture.sink is None


def capture_store_name(name: str) -> str:
    """The store's Deployment, PVC, Service, NetworkPolicy and PodMonitor: `<name>-capture`."""
    return f"{name}-capture"


def capture_url(ld: LLMDeployment) -> str:
    """The store's in-cluster base URL (the gateways POST to `{url}/v1/records`)."""
    return f"http://{capture_store_name(ld.name)}.{ld.namespace}.svc:{CAPTURE_PORT}"


def _labels(ld: LLMDeployment) -> dict[str, str]:
    return common_labels(ld, COMPONENT_CAPTURE)


def _selector(ld: LLMDeployment) -> dict[str, str]:
    return {LABEL_DEPLOYMENT: ld.name, LABEL_COMPONENT: COMPONENT_CAPTURE}


def capture_pvc(ld: LLMDeployment) -> dict[str, Any] | None:
    """The PVC `<name>-capture` (None unless the store is on)."""
    if not capture_store_enabled(ld):
        return None
    assert ld.spec.gateway.capture is not None
    store = ld.spec.gateway.capture.store
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": str(store.size)}},
    }
    if store.storage_class_name is not None:
        spec["storageClassName"] = store.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(ld, capture_store_name(ld.name), _labels(ld)),
        "spec": spec,
    }


def _container(ld: LLMDeployment, operator_image: str) -> dict[str, Any]:
    capture = ld.spec.gateway.capture
    assert capture is not None
    health = {"path": "/ready", "port": HEALTH_PORT_NAME}
    return {
        "name": CAPTURE_CONTAINER,
        "image": operator_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["llmops"],
        "args": [
            "capture-store",
            "--port",
            str(CAPTURE_PORT),
            "--health-port",
            str(CAPTURE_HEALTH_PORT),
            "--data-dir",
            DATA_DIR,
            "--token-file",
            f"{TOKEN_DIR}/{CAPTURE_TOKEN}",
            "--retention",
            capture.retention,
            "--max-size",
            str(capture.max_size),
        ],
        "ports": [
            {"name": API_PORT_NAME, "containerPort": CAPTURE_PORT, "protocol": "TCP"},
            {"name": HEALTH_PORT_NAME, "containerPort": CAPTURE_HEALTH_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {"httpGet": health, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 2},
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": HEALTH_PORT_NAME},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": DATA_VOLUME, "mountPath": DATA_DIR},
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
        ],
    }


def capture_deployment(ld: LLMDeployment, *, operator_image: str = OPERATOR_IMAGE) -> dict[str, Any] | None:
    """The Deployment `<name>-capture`: one store pod (None unless the store is on)."""
    if not capture_store_enabled(ld):
        return None
    labels = _labels(ld)
    volumes = [
        {"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": capture_store_name(ld.name)}},
        {
            "name": TOKEN_VOLUME,
            "secret": {
                "secretName": signing_secret_name(ld.name),
                "items": [{"key": CAPTURE_TOKEN, "path": CAPTURE_TOKEN}],
                "defaultMode": 0o440,
            },
        },
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(ld, capture_store_name(ld.name), labels),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": _selector(ld)},
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    # Time to answer the batches in flight (each waits for one fsync round).
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": pod_security_context(),
                    "containers": [_container(ld, operator_image)],
                    "volumes": volumes,
                },
            },
        },
    }


def capture_service(ld: LLMDeployment) -> dict[str, Any] | None:
    """The Service `<name>-capture`, port 8080 (None unless the store is on)."""
    if not capture_store_enabled(ld):
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(ld, capture_store_name(ld.name), _labels(ld)),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(ld),
            "ports": [
                {"name": API_PORT_NAME, "port": CAPTURE_PORT, "targetPort": API_PORT_NAME, "protocol": "TCP"}
            ],
        },
    }


OPERATOR_POD_LABELS = {"app.kubernetes.io/name": "llmops-operator"}
"""What the operator's own pods carry (its chart and manifests label them so)."""


def capture_network_policy(ld: LLMDeployment) -> dict[str, Any] | None:
    """The NetworkPolicy `<name>-capture` (None unless the store is on and network policies are)."""
    if not (capture_store_enabled(ld) and ld.spec.security.network_policy.enabled):
        return None
    gateways = {
        "podSelector": {"matchLabels": {LABEL_DEPLOYMENT: ld.name, LABEL_COMPONENT: COMPONENT_SERVER}}
    }
    jobs = {
        "podSelector": {
            "matchLabels": {LABEL_DEPLOYMENT: ld.name},
            "matchExpressions": [{"key": JOB_NAME_LABEL, "operator": "Exists"}],
        }
    }
    peers = [gateways, jobs]
    drift = ld.spec.drift
    if drift is not None and drift.enabled and drift.prompts is not None:
        # The operator asks for the prompts' term histograms (GET /v1/terms), from its own
        # namespace, which render does not know: its pods' name label in any namespace.
        peers.append({"namespaceSelector": {}, "podSelector": {"matchLabels": OPERATOR_POD_LABELS}})
    ingress: list[dict[str, Any]] = [{"from": peers, "ports": [{"port": API_PORT_NAME, "protocol": "TCP"}]}]
    if ld.spec.monitoring.enabled:
        monitoring_ns = {"matchLabels": {NAMESPACE_NAME_LABEL: ld.spec.monitoring.namespace}}
        ingress.append(
            {
                "from": [{"namespaceSelector": monitoring_ns}],
                "ports": [{"port": HEALTH_PORT_NAME, "protocol": "TCP"}],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(ld, capture_store_name(ld.name), _labels(ld)),
        "spec": {
            "podSelector": {"matchLabels": _selector(ld)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def capture_pod_monitor(ld: LLMDeployment) -> dict[str, Any] | None:
    """The PodMonitor `<name>-capture`: the store's /metrics, with namespace and llmops_deployment
    (None unless the store and monitoring are on)."""
    if not (capture_store_enabled(ld) and ld.spec.monitoring.enabled):
        return None
    copied = ((LABEL_DEPLOYMENT, PROM_LABEL_DEPLOYMENT),)
    endpoint = (HEALTH_PORT_NAME, "/metrics")
    return pod_monitor_for(ld, capture_store_name(ld.name), _labels(ld), _selector(ld), endpoint, copied)
