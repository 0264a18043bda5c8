"""Retrain Jobs: on drift (Drifted=True) or on a new ``llmops.io/retrain`` annotation value, when
``spec.retrain`` allows it (enabled, one run at a time, ``cooldown`` since the last start, at most
``maxRetrainsPerDay`` starts in any 24 hours), the operator starts a Job from the user's template
(render/retrain.py) and follows it:

    trigger → Job `<name>-retrain-<n>` (Running; phase Retraining, Progressing=RetrainRunning)
      → Complete with a report in the termination message → Succeeded: the candidate is recorded
      → Complete with a report that names no model → Failed (RetrainReportInvalid, saying why)
      → Failed → Failed (RetrainFailed, with the Job's reason); it counts against the cooldown

      → spec.model changes while it runs → Abandoned (RetrainAbandoned): the Job is deleted, spec wins

The report is JSON: ``{"model": "org/name", "revision": "<40 hex>"}`` for a Hub repository,
``{"path": "/data/..."}`` for a model written to the model cache, or
``{"adapter": {"path": "/data/...", "name": "<id>"}}`` for a LoRA adapter written to the model
cache, served on top of the model the run started from (the name defaults to the run ID). The reported model becomes
``status.candidate`` and takes the road of any revision (candidate.py). No run starts while a
candidate is on its road. Everything is in ``status.retrain``: a restarted operator finds the same
run (the Job name comes from the run count in status, so a pass repeated after a lost status
write applies the same Job, never a second one).

This stage sees ``p.ld`` with the serving model: a run retrains what serves (LLMOPS_BASE_MODEL).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from llmops.api import conditions as c
from llmops.api.common import SHA40, parse_duration
from llmops.api.constants import ANNOTATION_RETRAIN
from llmops.api.delivery import REPO_ID
from llmops.api.spec import ADAPTER_NAME, ADAPTER_PATH, AdapterSpec
from llmops.api.status import RetrainStatusDict
from llmops.contracts import format_timestamp, parse_status_timestamp
from llmops.lifecycle.candidate import new_candidate
from llmops.lifecycle.conditions import find
from llmops.lifecycle.context import Event, Pass
from llmops.lifecycle.diagnose import job_state, pods_not_created, termination_json
from llmops.lifecycle.target import ACTIVE_CANDIDATE_STATES, Target, adapter_target
from llmops.render.retrain import retrain_job, retrain_job_name

__all__ = ["RetrainPlan", "retrain_stage"]

RUNNING, SUCCEEDED, FAILED, ABANDONED = "Running", "Succeeded", "Failed", "Abandoned"
_DAY = dt.timedelta(hours=24)


@dataclass(frozen=True)
class RetrainPlan:
    """What the rest of the pass needs to know: a Job is running (phase Retraining)."""

    running: bool
    message: str = ""
    reason: str = c.RETRAIN_RUNNING
    """Progressing's reason while running: RetrainRunning, or JobPodsRefused when it has no pod."""


def retrain_stage(p: Pass, serving: str | None) -> RetrainPlan:
    """Follow the running retrain, or start one when a trigger and the limits allow."""
    spec = p.ld.spec.retrain
    old: dict[str, Any] = dict(p.old_status.get("retrain") or {})
    if spec is None:
        p.fields["retrain"] = None
        p.drop_condition(c.RETRAINED)
        return RetrainPlan(False)
    st = dict(old)
    # Updated in place by the steps below as plain JSON; its keys are RetrainStatusDict's.
    p.fields["retrain"] = cast(RetrainStatusDict, st)
    if st.get("state") == RUNNING and st.get("job"):
        if st.get("specModel") and st.get("specModel") != p.spec_model:
            return _abandon(p, st)
        return _follow(p, st)
    trigger, annotation = _trigger(p)
    if trigger is None or serving is None or not spec.enabled:
        return RetrainPlan(False)
    candidate = p.fields.get("candidate", p.old_status.get("candidate")) or {}
    if candidate.get("state") in ACTIVE_CANDIDATE_STATES:
        return RetrainPlan(False)  # one model on the road at a time: the trigger waits
    blocked = _blocked(p, st)
    if blocked is not None:
        if st.get("message") != blocked:
            p.events.append(Event("Normal", c.RETRAIN_RATE_LIMITED, blocked))
        st["message"] = blocked
        return RetrainPlan(False)
    return _start(p, st, serving, trigger, annotation)


def _trigger(p: Pass) -> tuple[str | None, str | None]:
    """(why, the annotation value to consume) — drift first, then a new annotation value."""
    annotation = str((p.ld.metadata.get("annotations") or {}).get(ANNOTATION_RETRAIN, "")).strip()
    acted = (p.old_status.get("retrain") or {}).get("annotation")
    fresh = annotation if annotation and annotation != acted else None
    drifted = find(p.conditions, c.DRIFTED)
    if drifted is not None and drifted.get("status") == c.TRUE:
        return f"drift: {drifted.get('message', '')}", fresh
    if fresh is not None:
        return f"annotation {ANNOTATION_RETRAIN}={fresh}", fresh
    return None, None


def _blocked(p: Pass, st: Mapping[str, Any]) -> str | None:
    """Why no retrain may start now (cooldown, daily cap), or None."""
    spec = p.ld.spec.retrain
    assert spec is not None
    if spec.max_retrains_per_day == 0:
        return "retraining is off: spec.retrain.maxRetrainsPerDay is 0"
    last = parse_status_timestamp(st.get("lastStartTime"))
    cooldown = dt.timedelta(seconds=parse_duration(spec.cooldown))
    if last is not None and p.now - last < cooldown:
        return f"a retrain is wanted; the next may start at {format_timestamp(last + cooldown)} (cooldown {spec.cooldown})"
    recent = [
        t for t in (parse_status_timestamp(x) for x in st.get("startTimes") or []) if t and p.now - t < _DAY
    ]
    if len(recent) >= spec.max_retrains_per_day:
        until = format_timestamp(min(recent) + _DAY)
        return f"a retrain is wanted; {len(recent)} started in the last 24 hours (maxRetrainsPerDay), next at {until}"
    return None


def _reference_start(p: Pass, serving: str) -> str | None:
    """Start of the drift reference frozen for what serves (its first window of serving): the
    capture store's records for training begin there. None without one."""
    reference = (p.old_status.get("drift") or {}).get("reference") or {}
    if reference.get("revision") != serving:
        return None
    start = reference.get("start")
    return str(start) if start else None


def _start(p: Pass, st: dict[str, Any], serving: str, trigger: str, annotation: str | None) -> RetrainPlan:
    run = int(st.get("runs") or 0) + 1
    job = retrain_job_name(p.ld.name, run)
    # What serves, as the trainer needs it: the Hub revision of its weights, and its adapter if any.
    base_model, base_revision, adapter = p.ld.spec.model.id, p.ld.spec.model.revision, p.ld.spec.model.adapter
    if adapter is None:
        base_revision = serving
    base_adapter = adapter.path if adapter is not None else None
    since = _reference_start(p, serving)
    p.want(
        retrain_job(
            p.ld,
            run=run,
            base_model=base_model,
            base_revision=base_revision,
            trigger=trigger,
            base_adapter=base_adapter,
            since=since,
        )
    )
    recent = [x for x in st.get("startTimes") or [] if (t := parse_status_timestamp(x)) and p.now - t < _DAY]
    st.update(
        runs=run,
        job=job,
        state=RUNNING,
        baseModel=base_model,
        baseRevision=base_revision,
        specModel=p.spec_model,
        trigger=trigger[:1000],
        message=f"retrain Job {job} started from revision {serving}",
        lastStartTime=format_timestamp(p.now),
        startTimes=[*recent, format_timestamp(p.now)][-24:],
    )
    for old_field in (
        "candidateModel",
        "candidateRevision",
        "candidatePath",
        "candidateAdapter",
        "baseAdapter",
    ):
        st.pop(old_field, None)  # absent, not null: status compares equal after a round trip
    st.pop("datasetSince", None)
    if base_adapter is not None:
        st["baseAdapter"] = base_adapter
    if since is not None:
        st["datasetSince"] = since
    if annotation is not None:
        st["annotation"] = annotation
    p.record("RetrainStarted", serving, c.RETRAIN_RUNNING, f"Job {job}: {trigger}"[:1000])
    p.events.append(Event("Normal", c.RETRAIN_RUNNING, f"retrain Job {job} started after {trigger}"[:1000]))
    message = f"Retrain Job {job} running after {trigger}"
    p.cond(c.RETRAINED, c.UNKNOWN, c.RETRAIN_RUNNING, message[:1000])
    return RetrainPlan(True, message)


def _follow(p: Pass, st: dict[str, Any]) -> RetrainPlan:
    job, run = str(st["job"]), int(st.get("runs") or 0)
    # The same Job as started (same inputs, same hash): wanting it keeps it from being deleted.
    p.want(
        retrain_job(
            p.ld,
            run=run,
            base_model=str(st.get("baseModel") or p.ld.spec.model.id),
            base_revision=str(st.get("baseRevision")),
            trigger=str(st.get("trigger")),
            base_adapter=st.get("baseAdapter"),
            since=st.get("datasetSince"),
        )
    )
    state, reason, job_message = job_state(p.obs.child("Job", job))
    message = f"Retrain Job {job} running after {st.get('trigger')}"
    if state in ("Running", "Missing"):
        refused, due = pods_not_created(p.obs.child("Job", job), p.obs, p.now)
        if due is not None:
            p.due.append(due)
        if refused is not None:  # still running as far as the Job knows; the user must act
            p.cond(c.RETRAINED, c.UNKNOWN, refused.reason, f"Retrain {refused.message}"[:1000])
            return RetrainPlan(True, refused.message, refused.reason)
        p.cond(c.RETRAINED, c.UNKNOWN, c.RETRAIN_RUNNING, message[:1000])
        return RetrainPlan(True, message)
    report = termination_json(p.obs, job)
    if state == "Failed":
        why = f"retrain Job {job} failed ({reason or 'Failed'}: {report.get('message') or job_message or 'no message'})"
        return _finish(p, st, c.RETRAIN_FAILED, why)
    candidate, problem = _candidate(report, job, str(st.get("baseRevision")))
    if problem is None and "candidateAdapter" in candidate:
        problem = _adapter_unservable(p)
    if problem is not None:
        return _finish(p, st, c.RETRAIN_REPORT_INVALID, f"retrain Job {job} completed but {problem}")
    st.update(state=SUCCEEDED, **candidate)
    target = _target(job, candidate, str(st.get("baseModel") or p.ld.spec.model.id))
    st["message"] = f"retrain Job {job} produced {target.text}"
    p.cond(c.RETRAINED, c.TRUE, c.RETRAIN_SUCCEEDED, st["message"])
    p.record("RetrainSucceeded", target.revision, c.RETRAIN_SUCCEEDED, st["message"])
    p.events.append(Event("Normal", c.RETRAIN_SUCCEEDED, st["message"]))
    # Produced under the spec.model the run started with (a changed one abandoned the run).
    p.fields["candidate"] = new_candidate(job, target, str(st.get("specModel") or p.spec_model))
    return RetrainPlan(False)


def _target(run: str, candidate: Mapping[str, Any], base_model: str) -> Target:
    """The reported model as a pipeline target: a Hub revision, a path named by its run, or the
    model the run started from with the reported adapter on top."""
    adapter = candidate.get("candidateAdapter")
    if adapter:
        spec = AdapterSpec.model_construct(name=adapter["name"], path=adapter["path"])
        return adapter_target(base_model, str(adapter["baseRevision"]), spec, run)
    path = candidate.get("candidatePath")
    if path:
        return Target(str(path), run, run, str(path))
    return Target(str(candidate["candidateModel"]), str(candidate["candidateRevision"]), run)


def _abandon(p: Pass, st: dict[str, Any]) -> RetrainPlan:
    """spec.model changed while the Job ran: not wanted any more, so the Job (unfinished) is deleted."""
    message = (
        f"retrain Job {st.get('job')} abandoned: spec.model changed to {p.spec_model} "
        f"(was {st.get('specModel')}); spec wins and its Job is deleted"
    )
    st.update(state=ABANDONED, message=message[:1000])
    p.cond(c.RETRAINED, c.FALSE, c.RETRAIN_ABANDONED, message[:1000])
    p.record("RetrainAbandoned", st.get("baseRevision"), c.RETRAIN_ABANDONED, message[:1000])
    p.events.append(Event("Normal", c.RETRAIN_ABANDONED, message[:1000]))
    return RetrainPlan(False)


def _finish(p: Pass, st: dict[str, Any], reason: str, message: str) -> RetrainPlan:
    st.update(state=FAILED, message=message[:1000])
    p.cond(c.RETRAINED, c.FALSE, reason, message[:1000])
    p.record("RetrainFailed", st.get("baseRevision"), reason, message[:1000])
    p.events.append(Event("Warning", reason, message[:1000]))
    return RetrainPlan(False)


def _candidate(report: Mapping[str, Any], run: str, base_revision: str) -> tuple[dict[str, Any], str | None]:
    """The candidate fields from the Job's report, or the problem with the report."""
    if not report:
        return (
            {},
            'its termination message is empty: write {"model": "org/name", "revision": "<40 hex>"}, '
            '{"path": ...} or {"adapter": {"path": ..., "name": ...}}',
        )
    if "adapter" in report:
        return _adapter_candidate(report["adapter"], run, base_revision)
    path = report.get("path")
    if path is not None:
        if not isinstance(path, str) or not path.startswith("/"):
            return {}, f"its report's path {path!r} is not an absolute path on the model cache"
        return {"candidatePath": path[:1024]}, None
    model, revision = report.get("model"), report.get("revision")
    if not isinstance(model, str) or not re.fullmatch(REPO_ID, model):
        shown = report.get("message") or report
        return (
            {},
            f"its report names no model (want model org/name and a 40-hex revision, path, or adapter): "
            f"{str(shown)[:300]}",
        )
    if not isinstance(revision, str) or not re.fullmatch(SHA40, revision):
        return {}, f"its report's revision {revision!r} for {model} is not a 40-hex commit sha"
    return {"candidateModel": model, "candidateRevision": revision}, None


def _adapter_candidate(adapter: Any, run: str, base_revision: str) -> tuple[dict[str, Any], str | None]:
    """A LoRA adapter report ``{"path": "/data/...", "name": "<id>"}`` (name: the run ID if absent)."""
    if not isinstance(adapter, Mapping):
        return (
            {},
            f'its report\'s adapter {str(adapter)[:200]!r} is not an object {{"path": ..., "name": ...}}',
        )
    path, name = adapter.get("path"), adapter.get("name", run)
    if path is None:
        return {}, 'its report\'s adapter has no path: write {"adapter": {"path": "/data/...", "name": ...}}'
    if not isinstance(path, str) or not path.startswith("/"):
        return {}, f"its report's adapter.path {str(path)[:300]!r} is not an absolute path on the model cache"
    if not re.fullmatch(ADAPTER_PATH, path) or len(path) > 512:
        return (
            {},
            f"its report's adapter.path {path[:300]!r} is not a folder under /data, the model cache "
            "(letters, digits and ._- in each part, no part starting with a dot)",
        )
    if not isinstance(name, str) or not re.fullmatch(ADAPTER_NAME, name):
        return (
            {},
            f"its report's adapter.name {str(name)[:100]!r} is not an adapter id (up to 63 letters, digits "
            "and ._-, starting with a letter or digit)",
        )
    return {"candidateAdapter": {"name": name, "path": path, "baseRevision": base_revision}}, None


def _adapter_unservable(p: Pass) -> str | None:
    """Why a reported adapter could not serve here, or None: it needs the gateway (which names it
    in every request) and the model cache (which holds it)."""
    spec = p.ld.spec
    if not spec.gateway.enabled:
        return (
            "its report is a LoRA adapter, which needs spec.gateway.enabled: the gateway makes every "
            "request name the adapter (the engine serves the base model otherwise)"
        )
    if not spec.cache.enabled:
        return (
            "its report is a LoRA adapter on the model cache, but spec.cache.enabled is false: the "
            "pods would not see it"
        )
    return None
