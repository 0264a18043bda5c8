"""The server Deployment of one track (stable, canary or staging) at one revision."""

from __future__ import annotations

from typing import Any

from llmops.api.constants import OPERATOR_IMAGE
from llmops.api.resource import LLMDeployment
from llmops.engines import CONTAINER_NAME, DATA_DIR, PORT_NAME, get_engine
from llmops.render.gateway import gateway_container, gateway_probes, gateway_volumes
from llmops.render.labels import Track, metadata, pod_labels, track_selector
from llmops.render.names import deployment_name, pvc_name
from llmops.render.placement import scheduling
from llmops.render.security import container_security_context, pod_security_context

# TGI drains in-flight requests for up to 90 s on SIGTERM (GRACEFUL_TERMINATION_TIMEOUT);
# give it that plus a margin before the kubelet kills it.
TERMINATION_GRACE_SECONDS = 120
SHM_SIZE = "1Gi"
REVISION_HISTORY_LIMIT = 3
# Time for scheduling and image pull on top of the startup budget before the Deployment
# reports ProgressDeadlineExceeded (the default 600 s is far below a large model's load time).
PROGRESS_MARGIN_SECONDS = 600
CACHE_VOLUME = "model-cache"
SHM_VOLUME = "shm"


def _resources(ld: LLMDeployment) -> dict[str, Any]:
    res = ld.spec.resources
    gpus = {res.gpu.resource_name: str(res.gpu.count)}
    requests: dict[str, str] = dict(gpus)
    limits: dict[str, str] = dict(gpus)
    if res.cpu is not None:
        # A request, no limit: CPU limits throttle the tokenizer and scheduler threads.
        requests["cpu"] = str(res.cpu)
    if res.memory is not None:
        # Equal request and limit: an overrun is a clean OOMKilled the operator can report.
        requests["memory"] = limits["memory"] = str(res.memory)
    return {"requests": requests, "limits": limits}


def cache_volume(ld: LLMDeployment) -> dict[str, Any]:
    """The /data volume: the shared cache PVC, or an emptyDir when the cache is disabled."""
    if ld.spec.cache.enabled:
        return {"name": CACHE_VOLUME, "persistentVolumeClaim": {"claimName": pvc_name(ld.name)}}
    return {"name": CACHE_VOLUME, "emptyDir": {"sizeLimit": str(ld.spec.cache.size)}}


def deployment(
    ld: LLMDeployment,
    *,
    track: Track,
    revision: str,
    replicas: int | None,
    readiness_gates: tuple[str, ...] = (),
    operator_image: str = OPERATOR_IMAGE,
) -> dict[str, Any]:
    """The Deployment `<name>-<track>` serving `revision` with `replicas` pods.

    `replicas` None leaves the field out: an autoscaler owns it (spec.autoscaling), and with
    server-side apply a field left out of our manifest is one we no longer own nor set.

    `readiness_gates` are pod condition types that must also be True before a pod is Ready (and
    so before a Service routes to it): the canary's smoke evaluation uses one. With the gateway
    (spec.gateway.enabled) the pod also runs the gateway container, from `operator_image`, which
    takes the Service's port; the engine then listens on localhost only (see render.gateway).
    """
    spec = ld.spec
    engine = get_engine(spec.engine.type)
    labels = pod_labels(ld, track=track, revision=revision)
    containers: list[dict[str, Any]] = []
    engine_probes = engine.probes(spec)
    ports = [{"name": PORT_NAME, "containerPort": engine.container_port, "protocol": "TCP"}]
    if spec.gateway.enabled:
        engine_probes, probes = gateway_probes(engine_probes)
        ports = []  # on localhost only: nothing reachable to declare
        containers.append(
            gateway_container(
                ld,
                track=track,
                revision=revision,
                engine_port=engine.container_port,
                probes=probes,
                operator_image=operator_image,
            )
        )
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": engine.image(spec),
        "imagePullPolicy": "IfNotPresent",
        "env": engine.env(spec, revision=revision),
        **({"ports": ports} if ports else {}),
        **engine_probes,
        "resources": _resources(ld),
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": CACHE_VOLUME, "mountPath": DATA_DIR},
            {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
        ],
    }
    if args := engine.args(spec):
        container["args"] = args
    pod_spec: dict[str, Any] = {
        # The server never talks to the Kubernetes API; no token, no service env vars.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": pod_security_context(),
        # The engine first: `kubectl logs` without -c shows it, as before the gateway.
        "containers": [container, *containers],
        "volumes": [
            cache_volume(ld),
            # NCCL needs shared memory between shards; the container runtime's 64 MiB is too small.
            {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}},
            *(gateway_volumes(ld) if spec.gateway.enabled else []),
        ],
        **scheduling(spec, with_priority=True),
    }
    if readiness_gates:
        pod_spec["readinessGates"] = [{"conditionType": g} for g in readiness_gates]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(ld, deployment_name(ld.name, track), labels),
        "spec": {
            **({"replicas": replicas} if replicas is not None else {}),
            "revisionHistoryLimit": REVISION_HISTORY_LIMIT,
            "progressDeadlineSeconds": spec.engine.startup_timeout_seconds + PROGRESS_MARGIN_SECONDS,
            "selector": {"matchLabels": track_selector(ld, track)},
            # maxSurge 0 / maxUnavailable 1: GPUs are scarce and a surge pod needs a whole spare
            # set of them, which usually does not exist, so a surging rollout would sit Pending
            # forever. Replacing one pod at a time frees its GPUs for the new one. A rollout
            # without capacity loss is the canary's job (spec.rollout), which adds pods on
            # purpose and only as far as GPUs allow; with one replica a plain update is a restart.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }
