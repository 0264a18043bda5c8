"""Scheduled re-evaluation of the serving revision (``spec.evaluation.schedule``).

A CronJob runs the same evaluation as the gate, through the production Service, on the
schedule. Its newest finished Job's verdict goes into ``status.scheduledEvaluation`` (with a
history entry and an Event), where drift detection reads it; a missed threshold is reported
(ScheduledEvaluationFailed), not acted upon here: whether the score *dropped* is decided by
drift.quality against the score the revision had at its gate (lifecycle/drift.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmops.api import conditions as c
from llmops.lifecycle.context import Event, Pass
from llmops.lifecycle.diagnose import (
    evaluation_broken_cause,
    evaluation_judged,
    job_state,
    termination_json,
)
from llmops.lifecycle.gate import evaluation_result, verdict_message
from llmops.render import endpoint
from llmops.render.evaluation import COMPONENT_SCHEDULED, scheduled_evaluation

__all__ = ["scheduled_stage"]


def _finished_at(job: Mapping[str, Any]) -> str:
    st = job.get("status") or {}
    times = [str(x.get("lastTransitionTime") or "") for x in st.get("conditions") or []]
    return str(st.get("completionTime") or max(times, default=""))


def scheduled_stage(p: Pass, serving: str | None) -> None:
    """Render the CronJob for the revision that serves, and record its newest verdict."""
    ev = p.ld.spec.evaluation
    if ev is None or ev.schedule is None:
        p.fields["scheduledEvaluation"] = None
        return
    if serving is None:
        return  # nothing serves yet: nothing to re-evaluate
    p.want(
        scheduled_evaluation(
            p.ld, revision=serving, endpoint=endpoint(p.ld.name, p.ld.namespace, p.ld.spec.service.port)
        )
    )
    finished = [
        child
        for (kind, _), child in p.obs.children.items()
        if kind == "Job"
        and ((child.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/component")
        == COMPONENT_SCHEDULED
        and job_state(child)[0] in ("Complete", "Failed")
    ]
    if not finished:
        return
    latest = max(finished, key=_finished_at)
    name = str(latest["metadata"]["name"])
    old = p.old_status.get("scheduledEvaluation") or {}
    if old.get("job") == name:
        return
    state, reason, job_message = job_state(latest)
    summary = termination_json(p.obs, name)
    revision = str(summary.get("modelRevision") or serving)
    if state == "Complete" or evaluation_judged(reason, job_message, summary):
        passed = state == "Complete"
        result = evaluation_result(revision, name, passed, summary, p.now)
        message = verdict_message(revision, passed, result["metrics"], summary)
        p.fields["scheduledEvaluation"] = result
        reason_out = c.EVALUATION_PASSED if passed else c.SCHEDULED_EVALUATION_FAILED
    else:
        cause = evaluation_broken_cause(reason, job_message, summary)
        message = f"the scheduled evaluation {name} could not be done ({cause})"
        p.fields["scheduledEvaluation"] = {"revision": revision, "job": name, "broken": message[:1000]}
        reason_out = c.EVALUATION_JOB_FAILED
    p.record("ScheduledEvaluation", revision, reason_out, message)
    p.events.append(Event("Normal" if reason_out == c.EVALUATION_PASSED else "Warning", reason_out, message))
