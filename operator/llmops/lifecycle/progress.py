"""Download progress while a revision is Caching: when to ask the download Job, and what its
answer becomes in status.

The download Job's ``llmops download`` answers ``GET /progress`` on its container port
``progress`` (llmops.contracts). The reconciler asks it when ``progress_request`` says a reading
is due, at most every ``PROGRESS_INTERVAL_SECONDS``: each new reading is a status write (and a
watch event for whoever follows the LLMDeployment), and a pass that follows our own status
write must not ask again, or the pass, the write and its event would chase each other. The
reading lands in ``Observations.download_progress``; ``download_status`` turns it into
``status.download`` (carried unchanged between readings, so that those passes write nothing).
Pure: no I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from llmops.api.resource import LLMDeployment
from llmops.api.status import DownloadStatusDict
from llmops.contracts import DOWNLOAD_PROGRESS_PORT_NAME, DownloadProgress, format_timestamp, parse_timestamp
from llmops.lifecycle.diagnose import job_pods, job_state
from llmops.lifecycle.observations import Observations
from llmops.render import download_job_name

__all__ = [
    "PROGRESS_INTERVAL_SECONDS",
    "ProgressTarget",
    "describe",
    "download_status",
    "progress_due_in",
    "progress_request",
    "progress_target",
]

PROGRESS_INTERVAL_SECONDS = 10.0
"""How often the download Job is asked how far it is while the revision is Caching."""


@dataclass(frozen=True)
class ProgressTarget:
    """Where a running download answers ``GET /progress``: its pod's IP and progress port."""

    host: str
    port: int


def progress_target(obs: Observations, job_name: str) -> ProgressTarget | None:
    """The running pod of the download Job whose container declares the progress port and is
    ready (its readiness probe is the endpoint itself), if any. A Job rendered before the port
    existed has none, and is not asked."""
    for pod in job_pods(obs, job_name):
        status = pod.get("status") or {}
        ip = status.get("podIP")
        if status.get("phase") != "Running" or not ip:
            continue
        ready = {cs.get("name") for cs in status.get("containerStatuses") or [] if cs.get("ready")}
        for container in (pod.get("spec") or {}).get("containers") or []:
            if container.get("name") not in ready:
                continue
            for port in container.get("ports") or []:
                if port.get("name") == DOWNLOAD_PROGRESS_PORT_NAME and port.get("containerPort"):
                    return ProgressTarget(str(ip), int(port["containerPort"]))
    return None


def _current(status: Mapping[str, Any], revision: str) -> Mapping[str, Any] | None:
    """status.download when it is about ``revision`` (a reading of another revision is stale)."""
    download = status.get("download") or {}
    return download if download.get("revision") == revision else None


def progress_due_in(status: Mapping[str, Any], revision: str, now: dt.datetime) -> float:
    """Seconds until the download of ``revision`` should be asked again (<= 0: now)."""
    last = (_current(status, revision) or {}).get("time")
    if not last:
        return 0.0
    return PROGRESS_INTERVAL_SECONDS - (now - parse_timestamp(str(last))).total_seconds()


def _running_download(ld: LLMDeployment, obs: Observations) -> str | None:
    """The name of the desired revision's download Job while it runs (None otherwise)."""
    spec = ld.spec
    if not (spec.cache.enabled and spec.cache.download.enabled):
        return None
    name = download_job_name(ld.name, spec.model.id, spec.model.revision)
    state, _, _ = job_state(obs.child("Job", name))
    return name if state == "Running" else None


def progress_request(
    body: Mapping[str, Any], ld: LLMDeployment | None, obs: Observations, now: dt.datetime
) -> ProgressTarget | None:
    """The download pod to ask in this pass: the desired revision's download Job runs, its pod
    declares the progress port, and the last reading is PROGRESS_INTERVAL_SECONDS old."""
    if ld is None or (job := _running_download(ld, obs)) is None:
        return None
    target = progress_target(obs, job)
    if target is None or progress_due_in(body.get("status") or {}, ld.spec.model.revision, now) > 0:
        return None
    return target


def download_status(
    old_status: Mapping[str, Any], revision: str, reading: DownloadProgress | str | None, now: dt.datetime
) -> DownloadStatusDict | None:
    """status.download for a revision being downloaded: from this pass's ``reading`` (a
    DownloadProgress, or why the Job could not be asked), else the last one, unchanged."""
    # The stored status was validated against the CRD, whose schema DownloadStatusDict mirrors.
    old = cast(DownloadStatusDict | None, _current(old_status, revision))
    if reading is None:
        return DownloadStatusDict(**old) if old else None
    if isinstance(reading, str):
        kept = DownloadStatusDict(**old) if old else DownloadStatusDict(revision=revision, progress="")
        kept["time"], kept["error"] = format_timestamp(now), reading[:200]
        return kept
    percent = eta = None
    if reading.bytes_total:
        percent = min(100, math.floor(100 * reading.bytes_done / reading.bytes_total))
        if reading.bytes_per_second:
            eta = math.ceil(max(0, reading.bytes_total - reading.bytes_done) / reading.bytes_per_second)
    out = DownloadStatusDict(
        revision=revision,
        filesDone=reading.files_done,
        filesTotal=reading.files_total,
        bytesDone=reading.bytes_done,
        bytesTotal=reading.bytes_total,
        percent=percent,
        bytesPerSecond=None if reading.bytes_per_second is None else round(reading.bytes_per_second),
        etaSeconds=eta,
        time=format_timestamp(now),
    )
    out["progress"] = _summary(out)
    return out


def _summary(d: DownloadStatusDict) -> str:
    """A few words for the printer column: "42% of 3.2 GiB, 48 MiB/s, 40s left"."""
    done, total, rate, eta = (
        d.get("bytesDone") or 0,
        d.get("bytesTotal"),
        d.get("bytesPerSecond"),
        d.get("etaSeconds"),
    )
    if not total and not done:
        return "starting"  # the Hub's file listing is not read yet
    parts = [f"{d.get('percent')}% of {size(total)}" if total else f"{size(done)} so far"]
    if rate:
        parts.append(f"{size(rate)}/s")
    if eta is not None:
        parts.append(f"{duration(eta)} left")
    return ", ".join(parts)


def describe(d: Mapping[str, Any] | None) -> str:
    """The reading in a sentence's tail, for condition messages ("" without one)."""
    if not d:
        return ""
    text = ""
    if d.get("filesTotal"):
        text = f"{d.get('filesDone') or 0}/{d['filesTotal']} files"
    if d.get("progress"):
        text = f"{text}, {d['progress']}" if text else str(d["progress"])
    if d.get("error"):
        text = (
            f"{text} (progress not readable: {d['error']})"
            if text
            else f"progress not readable: {d['error']}"
        )
    return text


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def size(n: float | None) -> str:
    """Bytes in binary units: 512 B, 48 MiB, 3.2 GiB."""
    value, unit = float(n or 0), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    if unit == 0 or value >= 100:
        return f"{value:.0f} {_UNITS[unit]}"
    return f"{value:.1f} {_UNITS[unit]}".replace(".0 ", " ")


def duration(seconds: int) -> str:
    """40s, 3m20s, 2h05m."""
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
