"""The retrain Job: the user's ``spec.retrain.jobTemplate``, owned by the LLMDeployment, with the
contract's environment added to every container (docs/retrain.md):

    LLMOPS_BASE_MODEL      the model that served when the retrain started (spec.model.id, or a
                           retrained model that serves)
    LLMOPS_BASE_REVISION   the revision that served when the retrain started
    LLMOPS_RUN_ID          the run, `<name>-retrain-<n>` (also the Job's name)
    LLMOPS_TRIGGER         why it started (the drift verdict, or the annotation)
    LLMOPS_BASE_ADAPTER    only when a LoRA adapter served on top of the base: its folder on the
                           model cache
    LLMOPS_OUTPUT_DIR      /data/retrain/<run>: the run's own folder on the model cache (the PVC
                           `<name>-model-cache`, when the template mounts it at /data), for a
                           full model or an adapter reported by path
    LLMOPS_OUTPUT_REPO     spec.retrain.outputRepo, when set: the Hub repository to publish to
    LLMOPS_DATASET_URL     spec.retrain.datasetUrl, or else the capture store's records (below)
                           from the start of the drift reference of what served (`since=`)

With the capture store on, also:

    LLMOPS_CAPTURE_RECORDS_URL  the store's GET /v1/records; with spec.evaluation.heldOut, its
                                `split=train` view, which never holds a record the gate's held-out
                                set scores
    LLMOPS_CAPTURE_TOKEN        the store's bearer token (from the gateway Secret)

The Job reports what it produced in its termination message (see lifecycle/retrain.py).
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlencode

from llmops.api.constants import LABEL_REVISION
from llmops.api.resource import LLMDeployment
from llmops.engines.base import DATA_DIR
from llmops.render.capture import capture_store_enabled, capture_url
from llmops.render.gateway import CAPTURE_TOKEN, signing_secret_name
from llmops.render.labels import common_labels, metadata
from llmops.render.names import revision_label

__all__ = [
    "CAPTURE_RECORDS_ENV",
    "CAPTURE_TOKEN_ENV",
    "COMPONENT_RETRAIN",
    "DATASET_ENV",
    "OUTPUT_DIR_ENV",
    "OUTPUT_REPO_ENV",
    "retrain_job",
    "retrain_job_name",
    "training_records_url",
]

COMPONENT_RETRAIN = "retrain"
_TRIGGER_LIMIT = 1000


def retrain_job_name(name: str, run: int) -> str:
    """`<name>-retrain-<n>`: deterministic from the run count kept in status, so a pass that
    repeats after a lost status write applies the same Job instead of starting a second one."""
    return f"{name}-retrain-{run}"


def _contract_env(
    base_model: str, run_id: str, base_revision: str, trigger: str, base_adapter: str | None
) -> list[dict[str, str]]:
    env = [
        {"name": "LLMOPS_BASE_MODEL", "value": base_model},
        {"name": "LLMOPS_BASE_REVISION", "value": base_revision},
        {"name": "LLMOPS_RUN_ID", "value": run_id},
        {"name": "LLMOPS_TRIGGER", "value": trigger[:_TRIGGER_LIMIT]},
    ]
    if base_adapter is not None:
        env.append({"name": "LLMOPS_BASE_ADAPTER", "value": base_adapter})
    env.append({"name": OUTPUT_DIR_ENV, "value": f"{DATA_DIR}/retrain/{run_id}"})
    return env


def _destination_env(ld: LLMDeployment, since: str | None) -> list[dict[str, Any]]:
    """Where the Job reads its data (the store's records from ``since`` on, unless the spec names
    a dataset) and publishes its model, as far as the spec says."""
    retrain = ld.spec.retrain
    assert retrain is not None
    env = []
    if retrain.output_repo is not None:
        env.append({"name": OUTPUT_REPO_ENV, "value": retrain.output_repo})
    if retrain.dataset_url is not None:
        env.append({"name": DATASET_ENV, "value": retrain.dataset_url})
    elif capture_store_enabled(ld):
        env.append({"name": DATASET_ENV, "value": training_records_url(ld, since)})
    return env


CAPTURE_RECORDS_ENV = "LLMOPS_CAPTURE_RECORDS_URL"
CAPTURE_TOKEN_ENV = "LLMOPS_CAPTURE_TOKEN"
DATASET_ENV = "LLMOPS_DATASET_URL"
OUTPUT_DIR_ENV = "LLMOPS_OUTPUT_DIR"
OUTPUT_REPO_ENV = "LLMOPS_OUTPUT_REPO"


def training_records_url(ld: LLMDeployment, since: str | None = None) -> str:
    """The store's records for training: with a held-out set, only the split's train view; with
    ``since`` (RFC 3339), only the records from then on."""
    query = []
    ev = ld.spec.evaluation
    if ev is not None and ev.held_out is not None:
        query += [("split", "train"), ("fraction", repr(ev.held_out.corrections.fraction))]
    if since is not None:
        query.append(("since", since))
    url = f"{capture_url(ld)}/v1/records"
    return f"{url}?{urlencode(query)}" if query else url


def _capture_env(ld: LLMDeployment) -> list[dict[str, Any]]:
    if not capture_store_enabled(ld):
        return []
    token = {"secretKeyRef": {"name": signing_secret_name(ld.name), "key": CAPTURE_TOKEN}}
    return [
        {"name": CAPTURE_RECORDS_ENV, "value": training_records_url(ld)},
        {"name": CAPTURE_TOKEN_ENV, "valueFrom": token},
    ]


def retrain_job(
    ld: LLMDeployment,
    *,
    run: int,
    base_revision: str,
    trigger: str,
    base_model: str | None = None,
    base_adapter: str | None = None,
    since: str | None = None,
) -> dict[str, Any]:
    """The Job of retrain run ``run`` (spec.retrain must be set); ``since``: the start of the drift
    reference of what served, where the store's records for training begin."""
    retrain = ld.spec.retrain
    assert retrain is not None
    template = copy.deepcopy(retrain.job_template)
    name = retrain_job_name(ld.name, run)
    user_meta = template.get("metadata") or {}
    labels = {
        **(user_meta.get("labels") or {}),
        **common_labels(ld, COMPONENT_RETRAIN),
        LABEL_REVISION: revision_label(base_revision),
    }
    meta = metadata(ld, name, labels)
    if user_meta.get("annotations"):
        meta["annotations"] = dict(user_meta["annotations"])
    spec = template["spec"]
    pod = spec["template"].setdefault("spec", {})
    pod.setdefault("restartPolicy", "Never")
    contract: list[dict[str, Any]] = [
        *_contract_env(base_model or ld.spec.model.id, name, base_revision, trigger, base_adapter),
        *_destination_env(ld, since),
        *_capture_env(ld),
    ]
    reserved = {e["name"] for e in contract} | {"LLMOPS_BASE_ADAPTER", DATASET_ENV, OUTPUT_REPO_ENV}
    for container in pod.get("containers") or []:
        user_env = [e for e in container.get("env") or [] if e.get("name") not in reserved]
        container["env"] = [*user_env, *contract]
    pod_labels = spec["template"].setdefault("metadata", {}).setdefault("labels", {})
    pod_labels.update(common_labels(ld, COMPONENT_RETRAIN))
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}
