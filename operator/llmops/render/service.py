"""The Service in front of the pods that take production traffic."""

from __future__ import annotations

from typing import Any

from llmops.api.resource import LLMDeployment
from llmops.engines import PORT_NAME
from llmops.render.labels import COMPONENT_SERVER, common_labels, metadata, serving_selector
from llmops.render.names import service_name


def service(ld: LLMDeployment) -> dict[str, Any]:
    """The Service `<name>`: selects stable and canary pods (llmops.io/serving=true), never staging."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(ld, service_name(ld.name), common_labels(ld, COMPONENT_SERVER)),
        "spec": {
            "type": ld.spec.service.type,
            "selector": serving_selector(ld),
            "ports": [
                {"name": PORT_NAME, "port": ld.spec.service.port, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }
