"""The evaluation gate's children: the staging Service and the evaluation Job.

A new revision first runs on the staging track (a Deployment rendered by ``deployment()`` with
track="staging": its pods lack ``llmops.io/serving`` so the production Service never routes to
them). The staging Service ``<name>-staging`` gives the evaluation Job a stable URL. The Job
runs ``llmops eval`` from the operator image; its Pod failure policy turns "the model failed its
thresholds" (exit 1) into an immediate Job failure, while a broken evaluation (exit 2, OOM,
eviction) is retried by the Job controller with its own exponential backoff, up to backoffLimit.
"""

from __future__ import annotations

import json
from typing import Any

from llmops.api.constants import LABEL_COMPONENT, LABEL_REVISION, LABEL_TRACK, OPERATOR_IMAGE
from llmops.api.resource import LLMDeployment
from llmops.engines import PORT_NAME
from llmops.render.gateway import INTERNAL_API_KEY, signing_secret_name
from llmops.render.labels import (
    COMPONENT_SERVER,
    common_labels,
    fail_fast_policy,
    job_pod_spec,
    metadata,
    track_selector,
)
from llmops.render.names import revision_label, short_hash
from llmops.render.security import container_security_context

__all__ = [
    "COMPONENT_EVALUATION",
    "COMPONENT_SCHEDULED",
    "EVAL_CONTAINER",
    "EXIT_MODEL_FAILED",
    "SMOKE_GATE",
    "evaluation_job",
    "evaluation_job_name",
    "scheduled_evaluation",
    "scheduled_evaluation_name",
    "smoke_endpoint",
    "smoke_job_name",
    "smoke_service",
    "staging_endpoint",
    "staging_service",
]

COMPONENT_EVALUATION = "evaluation"
EVAL_CONTAINER = "evaluate"
EXIT_MODEL_FAILED = 1
"""`llmops eval` exit code for "the model failed a threshold" (see llmops.evaluation.report)."""
DATASET_DIR = "/etc/llmops/dataset"
API_KEY_ENV = "LLMOPS_SERVER_API_KEY"
RESULTS_TTL_SECONDS = 7 * 86400
"""How long a finished evaluation Job (and its per-sample log) is kept."""


def staging_name(name: str) -> str:
    return f"{name}-staging"


def staging_service(ld: LLMDeployment) -> dict[str, Any]:
    """The Service `<name>-staging` in front of the staging pods (no production traffic)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            ld, staging_name(ld.name), {**common_labels(ld, COMPONENT_SERVER), LABEL_TRACK: "staging"}
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": track_selector(ld, "staging"),
            "ports": [
                {"name": PORT_NAME, "port": ld.spec.service.port, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }


SMOKE_GATE = "llmops.io/smoke-evaluation"
"""The readiness gate of canary pods: True once the smoke evaluation passed (set by the operator)."""


def smoke_service(ld: LLMDeployment) -> dict[str, Any]:
    """The Service `<name>-smoke`: the canary pods *before* they are Ready (their readiness gate
    waits for the smoke evaluation), so the evaluation can reach them while production cannot."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            ld, f"{ld.name}-smoke", {**common_labels(ld, COMPONENT_SERVER), LABEL_TRACK: "canary"}
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": track_selector(ld, "canary"),
            "publishNotReadyAddresses": True,
            "ports": [
                {"name": PORT_NAME, "port": ld.spec.service.port, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }


def smoke_endpoint(ld: LLMDeployment) -> str:
    return f"http://{ld.name}-smoke.{ld.namespace}.svc.cluster.local:{ld.spec.service.port}"


def smoke_job_name(ld: LLMDeployment, revision: str) -> str:
    return f"{ld.name}-smoke-{_evaluation_fingerprint(ld, revision)}"


COMPONENT_SCHEDULED = "evaluation-scheduled"


def scheduled_evaluation_name(name: str) -> str:
    return f"{name}-eval-scheduled"


def scheduled_evaluation(
    ld: LLMDeployment, *, revision: str, endpoint: str, operator_image: str = OPERATOR_IMAGE
) -> dict[str, Any] | None:
    """The CronJob `<name>-eval-scheduled` that re-evaluates the serving revision through the
    production Service on spec.evaluation.schedule (None without a schedule). Its scores are
    recorded in status.scheduledEvaluation; they are what drift detection watches."""
    ev = ld.spec.evaluation
    if ev is None or ev.schedule is None:
        return None
    job = evaluation_job(ld, revision=revision, endpoint=endpoint, operator_image=operator_image)
    labels = {**job["metadata"]["labels"], LABEL_COMPONENT: COMPONENT_SCHEDULED}
    job["spec"]["template"]["metadata"]["labels"] = labels
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(ld, scheduled_evaluation_name(ld.name), labels),
        "spec": {
            "schedule": ev.schedule,
            # A slow evaluation must not overlap the next one: they would load the same pods.
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"metadata": {"labels": labels}, "spec": job["spec"]},
        },
    }


def _api_key_source(ld: LLMDeployment) -> dict[str, str] | None:
    """Where the evaluation's API key comes from (a secretKeyRef), or None when it needs none.

    Behind the gateway with per-client keys: the operator's own key, kept in the signing-key
    Secret. Otherwise (no gateway, or a gateway that passes the client's key through): the
    engine's key, if it has one.
    """
    spec = ld.spec
    if spec.gateway.enabled and spec.gateway.auth.api_keys_secret_ref is not None:
        return {"name": signing_secret_name(ld.name), "key": INTERNAL_API_KEY}
    if spec.engine.api_key_secret_ref is not None:
        ref = spec.engine.api_key_secret_ref
        return {"name": ref.name, "key": ref.key}
    return None


def staging_endpoint(ld: LLMDeployment) -> str:
    return f"http://{staging_name(ld.name)}.{ld.namespace}.svc.cluster.local:{ld.spec.service.port}"


def _evaluation_fingerprint(ld: LLMDeployment, revision: str) -> str:
    """What the verdict depends on: the revision and the evaluation spec (not the schedule)."""
    assert ld.spec.evaluation is not None
    ev = ld.spec.evaluation.model_dump(mode="json", by_alias=True, exclude={"schedule"})
    return short_hash(revision, json.dumps(ev, sort_keys=True))


def evaluation_job_name(ld: LLMDeployment, revision: str) -> str:
    """`<name>-eval-<hash>`: a new revision or a changed evaluation spec means a new Job."""
    return f"{ld.name}-eval-{_evaluation_fingerprint(ld, revision)}"


def evaluation_job(
    ld: LLMDeployment,
    *,
    revision: str,
    endpoint: str,
    operator_image: str = OPERATOR_IMAGE,
    max_samples: int | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """The evaluation Job for `revision`, scoring the server at `endpoint` (only the first
    `max_samples` samples for a smoke evaluation, under its own `name`)."""
    spec = ld.spec
    ev = spec.evaluation
    assert ev is not None, "evaluation_job needs spec.evaluation"
    labels = {**common_labels(ld, COMPONENT_EVALUATION), LABEL_REVISION: revision_label(revision)}
    thresholds = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in ev.thresholds]
    args = [
        "eval",
        "--endpoint", endpoint,
        "--thresholds", json.dumps(thresholds, separators=(",", ":")),
        "--concurrency", str(ev.concurrency),
        "--timeout", str(ev.timeout_seconds),
        "--max-new-tokens", str(ev.max_new_tokens),
        "--model-revision", revision,
        "--model", spec.model.id,
        # The OpenAI-compatible routes name the model: vLLM serves spec.model.id under that name.
        "--route", ev.route,
        "--workers", str(ev.workers),
        "--transport", ev.client,
    ]  # fmt: skip
    if max_samples is not None:
        args += ["--max-samples", str(max_samples)]
    env: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    ds = ev.dataset
    if ds.config_map_ref is not None:
        volumes.append({"name": "dataset", "configMap": {"name": ds.config_map_ref.name}})
        mounts.append({"name": "dataset", "mountPath": DATASET_DIR, "readOnly": True})
        args += ["--dataset", f"{DATASET_DIR}/{ds.config_map_ref.key}"]
    elif ds.path is not None:
        volumes.append({**ds.path.volume, "name": "dataset"})
        mounts.append({"name": "dataset", "mountPath": DATASET_DIR, "readOnly": True})
        args += ["--dataset", f"{DATASET_DIR}/{ds.path.file.lstrip('/')}"]
    elif ds.hub is not None:
        args += [
            "--hub-dataset",
            ds.hub.repo,
            "--hub-revision",
            ds.hub.revision,
            "--hub-filename",
            ds.hub.filename,
        ]
        if ds.hub.token_secret_ref is not None:
            ref = ds.hub.token_secret_ref
            env.append(
                {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
            )
    if (key := _api_key_source(ld)) is not None:
        env.append({"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": key}})
        args += ["--api-key-env", API_KEY_ENV]
    container: dict[str, Any] = {
        "name": EVAL_CONTAINER,
        "image": ev.image or operator_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["llmops"],
        "args": args,
        "env": env,
        # A quarter core per worker process (one event loop each); no CPU limit, like the servers.
        "resources": {
            "requests": {"cpu": f"{250 * ev.workers}m", "memory": "256Mi"},
            "limits": {"memory": "2Gi"},
        },
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
        # The summary (verdict and per-metric values) is the termination message; on a crash
        # without one, the log tail says why.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(ld, name or evaluation_job_name(ld, revision), labels),
        "spec": {
            "backoffLimit": ev.backoff_limit,
            "activeDeadlineSeconds": ev.active_deadline_seconds,
            "ttlSecondsAfterFinished": RESULTS_TTL_SECONDS,
            # A model that failed its thresholds fails the Job at once: retrying cannot change the verdict.
            "podFailurePolicy": fail_fast_policy(EVAL_CONTAINER, EXIT_MODEL_FAILED),
            "template": {
                "metadata": {"labels": labels},
                "spec": job_pod_spec([container], volumes),
            },
        },
    }
