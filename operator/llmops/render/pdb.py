"""The PodDisruptionBudget of the serving pods."""

from __future__ import annotations

from typing import Any

from llmops.api.resource import LLMDeployment
from llmops.render.labels import COMPONENT_SERVER, common_labels, metadata, serving_selector
from llmops.render.names import service_name


def pdb(ld: LLMDeployment) -> dict[str, Any]:
    """The PDB `<name>`: voluntary disruptions take one serving pod at a time.

    maxUnavailable rather than minAvailable: with one replica, minAvailable 1 would block every
    node drain forever. Pods that are not ready (crash-looping, still loading) may always be
    evicted: keeping them protects nothing.
    """
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(ld, service_name(ld.name), common_labels(ld, COMPONENT_SERVER)),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": serving_selector(ld)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
