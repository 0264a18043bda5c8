"""Download progress in status while a revision is Caching (issue 10, point 8): when ``plan()``
asks for a reading of the download Job's ``/progress``, what a reading (or a failed one) becomes
in ``status.download`` and the conditions, and that passes between readings write nothing.

Driven through ``plan()`` with the applied download Job fed back as an observation, and its pod
given the status a test needs; the answers are llmops.contracts.DownloadProgress values, as the
reconciler's adapter (llmops.jobprogress) returns them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from llmops.api import conditions as c
from llmops.contracts import DownloadProgress
from llmops.lifecycle.diagnose import JOB_NAME_LABEL
from llmops.lifecycle.observations import Observations
from llmops.lifecycle.plan import Plan
from llmops.lifecycle.progress import (
    PROGRESS_INTERVAL_SECONDS,
    ProgressTarget,
    duration,
    progress_request,
    size,
)
from testkit.planning import SHA_A, SHA_B, T0, body, children_of, cond, job_done, plan, with_status

GIB = 1024**3


def _download_job(p: Plan) -> dict[str, Any]:
    return next(o for o in p.apply if o["kind"] == "Job")


def _pod(
    job: dict[str, Any], phase: str = "Running", ip: str | None = "10.0.0.7", ready: bool = True
) -> dict[str, Any]:
    """The Job's pod as the kubelet reports it (its spec from the Job's template)."""
    template = job["spec"]["template"]
    labels = {**template["metadata"]["labels"], JOB_NAME_LABEL: job["metadata"]["name"]}
    containers = [{"name": c["name"], "ready": ready} for c in template["spec"]["containers"]]
    status: dict[str, Any] = {"phase": phase, "containerStatuses": containers}
    if ip:
        status["podIP"] = ip
    return {"metadata": {"name": "dl-pod", "labels": labels}, "spec": template["spec"], "status": status}


def _reading(done: int, total: int | None = 4 * GIB, rate: float | None = 50 * 1024**2) -> DownloadProgress:
    return DownloadProgress(
        files_done=1,
        files_total=4,
        bytes_done=done,
        bytes_total=total,
        bytes_per_second=rate,
        elapsed_seconds=30.0,
    )


def _downloading() -> tuple[dict[str, Any], Observations]:
    """A fresh LLMDeployment after its first pass: the download Job exists and its pod runs."""
    b = body()
    first = plan(b, Observations(), T0)
    children = children_of(first)
    children[("PersistentVolumeClaim", "m-model-cache")]["status"] = {"phase": "Bound"}
    obs = Observations(children=children, pods=[_pod(_download_job(first))])
    return with_status(first, b), obs


def test_a_reading_is_asked_of_the_running_pod_at_its_declared_port() -> None:
    b, obs = _downloading()
    assert progress_request(b, _ld(b), obs, T0) == ProgressTarget("10.0.0.7", 8090)


@pytest.mark.parametrize(
    ("phase", "ip", "ready"),
    [
        ("Pending", None, False),
        ("Running", None, True),
        ("Running", "10.0.0.7", False),  # started, but its endpoint does not answer yet
        ("Succeeded", "10.0.0.7", False),
    ],
)
def test_no_reading_without_a_running_ready_pod_with_an_ip(phase: str, ip: str | None, ready: bool) -> None:
    b, obs = _downloading()
    pod = _pod(_download_job_of(obs), phase=phase, ip=ip, ready=ready)
    assert progress_request(b, _ld(b), Observations(children=obs.children, pods=[pod]), T0) is None


def test_no_reading_from_a_pod_that_declares_no_progress_port() -> None:
    # A download Job made by an operator version before the endpoint: it is not asked.
    b, obs = _downloading()
    pod = _pod(_download_job_of(obs))
    pod["spec"] = {**pod["spec"], "containers": [{**pod["spec"]["containers"][0], "ports": []}]}
    assert progress_request(b, _ld(b), Observations(children=obs.children, pods=[pod]), T0) is None


def test_a_reading_becomes_status_download_and_the_messages() -> None:
    b, obs = _downloading()
    p = plan(b, _with(obs, _reading(GIB)), T0)
    d = p.status["download"]
    assert d == {
        "revision": SHA_A,
        "filesDone": 1,
        "filesTotal": 4,
        "bytesDone": GIB,
        "bytesTotal": 4 * GIB,
        "percent": 25,
        "bytesPerSecond": 50 * 1024**2,
        "etaSeconds": 62,  # 3 GiB at 50 MiB/s, rounded up
        "time": "2026-11-28T10:00:00Z",
        "progress": "25% of 4 GiB, 50 MiB/s, 1m02s left",
    }
    assert p.status["phase"] == "Caching"
    assert cond(p, c.MODEL_CACHED)["message"] == (
        f"downloading org/model@{SHA_A} into the cache: 1/4 files, 25% of 4 GiB, 50 MiB/s, 1m02s left"
    )
    assert cond(p, c.PROGRESSING)["message"] == (
        f"revision {SHA_A} is in its download stage (25% of 4 GiB, 50 MiB/s, 1m02s left) before it replaces nothing"
    )


def test_between_readings_the_last_one_is_kept_and_nothing_is_written() -> None:
    b, obs = _downloading()
    read = plan(b, _with(obs, _reading(GIB)), T0)
    assert read.status_changed
    b = with_status(read, b)
    # Our own status write brings a pass within a moment: no reading is due, the status stays as it is.
    later = T0 + dt.timedelta(seconds=3)
    assert progress_request(b, _ld(b), obs, later) is None
    quiet = plan(b, obs, later)
    assert not quiet.status_changed and quiet.apply == []
    # ...and asks to be run again when the next reading is due, since no event would bring it.
    assert quiet.requeue_after == pytest.approx(PROGRESS_INTERVAL_SECONDS - 3, abs=1.0)
    due = T0 + dt.timedelta(seconds=PROGRESS_INTERVAL_SECONDS + 1)
    assert progress_request(b, _ld(b), obs, due) == ProgressTarget("10.0.0.7", 8090)
    after = plan(b, _with(obs, _reading(2 * GIB)), due)
    assert after.status["download"]["percent"] == 50


def test_a_failed_reading_keeps_the_numbers_and_says_why() -> None:
    b, obs = _downloading()
    b = with_status(plan(b, _with(obs, _reading(GIB)), T0), b)
    due = T0 + dt.timedelta(seconds=PROGRESS_INTERVAL_SECONDS)
    p = plan(b, _with(obs, "no answer within 2s"), due)
    d = p.status["download"]
    assert (d["percent"], d["error"], d["time"]) == (25, "no answer within 2s", "2026-11-28T10:00:10Z")
    assert cond(p, c.MODEL_CACHED)["message"].endswith("(progress not readable: no answer within 2s)")
    # It is not asked again before the interval has passed either.
    assert progress_request(with_status(p, b), _ld(b), obs, due + dt.timedelta(seconds=1)) is None


def test_without_a_total_the_bytes_so_far() -> None:
    b, obs = _downloading()
    d = plan(b, _with(obs, _reading(300 * 1024**2, total=None, rate=None)), T0).status["download"]
    assert (d["percent"], d["etaSeconds"], d["progress"]) == (None, None, "300 MiB so far")


def test_before_the_listing_it_is_starting() -> None:
    b, obs = _downloading()
    d = plan(b, _with(obs, _reading(0, total=None, rate=None)), T0).status["download"]
    assert d["progress"] == "starting"


def test_cached_revision_drops_the_download_status() -> None:
    b, obs = _downloading()
    b = with_status(plan(b, _with(obs, _reading(GIB)), T0), b)
    children = dict(obs.children)
    job_done(children)
    p = plan(b, Observations(children=children), T0 + dt.timedelta(seconds=30))
    assert cond(p, c.MODEL_CACHED)["status"] == "True"
    assert "download" not in p.status


def test_a_reading_of_another_revision_is_not_shown() -> None:
    b, obs = _downloading()
    b = with_status(plan(b, _with(obs, _reading(GIB)), T0), b)
    b["spec"]["model"]["revision"] = SHA_B  # a new revision: a new Job, its own progress
    b["metadata"]["generation"] = 2
    p = plan(b, obs, T0 + dt.timedelta(seconds=1))
    assert "download" not in p.status
    assert progress_request(b, _ld(b), obs, T0 + dt.timedelta(seconds=1)) is None  # its Job is not made yet


def test_sizes_and_durations_read_well() -> None:
    assert [size(n) for n in (0, 512, 1536, 50 * 1024**2, 3.25 * GIB, 150 * GIB)] == [
        "0 B",
        "512 B",
        "1.5 KiB",
        "50 MiB",
        "3.2 GiB",
        "150 GiB",
    ]
    assert [duration(s) for s in (0, 59, 60, 3599, 3600, 7500)] == [
        "0s",
        "59s",
        "1m00s",
        "59m59s",
        "1h00m",
        "2h05m",
    ]


# ---------------------------------------------------------------------------------- helpers


def _ld(b: dict[str, Any]) -> Any:
    from llmops.api.resource import parse

    return parse(b)


def _download_job_of(obs: Observations) -> dict[str, Any]:
    return dict(next(v for (kind, _), v in obs.children.items() if kind == "Job"))


def _with(obs: Observations, reading: DownloadProgress | str) -> Observations:
    return Observations(children=obs.children, pods=obs.pods, download_progress=reading)
