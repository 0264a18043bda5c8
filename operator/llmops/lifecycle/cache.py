"""The model cache stage: the shared PVC and one download Job per revision.

Answers "is the desired revision in the cache?" and, when it is not and cannot be, why; while
the download runs, how far it is (status.download, from lifecycle.progress).
"""

from __future__ import annotations

from llmops.api import conditions as c
from llmops.lifecycle.context import Pass
from llmops.lifecycle.diagnose import (
    Problem,
    diagnose_pods,
    job_pods,
    job_state,
    pods_not_created,
    termination_json,
)
from llmops.lifecycle.progress import describe, download_status, progress_due_in, progress_target
from llmops.render import download_job, pvc, pvc_name

__all__ = ["cache_stage"]


def cache_stage(p: Pass, path: str | None = None) -> tuple[bool, Problem | None]:
    """Render the cache children; return (desired revision cached?, blocking problem).

    ``path``: the target is a model a retrain run wrote to the model cache, so nothing downloads."""
    spec = p.ld.spec
    p.fields["download"] = None  # only a running download has progress to show
    if path is not None:
        return _on_the_cache(p, path)
    if not spec.cache.enabled:
        p.cond(
            c.MODEL_CACHED,
            c.FALSE,
            c.CACHE_DISABLED,
            "spec.cache.enabled is false: each pod downloads the model",
        )
        return True, None
    p.want(pvc(p.ld))
    job = p.want(download_job(p.ld, revision=spec.model.revision))
    if job is None:
        p.cond(
            c.MODEL_CACHED,
            c.FALSE,
            c.CACHE_DISABLED,
            "spec.cache.download.enabled is false: pods fill the cache themselves on first start",
        )
        return True, None
    job_name = job["metadata"]["name"]
    state, reason, message = job_state(p.obs.child("Job", job_name))
    model = f"{spec.model.id}@{spec.model.revision}"
    if state == "Complete":
        p.cond(c.MODEL_CACHED, c.TRUE, c.DOWNLOAD_SUCCEEDED, f"{model} is in the cache")
        return True, None
    if state == "Failed":
        if reason == "DeadlineExceeded":
            problem = Problem(
                c.DOWNLOAD_TIMED_OUT,
                f"the download of {model} did not finish within {spec.cache.download.active_deadline_seconds}s; "
                "raise spec.cache.download.activeDeadlineSeconds",
                permanent=True,
            )
        else:
            said = termination_json(p.obs, job_name)
            detail = said.get("error") or said.get("message") or message or reason
            problem = Problem(
                c.DOWNLOAD_FAILED,
                f"the download of {model} failed: {detail}; check spec.model (id, revision, tokenSecretRef)",
                permanent=True,
            )
        p.cond(c.MODEL_CACHED, c.FALSE, problem.reason, problem.message)
        return False, problem
    found = diagnose_pods(job_pods(p.obs, job_name), spec.resources.gpu.resource_name, now=p.now)
    observed_pvc = p.obs.child("PersistentVolumeClaim", pvc_name(p.ld.name))
    if observed_pvc is not None and (observed_pvc.get("status") or {}).get("phase") != "Bound":
        found = Problem(
            c.PVC_NOT_BOUND,
            f"the model cache PersistentVolumeClaim {pvc_name(p.ld.name)} is not bound; check that storage class "
            f"{spec.cache.storage_class_name or '(default)'} exists and can provision {spec.cache.size} "
            f"{spec.cache.access_mode}",
            permanent=False,
        )
    if found is None:
        found, due = pods_not_created(p.obs.child("Job", job_name), p.obs, p.now)
        if due is not None:
            p.due.append(due)
    if found:
        p.cond(c.MODEL_CACHED, c.FALSE, found.reason, found.message)
        return False, found
    _progress(p, job_name)
    progress = describe(p.fields.get("download"))
    p.cond(
        c.MODEL_CACHED,
        c.FALSE,
        c.DOWNLOADING,
        f"downloading {model} into the cache" + (f": {progress}" if progress else ""),
    )
    return False, None


def _on_the_cache(p: Pass, path: str) -> tuple[bool, Problem | None]:
    if not p.ld.spec.cache.enabled:
        problem = Problem(
            c.CACHE_DISABLED,
            f"the model at {path} was written to the model cache, but spec.cache.enabled is false: "
            "the pods would not see it",
            permanent=True,
        )
        p.cond(c.MODEL_CACHED, c.FALSE, problem.reason, problem.message)
        return False, problem
    p.want(pvc(p.ld))
    p.cond(
        c.MODEL_CACHED, c.TRUE, c.ON_MODEL_CACHE, f"{path} is on the model cache (written by a retrain run)"
    )
    return True, None


def _progress(p: Pass, job_name: str) -> None:
    """status.download from this pass's reading (or the last one), and when to read again."""
    revision = p.ld.spec.model.revision
    p.fields["download"] = download_status(p.old_status, revision, p.obs.download_progress, p.now)
    if progress_target(p.obs, job_name) is not None:
        p.due.append(max(1.0, progress_due_in(p.fields, revision, p.now)))
