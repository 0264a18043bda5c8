"""The NetworkPolicy that limits ingress to the server pods."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from llmops.api.constants import LABEL_DEPLOYMENT
from llmops.api.resource import LLMDeployment
from llmops.engines import PORT_NAME
from llmops.render.gateway import HEALTH_PORT_NAME
from llmops.render.labels import COMPONENT_SERVER, common_labels, metadata, server_selector
from llmops.render.names import service_name

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _selector(selector: BaseModel) -> dict[str, Any]:
    return selector.model_dump(exclude_defaults=True)


def network_policy(ld: LLMDeployment) -> dict[str, Any] | None:
    """The NetworkPolicy `<name>` (None when disabled).

    Ingress to the server port only, from: the peers in spec.security.networkPolicy.from (or,
    if none, every pod of the namespace); this LLMDeployment's own Job pods (evaluation runs
    against the staging pods); and the monitoring namespace, for scrapes.
    """
    if not ld.spec.security.network_policy.enabled:
        return None
    peers: list[dict[str, Any]] = []
    for peer in ld.spec.security.network_policy.from_:
        out: dict[str, Any] = {}
        if peer.namespace_selector is not None:
            out["namespaceSelector"] = _selector(peer.namespace_selector)
        if peer.pod_selector is not None:
            out["podSelector"] = _selector(peer.pod_selector)
        peers.append(out)
    if not peers:
        peers.append({"podSelector": {}})
    peers.append({"podSelector": {"matchLabels": {LABEL_DEPLOYMENT: ld.name}}})
    ports = [{"port": PORT_NAME, "protocol": "TCP"}]
    ingress: list[dict[str, Any]] = [{"from": peers, "ports": ports}]
    if ld.spec.monitoring.enabled:
        monitoring_ns = {"matchLabels": {NAMESPACE_NAME_LABEL: ld.spec.monitoring.namespace}}
        # With the gateway, scrapes go to its health port (see render.monitoring).
        scraped = [{"port": HEALTH_PORT_NAME, "protocol": "TCP"}] if ld.spec.gateway.enabled else ports
        ingress.append({"from": [{"namespaceSelector": monitoring_ns}], "ports": scraped})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(ld, service_name(ld.name), common_labels(ld, COMPONENT_SERVER)),
        "spec": {
            "podSelector": {"matchLabels": server_selector(ld)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }
