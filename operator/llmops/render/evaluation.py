"""The evaluation gate's children: the staging Service and the evaluation Job.

A new revision first runs on the staging track (a Deployment rendered by ``deployment()`` with
track="staging": its pods lack ``llmops.io/serving`` so the production Service never routes to
them). The staging Service ``<name>-staging`` gives the evaluation Job a stable URL. The Job
runs ``llmops eval`` from the operator image; its Pod failure policy turns "the model failed its
thresholds" (exit 1) into an immediate Job failure, while a broken evaluation (exit 2, OOM,
eviction) is retried by the Job controller with its own exponential backoff, up to backoffLimit.
Exit 1 also covers a dataset too small to show a threshold (InsufficientSamples): a retry of
the same Job on the same dataset cannot change it either.

Given a `baseline_url` (the revision that serves, say), the Job also scores that server on the
same prompts (env `LLMOPS_BASELINE_URL`, the same API key) and reports a paired comparison;
`max_drop` is its per-metric tolerance (`--max-drop`).

With `held_out` (spec.evaluation.heldOut.corrections, for the gates it names), the Job also reads
the held-out view of the feedback corrections from the capture store (`--held-out-url`), with the
store's token from the gateway Secret as an env variable; the store's NetworkPolicy admits this
LLMDeployment's Job pods.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmops.api.common import parse_duration
from llmops.api.constants import LABEL_COMPONENT, LABEL_REVISION, LABEL_TRACK, OPERATOR_IMAGE
from llmops.api.delivery import DatasetSource, EvaluationSpec
from llmops.api.resource import LLMDeployment
from llmops.contracts import EVAL_EXIT_FAILED, EVAL_EXIT_INVALID
from llmops.engines import PORT_NAME
from llmops.render.capture import capture_url
from llmops.render.gateway import CAPTURE_TOKEN, INTERNAL_API_KEY, signing_secret_name
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
    "BASELINE_URL_ENV",
    "CAPTURE_TOKEN_ENV",
    "COMPONENT_EVALUATION",
    "COMPONENT_SCHEDULED",
    "EVAL_CONTAINER",
    "SMOKE_GATE",
    "evaluation_job",
    "evaluation_job_name",
    "held_out_wanted",
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
DATASET_DIR = "/etc/llmops/dataset"
API_KEY_ENV = "LLMOPS_SERVER_API_KEY"
CAPTURE_TOKEN_ENV = "LLMOPS_CAPTURE_TOKEN"
"""The capture store's bearer token (the held-out set's reader; the retrain Job's too)."""
BASELINE_URL_ENV = "LLMOPS_BASELINE_URL"
"""The baseline server of a paired comparison (read by `llmops eval`, which has the same name)."""
DEFAULT_CONFIDENCE = 0.95
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


_HOW_IT_RUNS = {
    alias: EvaluationSpec.model_fields[field].default
    for alias, field in (
        ("backoffLimit", "backoff_limit"),
        ("activeDeadlineSeconds", "active_deadline_seconds"),
        ("workers", "workers"),
        ("client", "client"),
    )
}
"""Fields of spec.evaluation that say how its Job runs, not what it judges (its retries, its
deadline, the processes and the HTTP client that send the same requests): hashed at their
defaults, so that changing one keeps the Job's name and the verdict recorded under it (a revision
in its gate or its canary is not evaluated again). A Job is made once (lifecycle.plan), so they
hold from the next evaluation Job on; after a broken evaluation, deleting its Job runs it again
with them."""


def _evaluation_fingerprint(ld: LLMDeployment, revision: str) -> str:
    """What the verdict depends on: the revision and the evaluation spec (not the schedule, not
    how the Job runs)."""
    assert ld.spec.evaluation is not None
    ev = ld.spec.evaluation.model_dump(mode="json", by_alias=True, exclude={"schedule"})
    ev.update(_HOW_IT_RUNS)
    if ev.get("confidence") == DEFAULT_CONFIDENCE:
        # Added after the fact: at its default it leaves the names of existing Jobs (and so the
        # verdicts recorded under them) as they were.
        del ev["confidence"]
    if ev.get("heldOut") is None:
        ev.pop("heldOut", None)  # likewise: without a held-out set, the names stay as they were
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
    baseline_url: str | None = None,
    max_drop: Mapping[str, float] | None = None,
    judge_on_value: bool = False,
    held_out: bool = False,
) -> dict[str, Any]:
    """The evaluation Job for `revision`, scoring the server at `endpoint` (only the first
    `max_samples` samples for a smoke evaluation, under its own `name`); with `baseline_url`, also
    the server there on the same prompts, compared with `max_drop` tolerances (default 0).
    `judge_on_value` judges thresholds on values, not bounds: a smoke check of a few samples.
    `held_out` adds the held-out set of corrections (spec.evaluation.heldOut must be set)."""
    ev = ld.spec.evaluation
    assert ev is not None, "evaluation_job needs spec.evaluation"
    labels = {**common_labels(ld, COMPONENT_EVALUATION), LABEL_REVISION: revision_label(revision)}
    dataset, api_key = _dataset_inputs(ev.dataset), _api_key_inputs(ld)
    baseline = _baseline_inputs(baseline_url, max_drop)
    corrections = _held_out_inputs(ld) if held_out else _Inputs()
    container = _evaluation_container(
        ev,
        ev.image or operator_image,
        args=[
            *_program_args(ld, ev, revision, endpoint, max_samples),
            *(["--judge", "value"] if judge_on_value else []),
            *dataset.args,
            *api_key.args,
            *baseline.args,
            *corrections.args,
        ],
        env=[*dataset.env, *api_key.env, *baseline.env, *corrections.env],
        mounts=dataset.mounts,
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(ld, name or evaluation_job_name(ld, revision), labels),
        "spec": {
            "backoffLimit": ev.backoff_limit,
            "activeDeadlineSeconds": ev.active_deadline_seconds,
            "ttlSecondsAfterFinished": RESULTS_TTL_SECONDS,
            # A model that failed its thresholds, or an evaluation given a bad dataset or
            # thresholds, fails the Job at once: a retry cannot change either.
            "podFailurePolicy": fail_fast_policy(EVAL_CONTAINER, EVAL_EXIT_FAILED, EVAL_EXIT_INVALID),
            "template": {
                "metadata": {"labels": labels},
                "spec": job_pod_spec([container], dataset.volumes),
            },
        },
    }


def _program_args(
    ld: LLMDeployment, ev: EvaluationSpec, revision: str, endpoint: str, max_samples: int | None
) -> list[str]:
    """`llmops eval`'s flags for the server, the thresholds and the limits."""
    thresholds = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in ev.thresholds]
    args = [
        "eval",
        "--endpoint", endpoint,
        "--thresholds", json.dumps(thresholds, separators=(",", ":")),
        "--concurrency", str(ev.concurrency),
        "--timeout", str(ev.timeout_seconds),
        "--max-new-tokens", str(ev.max_new_tokens),
        "--model-revision", revision,
        "--model", ld.spec.model.id,
        # The OpenAI-compatible routes name the model: vLLM serves spec.model.id under that name.
        "--route", ev.route,
        "--workers", str(ev.workers),
        "--transport", ev.client,
        "--confidence", str(ev.confidence),
    ]  # fmt: skip
    if max_samples is not None:
        args += ["--max-samples", str(max_samples)]
    return args


@dataclass
class _Inputs:
    """What one input of the evaluation adds to its pod: flags, env, volumes and mounts."""

    args: list[str] = field(default_factory=list)
    env: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)


def _dataset_inputs(ds: DatasetSource) -> _Inputs:
    """The dataset: a ConfigMap key or a file on a volume (mounted), or a Hub dataset (downloaded)."""
    mount = {"name": "dataset", "mountPath": DATASET_DIR, "readOnly": True}
    if ds.config_map_ref is not None:
        return _Inputs(
            args=["--dataset", f"{DATASET_DIR}/{ds.config_map_ref.key}"],
            volumes=[{"name": "dataset", "configMap": {"name": ds.config_map_ref.name}}],
            mounts=[mount],
        )
    if ds.path is not None:
        return _Inputs(
            args=["--dataset", f"{DATASET_DIR}/{ds.path.file.lstrip('/')}"],
            volumes=[{**ds.path.volume, "name": "dataset"}],
            mounts=[mount],
        )
    if ds.hub is not None:
        hub = ds.hub
        inputs = _Inputs(
            args=["--hub-dataset", hub.repo, "--hub-revision", hub.revision, "--hub-filename", hub.filename]
        )
        if hub.token_secret_ref is not None:
            inputs.env.append(_secret_env("HF_TOKEN", hub.token_secret_ref.name, hub.token_secret_ref.key))
        return inputs
    return _Inputs()


def _api_key_inputs(ld: LLMDeployment) -> _Inputs:
    """The key the evaluation presents (see :func:`_api_key_source`), named by an env variable."""
    key = _api_key_source(ld)
    if key is None:
        return _Inputs()
    return _Inputs(
        args=["--api-key-env", API_KEY_ENV], env=[_secret_env(API_KEY_ENV, key["name"], key["key"])]
    )


def _baseline_inputs(baseline_url: str | None, max_drop: Mapping[str, float] | None) -> _Inputs:
    """The baseline of a paired comparison (same key and flags as the candidate) and its tolerances."""
    if baseline_url is None:
        if max_drop:
            raise ValueError("max_drop needs a baseline_url to compare with")
        return _Inputs()
    inputs = _Inputs(env=[{"name": BASELINE_URL_ENV, "value": baseline_url}])
    if max_drop:
        inputs.args = ["--max-drop", json.dumps(dict(sorted(max_drop.items())), separators=(",", ":"))]
    return inputs


def held_out_wanted(ld: LLMDeployment, *, candidate: bool) -> bool:
    """Whether a gate scores the held-out corrections: spec.evaluation.heldOut is set and names this
    gate (a retrained candidate's, or every gate with ``gates: All``)."""
    ev = ld.spec.evaluation
    if ev is None or ev.held_out is None:
        return False
    return candidate or ev.held_out.corrections.gates == "All"


def _held_out_inputs(ld: LLMDeployment) -> _Inputs:
    """The held-out corrections: the store's URL, the split and limits, the token by env."""
    assert ld.spec.evaluation is not None and ld.spec.evaluation.held_out is not None
    held = ld.spec.evaluation.held_out.corrections
    args = [
        "--held-out-url", capture_url(ld),
        "--held-out-token-env", CAPTURE_TOKEN_ENV,
        "--held-out-fraction", repr(held.fraction),
        "--held-out-window", f"{parse_duration(held.window):g}",
        "--held-out-max", str(held.max_records),
        "--held-out-min", str(held.min_records),
    ]  # fmt: skip
    if held.thresholds:
        thresholds = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in held.thresholds]
        args += ["--held-out-thresholds", json.dumps(thresholds, separators=(",", ":"))]
    env = [_secret_env(CAPTURE_TOKEN_ENV, signing_secret_name(ld.name), CAPTURE_TOKEN)]
    return _Inputs(args=args, env=env)


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _evaluation_container(
    ev: EvaluationSpec,
    image: str,
    *,
    args: list[str],
    env: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "name": EVAL_CONTAINER,
        "image": image,
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
