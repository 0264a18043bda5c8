"""The imperative shell of one reconcile pass: observe → plan → act.

    read the LLMDeployment and its children (kube.py) → plan() (pure) →
    apply / delete children → patch status once, only if it changed → post events

Every exception a pass raises ends the pass and becomes visible: the condition
Progressing=Unknown with reason ReconcileError carries its message, a Warning Event marks the
first failure of a streak, and the key is retried after a bounded, growing backoff (1 s … 60 s).
A transient API failure (5xx, 409, 429, connection) and a refusal (403) are reported the same
way; a child the apiserver refuses as invalid (422) has reason ChildRefused and names the spec
field it came from; a programming error (TypeError, KeyError…) also logs its traceback. The next successful pass sets Progressing from the plan again. One object's failure
never touches another's pass.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from pydantic import ValidationError

from llmops import metrics
from llmops.analysis.drift import TermCounts
from llmops.analysis.results import Error, Result
from llmops.api import conditions as c
from llmops.api.resource import LLMDeployment, parse
from llmops.jobprogress import read_progress
from llmops.kube import ApiError, Kube
from llmops.lifecycle.autoscaling import HANDOVER_MANAGER, query_check_request
from llmops.lifecycle.canary import analysis_request
from llmops.lifecycle.capture import CaptureQuery, capture_request
from llmops.lifecycle.conditions import set_condition
from llmops.lifecycle.diagnose import jobs_without_pods, spec_field_behind, waits_for_gpus
from llmops.lifecycle.drift import DriftQuery, TermsQuery, drift_request, prompts_request
from llmops.lifecycle.observations import GpuNode, Observations
from llmops.lifecycle.plan import Plan, plan
from llmops.lifecycle.progress import progress_request
from llmops.prom import PromClient, RetentionCache
from llmops.render.capture import capture_url
from llmops.render.gateway import CAPTURE_TOKEN, signing_secret, signing_secret_name

__all__ = ["Reconciler", "check_query", "measure_capture", "measure_drift", "measure_prompts"]

log = logging.getLogger("llmops.reconciler")
_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
RESYNC_SECONDS = 300.0
"""A pass at least this often even without events: cheap, and it bounds any missed event."""


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns ``old`` into ``new``.

    Nested objects are diffed recursively, with ``None`` for keys that disappear: a merge patch
    merges nested objects, so sending a new nested object whole would keep the old one's other
    keys (a stale ``passed`` in status.evaluation, say). Lists are replaced whole.
    """
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif before != value:
            patch[key] = value
    patch.update({key: None for key in old if key not in new})
    return patch


_NO_URL = Error("no Prometheus URL: set spec.monitoring.prometheus.url or --prometheus-url", "unreachable")


def measure_drift(url: str | None, wanted: list[DriftQuery]) -> dict[str, Any] | None:
    """Run the drift stage's queries (None when none are due); every answer is a result, never
    an exception, so an unreachable Prometheus reads as Unknown."""
    if not wanted:
        return None
    if url is None:
        return {q.key: _NO_URL for q in wanted}
    with PromClient(url) as prom:
        return {q.key: prom.query_vector(q.promql, q.by) if q.by else prom.query(q.promql) for q in wanted}


_STORE_TIMEOUT = (5.0, 60.0)
"""(connect, read) seconds: the store reads a whole window's segments to answer."""


def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _terms(http: requests.Session, url: str, token: str, q: TermsQuery) -> TermCounts | Error:
    params = {
        "since": _stamp(q.since),
        "until": _stamp(q.until),
        "revision": q.revision,
        "buckets": str(q.buckets),
    }
    try:
        r = http.get(
            f"{url}/v1/terms",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=_STORE_TIMEOUT,
        )
    except requests.RequestException as exc:
        return Error(f"{url} unreachable: {exc}"[:500], "unreachable")
    if r.status_code != 200:
        return Error(f"{url}/v1/terms answered {r.status_code}: {r.text[:300]}", "rejected")
    try:
        body = r.json()
        counts = tuple(int(x) for x in body["counts"])
        if len(counts) != q.buckets:
            raise ValueError(f"{len(counts)} buckets, {q.buckets} asked for")
        return TermCounts(counts, int(body["prompts"]))
    except (ValueError, KeyError, TypeError) as exc:
        return Error(f"{url}/v1/terms: not a term histogram: {exc}"[:500], "rejected")


def measure_prompts(url: str, token: str | Error, wanted: list[TermsQuery]) -> dict[str, TermCounts | Error]:
    """Ask the capture store for the term histograms the drift stage wants; every answer is a
    result, never an exception, so an unreachable store reads as Unknown."""
    if isinstance(token, Error):
        return {q.key: token for q in wanted}
    with requests.Session() as http:
        return {q.key: _terms(http, url, token, q) for q in wanted}


def check_query(url: str | None, query: str | None) -> tuple[str, Error | None] | None:
    """Ask Prometheus whether ``query`` parses (None when there is nothing to check)."""
    if query is None:
        return None
    if url is None:
        return query, _NO_URL
    with PromClient(url) as prom:
        return query, prom.check_syntax(query)


def measure_capture(url: str | None, wanted: list[CaptureQuery]) -> dict[str, Result] | None:
    """Run the capture stage's queries (None without capture); an unreachable Prometheus reads
    as Error results, which the stage reports as Unknown."""
    if not wanted:
        return None
    if url is None:
        return {q.key: _NO_URL for q in wanted}
    with PromClient(url) as prom:
        return {q.key: prom.query(q.promql) for q in wanted}


class Reconciler:
    """Runs passes for (namespace, name) keys; safe to call from a work queue."""

    def __init__(
        self,
        kube: Kube,
        clock: Callable[[], dt.datetime] | None = None,
        prometheus_url: str | None = None,
    ) -> None:
        self.kube = kube
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.prometheus_url = prometheus_url or os.environ.get("LLMOPS_PROMETHEUS_URL") or None
        self._failures: dict[tuple[str, str], int] = {}
        self.retention = RetentionCache()
        """Prometheus' retention, shared by every pass (the drift stage checks its windows against it)."""

    async def __call__(self, key: tuple[str, str]) -> float | None:
        namespace, name = key
        started = time.monotonic()
        try:
            delay = await asyncio.to_thread(self.reconcile, namespace, name)
        except Exception as exc:  # every failure of a pass is reported, none stops the queue
            metrics.observe_pass("error", time.monotonic() - started)
            attempt = self._failures.get(key, 0) + 1
            self._failures[key] = attempt
            delay = backoff(attempt)
            if isinstance(exc, ApiError):
                log.warning(
                    "%s/%s: API error (%s), retrying in %.0fs: %s", namespace, name, exc.status, delay, exc
                )
            else:
                log.exception("%s/%s: pass failed, retrying in %.0fs", namespace, name, delay)
            await asyncio.to_thread(self._report, namespace, name, exc, attempt)
            return delay
        self._failures.pop(key, None)
        metrics.observe_pass("ok", time.monotonic() - started)
        return delay

    def reconcile(self, namespace: str, name: str) -> float | None:
        """One pass. Returns seconds until the next pass is wanted (None: the object is gone)."""
        body = self.kube.get_llmd(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            metrics.forget(namespace, name)
            return None  # owner references garbage-collect the children
        obs = self.kube.observe(namespace, name)
        now = self.clock()
        obs = self._enrich(body, obs, now)
        result = plan(body, obs, now)
        if any(obj["kind"] == "Deployment" for obj in result.apply):
            self._ensure_signing_key(body)
        # Before the apply that leaves replicas out: see lifecycle.autoscaling.
        for obj in result.handover:
            handed = self.kube.hand_over(obj, HANDOVER_MANAGER)
            log.info(
                "%s/%s: replicas of Deployment %s handed over to the autoscaler%s",
                namespace,
                name,
                obj["metadata"]["name"],
                "" if handed else " (it had taken them already)",
            )
        # The children of one pass do not depend on each other's writes (a Deployment waits for
        # its PVC on its own, and the next pass sees what did not land), so they go out together.
        for obj in result.apply:
            kind, child = obj["kind"], obj["metadata"]["name"]
            if taken := result.drift.get((kind, child)):
                log.info(
                    "%s/%s: %s %s was changed by another manager, taking back: %s",
                    namespace,
                    name,
                    kind,
                    child,
                    ", ".join(taken)[:500],
                )
            log.info("%s/%s: apply %s %s", namespace, name, kind, child)
        self.kube.concurrently(self.kube.apply, result.apply)
        for kind, child in result.delete:
            log.info("%s/%s: delete %s %s", namespace, name, kind, child)
        self.kube.concurrently(lambda d: self.kube.delete(d[0], namespace, d[1]), result.delete)
        for kind, target, patch in result.patches:
            log.info("%s/%s: patch %s %s", namespace, name, kind, target)
            self.kube.merge_patch(kind, namespace, target, patch)
        for pod, condition_type, reason in result.pod_conditions:
            log.info("%s/%s: pod %s: %s=True", namespace, name, pod, condition_type)
            self.kube.set_pod_condition(namespace, pod, condition_type, reason, now)
        if result.status_changed:
            patch = merge_patch(body.get("status") or {}, result.status)
            log.info("%s/%s: patch status: %s", namespace, name, ", ".join(sorted(patch)))
            self.kube.patch_status(namespace, name, patch)
        for ev in result.events:
            self.kube.event(body, ev.type, ev.reason, ev.message, now)
        metrics.observe_status(
            namespace,
            name,
            result.status,
            rolled_back=any(e.reason == c.ROLLED_BACK for e in result.events),
            gpus_per_pod=_gpus_per_pod(body),
        )
        # A write changes what the next pass observes. Where it comes back as a watch event (the
        # informed kinds), that event triggers the pass; elsewhere look again soon. A requeue
        # for watched writes only adds a pass that sees nothing new whenever the events take
        # longer than the requeue, as they do on a busy apiserver.
        if self._wrote_unwatched(result):
            return 1.0
        if not (result.status_changed or result.writes_objects):
            log.info("%s/%s: pass: nothing to change", namespace, name)
        return result.requeue_after or RESYNC_SECONDS

    def _wrote_unwatched(self, result: Plan) -> bool:
        """Whether the pass wrote something whose change no watch event will report."""
        return (
            any(not self.kube.watches(obj["kind"]) for obj in result.apply)
            or any(not self.kube.watches(kind) for kind, _ in result.delete)
            or bool(result.patches)
            or (bool(result.pod_conditions) and not self.kube.watches("Pod"))
        )

    def _ensure_signing_key(self, body: Mapping[str, Any]) -> None:
        """Create the gateway's signing-key Secret if it does not exist (before the server pods,
        which mount it). The key is random, so render cannot make it; it is never rewritten, so
        request IDs stay valid across rollouts. Tried whenever a server Deployment is applied,
        which also brings back a Secret someone deleted."""
        try:
            ld = parse(body)
        except ValidationError:
            return
        if not ld.spec.gateway.enabled:
            return
        secret = signing_secret(
            ld,
            signing_key=secrets.token_bytes(32),
            internal_api_key=secrets.token_urlsafe(32).encode(),
            capture_token=secrets.token_urlsafe(32).encode(),
        )
        if self.kube.create_if_absent(secret):
            log.info("%s/%s: created the gateway signing key Secret", ld.namespace, ld.name)

    def _capture_token(self, ld: LLMDeployment) -> str | Error:
        """The capture store's bearer token, from the gateway Secret the operator created (it
        reads that Secret by name only, for spec.drift.prompts; see docs/drift.md)."""
        name = signing_secret_name(ld.name)
        try:
            secret = self.kube.get("Secret", ld.namespace, name)
        except ApiError as exc:
            return Error(f"cannot read the Secret {name} ({exc.status}): {exc}"[:500], "unreachable")
        encoded = ((secret or {}).get("data") or {}).get(CAPTURE_TOKEN)
        if not encoded:
            return Error(f"the Secret {name} has no {CAPTURE_TOKEN} key", "unreachable")
        return base64.b64decode(encoded).decode().strip()

    def _enrich(self, body: Mapping[str, Any], obs: Observations, now: dt.datetime) -> Observations:
        """Add what the spec references (the HTTPRoute), the canary and drift measurements due,
        the GPU nodes while pods wait for GPUs, and the download's progress when a reading is due."""
        try:
            ld: LLMDeployment | None = parse(body)
        except ValidationError:
            return obs
        assert ld is not None
        referenced: dict[tuple[str, str], Mapping[str, Any]] = {}
        rollout = ld.spec.rollout
        if rollout is not None and rollout.traffic.mode == "gatewayAPI" and rollout.traffic.http_route_ref:
            ref = rollout.traffic.http_route_ref.name
            try:
                route = self.kube.get("HTTPRoute", ld.namespace, ref)
            except ApiError as exc:
                return dataclasses.replace(obs, errors=(*obs.errors, f"get HTTPRoute {ref}: {exc}"))
            if route is not None:
                referenced[("HTTPRoute", ref)] = route
        analysis: dict[str, tuple[Result, Result | None]] | None = None
        url = ld.spec.monitoring.prometheus.url or self.prometheus_url
        wanted = analysis_request(body, ld, now)
        if wanted:
            if url is None:
                analysis = {q.name: (_NO_URL, _NO_URL if q.stable else None) for q in wanted}
            else:
                with PromClient(url) as prom:
                    analysis = {
                        q.name: (prom.query(q.canary), prom.query(q.stable) if q.stable else None)
                        for q in wanted
                    }
        gpu_nodes = self._gpu_nodes(ld, obs)
        job_refusals = self._job_refusals(ld, obs, now)
        drift_on = ld.spec.drift is not None and ld.spec.drift.enabled
        retention = self.retention.get(url) if drift_on and url is not None else None
        drift = measure_drift(url, drift_request(body, ld, now, retention))
        if prompts := prompts_request(body, ld, now, retention):
            measured = measure_prompts(capture_url(ld), self._capture_token(ld), prompts)
            drift = {**(drift or {}), **measured}
        capture = measure_capture(url, capture_request(ld, now))
        target = progress_request(body, ld, obs, now)
        return dataclasses.replace(
            obs,
            referenced=referenced,
            analysis=analysis,
            gpu_nodes=gpu_nodes,
            job_refusals=job_refusals,
            drift=drift,
            capture=capture,
            prometheus_url=self.prometheus_url,
            prometheus_retention=retention,
            query_check=check_query(url, query_check_request(body, ld)),
            download_progress=read_progress(target) if target else None,
        )

    def _gpu_nodes(self, ld: LLMDeployment, obs: Observations) -> list[GpuNode] | None:
        """The GPU nodes, read only while one of this object's pods waits for GPUs (so that the
        condition can say what is requested and what is free). Unreadable: None, and the
        condition quotes the scheduler instead."""
        resource = ld.spec.resources.gpu.resource_name
        if not waits_for_gpus(obs.pods, resource):
            return None
        try:
            return self.kube.gpu_nodes(resource)
        except ApiError as exc:
            log.info("%s/%s: cannot read GPU nodes (%s): %s", ld.namespace, ld.name, exc.status, exc)
            return None

    def _job_refusals(self, ld: LLMDeployment, obs: Observations, now: dt.datetime) -> dict[str, str]:
        """The apiserver's refusal of each Job's pods, read only for running Jobs that have made
        none in a while (one Events list each; a Job with pods, the usual case, costs nothing).
        Unreadable: left out, and the Job is reported after the grace period with the generic text."""
        refusals: dict[str, str] = {}
        for job in jobs_without_pods(obs, now):
            name, uid = str(job["metadata"]["name"]), job["metadata"].get("uid")
            if not uid:
                continue
            try:
                refusal = self.kube.pod_refusal(ld.namespace, str(uid))
            except ApiError as exc:
                log.info(
                    "%s/%s: cannot read the Events of Job %s (%s): %s",
                    ld.namespace,
                    ld.name,
                    name,
                    exc.status,
                    exc,
                )
                continue
            if refusal:
                refusals[name] = refusal
        return refusals

    def _report(self, namespace: str, name: str, exc: Exception, attempt: int) -> None:
        """Record a failed pass in status (and an Event on the first failure of a streak).

        The condition's text stays the same for the whole streak (no attempt count, no next
        delay: the log has those): a status write is a watch event that starts a pass within a
        moment, so a text that changed every attempt would retry in a hot loop, whatever the backoff.
        Best effort: when the apiserver itself is what fails, the log is all there is."""
        reason, message = failure_reason(exc), error_message(exc)
        try:
            body = self.kube.get_llmd(namespace, name)
            if body is None:
                return
            now = self.clock()
            old = list((body.get("status") or {}).get("conditions") or [])
            text = f"{message[:900]} (retried with a growing backoff, at most {_BACKOFF[-1]:.0f}s apart)"
            conds = set_condition(
                old,
                c.PROGRESSING,
                c.UNKNOWN,
                reason,
                text,
                generation=body["metadata"].get("generation"),
                now=now,
            )
            if conds != old:
                self.kube.patch_status(namespace, name, {"conditions": conds})
            if attempt == 1:
                self.kube.event(body, "Warning", reason, message, now)
        except ApiError as exc:
            if exc.status == 404:  # deleted meanwhile (its namespace's deletion, say): nothing to tell
                log.info("%s/%s: gone before its error could be reported", namespace, name)
                return
            log.exception("%s/%s: could not report the error in status", namespace, name)


def backoff(attempt: int) -> float:
    """Seconds before retry number ``attempt`` (1-based) of a failing pass: growing, bounded."""
    return _BACKOFF[min(attempt, len(_BACKOFF)) - 1]


def failure_reason(exc: Exception) -> str:
    """ChildRefused for a child the apiserver refused as invalid, ReconcileError for the rest."""
    return c.CHILD_REFUSED if isinstance(exc, ApiError) and exc.status == 422 else c.RECONCILE_ERROR


def error_message(exc: Exception) -> str:
    """What a failed pass tells the user: the API's message (naming, for a refused child, the spec
    field to fix), or the exception's type and text."""
    if isinstance(exc, ApiError):
        field = spec_field_behind(str(exc)) if exc.status == 422 else None
        return f"{exc}; fix {field}" if field else str(exc)
    return f"internal error {type(exc).__name__}: {exc} (a bug in the operator; its log has the traceback)"


def _gpus_per_pod(body: Mapping[str, Any]) -> int:
    """spec.resources.gpu.count as stored (the CRD defaults it to 1; an invalid value reads 1)."""
    count = (((body.get("spec") or {}).get("resources") or {}).get("gpu") or {}).get("count", 1)
    return count if isinstance(count, int) and count >= 1 else 1
