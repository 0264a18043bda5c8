"""Labels, owner reference and metadata shared by every rendered child.

Every child carries the app.kubernetes.io/* recommended labels plus llmops.io/deployment (how
the operator lists its children). Pods also carry llmops.io/track and llmops.io/revision, and
llmops.io/serving="true" when they take production traffic (stable and canary, never staging).
"""

from __future__ import annotations

from typing import Any, Literal

from llmops.api.constants import (
    API_VERSION,
    APP_NAME,
    KIND,
    LABEL_COMPONENT,
    LABEL_DEPLOYMENT,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_PART_OF,
    LABEL_REVISION,
    LABEL_SERVING,
    LABEL_TRACK,
    MANAGED_BY,
    PART_OF,
)
from llmops.api.resource import LLMDeployment
from llmops.render.names import revision_label
from llmops.render.security import pod_security_context

Track = Literal["stable", "canary", "staging"]
SERVING_TRACKS: tuple[str, ...] = ("stable", "canary")

COMPONENT_SERVER = "server"
COMPONENT_CACHE = "model-cache"
COMPONENT_DOWNLOAD = "download"
COMPONENT_MONITORING = "monitoring"


def common_labels(ld: LLMDeployment, component: str) -> dict[str, str]:
    """Labels on every child of `ld`."""
    return {
        LABEL_NAME: APP_NAME,
        LABEL_INSTANCE: ld.name,
        LABEL_COMPONENT: component,
        LABEL_PART_OF: PART_OF,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_DEPLOYMENT: ld.name,
    }


def server_selector(ld: LLMDeployment) -> dict[str, str]:
    """Selects the server pods of every track (NetworkPolicy, PodMonitor)."""
    return {LABEL_DEPLOYMENT: ld.name, LABEL_COMPONENT: COMPONENT_SERVER}


def serving_selector(ld: LLMDeployment) -> dict[str, str]:
    """Selects the pods that take production traffic (Service, PDB): staging pods lack the label."""
    return {LABEL_DEPLOYMENT: ld.name, LABEL_SERVING: "true"}


def track_selector(ld: LLMDeployment, track: Track) -> dict[str, str]:
    """A Deployment's (immutable) selector: one track. The revision is not in it, so a new
    revision rolls the same Deployment instead of orphaning its pods."""
    return {LABEL_DEPLOYMENT: ld.name, LABEL_COMPONENT: COMPONENT_SERVER, LABEL_TRACK: track}


def pod_labels(ld: LLMDeployment, *, track: Track, revision: str) -> dict[str, str]:
    """Labels of a server pod."""
    labels = {
        **common_labels(ld, COMPONENT_SERVER),
        LABEL_TRACK: track,
        LABEL_REVISION: revision_label(revision),
    }
    if track in SERVING_TRACKS:
        labels[LABEL_SERVING] = "true"
    return labels


def owner_reference(ld: LLMDeployment) -> dict[str, Any]:
    """The controller owner reference: deleting the LLMDeployment garbage-collects the child."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": ld.name,
        "uid": ld.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(ld: LLMDeployment, name: str, labels: dict[str, str]) -> dict[str, Any]:
    """metadata of a namespaced child."""
    return {
        "name": name,
        "namespace": ld.namespace,
        "labels": dict(labels),
        "ownerReferences": [owner_reference(ld)],
    }


def fail_fast_policy(container: str, *exit_codes: int) -> dict[str, Any]:
    """A Job's podFailurePolicy: any of ``exit_codes`` from ``container`` means retrying cannot
    help (fail the Job at once); an evicted or preempted pod does not count against backoffLimit."""
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": container, "operator": "In", "values": sorted(exit_codes)},
            },
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]
    }


def job_pod_spec(
    containers: list[dict[str, Any]], volumes: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    """The pod spec of the operator's Jobs (download, evaluation): run once, no API token, no
    service links, restricted security context."""
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": containers,
        "volumes": volumes,
        **extra,
    }
