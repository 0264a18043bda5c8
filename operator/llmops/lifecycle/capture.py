"""The capture stage: the store's children, and whether capture is losing records.

    capture_request (pure: the PromQL to run while capture is on) → the shell runs it
      (Observations.capture) → capture_stage: the store's children (render.capture), the
      CaptureDegraded condition and status.capture

CaptureDegraded is True, first match wins, when:

- StoreUnavailable: the store's Deployment has no ready pod (the gateways queue records, then
  drop them; the message carries the drops of the last window when Prometheus has them);
- StoreFull: the store refused batches in the window for lack of room (maxSize filled by the
  newest day alone, or a full volume);
- RecordsDropped: the gateways dropped records in the window (llmops_capture_dropped_total:
  the queue was full, the store or the sink too slow or down).

It is Unknown (ObservationFailed) when the store is ready but Prometheus cannot say what was
dropped; Unknown (NotScraped) when no gateway has two samples in the window though one has been
ready for longer than a window and a scrape interval (Prometheus does not scrape the pods under
the PodMonitor's labels, or less often than the declared interval: "nothing dropped" would then
only mean "nothing seen"); and False (CaptureHealthy) otherwise. A gateway that never dropped
anything may have no llmops_capture_dropped_total series yet: no series counts as none dropped. With a sink the
store checks fall away and only the drops count. Without capture the condition and
status.capture are absent.

The counts follow the scrape interval the spec declares (spec.monitoring.podMonitor.interval,
which the server's and the store's PodMonitors use): they are read once per interval (no new
sample comes sooner; at least MIN_CHECK_SECONDS apart) over a window of SCRAPES_PER_WINDOW checks,
since increase() needs two samples and four leave room for a missed scrape. At the default 30s
that is a check every 30 s over 2m. A shorter interval clears the condition sooner after an
outage; a longer one does not turn a window of one sample into "nothing dropped".

The counts are evaluated at the last multiple of the check period (PromQL's `@` modifier), not
at `now`: every pass inside one such slot gets the same numbers. Evaluated at `now`, a window
that slides while records are dropped would give new numbers on each pass, each a status write,
and each write an event that starts the next pass within a moment: a hot loop. While capture is
on the pass comes back at the next slot, so the counts follow the traffic.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from llmops.analysis.results import Error, NoData, Result, Value
from llmops.api import conditions as c
from llmops.api.common import format_duration, parse_duration
from llmops.api.constants import PROM_LABEL_DEPLOYMENT
from llmops.api.resource import LLMDeployment
from llmops.api.status import CaptureStatusDict
from llmops.contracts import parse_status_timestamp
from llmops.lifecycle.conditions import find
from llmops.lifecycle.context import Pass
from llmops.lifecycle.observations import MONITORING_API
from llmops.render.capture import (
    capture_deployment,
    capture_network_policy,
    capture_pod_monitor,
    capture_pvc,
    capture_service,
    capture_store_enabled,
    capture_store_name,
)
from llmops.render.gateway import GATEWAY_CONTAINER

__all__ = ["CaptureQuery", "capture_request", "capture_stage", "check_seconds", "window", "window_seconds"]

MIN_CHECK_SECONDS = 10.0
"""A floor on the check period: a pass and four queries per LLMDeployment per scrape of a 1s
interval would load Prometheus for nothing a person reads that fast."""
SCRAPES_PER_WINDOW = 4
DROPPED, WRITTEN, REFUSED, SCRAPED = "dropped", "written", "refused", "scraped"
MIN_SAMPLES = 2
"""increase() needs two samples of a series in the window to count anything."""
DROPPED_METRIC = "llmops_capture_dropped_total"
SCRAPED_METRIC = "llmops_capture_queue_records"
"""A gauge every gateway exports from its start while capture is on: its samples in the window are
the scrapes of that gateway, whether it dropped anything or not."""
WRITTEN_METRIC = "llmops_capture_store_records_written_total"
REFUSED_METRIC = "llmops_capture_store_refused_batches_total"
_ROOM_REASONS = "size_cap|disk_full"


@dataclass(frozen=True)
class CaptureQuery:
    """One number the stage wants: ``key`` in Observations.capture, ``promql`` to get it."""

    key: str
    promql: str


def _selector(ld: LLMDeployment) -> str:
    return f'namespace="{ld.namespace}",{PROM_LABEL_DEPLOYMENT}="{ld.name}"'


def check_seconds(ld: LLMDeployment) -> float:
    """How often the counts are read: once per declared scrape interval, at least 10 s apart."""
    return max(parse_duration(ld.spec.monitoring.pod_monitor.interval), MIN_CHECK_SECONDS)


def window_seconds(ld: LLMDeployment) -> float:
    """The counts' window: short, so that the condition clears soon after drops stop (it stays
    True with RecordsDropped for up to one window after the store returns), and long enough to
    hold several scrapes."""
    return SCRAPES_PER_WINDOW * check_seconds(ld)


def window(ld: LLMDeployment) -> str:
    """The window as PromQL and the status write it."""
    return format_duration(window_seconds(ld))


def slot(now: dt.datetime, every: float) -> float:
    """The Unix time of the last multiple of `every` seconds at or before `now`."""
    return math.floor(now.timestamp() / every) * every


def capture_request(ld: LLMDeployment | None, now: dt.datetime) -> list[CaptureQuery]:
    """The queries to run this pass (none without capture), evaluated at `slot(now)`. Pure."""
    if ld is None or ld.spec.gateway.capture is None or not ld.spec.gateway.enabled:
        return []
    sel, at = _selector(ld), f"[{window(ld)}] @ {slot(now, check_seconds(ld)):.0f}"
    wanted = [
        CaptureQuery(DROPPED, f"sum(increase({DROPPED_METRIC}{{{sel}}}{at}))"),
        # The best-scraped gateway's samples: one gateway scraped enough is enough to read drops.
        CaptureQuery(SCRAPED, f"max(count_over_time({SCRAPED_METRIC}{{{sel}}}{at}))"),
    ]
    if capture_store_enabled(ld):
        wanted += [
            CaptureQuery(WRITTEN, f"sum(increase({WRITTEN_METRIC}{{{sel}}}{at}))"),
            CaptureQuery(REFUSED, f'sum(increase({REFUSED_METRIC}{{{sel},reason=~"{_ROOM_REASONS}"}}{at}))'),
        ]
    return wanted


def _count(result: Result | None) -> int | None:
    """A count from an increase(): NoData (no series) is none; unreadable is None."""
    if isinstance(result, Value):
        return round(result.value)
    if isinstance(result, NoData):
        return 0
    return None


def _store_ready(p: Pass) -> bool:
    dep = p.obs.child("Deployment", capture_store_name(p.ld.name)) or {}
    return int((dep.get("status") or {}).get("readyReplicas") or 0) > 0


def _children(p: Pass) -> None:
    for child in (
        capture_pvc(p.ld),
        capture_deployment(p.ld),
        capture_service(p.ld),
        capture_network_policy(p.ld),
    ):
        p.want(child)
    if MONITORING_API in p.obs.apis:
        p.want(capture_pod_monitor(p.ld))


def capture_stage(p: Pass) -> float | None:
    """The store's children, CaptureDegraded and status.capture; seconds until the next check."""
    capture = p.ld.spec.gateway.capture
    if capture is None or not p.ld.spec.gateway.enabled:
        p.fields["capture"] = None
        p.drop_condition(c.CAPTURE_DEGRADED)
        return None
    if capture_store_enabled(p.ld):
        _children(p)
    measured: Mapping[str, Result] = p.obs.capture or {}
    dropped, written, refused = (_count(measured.get(k)) for k in (DROPPED, WRITTEN, REFUSED))
    store = capture_store_enabled(p.ld)
    ready = _store_ready(p) if store else None
    unseen = _not_scraped(p, measured.get(SCRAPED))
    status, reason, message = _verdict(p, ready, dropped, refused, measured.get(DROPPED), unseen)
    fields = {
        "storeReady": ready,
        "window": window(p.ld),
        "records": written if store else None,
        "dropped": dropped,
        "refused": refused if store else None,
        "message": message,
    }
    # Unknown counts are left out, not null: the apiserver drops nulls from a merge patch, and
    # a status that keeps them would differ from the stored one on every pass (a write each time).
    out = cast(CaptureStatusDict, {k: v for k, v in fields.items() if v is not None})
    p.fields["capture"] = out
    p.cond(c.CAPTURE_DEGRADED, status, reason, message)
    # A second into the next slot, so that its measurement is a new one.
    every = check_seconds(p.ld)
    return slot(p.now, every) + every + 1.0 - p.now.timestamp()


def _gateways_ready_since(p: Pass) -> dt.datetime | None:
    """When the longest-ready pod with a gateway became ready (None: no such pod is ready)."""
    since = []
    for pod in p.obs.pods:
        containers = (pod.get("spec") or {}).get("containers") or []
        ready: Mapping[str, Any] = find((pod.get("status") or {}).get("conditions") or [], "Ready") or {}
        became = parse_status_timestamp(ready.get("lastTransitionTime"))
        if (
            any(x.get("name") == GATEWAY_CONTAINER for x in containers)
            and ready.get("status") == c.TRUE
            and became
        ):
            since.append(became)
    return min(since, default=None)


def _not_scraped(p: Pass, samples: Result | None) -> str | None:
    """The message when Prometheus holds fewer than two samples in the window of every gateway,
    though one has been ready for a window and an interval (the first scrape may come an interval
    after the start); None when the scrape is enough, too young to judge, or unreadable. The
    message leaves the count out: scraped every 45 s against a declared 5s, a window holds one
    sample or none by turns, and a status that said which would be written at every check."""
    every = check_seconds(p.ld)
    since = _gateways_ready_since(p)
    if since is None or slot(p.now, every) - since.timestamp() < window_seconds(p.ld) + every:
        return None
    enough = isinstance(samples, Value) and samples.value >= MIN_SAMPLES
    if enough or not isinstance(samples, Value | NoData):
        return None
    interval = p.ld.spec.monitoring.pod_monitor.interval
    # Without the Prometheus Operator (or with the PodMonitor disabled) there is none to point at.
    monitor = p.ld.name if p.obs.child("PodMonitor", p.ld.name) else None
    how = f"as the PodMonitor {monitor} does" if monitor else "as the PodMonitor the operator renders would"
    return (
        f"Prometheus holds fewer than {MIN_SAMPLES} samples of any gateway's {SCRAPED_METRIC} in the last "
        f"{window(p.ld)}, so drops cannot be counted: scrape the "
        f"pods {how}, with the labels namespace and {PROM_LABEL_DEPLOYMENT}, at least every {interval} "
        "(spec.monitoring.podMonitor.interval: declare the interval Prometheus really uses)"
    )


def _dropped_text(ld: LLMDeployment, dropped: int | None) -> str:
    if dropped is None:
        return "drops unknown (Prometheus unreadable)"
    return f"{dropped} record(s) dropped by the gateways in the last {window(ld)}"


def _verdict(
    p: Pass, ready: bool | None, dropped: int | None, refused: int | None, raw: Any, unseen: str | None
) -> tuple[str, str, str]:
    name = capture_store_name(p.ld.name)
    if ready is False:
        return (
            c.TRUE,
            c.STORE_UNAVAILABLE,
            f"the capture store {name} has no ready pod: gateways queue records and drop them when "
            f"the queue is full; {_dropped_text(p.ld, dropped)}",
        )
    if refused:
        return (
            c.TRUE,
            c.STORE_FULL,
            f"the capture store {name} refused {refused} batch(es) in the last {window(p.ld)} for lack of room "
            "(the newest day alone fills spec.gateway.capture.maxSize, or the volume is full); "
            f"{_dropped_text(p.ld, dropped)}",
        )
    if dropped:
        where = f"the capture store {name}" if ready else "the sink"
        return (
            c.TRUE,
            c.RECORDS_DROPPED,
            f"{_dropped_text(p.ld, dropped)}: their queues were full ({where} too slow or unreachable)",
        )
    if dropped is None:
        detail = raw.message if isinstance(raw, Error) else "not measured"
        return c.UNKNOWN, c.OBSERVATION_FAILED, f"cannot read the gateways' drops from Prometheus: {detail}"
    if unseen:
        return c.UNKNOWN, c.NOT_SCRAPED, unseen
    what = f"the capture store {name} is ready" if ready else "records go to the sink"
    return c.FALSE, c.CAPTURE_HEALTHY, f"{what}; no record dropped in the last {window(p.ld)}"
