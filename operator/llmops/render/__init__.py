"""Pure render: an LLMDeployment in, complete child manifests (plain dicts) out.

No I/O, no clock, no environment: the same input always gives the same objects, with
deterministic names, the controller owner reference and the fixed labels. One module per child:
deployment, service, pdb, networkpolicy, cache (PVC and download Job), monitoring (PodMonitor
and PrometheusRule); names and labels hold the naming rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmops.api.constants import OPERATOR_IMAGE
from llmops.api.resource import LLMDeployment, parse
from llmops.render.cache import download_job, pvc
from llmops.render.capture import (
    capture_deployment,
    capture_network_policy,
    capture_pod_monitor,
    capture_pvc,
    capture_service,
)
from llmops.render.deployment import deployment
from llmops.render.labels import Track
from llmops.render.monitoring import pod_monitor, prometheus_rule
from llmops.render.names import (
    deployment_name,
    download_job_name,
    endpoint,
    pvc_name,
    revision_label,
    service_name,
)
from llmops.render.networkpolicy import network_policy
from llmops.render.pdb import pdb
from llmops.render.service import service


def render(
    ld: Mapping[str, Any] | LLMDeployment,
    *,
    revision: str | None = None,
    track: Track = "stable",
    replicas: int | None = None,
    monitoring: bool = True,
    operator_image: str = OPERATOR_IMAGE,
) -> list[dict[str, Any]]:
    """Every child for serving `revision` (default: spec.model's served revision) on `track`.

    The track's Deployment (with `replicas`, default spec.replicas), the download Job for the
    revision, and the shared children: cache PVC, Service, PDB, NetworkPolicy and, when
    `monitoring` (the Prometheus Operator CRDs exist), PodMonitor and PrometheusRule; with
    capture to the store, its PVC, Deployment, Service, NetworkPolicy and PodMonitor. Children
    that the spec disables are left out. Order: what others depend on first.
    """
    obj = parse(ld)
    rev = revision if revision is not None else obj.spec.model.served_revision
    # The weights come from the Hub at spec.model.revision (a LoRA adapter is on the cache already).
    hub_revision = obj.spec.model.revision if obj.spec.model.adapter is not None else rev
    count = replicas if replicas is not None else obj.spec.replicas
    children = [
        pvc(obj),
        download_job(obj, revision=hub_revision, operator_image=operator_image),
        deployment(obj, track=track, revision=rev, replicas=count, operator_image=operator_image),
        service(obj),
        pdb(obj),
        network_policy(obj),
        capture_pvc(obj),
        capture_deployment(obj, operator_image=operator_image),
        capture_service(obj),
        capture_network_policy(obj),
    ]
    if monitoring:
        children += [pod_monitor(obj), prometheus_rule(obj), capture_pod_monitor(obj)]
    return [c for c in children if c is not None]


__all__ = [
    "Track",
    "capture_deployment",
    "capture_network_policy",
    "capture_pod_monitor",
    "capture_pvc",
    "capture_service",
    "deployment",
    "deployment_name",
    "download_job",
    "download_job_name",
    "endpoint",
    "network_policy",
    "pdb",
    "pod_monitor",
    "prometheus_rule",
    "pvc",
    "pvc_name",
    "render",
    "revision_label",
    "service",
    "service_name",
]
