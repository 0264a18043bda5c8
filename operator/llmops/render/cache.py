"""The model cache: the PersistentVolumeClaim shared by all revisions, and the download Job that
fills it for one revision before any server pod needs it. The Job's container declares the port
of its progress endpoint, which the operator reads while the revision is Caching (the
NetworkPolicy selects server pods only, so nothing of ours stands between them)."""

from __future__ import annotations

from typing import Any

from llmops.api.constants import LABEL_REVISION, OPERATOR_IMAGE
from llmops.api.resource import LLMDeployment
from llmops.contracts import (
    DOWNLOAD_EXIT_PERMANENT,
    DOWNLOAD_PROGRESS_PATH,
    DOWNLOAD_PROGRESS_PORT,
    DOWNLOAD_PROGRESS_PORT_NAME,
)
from llmops.engines import DATA_DIR
from llmops.render.labels import (
    COMPONENT_CACHE,
    COMPONENT_DOWNLOAD,
    common_labels,
    fail_fast_policy,
    job_pod_spec,
    metadata,
)
from llmops.render.names import download_job_name, pvc_name, revision_label
from llmops.render.placement import scheduling
from llmops.render.security import container_security_context

DOWNLOAD_BACKOFF_LIMIT = 2
DOWNLOAD_CONTAINER = "download"
CACHE_VOLUME = "model-cache"


def _download_resources() -> dict[str, Any]:
    # snapshot_download streams files to disk; the limit guards against a runaway, not a model size.
    return {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "4Gi"}}


def pvc(ld: LLMDeployment) -> dict[str, Any] | None:
    """The PVC `<name>-model-cache` (None when the cache is disabled)."""
    cache = ld.spec.cache
    if not cache.enabled:
        return None
    spec: dict[str, Any] = {
        "accessModes": [cache.access_mode],
        "resources": {"requests": {"storage": str(cache.size)}},
    }
    if cache.storage_class_name is not None:
        spec["storageClassName"] = cache.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(ld, pvc_name(ld.name), common_labels(ld, COMPONENT_CACHE)),
        "spec": spec,
    }


def download_job(
    ld: LLMDeployment, *, revision: str, operator_image: str = OPERATOR_IMAGE
) -> dict[str, Any] | None:
    """The Job `<name>-download-<hash>` that runs `llmops download` for the model at `revision`
    into the cache PVC (None when the cache or the download is disabled)."""
    spec = ld.spec
    if not (spec.cache.enabled and spec.cache.download.enabled):
        return None
    labels = {**common_labels(ld, COMPONENT_DOWNLOAD), LABEL_REVISION: revision_label(revision)}
    env: list[dict[str, Any]] = [{"name": "HF_HOME", "value": DATA_DIR}]
    if spec.model.token_secret_ref is not None:
        ref = spec.model.token_secret_ref
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    container = {
        "name": DOWNLOAD_CONTAINER,
        "image": spec.cache.download.image or operator_image,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "llmops",
            "download",
            "--model",
            spec.model.id,
            "--revision",
            revision,
            "--progress-port",
            str(DOWNLOAD_PROGRESS_PORT),
        ],
        "ports": [
            {"name": DOWNLOAD_PROGRESS_PORT_NAME, "containerPort": DOWNLOAD_PROGRESS_PORT, "protocol": "TCP"}
        ],
        # Ready once the progress endpoint answers: the operator asks only a ready container
        # (right after the process starts, nothing listens yet).
        "readinessProbe": {
            "httpGet": {"path": DOWNLOAD_PROGRESS_PATH, "port": DOWNLOAD_PROGRESS_PORT_NAME},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
        },
        "env": env,
        "resources": _download_resources(),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": CACHE_VOLUME, "mountPath": DATA_DIR}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(ld, download_job_name(ld.name, spec.model.id, revision), labels),
        "spec": {
            "backoffLimit": DOWNLOAD_BACKOFF_LIMIT,
            # What retrying cannot fix fails the Job at once; the rest retries (backoffLimit).
            "podFailurePolicy": fail_fast_policy(DOWNLOAD_CONTAINER, DOWNLOAD_EXIT_PERMANENT),
            "activeDeadlineSeconds": spec.cache.download.active_deadline_seconds,
            "template": {
                "metadata": {"labels": labels},
                "spec": job_pod_spec(
                    [container],
                    [{"name": "model-cache", "persistentVolumeClaim": {"claimName": pvc_name(ld.name)}}],
                    **scheduling(spec, with_priority=False),
                ),
            },
        },
    }
