"""The drift stage: is the serving revision still seeing the traffic, and giving the quality, it
was judged on? Every ``spec.drift.interval`` it measures, and ``status.drift`` plus the
``Drifted`` condition say what it found.

    drift_request (pure: the queries due this pass) → the shell runs them (Observations.drift)
    prompts_request (pure: the capture store windows due) → the shell asks the store
      → drift_stage: traffic signals (PSI and KS of the engine's histograms, current window
        against the reference), feedback (negative ratio), prompts (PSI of the captured prompts'
        hashed-term histograms, computed by the capture store), quality (scheduled evaluation
        score against the gate's, every pass) → status.drift, Drifted, an Event on each flip

The reference (``traffic.reference.mode: Promotion``) is the serving revision's first window of
serving with at least ``minSamples`` requests, frozen in ``status.drift.reference`` (bucket
edges and counts): a new serving revision, a change of the signals, or different bucket edges
(TGI's token buckets follow the token limits) collect it again. ``Offset`` compares with the
same window ``offset`` back at every check instead. Queries cover the serving revision's stable
pods only (the PodMonitor's namespace, llmops_deployment, llmops_track and llmops_revision
labels). Whatever cannot be judged (too few samples, no reference yet, Prometheus unreachable,
no feedback metric) is Unknown, never Drifted.

The prompts signal has a reference of its own (``status.drift.promptsReference``): the serving
revision's first window of serving with at least ``prompts.minSamples`` captured prompts, kept
as its [start, end] only. The store keeps the records, so every check asks it again for that
window's histogram: nothing bigger than two timestamps and a count is kept in status.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from llmops.analysis.drift import (
    Buckets,
    EdgesDiffer,
    SignalVerdict,
    TermCounts,
    Verdict,
    compare,
    compare_terms,
    feedback,
    feedback_queries,
    from_cumulative,
    histogram_query,
    quality_drop,
)
from llmops.analysis.queries import FEEDBACK_METRIC
from llmops.analysis.results import Error, NoData, Value, Vector
from llmops.api import conditions as c
from llmops.api.common import format_duration, parse_duration
from llmops.api.constants import PROM_LABEL_REVISION
from llmops.api.delivery import DriftSpec, QualityDrift
from llmops.api.metric_names import HIGHER_IS_BETTER
from llmops.api.resource import LLMDeployment
from llmops.api.status import REFERENCE_EDGES_LIMIT, DriftStatusDict
from llmops.contracts import format_timestamp, parse_status_timestamp
from llmops.engines import get_engine
from llmops.engines.base import Engine, selector
from llmops.lifecycle.conditions import find
from llmops.lifecycle.context import Event, Pass
from llmops.render.capture import capture_store_enabled
from llmops.render.names import revision_label

__all__ = [
    "DriftQuery",
    "TermsQuery",
    "drift_request",
    "drift_stage",
    "prompts_request",
    "retention_problem",
    "window_problem",
]

CURRENT, REFERENCE, FEEDBACK_NEGATIVE, FEEDBACK_TOTAL = (
    "current",
    "reference",
    "feedback/negative",
    "feedback/total",
)
QUALITY, FEEDBACK, PROMPTS = "quality", "feedback", "prompts"
PROMPTS_CURRENT, PROMPTS_REFERENCE = "prompts/current", "prompts/reference"
_MESSAGE_LIMIT = 1000


@dataclass(frozen=True)
class DriftQuery:
    """One query the stage wants run: by label ``by`` (``le``) for a histogram, else one number."""

    key: str
    """How the stage finds the result in Observations.drift, e.g. ``current/inputLength``."""
    promql: str
    by: str | None


@dataclass(frozen=True)
class TermsQuery:
    """One window the stage wants the capture store's term histogram of (GET /v1/terms)."""

    key: str
    """``prompts/current`` or ``prompts/reference``; the answer (TermCounts or Error) goes in
    Observations.drift under it."""
    since: dt.datetime
    until: dt.datetime
    revision: str
    buckets: int


def _bucket_metric(engine: Engine, signal: str) -> str:
    m = engine.metrics
    return {
        "inputLength": m.input_length_bucket,
        "generatedTokens": m.generated_tokens_bucket,
        "requestDuration": m.request_duration_bucket,
        "timePerOutputToken": m.time_per_token_bucket,
    }[signal]


def window_problem(ld: LLMDeployment) -> str | None:
    """Why spec.drift.window cannot work, naming the field (None if it can): increase() needs two
    scrapes inside the window. Durations like 7d are beyond CEL's duration(), so the check is here."""
    drift = ld.spec.drift
    if drift is None:
        return None
    scrape = ld.spec.monitoring.pod_monitor.interval
    if parse_duration(drift.window) < 2 * parse_duration(scrape):
        return (
            f"spec.drift.window ({drift.window}) is shorter than twice the scrape interval "
            f"spec.monitoring.podMonitor.interval ({scrape}): increase() needs two samples in the window"
        )
    return None


def retention_problem(ld: LLMDeployment, retention: float | None) -> str | None:
    """Why the Prometheus signals would read data Prometheus no longer keeps, naming the field
    (None if they would not, or the retention is unknown): the window itself, or in Offset mode
    the reference window, which ends ``offset`` ago and so starts ``offset + window`` ago.
    A Promotion reference is read once, right after its window ends, and then kept in status:
    it reaches back one window."""
    drift = ld.spec.drift
    if drift is None or retention is None:
        return None
    uses_prometheus = bool(drift.traffic.signals) or drift.feedback is not None
    if not uses_prometheus:
        return None
    window = parse_duration(drift.window)
    kept = (
        f"Prometheus keeps {format_duration(retention)} (its storage retention, /api/v1/status/runtimeinfo)"
    )
    if window > retention:
        return f"spec.drift.window ({drift.window}) reaches further back than {kept}: nothing can be judged on it"
    reference = drift.traffic.reference
    if drift.traffic.signals and reference.mode == "Offset":
        back = parse_duration(reference.offset) + window
        if back > retention:
            return (
                f"spec.drift.traffic.reference.offset ({reference.offset}) plus spec.drift.window "
                f"({drift.window}) reach {format_duration(back)} back, further than {kept}: the reference "
                "window would be partly or wholly gone"
            )
    return None


def _serving_selector(ld: LLMDeployment, revision: str) -> str:
    return f'{selector(ld.namespace, ld.name, "stable")},{PROM_LABEL_REVISION}="{revision_label(revision)}"'


def _due(drift: Mapping[str, Any], serving: str, interval: float, now: dt.datetime) -> bool:
    if drift.get("revision") != serving:
        return True
    last = parse_status_timestamp(drift.get("lastCheckTime"))
    return last is None or (now - last).total_seconds() >= interval


def _reference_due(ref: Mapping[str, Any] | None, serving: str, now: dt.datetime) -> bool:
    """A Promotion reference is being collected for ``serving`` and its window has ended."""
    if not ref or ref.get("revision") != serving or ref.get("histograms"):
        return False
    end = parse_status_timestamp(ref.get("end"))
    return end is not None and now >= end


def _signals_of(ref: Mapping[str, Any]) -> set[str]:
    return {str(h.get("signal")) for h in ref.get("histograms") or []}


def drift_request(
    body: Mapping[str, Any], ld: LLMDeployment | None, now: dt.datetime, retention: float | None = None
) -> list[DriftQuery]:
    """The queries to run for this pass (empty when no check is due, or the windows cannot work
    with Prometheus' ``retention`` in seconds). Pure."""
    if ld is None or ld.spec.drift is None or not ld.spec.drift.enabled or window_problem(ld):
        return []
    if retention_problem(ld, retention):
        return []
    status = body.get("status") or {}
    serving = status.get("servingRevision")
    if not serving:
        return []
    spec = ld.spec.drift
    drift = status.get("drift") or {}
    if not _due(drift, serving, parse_duration(spec.interval), now):
        return []
    return _queries(ld, spec, serving, drift, now, retention)


def prompts_request(
    body: Mapping[str, Any], ld: LLMDeployment | None, now: dt.datetime, retention: float | None = None
) -> list[TermsQuery]:
    """The term histograms to ask the capture store for this pass (empty when no check is due,
    or without spec.drift.prompts). Due with the other signals (drift_request). Pure."""
    if ld is None or ld.spec.drift is None or not ld.spec.drift.enabled or window_problem(ld):
        return []
    if retention_problem(ld, retention):
        return []
    prompts = ld.spec.drift.prompts
    if prompts is None or not capture_store_enabled(ld):
        return []
    status = body.get("status") or {}
    serving = status.get("servingRevision")
    drift = status.get("drift") or {}
    if not serving or not _due(drift, serving, parse_duration(ld.spec.drift.interval), now):
        return []
    window = dt.timedelta(seconds=parse_duration(ld.spec.drift.window))
    out = [TermsQuery(PROMPTS_CURRENT, now - window, now, serving, prompts.buckets)]
    ref = drift.get("promptsReference") if drift.get("revision") == serving else None
    start, end = (
        parse_status_timestamp((ref or {}).get("start")),
        parse_status_timestamp((ref or {}).get("end")),
    )
    if ref and ref.get("revision") == serving and start and end and now >= end:
        out.append(TermsQuery(PROMPTS_REFERENCE, start, end, serving, prompts.buckets))
    return out


def _queries(
    ld: LLMDeployment,
    spec: DriftSpec,
    serving: str,
    drift: Mapping[str, Any],
    now: dt.datetime,
    retention: float | None,
) -> list[DriftQuery]:
    engine = get_engine(ld.spec.engine.type)
    sel = _serving_selector(ld, serving)
    traffic = spec.traffic
    out: list[DriftQuery] = []
    ref = drift.get("reference") if drift.get("revision") == serving else None
    ref_end = parse_status_timestamp((ref or {}).get("end"))
    for signal in traffic.signals:
        metric = _bucket_metric(engine, signal)
        out.append(DriftQuery(f"{CURRENT}/{signal}", histogram_query(metric, sel, spec.window), "le"))
        if traffic.reference.mode == "Offset":
            promql = histogram_query(metric, sel, spec.window, offset=traffic.reference.offset)
            out.append(DriftQuery(f"{REFERENCE}/{signal}", promql, "le"))
        elif (
            ref_end is not None
            and _reference_due(ref, serving, now)
            and not _gone(ref or {}, spec, now, retention)
        ):
            promql = histogram_query(metric, sel, spec.window, at=ref_end.timestamp())
            out.append(DriftQuery(f"{REFERENCE}/{signal}", promql, "le"))
    if spec.feedback is not None:
        negative, total = feedback_queries(ld.namespace, ld.name, serving, spec.window)
        out += [DriftQuery(FEEDBACK_NEGATIVE, negative, None), DriftQuery(FEEDBACK_TOTAL, total, None)]
    return out


# ----------------------------------------------------------------------------------------- stage


@dataclass
class _Check:
    """One pass of the stage: the spec, the old and new status.drift, and the verdicts."""

    p: Pass
    spec: DriftSpec
    serving: str
    drift: dict[str, Any]
    """The new status.drift (``p.fields["drift"]``)."""
    verdicts: dict[str, dict[str, Any]]
    """Per signal, status.drift.signals entries (kept from the last check until measured again)."""


def drift_stage(p: Pass, serving: str | None) -> float | None:
    """Judge drift of ``serving`` (see the module docstring); returns seconds until the next check."""
    spec = p.ld.spec.drift
    if spec is None or not spec.enabled:
        p.fields["drift"] = None
        p.drop_condition(c.DRIFTED)
        return None
    if serving is None:
        _set_condition(
            p, c.UNKNOWN, "NoServingRevision", "no revision serves yet: nothing to check for drift"
        )
        return None
    problem = window_problem(p.ld)
    if problem is not None:
        _set_condition(p, c.UNKNOWN, c.INVALID_SPEC, problem)
        return None
    beyond = retention_problem(p.ld, p.obs.prometheus_retention)
    if beyond is not None:
        # Never a verdict from a window Prometheus no longer holds; looked at again next interval
        # (the retention may grow, or the spec change).
        _set_condition(p, c.UNKNOWN, c.BEYOND_RETENTION, beyond)
        old = dict(p.old_status.get("drift") or {})
        if old.get("signals"):
            # No verdict of an earlier check stands for one this check cannot make.
            p.fields["drift"] = cast(DriftStatusDict, {**old, "signals": []})
        return parse_duration(spec.interval)
    check = _start(p, spec, serving)
    results = p.obs.drift
    # The shell measured for the revision that served when the pass began; a new one starts over.
    if results is not None and p.old_status.get("servingRevision") == serving:
        _traffic(check, results)
        _feedback(check, results)
        _prompts(check, results)
        check.drift["lastCheckTime"] = format_timestamp(p.now)
    _quality(check)
    _publish(check)
    return _next_check(check)


def _start(p: Pass, spec: DriftSpec, serving: str) -> _Check:
    old: dict[str, Any] = dict(p.old_status.get("drift") or {})
    same = old.get("revision") == serving
    drift: dict[str, Any] = {
        "revision": serving,
        "lastCheckTime": old.get("lastCheckTime") if same else None,
        "reference": old.get("reference") if same else None,
        "quality": old.get("quality") if same else None,
        "promptsReference": old.get("promptsReference") if same else None,
    }
    verdicts = {str(s["signal"]): dict(s) for s in old.get("signals") or []} if same else {}
    wanted = (
        set(spec.traffic.signals)
        | ({QUALITY} if spec.quality else set())
        | ({FEEDBACK} if spec.feedback else set())
        | ({PROMPTS} if spec.prompts else set())
    )
    verdicts = {k: v for k, v in verdicts.items() if k in wanted}
    check = _Check(p, spec, serving, drift, verdicts)
    if spec.traffic.reference.mode == "Promotion":
        _reference_for(check)
    else:
        drift["reference"] = None
    if spec.prompts is None:
        drift["promptsReference"] = None
    elif not drift["promptsReference"]:
        drift["promptsReference"] = _new_prompts_reference(
            check, p.now, f"the first window of serving of revision {serving}"
        )
    # Built as plain JSON by this stage's helpers; its keys are DriftStatusDict's.
    p.fields["drift"] = cast(DriftStatusDict, drift)
    return check


def _new_reference(check: _Check, end: dt.datetime, message: str) -> dict[str, Any]:
    window = dt.timedelta(seconds=parse_duration(check.spec.window))
    return {
        "revision": check.serving,
        "start": format_timestamp(end - window),
        "end": format_timestamp(end),
        "histograms": [],
        "message": message,
    }


def _gone(ref: Mapping[str, Any], spec: DriftSpec, now: dt.datetime, retention: float | None) -> bool:
    """A reference window not read yet that Prometheus may no longer hold whole: it started more
    than its retention ago, plus one interval (a reference is read within an interval of its end,
    so only a pass that came late, the operator down, say, finds it gone)."""
    start = parse_status_timestamp(ref.get("start"))
    if retention is None or start is None or ref.get("histograms"):
        return False
    return (now - start).total_seconds() > retention + parse_duration(spec.interval)


def _reference_for(check: _Check) -> None:
    """Start collecting a reference when there is none for the serving revision and signals, or
    when the one being collected is no longer in Prometheus (see _gone)."""
    ref = check.drift.get("reference")
    signals = set(check.spec.traffic.signals)
    window = dt.timedelta(seconds=parse_duration(check.spec.window))
    retention = check.p.obs.prometheus_retention
    if not ref or ref.get("revision") != check.serving:
        check.drift["reference"] = _new_reference(
            check, check.p.now + window, f"the first window of serving of revision {check.serving}"
        )
    elif _gone(ref, check.spec, check.p.now, retention):
        assert retention is not None
        check.drift["reference"] = _new_reference(
            check,
            check.p.now + window,
            f"the reference window from {ref.get('start')} is older than Prometheus keeps "
            f"({format_duration(retention)}) and was never read: collecting a new one",
        )
    elif ref.get("histograms") and _signals_of(ref) != signals:
        check.drift["reference"] = _new_reference(
            check, check.p.now + window, "spec.drift.traffic.signals changed: collecting a new reference"
        )


# --------------------------------------------------------------------------------------- traffic


def _window(start: dt.datetime, end: dt.datetime) -> dict[str, str]:
    return {"start": format_timestamp(start), "end": format_timestamp(end)}


def _traffic(check: _Check, results: Mapping[str, Any]) -> None:
    spec, now = check.spec, check.p.now
    traffic = spec.traffic
    window = dt.timedelta(seconds=parse_duration(spec.window))
    current_window = _window(now - window, now)
    if traffic.reference.mode == "Promotion":
        _freeze_reference(check, results)
    for signal in traffic.signals:
        current = results.get(f"{CURRENT}/{signal}")
        reference, ref_window, unknown = _reference_buckets(check, signal, results)
        if unknown is not None:
            _record(check, signal, unknown, current=current_window, reference=ref_window)
            continue
        assert reference is not None
        buckets = _buckets(current)
        if isinstance(buckets, tuple):
            reason, message = buckets
            _unknown(
                check, signal, reason, f"{signal}: current window: {message}", current_window, ref_window
            )
            continue
        try:
            verdict = compare(
                signal,
                reference,
                buckets,
                psi_threshold=traffic.psi,
                ks_threshold=traffic.ks,
                min_samples=traffic.min_samples,
                bins=traffic.bins,
            )
        except EdgesDiffer as exc:
            _edges_changed(check, signal, str(exc), current_window, ref_window)
            continue
        reason = c.INSUFFICIENT_SAMPLES if verdict.verdict == Verdict.UNKNOWN else ""
        _record(check, signal, _entry(verdict, reason), current=current_window, reference=ref_window)


def _buckets(result: Any) -> Buckets | tuple[str, str]:
    """The result as Buckets, or (reason, message) for why there are none."""
    if isinstance(result, Vector):
        try:
            return from_cumulative(result.values)
        except ValueError as exc:
            return c.OBSERVATION_FAILED, f"not a histogram: {exc}"
    if isinstance(result, NoData):
        return c.INSUFFICIENT_SAMPLES, f"no requests ({result.reason})"
    if isinstance(result, Error):
        return c.OBSERVATION_FAILED, result.message
    return c.OBSERVATION_FAILED, "not measured"


def _reference_buckets(
    check: _Check, signal: str, results: Mapping[str, Any]
) -> tuple[Buckets | None, dict[str, str] | None, dict[str, Any] | None]:
    """(reference buckets, reference window, None) or (None, window, the Unknown entry)."""
    traffic = check.spec.traffic
    if traffic.reference.mode == "Offset":
        window = dt.timedelta(seconds=parse_duration(check.spec.window))
        end = check.p.now - dt.timedelta(seconds=parse_duration(traffic.reference.offset))
        ref_window: dict[str, str] | None = _window(end - window, end)
        buckets = _buckets(results.get(f"{REFERENCE}/{signal}"))
        if isinstance(buckets, tuple):
            reason, message = buckets
            return None, ref_window, _unknown_entry(signal, reason, f"{signal}: reference window: {message}")
        return buckets, ref_window, None
    ref = check.drift.get("reference") or {}
    ref_window = {"start": str(ref.get("start")), "end": str(ref.get("end"))} if ref else None
    for h in ref.get("histograms") or []:
        if h.get("signal") == signal:
            return Buckets(tuple(h["edges"]), tuple(h["counts"])), ref_window, None
    why = (
        f"{signal}: collecting the reference ({ref.get('message') or 'first window of serving'}) "
        f"until {ref.get('end')}, with at least {traffic.min_samples} requests"
    )
    return None, ref_window, _unknown_entry(signal, c.COLLECTING_REFERENCE, why)


def _freeze_reference(check: _Check, results: Mapping[str, Any]) -> None:
    """Freeze the reference from this pass's reference queries, if they were due and suffice."""
    ref = check.drift.get("reference") or {}
    traffic = check.spec.traffic
    keys = [f"{REFERENCE}/{s}" for s in traffic.signals]
    if ref.get("histograms") or not all(k in results for k in keys):
        return
    histograms: list[dict[str, Any]] = []
    short: list[str] = []
    for signal, key in zip(traffic.signals, keys, strict=True):
        buckets = _buckets(results[key])
        if isinstance(buckets, tuple):
            if buckets[0] == c.OBSERVATION_FAILED:
                return  # ask again at the next check
            short.append(f"{signal}: no requests")
            continue
        if len(buckets.edges) > REFERENCE_EDGES_LIMIT:
            # status.drift.reference is bounded; an engine with finer buckets needs them merged first.
            why = f"{signal} has {len(buckets.edges)} buckets, more than {REFERENCE_EDGES_LIMIT} can be kept"
            check.drift["reference"] = {**ref, "message": why}
            return
        if buckets.total < traffic.min_samples:
            short.append(f"{signal}: {buckets.total:.0f} requests")
        histograms.append(
            {
                "signal": signal,
                "edges": list(buckets.edges),
                "counts": [round(x, 3) for x in buckets.counts],
            }
        )
    if short:
        # Too quiet to be a reference: the next window ending at a check gets its chance.
        interval = dt.timedelta(seconds=parse_duration(check.spec.interval))
        msg = f"the window up to {ref.get('end')} had too few requests ({', '.join(short)}; minSamples {traffic.min_samples})"
        check.drift["reference"] = _new_reference(check, check.p.now + interval, msg)
        return
    check.drift["reference"] = {**ref, "histograms": histograms, "message": ""}
    check.p.record(
        "DriftReference",
        check.serving,
        "ReferenceFrozen",
        f"drift reference frozen: {ref.get('start')} to {ref.get('end')}, "
        + ", ".join(f"{h['signal']} {sum(h['counts']):.0f} requests" for h in histograms),
    )


def _edges_changed(
    check: _Check, signal: str, why: str, current: dict[str, str], reference: dict[str, str] | None
) -> None:
    if check.spec.traffic.reference.mode == "Promotion":
        window = dt.timedelta(seconds=parse_duration(check.spec.window))
        message = f"{why}: the token limits changed? collecting a new reference"
        check.drift["reference"] = _new_reference(check, check.p.now + window, message)
        check.p.record("DriftReference", check.serving, "ReferenceReset", message[:_MESSAGE_LIMIT])
        _unknown(check, signal, c.COLLECTING_REFERENCE, message, current, reference)
    else:
        _unknown(
            check,
            signal,
            c.INSUFFICIENT_SAMPLES,
            f"{why}: not comparable with the window offset back",
            current,
            reference,
        )


# -------------------------------------------------------------------------- feedback and quality


def _feedback(check: _Check, results: Mapping[str, Any]) -> None:
    spec = check.spec.feedback
    if spec is None:
        return
    now = check.p.now
    window = dt.timedelta(seconds=parse_duration(check.spec.window))
    current = _window(now - window, now)
    negative, total = results.get(FEEDBACK_NEGATIVE), results.get(FEEDBACK_TOTAL)
    for result in (total, negative):
        if isinstance(result, Error):
            _unknown(check, FEEDBACK, c.OBSERVATION_FAILED, f"feedback: {result.message}", current, None)
            return
    if not isinstance(total, Value):
        message = (
            f"feedback: no {FEEDBACK_METRIC} series for revision {check.serving} in the window: nobody "
            "rated its answers yet, or the gateway is off (spec.gateway.enabled) or not scraped "
            "(spec.monitoring.podMonitor)"
        )
        _unknown(check, FEEDBACK, c.NO_FEEDBACK_METRIC, message, current, None)
        return
    bad = negative.value if isinstance(negative, Value) else 0.0
    verdict = feedback(bad, total.value, max_ratio=spec.max_negative_ratio, min_samples=spec.min_samples)
    reason = c.INSUFFICIENT_SAMPLES if verdict.verdict == Verdict.UNKNOWN else ""
    _record(check, FEEDBACK, _entry(verdict, reason), current=current, reference=None)


def _new_prompts_reference(check: _Check, start: dt.datetime, message: str) -> dict[str, Any]:
    window = dt.timedelta(seconds=parse_duration(check.spec.window))
    return {"revision": check.serving, **_window(start, start + window), "message": message}


def _terms(result: Any, which: str) -> TermCounts | tuple[str, str]:
    """The store's answer for one window, or (reason, message) for why there is none."""
    if isinstance(result, TermCounts):
        return result
    if isinstance(result, Error):
        return c.OBSERVATION_FAILED, f"prompts: {which}: capture store: {result.message}"
    return c.OBSERVATION_FAILED, f"prompts: {which}: not measured"


def _prompts(check: _Check, results: Mapping[str, Any]) -> None:
    """Freeze the prompts reference window once it has enough prompts, then compare the current
    window's term histogram with the reference window's (both computed by the capture store)."""
    spec = check.spec.prompts
    if spec is None:
        return
    now = check.p.now
    window = dt.timedelta(seconds=parse_duration(check.spec.window))
    current_window = _window(now - window, now)
    ref = dict(check.drift.get("promptsReference") or {})
    ref_window = {"start": str(ref.get("start")), "end": str(ref.get("end"))}
    reference = results.get(PROMPTS_REFERENCE)
    if reference is None:
        why = (
            f"prompts: collecting the reference ({ref.get('message') or 'first window of serving'}) "
            f"until {ref.get('end')}, with at least {spec.min_samples} captured prompts"
        )
        _unknown(check, PROMPTS, c.COLLECTING_REFERENCE, why, current_window, ref_window)
        return
    ref_terms = _terms(reference, "reference window")
    if isinstance(ref_terms, tuple):
        _unknown(check, PROMPTS, *ref_terms, current_window, ref_window)
        return
    if ref.get("prompts") is not None and ref_terms.prompts < spec.min_samples:
        # Frozen with enough prompts, fewer now: retention (spec.gateway.capture.retention)
        # deleted its days. A new reference starts from now.
        msg = (
            f"the store now holds {ref_terms.prompts} of the {ref['prompts']} prompts of the reference "
            f"window (deleted by retention?): collecting a new reference"
        )
        check.drift["promptsReference"] = _new_prompts_reference(check, now, msg)
        check.p.record("DriftReference", check.serving, "ReferenceReset", msg)
        _unknown(check, PROMPTS, c.COLLECTING_REFERENCE, f"prompts: {msg}", current_window, ref_window)
        return
    if ref.get("prompts") is None:
        if ref_terms.prompts < spec.min_samples:
            # Too quiet to be a reference: the window ending at the next check gets its chance.
            interval = dt.timedelta(seconds=parse_duration(check.spec.interval))
            msg = (
                f"the window up to {ref.get('end')} had {ref_terms.prompts} captured prompts "
                f"(minSamples {spec.min_samples})"
            )
            check.drift["promptsReference"] = _new_prompts_reference(check, now + interval - window, msg)
            _unknown(check, PROMPTS, c.COLLECTING_REFERENCE, f"prompts: {msg}", current_window, ref_window)
            return
        ref = {**ref, "prompts": ref_terms.prompts, "message": ""}
        check.drift["promptsReference"] = ref
        check.p.record(
            "DriftReference",
            check.serving,
            "ReferenceFrozen",
            f"prompts reference frozen: {ref.get('start')} to {ref.get('end')}, {ref_terms.prompts} captured prompts",
        )
    current = _terms(results.get(PROMPTS_CURRENT), "current window")
    if isinstance(current, tuple):
        _unknown(check, PROMPTS, *current, current_window, ref_window)
        return
    try:
        verdict = compare_terms(
            ref_terms, current, psi_threshold=spec.psi, min_samples=spec.min_samples, bins=spec.bins
        )
    except EdgesDiffer as exc:
        _unknown(check, PROMPTS, c.OBSERVATION_FAILED, f"prompts: {exc}", current_window, ref_window)
        return
    reason = c.INSUFFICIENT_SAMPLES if verdict.verdict == Verdict.UNKNOWN else ""
    _record(check, PROMPTS, _entry(verdict, reason), current=current_window, reference=ref_window)


def _higher_is_better(check: _Check, metric: str) -> bool:
    """A threshold with only a max says lower is better; otherwise the metric's usual reading."""
    ev = check.p.ld.spec.evaluation
    for t in ev.thresholds if ev else ():
        if t.metric == metric and (t.min is None) != (t.max is None):
            return t.min is not None
    return HIGHER_IS_BETTER.get(metric, True)


def _score(evaluation: Mapping[str, Any] | None, metric: str) -> float | None:
    for m in (evaluation or {}).get("metrics") or []:
        if m.get("metric") == metric and m.get("value") is not None:
            return float(m["value"])
    return None


def _quality(check: _Check) -> None:
    """Compare each new scheduled run of the serving revision with the score of its gate."""
    spec = check.spec.quality
    if spec is None:
        check.drift["quality"] = None
        return
    p = check.p
    gate = p.fields.get("evaluation", p.old_status.get("evaluation")) or {}
    scheduled = p.fields.get("scheduledEvaluation", p.old_status.get("scheduledEvaluation")) or {}
    book = dict(check.drift.get("quality") or {"consecutiveDrops": 0})
    gate_score = _score(gate, spec.metric) if gate.get("revision") == check.serving else None
    if gate_score is None:
        # A retrained candidate's gate replaces status.evaluation; status.serving keeps the scores.
        kept = p.old_status.get("serving") or {}
        gate_score = (
            _score({"metrics": kept.get("scores")}, spec.metric)
            if kept.get("revision") == check.serving
            else None
        )
    if gate_score is None:
        why = f"quality: no gate score of {spec.metric} for revision {check.serving} to compare with"
        _record(check, QUALITY, _unknown_entry(QUALITY, "NoGateScore", why))
        check.drift["quality"] = book
        return
    job = scheduled.get("job")
    run_score = _score(scheduled, spec.metric) if scheduled.get("revision") == check.serving else None
    if job and job != book.get("lastJob") and scheduled.get("revision") == check.serving:
        book["lastJob"] = job
        if run_score is not None:
            book["runs"] = int(book.get("runs", 0)) + 1
            drop = quality_drop(gate_score, run_score, higher_is_better=_higher_is_better(check, spec.metric))
            book["lastDrop"] = drop
            book["lastScore"] = run_score
            book["consecutiveDrops"] = int(book.get("consecutiveDrops", 0)) + 1 if drop > spec.max_drop else 0
    check.drift["quality"] = book
    if not book.get("runs"):
        why = f"quality: no scheduled evaluation of revision {check.serving} has scored {spec.metric} yet"
        _record(check, QUALITY, _unknown_entry(QUALITY, "NoScheduledEvaluation", why))
        return
    _record(check, QUALITY, _quality_entry(spec, gate_score, book))


def _quality_entry(spec: QualityDrift, gate_score: float, book: Mapping[str, Any]) -> dict[str, Any]:
    drops, drop = int(book["consecutiveDrops"]), float(book["lastDrop"])
    drifted = drops >= spec.consecutive
    message = (
        f"quality: {spec.metric} {float(book['lastScore']):.4g} against {gate_score:.4g} at the gate "
        f"(drop {drop:.4g}, allowed {spec.max_drop:g}); {drops} run(s) in a row above the allowed drop, "
        f"{spec.consecutive} make drift"
    )
    return {
        "signal": QUALITY,
        "verdict": (Verdict.DRIFTED if drifted else Verdict.NO_DRIFT).value,
        "reason": c.EVAL_SCORE_DROPPED if drifted else "",
        "value": round(drop, 6),
        "threshold": spec.max_drop,
        "samples": float(book.get("runs", 0)),
        "minSamples": 1,
        "message": message,
    }


# -------------------------------------------------------------------------------------- verdicts


def _entry(v: SignalVerdict, reason: str = "") -> dict[str, Any]:
    out = {
        "signal": v.signal,
        "verdict": v.verdict.value,
        "reason": reason,
        "value": None if v.value is None else round(v.value, 6),
        "threshold": v.threshold,
        "ks": None if v.ks is None else round(v.ks, 6),
        "ksThreshold": v.ks_threshold,
        "samples": None if v.samples is None else round(v.samples, 1),
        "minSamples": v.min_samples,
        "message": v.message[:_MESSAGE_LIMIT],
    }
    return {k: x for k, x in out.items() if x is not None}


def _unknown_entry(signal: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "signal": signal,
        "verdict": Verdict.UNKNOWN.value,
        "reason": reason,
        "message": message[:_MESSAGE_LIMIT],
    }


def _unknown(
    check: _Check,
    signal: str,
    reason: str,
    message: str,
    current: dict[str, str] | None,
    reference: dict[str, str] | None,
) -> None:
    _record(check, signal, _unknown_entry(signal, reason, message), current=current, reference=reference)


def _record(
    check: _Check,
    signal: str,
    entry: dict[str, Any],
    *,
    current: dict[str, str] | None = None,
    reference: dict[str, str] | None = None,
) -> None:
    windows = {"current": current, "reference": reference}
    check.verdicts[signal] = {**entry, **{k: v for k, v in windows.items() if v is not None}}


def _order(spec: DriftSpec) -> list[str]:
    return [
        *spec.traffic.signals,
        *([QUALITY] if spec.quality else []),
        *([FEEDBACK] if spec.feedback else []),
        *([PROMPTS] if spec.prompts else []),
    ]


def _publish(check: _Check) -> None:
    """status.drift.signals in spec order, the Drifted condition, and an Event when it flips."""
    p = check.p
    for signal in _order(check.spec):
        if signal not in check.verdicts:  # never measured yet (before the first check)
            _record(check, signal, _unknown_entry(signal, "NotChecked", f"{signal}: not checked yet"))
    signals = [check.verdicts[s] for s in _order(check.spec)]
    check.drift["signals"] = signals
    # Absent, not null: the stored status has no nulls, and a pass with nothing new must compare equal.
    for key in [k for k, v in check.drift.items() if v is None]:
        del check.drift[key]
    status, reason, message = _condition(signals)
    _set_condition(p, status, reason, message, check.serving)


def _condition(signals: Sequence[Mapping[str, Any]]) -> tuple[str, str, str]:
    drifted = [s for s in signals if s["verdict"] == Verdict.DRIFTED.value]
    unknown = [s for s in signals if s["verdict"] == Verdict.UNKNOWN.value]
    if drifted:
        only_quality = all(s["signal"] == QUALITY for s in drifted)
        reason = c.EVAL_SCORE_DROPPED if only_quality else c.DRIFT_DETECTED
        return c.TRUE, reason, _joined(drifted + unknown)
    if unknown:
        return (
            c.UNKNOWN,
            str(unknown[0].get("reason") or c.OBSERVATION_FAILED),
            _joined(unknown + [s for s in signals if s not in unknown]),
        )
    return c.FALSE, c.NO_DRIFT, _joined(signals)


def _joined(signals: Sequence[Mapping[str, Any]]) -> str:
    return "; ".join(str(s.get("message") or s["signal"]) for s in signals)[:_MESSAGE_LIMIT]


def _set_condition(p: Pass, status: str, reason: str, message: str, revision: str | None = None) -> None:
    old = find(p.old_status.get("conditions") or [], c.DRIFTED)
    p.cond(c.DRIFTED, status, reason, message)
    if old is None or old.get("status") == status:
        return
    p.events.append(Event("Warning" if status == c.TRUE else "Normal", reason, message))
    # The history keeps the decisions that matter (drift found, drift gone), not every Unknown.
    if status == c.TRUE:
        p.record("DriftDetected", revision, reason, message)
    elif old.get("status") == c.TRUE:
        p.record("DriftCleared", revision, reason, message)


def _next_check(check: _Check) -> float:
    interval = parse_duration(check.spec.interval)
    last = parse_status_timestamp(check.drift.get("lastCheckTime"))
    if last is None:
        return 1.0
    return max(1.0, interval - (check.p.now - last).total_seconds())
