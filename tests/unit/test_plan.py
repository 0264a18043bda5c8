"""Table-style tests of ``plan()``: spec + status + observations in, actions + status out.

Built with small fixture builders; the cluster is simulated by feeding the applied objects
back as observations, with whatever status the test wants them to have.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pytest

from llmops.api import conditions as c
from llmops.api.status import PHASE_TRANSITIONS, Phase, phase_change_allowed
from llmops.lifecycle.observations import MONITORING_API, GpuNode, Observations
from llmops.lifecycle.plan import ANNOTATION_MODEL_REVISION, Plan
from testkit.canary_sim import BAD, Sim, start_canary
from testkit.planning import (
    PHASE_CHANGES,
    SHA_A,
    SHA_B,
    T0,
    Children,
    body,
    children_of,
    cond,
    job_done,
    kinds,
    plan,
    pod_without_gpu,
    pods_starting,
    rollout,
    server_pod,
    to_serving,
    with_status,
)


def test_fresh_object_starts_with_cache_and_shared_children_but_no_server() -> None:
    p = plan(body(), Observations(), T0)
    assert kinds(p) == {"PersistentVolumeClaim", "Job", "Service", "PodDisruptionBudget", "NetworkPolicy"}
    assert p.status["phase"] == "Caching"
    assert cond(p, c.MODEL_CACHED)["reason"] == c.DOWNLOADING
    assert cond(p, c.AVAILABLE)["status"] == "False"
    assert p.status["observedGeneration"] == 1
    assert p.status["endpoint"] == "http://m.ns.svc.cluster.local:80"
    # Nothing is due at a time: the download Job's watch events bring the next pass.
    assert p.requeue_after is None


def test_cached_revision_gets_a_stable_deployment_then_serves() -> None:
    b = body()
    p = plan(b, Observations(), T0)
    ch = children_of(p)
    job_done(ch)
    p = plan(with_status(p, b), Observations(children=ch), T0)
    dep = next(o for o in p.apply if o["kind"] == "Deployment")
    assert dep["metadata"]["name"] == "m-stable"
    assert dep["metadata"]["annotations"][ANNOTATION_MODEL_REVISION] == SHA_A
    assert cond(p, c.MODEL_CACHED)["status"] == "True"
    assert p.status["phase"] == "Pending"
    assert cond(p, c.AVAILABLE)["reason"] == c.PODS_NOT_READY

    served, _ = to_serving(body())
    st = served["status"]
    assert st["phase"] == "Serving"
    assert st["servingRevision"] == SHA_A
    assert st["ready"] == "1/1"
    assert cond_of(st, c.AVAILABLE)["status"] == "True"
    assert cond_of(st, c.PROGRESSING)["reason"] == c.ROLLOUT_COMPLETE
    assert [h["action"] for h in st["history"]] == ["Deployed"]


def cond_of(status: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    return next(x for x in status["conditions"] if x["type"] == type_)


def test_a_pass_with_nothing_to_change_changes_nothing() -> None:
    b, ch = to_serving(body())
    p = plan(b, Observations(children=ch), T0 + dt.timedelta(hours=1))
    assert p.apply == [] and p.delete == []
    assert not p.status_changed
    assert p.events == []
    # lastTransitionTime did not move although the clock did.
    assert (
        cond(p, c.AVAILABLE)["lastTransitionTime"] == cond_of(b["status"], c.AVAILABLE)["lastTransitionTime"]
    )


def test_transition_times_are_truncated_to_seconds() -> None:
    p = plan(body(), Observations(), T0)
    assert cond(p, c.AVAILABLE)["lastTransitionTime"] == "2026-11-28T10:00:00Z"


def test_new_revision_keeps_the_old_one_serving_until_it_is_cached() -> None:
    b, ch = to_serving(body())
    b["spec"]["model"]["revision"] = SHA_B
    b["metadata"]["generation"] = 2
    p = plan(b, Observations(children=ch), T0)
    # A new download Job for B; A's stays while A serves (dropping B then downloads nothing
    # again). The Deployment stays on A.
    old_job = next(k[1] for k in ch if k[0] == "Job")
    jobs = [o for o in p.apply if o["kind"] == "Job"]
    assert len(jobs) == 1 and jobs[0]["metadata"]["name"] != old_job
    assert ("Job", old_job) not in p.delete
    assert "Deployment" not in kinds(p)
    assert p.status["servingRevision"] == SHA_A
    assert p.status["desiredRevision"] == SHA_B
    assert cond(p, c.PROGRESSING)["reason"] == c.NEW_REVISION
    # The phase follows the new revision through the pipeline, while A keeps serving.
    assert p.status["phase"] == "Caching"
    assert cond(p, c.AVAILABLE)["status"] == "True"

    ch = children_of(p, ch)
    job_done(ch)
    b = with_status(p, b)
    p = plan(b, Observations(children=ch), T0)
    dep = next(o for o in p.apply if o["kind"] == "Deployment")
    assert dep["metadata"]["annotations"][ANNOTATION_MODEL_REVISION] == SHA_B
    ch = children_of(p, ch)
    rollout(ch, ready=0, updated=0)  # the rolling update is under way
    b = with_status(p, b)
    p = plan(b, Observations(children=ch), T0)
    assert cond(p, c.PROGRESSING)["reason"] == c.ROLLING_UPDATE
    assert p.status["servingRevision"] == SHA_A
    rollout(ch, ready=1)
    p = plan(with_status(p, b), Observations(children=ch), T0)
    assert p.status["servingRevision"] == SHA_B
    assert p.status["history"][-1]["revision"] == SHA_B
    assert any(e.reason == "Deployed" for e in p.events)
    # B serves: A's download Job is no longer wanted.
    assert ("Job", old_job) in plan(with_status(p, b), Observations(children=ch), T0).delete


@pytest.mark.parametrize(
    ("pod_status", "reason", "phase"),
    [
        (
            {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                    }
                ],
            },
            c.INSUFFICIENT_GPU,
            "Pending",
        ),
        (
            {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": "server",
                        "image": "x:1.0.0",
                        "state": {"waiting": {"reason": "ImagePullBackOff"}},
                    }
                ],
            },
            c.IMAGE_PULL_FAILED,
            "Failed",
        ),
        (
            {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": "server",
                        "state": {
                            "waiting": {
                                "reason": "CreateContainerConfigError",
                                "message": 'secret "hf-token" not found',
                            }
                        },
                    }
                ],
            },
            c.SECRET_NOT_FOUND,
            "Failed",
        ),
        (
            {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "server",
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {"terminated": {"reason": "OOMKilled"}},
                    }
                ],
            },
            c.OOM_KILLED,
            "Failed",
        ),
    ],
)
def test_pod_failures_become_conditions_that_say_what_to_do(
    pod_status: dict, reason: str, phase: str
) -> None:
    b, ch = pods_starting(body())
    p = plan(b, Observations(children=ch, pods=[server_pod(**pod_status)]), T0)
    avail = cond(p, c.AVAILABLE)
    assert avail["status"] == "False"
    assert avail["reason"] == reason
    assert p.status["phase"] == phase
    assert "hf-token" in avail["message"] if reason == c.SECRET_NOT_FOUND else True
    if phase == "Failed":
        assert cond(p, c.PROGRESSING)["status"] == "False"
        assert any(e.type == "Warning" and e.reason == reason for e in p.events)


@pytest.mark.parametrize(
    ("job_reason", "message", "expected"),
    [
        (
            "BackoffLimitExceeded",
            '{"error": "repository org/model not found", "reason": "RepositoryNotFound"}',
            c.DOWNLOAD_FAILED,
        ),
        ("DeadlineExceeded", "", c.DOWNLOAD_TIMED_OUT),
    ],
)
def test_download_failures(job_reason: str, message: str, expected: str) -> None:
    b = body()
    p = plan(b, Observations(), T0)
    ch = children_of(p)
    job_done(ch, "Failed", job_reason)
    job_name = next(k[1] for k in ch if k[0] == "Job")
    pod = {
        "metadata": {
            "name": "j",
            "labels": {"llmops.io/deployment": "m", "batch.kubernetes.io/job-name": job_name},
        },
        "status": {"containerStatuses": [{"state": {"terminated": {"exitCode": 1, "message": message}}}]},
    }
    p = plan(with_status(p, b), Observations(children=ch, pods=[pod]), T0)
    mc = cond(p, c.MODEL_CACHED)
    assert mc["reason"] == expected
    assert p.status["phase"] == "Failed"
    assert "Deployment" not in kinds(p)
    if expected == c.DOWNLOAD_FAILED:
        assert "repository org/model not found" in mc["message"]
    else:
        assert "activeDeadlineSeconds" in mc["message"]


def test_a_download_job_whose_pods_are_refused_is_pending_with_the_refusal() -> None:
    """A ResourceQuota (or a LimitRange, a webhook) refusing the download pod was "downloading"
    until activeDeadlineSeconds, then DownloadTimedOut: it says the refusal instead."""
    b = body()
    p = plan(b, Observations(), T0)
    ch = children_of(p)
    ch[("PersistentVolumeClaim", "m-model-cache")]["status"] = {"phase": "Bound"}
    job = next(name for kind, name in ch if kind == "Job")
    ch[("Job", job)]["metadata"]["creationTimestamp"] = T0.strftime("%Y-%m-%dT%H:%M:%SZ")
    quota = f'Error creating: pods "{job}-x" is forbidden: exceeded quota: compute, limited: pods=0'
    b = with_status(p, b)
    waiting = plan(b, Observations(children=ch), T0 + dt.timedelta(seconds=1))
    assert cond(waiting, c.MODEL_CACHED)["reason"] == c.DOWNLOADING
    assert waiting.requeue_after is not None and 8 < waiting.requeue_after <= 9  # at 10 s: read its Events
    p = plan(b, Observations(children=ch, job_refusals={job: quota}), T0 + dt.timedelta(seconds=10))
    cached = cond(p, c.MODEL_CACHED)
    assert (cached["status"], cached["reason"]) == ("False", c.JOB_PODS_REFUSED), cached
    assert quota in cached["message"] and p.status["phase"] == "Failed"


def test_unbound_pvc_is_reported() -> None:
    b = body(cache={"storageClassName": "nope"})
    p = plan(b, Observations(), T0)
    ch = children_of(p)
    ch[("PersistentVolumeClaim", "m-model-cache")]["status"] = {"phase": "Pending"}
    p = plan(with_status(p, b), Observations(children=ch), T0)
    assert cond(p, c.MODEL_CACHED)["reason"] == c.PVC_NOT_BOUND
    assert "nope" in cond(p, c.MODEL_CACHED)["message"]
    assert p.status["phase"] == "Pending"


def test_monitoring_children_only_when_the_prometheus_operator_is_there() -> None:
    p = plan(body(), Observations(apis=frozenset({MONITORING_API})), T0)
    assert {"PodMonitor", "PrometheusRule"} <= kinds(p)
    assert cond(p, "MonitoringConfigured")["status"] == "True"
    p = plan(body(), Observations(), T0)
    assert not {"PodMonitor", "PrometheusRule"} & kinds(p)
    assert cond(p, "MonitoringConfigured")["reason"] == c.MONITORING_CRDS_MISSING


def test_moving_revision_is_a_warning_not_a_failure() -> None:
    b = body(model={"id": "org/model", "revision": "main"})
    p = plan(b, Observations(), T0)
    pinned = cond(p, "RevisionPinned")
    assert pinned["status"] == "False" and pinned["reason"] == c.MOVING_REVISION
    assert "40-hex" in pinned["message"]
    assert cond(p, c.DEGRADED)["status"] == "False"


def test_deprecated_template_names_are_reported_with_their_field_path() -> None:
    rollout = {
        "steps": [{"setWeight": 50}],
        "analysis": {
            "metrics": [
                {"name": "errors", "template": "error-ratio", "thresholdRange": {"max": 0.05}},
                {"name": "latency", "template": "tgi-latency-p95", "compareToStable": {"maxRatio": 1.5}},
            ]
        },
    }
    p = plan(body(rollout=rollout), Observations(), T0)
    deprecated = cond(p, c.DEPRECATED)
    assert (deprecated["status"], deprecated["reason"]) == ("True", c.DEPRECATED_TEMPLATE)
    assert deprecated["message"] == (
        "spec.rollout.analysis.metrics[1].template 'tgi-latency-p95' is deprecated: use 'latency-p95'"
    )
    # once the spec uses the neutral name, the condition goes away
    rollout["analysis"]["metrics"][1]["template"] = "latency-p95"
    b = body(rollout=rollout)
    b["status"] = p.status
    assert not [x for x in plan(b, Observations(), T0).status["conditions"] if x["type"] == c.DEPRECATED]


def test_cache_disabled_goes_straight_to_the_server() -> None:
    p = plan(body(cache={"enabled": False}), Observations(), T0)
    assert "Job" not in kinds(p) and "PersistentVolumeClaim" not in kinds(p)
    assert "Deployment" in kinds(p)
    assert cond(p, c.MODEL_CACHED)["reason"] == c.CACHE_DISABLED


def test_invalid_spec_fails_with_the_field_named() -> None:
    b = body()
    b["spec"]["resources"] = {"gpu": {"count": 0}}
    p = plan(b, Observations(), T0)
    assert p.apply == [] and p.delete == []
    assert p.status["phase"] == "Failed"
    assert cond(p, c.AVAILABLE)["reason"] == c.INVALID_SPEC
    assert "resources.gpu.count" in cond(p, c.AVAILABLE)["message"]


def test_a_capture_pattern_that_does_not_compile_is_named_and_nothing_of_the_spec_is_applied() -> None:
    b, ch = to_serving(body())
    gateway = {
        "capture": {
            "sampleRate": 1.0,
            "redaction": {
                "patterns": [{"name": "OK", "regex": "x+"}, {"name": "ACCOUNT", "regex": "ACC-(\\d+"}]
            },
        }
    }
    b["spec"]["gateway"] = gateway
    b["spec"]["replicas"] = 3  # also changed in the same commit: not applied either
    b["metadata"]["generation"] = 2
    p = plan(b, Observations(children=ch), T0)
    assert p.apply == [] and p.delete == [] and p.patches == []
    for type_, status in ((c.AVAILABLE, "False"), (c.PROGRESSING, "False"), (c.DEGRADED, "True")):
        condition = cond(p, type_)
        assert (condition["status"], condition["reason"]) == (status, c.INVALID_CAPTURE_PATTERN)
        assert condition["observedGeneration"] == 2
    message = cond(p, c.AVAILABLE)["message"]
    assert "spec.gateway.capture.redaction.patterns[1] (ACCOUNT)" in message and "ACC-(\\d+" in message
    assert [e.reason for e in p.events] == [c.INVALID_CAPTURE_PATTERN]
    # Fixed in git: the spec is applied, with the pattern in the gateway's flags.
    gateway["capture"]["redaction"]["patterns"][1]["regex"] = "ACC-\\d+"
    b["status"] = p.status
    fixed = plan(b, Observations(children=ch), T0)
    (dep,) = [o for o in fixed.apply if o["kind"] == "Deployment" and o["metadata"]["name"] == "m-stable"]
    assert {o["metadata"]["name"] for o in fixed.apply if o["kind"] == "Deployment"} == {
        "m-stable",
        "m-capture",
    }
    args = next(x for x in dep["spec"]["template"]["spec"]["containers"] if x["name"] == "gateway")["args"]
    assert "ACCOUNT=ACC-\\d+" in args and dep["spec"]["replicas"] == 3
    assert cond(fixed, c.AVAILABLE)["reason"] != c.INVALID_CAPTURE_PATTERN


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://sink.example:99999/events", "Port out of range"),
        ("https://[::1/events", "Invalid IPv6 URL"),
        ("https://sink.example:http/events", "port can't be converted to integer"),
    ],
)
def test_a_sink_url_the_gateway_cannot_post_to_is_named_and_nothing_of_the_spec_is_applied(
    url: str, why: str
) -> None:
    """The pattern admits any http(s) URL without white space; the gateway's client (aiohttp,
    parsing with yarl) refuses these, and retried each record forever as "unreachable"."""
    b, ch = to_serving(body())
    b["spec"]["gateway"] = {"capture": {"sink": {"url": url}}}
    b["metadata"]["generation"] = 2
    p = plan(b, Observations(children=ch), T0)
    assert p.apply == [] and p.delete == [] and p.patches == []
    for type_, status in ((c.AVAILABLE, "False"), (c.PROGRESSING, "False"), (c.DEGRADED, "True")):
        assert (cond(p, type_)["status"], cond(p, type_)["reason"]) == (status, c.INVALID_CAPTURE_SINK)
    message = cond(p, c.AVAILABLE)["message"]
    assert message.startswith(f"spec.gateway.capture.sink.url: the gateway cannot send to {url}: ")
    assert why in message and [e.reason for e in p.events] == [c.INVALID_CAPTURE_SINK]
    b["spec"]["gateway"]["capture"]["sink"]["url"] = "https://sink.example:8443/events"
    b["status"] = p.status
    assert cond(plan(b, Observations(children=ch), T0), c.AVAILABLE)["reason"] != c.INVALID_CAPTURE_SINK


def test_failed_reads_make_availability_unknown_not_false() -> None:
    p = plan(body(), Observations(errors=("list Deployment: 503 etcd unavailable",)), T0)
    avail = cond(p, c.AVAILABLE)
    assert avail["status"] == "Unknown" and avail["reason"] == c.OBSERVATION_FAILED


def test_scaled_to_zero() -> None:
    b, ch = to_serving(body())
    b["spec"]["replicas"] = 0
    p = plan(b, Observations(children=ch), T0)
    dep = next(o for o in p.apply if o["kind"] == "Deployment")
    assert dep["spec"]["replicas"] == 0
    assert cond(p, c.AVAILABLE)["reason"] == c.SCALED_TO_ZERO


def test_only_unwanted_children_it_controls_are_deleted() -> None:
    b, ch = to_serving(body())
    ours = [{"kind": "LLMDeployment", "name": "m", "uid": "u-1", "controller": True}]
    cronjobs = [{"kind": "CronJob", "name": "m-eval-scheduled", "uid": "u-2", "controller": True}]
    ch[("Deployment", "m-canary")] = {
        "kind": "Deployment",
        "metadata": {"name": "m-canary", "ownerReferences": ours},
    }
    ch[("ConfigMap", "m-something")] = {
        "kind": "ConfigMap",
        "metadata": {"name": "m-something", "ownerReferences": ours},
    }
    # Labelled like ours, but made by a CronJob (scheduled evaluations): the CronJob's to keep.
    ch[("Job", "m-eval-scheduled-1")] = {
        "kind": "Job",
        "metadata": {"name": "m-eval-scheduled-1", "ownerReferences": cronjobs},
    }
    # Labelled like ours but not owned (someone copied the labels): left alone.
    ch[("Service", "m-copy")] = {"kind": "Service", "metadata": {"name": "m-copy"}}
    p = plan(b, Observations(children=ch), T0)
    assert p.delete == [("Deployment", "m-canary")]


def test_the_first_revision_serves_as_soon_as_a_pod_is_ready() -> None:
    b = body(replicas=4)
    p = plan(b, Observations(), T0)
    ch = children_of(p)
    job_done(ch)
    p = plan(with_status(p, b), Observations(children=ch), T0)
    ch = children_of(p, ch)
    rollout(ch, ready=1, replicas=4, updated=4)
    p = plan(with_status(p, b), Observations(children=ch), T0)
    assert p.status["servingRevision"] == SHA_A  # it takes the Service's traffic already
    assert p.status["ready"] == "1/4"
    assert cond(p, c.PROGRESSING)["reason"] == c.ROLLING_UPDATE
    assert p.status["history"][-1]["message"] == "1/4 replicas ready, rolling out the rest"


def test_the_phase_transition_table_is_closed_and_says_something() -> None:
    assert set(PHASE_TRANSITIONS) == {None, *Phase}
    assert all(dst <= set(Phase) for dst in PHASE_TRANSITIONS.values())
    # Only a canary is rolled back; a first pass has no stable to run a canary against.
    assert {src for src, dst in PHASE_TRANSITIONS.items() if Phase.ROLLED_BACK in dst} == {Phase.CANARY}
    assert not phase_change_allowed(None, "Canary")
    assert not phase_change_allowed("Caching", "RolledBack")
    assert not phase_change_allowed("Evaluating", "Retraining")
    assert phase_change_allowed("Serving", "Serving")
    with pytest.raises(ValueError):
        phase_change_allowed("Serving", "Running")


def test_a_life_moves_only_along_the_transition_table() -> None:
    """From nothing to Serving, a canary of a new revision, its rollback, and another revision:
    each pass goes through testkit's checked ``plan()``, which fails on a move outside the table;
    here we also check the moves it saw are the ones this life makes."""
    before = set(PHASE_CHANGES)
    PHASE_CHANGES.clear()
    try:
        sim = Sim()  # to_serving: Caching, Pending (stable starting), Serving
        start_canary(sim)
        sim.step(1, analysis=BAD)
        sim.step(1, analysis=BAD)
        assert sim.b["status"]["phase"] == "RolledBack"
        sim.new_revision("c" * 40)
        seen = set(PHASE_CHANGES)
    finally:
        PHASE_CHANGES.update(before)
    assert seen == {
        (None, "Caching"),
        ("Caching", "Pending"),
        ("Pending", "Serving"),
        ("Serving", "Caching"),  # a new revision: its download
        ("Caching", "Canary"),
        ("Canary", "RolledBack"),
        ("RolledBack", "Caching"),
    }
    assert all(phase_change_allowed(a, b) for a, b in seen)


def test_an_existing_job_is_never_applied_again() -> None:
    # A download Job made by an earlier operator version (no progress port, another hash): its
    # pod template is immutable, so a re-apply would be refused in every pass.
    b = body()
    first = plan(b, Observations(), T0)
    ch = children_of(first)
    job = next(v for (kind, _), v in ch.items() if kind == "Job")
    job["metadata"]["annotations"]["llmops.io/applied-hash"] = "from-an-older-version"
    job["spec"]["template"]["spec"]["containers"][0].pop("ports")
    p = plan(with_status(first, b), Observations(children=ch), T0)
    assert "Job" not in kinds(p)
    assert ("Job", job["metadata"]["name"]) not in p.delete


def _replacing_one_pod(gpus: int = 1) -> tuple[dict[str, Any], Children, dt.datetime, dict[str, Any]]:
    """One replica holding one GPU, replaced by a new revision whose pods request ``gpus``: the
    rolling update (maxSurge 0) has stopped the old pod first. (body, children, now, the
    terminating old pod)."""
    b, ch = to_serving(body(replicas=1))
    b["spec"]["model"]["revision"] = SHA_B
    b["spec"]["resources"]["gpu"]["count"] = gpus
    b["metadata"]["generation"] += 1
    now = T0 + dt.timedelta(hours=1)
    p = plan(b, Observations(children=ch), now)
    ch, b = children_of(p, ch), with_status(p, b)
    job_done(ch)  # the new revision's download
    p = plan(b, Observations(children=ch), now)
    ch, b = children_of(p, ch), with_status(p, b)
    rollout(ch, ready=0, replicas=1, updated=1)
    leaving = server_pod(phase="Running")
    leaving["metadata"].update(name="m-stable-old", deletionTimestamp="2026-01-01T00:00:00Z")
    leaving["spec"] = {
        "nodeName": "gpu-0",
        "containers": [{"name": "server", "resources": {"requests": {"nvidia.com/gpu": "1"}}}],
    }
    return b, ch, now, leaving


def test_a_new_pod_waiting_for_the_gpu_of_the_pod_it_replaces_is_not_a_gpu_shortage() -> None:
    """On a cluster with no GPU to spare, the new pod waits for the GPU of the old one while it
    drains. The scheduler says Insufficient GPU meanwhile; the status says the servers are
    starting, not to lower resources.gpu.count. Once no pod is terminating, the same wait is a
    shortage."""
    b, ch, now, leaving = _replacing_one_pod()
    p = plan(b, Observations(children=ch, pods=[pod_without_gpu(), leaving]), now)
    assert cond(p, c.AVAILABLE)["reason"] == c.PODS_NOT_READY
    assert cond(p, c.PROGRESSING)["message"] == f"rolling out revision {SHA_B}: 0/1 replicas ready"
    p = plan(b, Observations(children=ch, pods=[pod_without_gpu()]), now)
    assert cond(p, c.AVAILABLE)["reason"] == c.INSUFFICIENT_GPU
    assert "lower resources.gpu.count" in cond(p, c.PROGRESSING)["message"]


def test_a_pod_that_the_released_gpus_cannot_hold_is_a_gpu_shortage_at_once() -> None:
    """The new revision asks for 2 GPUs where the old pod held 1: on a node of 1 GPU, what the
    terminating pod frees will not make room, so the shortage is said now, not after its drain
    (up to 90 s). On a node of 2, the freed GPU and the free one will; on two nodes of 1, two
    GPUs are free but not on one node."""
    b, ch, now, leaving = _replacing_one_pod(gpus=2)
    waiting = [pod_without_gpu(), leaving]

    def on_a_node_of(allocatable: int, *more: GpuNode) -> Plan:
        node = GpuNode("gpu-0", {}, allocatable=allocatable, requested=1, schedulable=True)
        return plan(b, Observations(children=ch, pods=waiting, gpu_nodes=[node, *more]), now)

    short = on_a_node_of(1)
    assert cond(short, c.AVAILABLE)["reason"] == c.INSUFFICIENT_GPU
    assert "each pod requests 2 nvidia.com/gpu; 0 of 1 are free" in cond(short, c.PROGRESSING)["message"]
    assert cond(on_a_node_of(2), c.AVAILABLE)["reason"] == c.PODS_NOT_READY
    other = GpuNode("gpu-1", {}, allocatable=1, requested=0, schedulable=True)
    assert cond(on_a_node_of(1, other), c.AVAILABLE)["reason"] == c.INSUFFICIENT_GPU
