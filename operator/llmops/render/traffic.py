"""Traffic splitting with the Gateway API: per-track Services and HTTPRoute weights.

The HTTPRoute belongs to the user (it carries their hostnames, matches and Gateway). The
operator only sets the weights of the backendRefs that point at this LLMDeployment: every rule
that references the production Service ``<name>`` or a track Service ``<name>-stable`` /
``<name>-canary`` gets exactly two backendRefs, stable and canary, with the weights of the
current step. The patch is a JSON merge patch carrying the observed ``resourceVersion``, so a
concurrent edit of the route makes it fail (409) and the next pass recomputes it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from llmops.api.constants import LABEL_TRACK
from llmops.api.resource import LLMDeployment
from llmops.engines import PORT_NAME
from llmops.render.labels import COMPONENT_SERVER, Track, common_labels, metadata, track_selector
from llmops.render.names import service_name

__all__ = ["route_patch", "track_service", "track_service_name"]


def track_service_name(name: str, track: str) -> str:
    return f"{service_name(name)}-{track}"


def track_service(ld: LLMDeployment, track: Track) -> dict[str, Any]:
    """The Service `<name>-<track>` selecting one track's pods (Gateway API backends)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            ld,
            track_service_name(ld.name, track),
            {**common_labels(ld, COMPONENT_SERVER), LABEL_TRACK: track},
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": track_selector(ld, track),
            "ports": [
                {"name": PORT_NAME, "port": ld.spec.service.port, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }


def _ours(ld: LLMDeployment, ref: Mapping[str, Any]) -> bool:
    kind = ref.get("kind", "Service")
    names = {
        service_name(ld.name),
        track_service_name(ld.name, "stable"),
        track_service_name(ld.name, "canary"),
    }
    return kind == "Service" and ref.get("group", "") in ("", "core") and ref.get("name") in names


def route_patch(ld: LLMDeployment, route: Mapping[str, Any], canary_weight: int) -> dict[str, Any] | None:
    """The merge patch that sets the weights, or None when the route already has them."""
    rules = copy.deepcopy((route.get("spec") or {}).get("rules") or [])
    port = ld.spec.service.port
    changed = False
    for rule in rules:
        refs = rule.get("backendRefs") or []
        if not any(_ours(ld, r) for r in refs):
            continue
        others = [r for r in refs if not _ours(ld, r)]
        ours = [
            {"name": track_service_name(ld.name, "stable"), "port": port, "weight": 100 - canary_weight},
            {"name": track_service_name(ld.name, "canary"), "port": port, "weight": canary_weight},
        ]
        new = others + ours
        if _normalised(refs) != _normalised(new):
            rule["backendRefs"] = new
            changed = True
    if not changed:
        return None
    meta = route.get("metadata") or {}
    return {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "spec": {"rules": rules}}


def _normalised(refs: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    return [(str(r.get("name")), int(r.get("port") or 0), int(r.get("weight", 1))) for r in refs]
