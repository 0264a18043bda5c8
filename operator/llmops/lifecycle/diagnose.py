"""Why pods are not running: Pod status read the way an SRE would, as (reason, message).

Pure. The reasons are the API's condition reasons; the messages say what to do, and never
carry pod names or timestamps (they would change every pass and cause status writes).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmops.api import conditions as c
from llmops.api.quantity import format_bytes, format_cpu
from llmops.api.spec import LLMDeploymentSpec
from llmops.contracts import EVAL_EXIT_FAILED, VERDICT_BROKEN, parse_timestamp
from llmops.lifecycle.node_fit import PodPlacement, taint_text
from llmops.lifecycle.observations import Compute, GpuNode, Observations, pod_device_requests

__all__ = [
    "JOB_NAME_LABEL",
    "JOB_POD_GRACE_SECONDS",
    "JOB_REFUSAL_READ_SECONDS",
    "MOUNT_GRACE_SECONDS",
    "Problem",
    "diagnose_pods",
    "gpu_detail",
    "gpu_shortage",
    "gpus_being_released",
    "job_pods",
    "job_state",
    "job_suspended",
    "jobs_without_pods",
    "mount_verdict_due",
    "pods_not_created",
    "spec_field_behind",
    "termination_json",
    "termination_message",
    "track_problem",
    "waits_for_gpus",
]


@dataclass(frozen=True)
class Problem:
    reason: str
    message: str
    permanent: bool
    """True when waiting will not help: the user must change something."""


MOUNT_GRACE_SECONDS = 20.0
"""How long a scheduled pod waits for its sandbox before its Secrets are named as missing. Every
pod waits so for a moment (the kubelet mounts its volumes, then starts the sandbox, in a few
seconds); one waiting longer retries a mount, which the kubelet reports only as an Event."""

_SECRET = re.compile(r'secret "([^"]+)" not found')
_SECRET_KEY = re.compile(r"couldn't find key (\S+) in Secret (\S+)")


def _container_statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def _unschedulable_message(pod: Mapping[str, Any]) -> str | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return str(cond.get("message", ""))
    return None


def waits_for_gpus(pods: Iterable[Mapping[str, Any]], gpu_resource: str) -> bool:
    """Whether the scheduler refused one of ``pods`` for lack of ``gpu_resource``."""
    return any(gpu_resource in (_unschedulable_message(pod) or "") for pod in pods)


def gpu_shortage(
    count: int, resource: str, product: str | None, placement: PodPlacement, nodes: Sequence[GpuNode]
) -> str:
    """What a pod asks for, what the matching nodes have free, and what to do, in one sentence.

    Matching nodes are those the pods' placement admits (node_fit: not cordoned, the nodeSelector
    with the product label, taints tolerated, the required node affinity met); free GPUs are
    allocatable minus what unfinished pods request. When nodes are selected but none admitted,
    it says what kept the pods off them. When every node with enough free GPUs lacks the CPU or
    memory a pod requests, it says that, and the advice is about those instead of GPUs."""
    what = f"each pod requests {count} {resource}" + (f" of product {product}" if product else "")
    matching = [n for n in nodes if placement.admits(n)]
    if not matching:
        return f"{what}; {_none_admitted(resource, placement, nodes)}; {_GPU_ADVICE}"
    free = [n.free for n in matching]
    text = (
        f"{what}; {sum(free)} of {sum(n.allocatable for n in matching)} are free on the "
        f"{len(matching)} matching node(s), at most {max(free)} on one node"
    )
    with_gpus = [n for n in matching if n.free >= count]
    lacking = [placement.lacks(n) for n in with_gpus]
    if with_gpus and all(lacking):
        return f"{text}; {_compute_shortage(placement.requests, with_gpus, count, lacking)}"
    return f"{text}; {_GPU_ADVICE}"


_GPU_ADVICE = "lower resources.gpu.count, free GPUs, or add GPU nodes"


def _compute_shortage(
    requests: Compute, nodes: Sequence[GpuNode], count: int, lacking: Sequence[Sequence[str]]
) -> str:
    """Why the nodes with ``count`` free GPUs take no pod: the CPU or memory a pod requests, and
    the most any of them has free."""
    short = sorted({name for names in lacking for name in names}, key=["CPU", "memory"].index)
    frees = [n.compute_free for n in nodes if n.compute_free is not None]
    amounts = []
    if "CPU" in short:
        most = max(f.cpu for f in frees)
        amounts.append(f"{format_cpu(requests.cpu)} CPU, at most {format_cpu(max(most, 0))} free on one")
    if "memory" in short:
        most = max(f.memory for f in frees)
        amounts.append(
            f"{format_bytes(requests.memory)} of memory, at most {format_bytes(max(most, 0))} free on one"
        )
    fields = " and ".join(f"resources.{name.lower()}" for name in short)
    return (
        f"the {len(nodes)} node(s) with {count} free lack the {' and '.join(short)} each pod requests "
        f"({'; '.join(amounts)}); lower {fields}, or free {' and '.join(short)} on those nodes"
    )


def _none_admitted(resource: str, placement: PodPlacement, nodes: Sequence[GpuNode]) -> str:
    """Why no node offering ``resource`` admits the pods: none selected, or what kept them off."""
    selector = placement.selector
    where = f" with {', '.join(f'{k}={v}' for k, v in sorted(selector.items()))}" if selector else ""
    selected = [n for n in nodes if placement.selects(n)]
    if not selected:
        return f"no schedulable node{where} offers {resource}"
    taints = sorted({taint_text(t) for n in selected for t in placement.untolerated(n)})
    why = [f"taints they do not tolerate ({', '.join(taints)})"] if taints else []
    if any(not placement.untolerated(n) for n in selected):
        why.append("their required node affinity")
    return (
        f"{len(selected)} schedulable node(s){where} offer {resource}, but the pods are kept off "
        f"them by {' or by '.join(why)}"
    )


def gpu_detail(spec: LLMDeploymentSpec, obs: Observations) -> str | None:
    """gpu_shortage for this spec's pods, when the GPU nodes were read in this pass."""
    if obs.gpu_nodes is None:
        return None
    gpu = spec.resources.gpu
    return gpu_shortage(gpu.count, gpu.resource_name, gpu.product, _placement(spec, obs), obs.gpu_nodes)


def _placement(spec: LLMDeploymentSpec, obs: Observations) -> PodPlacement:
    """Where the pods may go: as a pod waiting for GPUs was admitted, when there is one (admission
    may add tolerations the spec does not have: ExtendedResourceToleration tolerates the taint named
    after a requested GPU resource, which GPU nodes often carry), else as the spec renders it."""
    resource = spec.resources.gpu.resource_name
    for pod in obs.pods:
        if not (pod.get("metadata") or {}).get("deletionTimestamp") and waits_for_gpus([pod], resource):
            return PodPlacement.of_pod(pod)
    return PodPlacement.of(spec)


def _pod_problem(
    pod: Mapping[str, Any], gpu_resource: str, gpu_detail: str | None, now: dt.datetime
) -> Problem | None:
    msg = _unschedulable_message(pod)
    if msg is not None and gpu_resource in msg:
        detail = gpu_detail or f"no node has enough free {gpu_resource} ({_first_line(msg)}); {_GPU_ADVICE}"
        return Problem(c.INSUFFICIENT_GPU, f"pods cannot be scheduled: {detail}", permanent=False)
    if msg is not None and "unbound" in msg and "PersistentVolumeClaim" in msg:
        return Problem(
            c.PVC_NOT_BOUND,
            "pods wait for the model cache PersistentVolumeClaim to be bound; check cache.storageClassName",
            permanent=False,
        )
    if msg is not None:
        return Problem(c.UNSCHEDULABLE, f"pods cannot be scheduled: {_first_line(msg)}", permanent=False)
    if (problem := _mount_problem(pod, now)) is not None:
        return problem
    for cs in _container_statuses(pod):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason, msg = waiting.get("reason", ""), str(waiting.get("message", ""))
        if reason in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName"):
            return Problem(
                c.IMAGE_PULL_FAILED,
                f"image {cs.get('image', '')} cannot be pulled ({reason}); check the image name and tag "
                "and the pull secret",
                permanent=True,
            )
        if reason == "CreateContainerConfigError":
            if m := _SECRET.search(msg):
                return Problem(
                    c.SECRET_NOT_FOUND,
                    f'Secret "{m.group(1)}" not found in the namespace; create it or fix the secret reference',
                    permanent=True,
                )
            if m := _SECRET_KEY.search(msg):
                return Problem(
                    c.SECRET_KEY_NOT_FOUND,
                    f"key {m.group(1)} not found in Secret {m.group(2)}; add the key or fix the secret reference",
                    permanent=True,
                )
            return Problem(c.RECONCILE_ERROR, f"container configuration error: {msg}", permanent=True)
        if (budget := _startup_budget_spent(pod, cs)) is not None:
            return Problem(
                c.STARTUP_TIMED_OUT,
                f"the server did not answer its startup probe within {budget}s and was restarted: "
                "loading the model takes longer (a large model, a slow disk); raise "
                "spec.engine.startupTimeoutSeconds",
                permanent=True,
            )
        if reason == "CrashLoopBackOff":
            last = ((cs.get("lastState") or {}).get("terminated") or {}).get("reason", "")
            if last == "OOMKilled":
                return Problem(
                    c.OOM_KILLED,
                    "the server was killed for exceeding its memory limit; raise resources.memory",
                    permanent=True,
                )
            return Problem(c.CRASH_LOOP, "the server keeps crashing; see the pod logs", permanent=True)
        last = ((cs.get("lastState") or {}).get("terminated") or {}).get("reason", "")
        if last == "OOMKilled":
            return Problem(
                c.OOM_KILLED,
                "the server was killed for exceeding its memory limit; raise resources.memory",
                permanent=False,
            )
    return None


def _startup_budget_spent(pod: Mapping[str, Any], cs: Mapping[str, Any]) -> int | None:
    """The startup probe's budget (seconds) when the container's last run was killed by it: the
    run lasted as long as the probe may fail, and the pod was not ready at any time during it.

    The kubelet says so only in an Event ("failed startup probe, will be restarted"); the status
    keeps a terminated run, which a crash after hours of serving also leaves. The Ready
    condition tells them apart: it last changed before that run began only if the run never
    turned Ready."""
    last = (cs.get("lastState") or {}).get("terminated") or {}
    containers = (pod.get("spec") or {}).get("containers") or []
    probe = next((x.get("startupProbe") for x in containers if x.get("name") == cs.get("name")), None)
    if (
        not probe
        or last.get("reason") == "OOMKilled"
        or not (last.get("startedAt") and last.get("finishedAt"))
    ):
        return None
    period, failures = int(probe.get("periodSeconds", 10)), int(probe.get("failureThreshold", 3))
    budget = int(probe.get("initialDelaySeconds", 0)) + period * failures
    started, finished = parse_timestamp(last["startedAt"]), parse_timestamp(last["finishedAt"])
    # The first check may come up to a period after the start: the kill, at the last failure.
    if (finished - started).total_seconds() < budget - period:
        return None
    conditions = {x.get("type"): x for x in (pod.get("status") or {}).get("conditions") or []}
    ready: Mapping[str, Any] = conditions.get("Ready") or {}
    since = ready.get("lastTransitionTime")
    if ready.get("status") != "False" or not since or parse_timestamp(str(since)) > started:
        return None
    return budget


def _mount_problem(pod: Mapping[str, Any], now: dt.datetime) -> Problem | None:
    """A pod scheduled MOUNT_GRACE_SECONDS ago or more whose sandbox is not ready and whose
    containers all wait to be created: the kubelet cannot mount a volume (it reports FailedMount
    only as an Event, never in Pod status). Mounted Secrets are what the user must create, so the
    message names them: the gateway's API keys (spec.gateway.auth.apiKeysSecretRef) and its
    signing key."""
    secrets = _mounted_secrets(pod)
    waited = _sandbox_wait(pod, now)
    if not secrets or waited is None or waited < MOUNT_GRACE_SECONDS:
        return None
    names = ", ".join(f'"{s}"' for s in secrets)
    return Problem(
        c.VOLUME_NOT_MOUNTED,
        f"pods wait to mount their volumes: check that the Secrets {names} exist "
        "(the gateway mounts spec.gateway.auth.apiKeysSecretRef and the operator's <name>-gateway)",
        permanent=False,
    )


def _mounted_secrets(pod: Mapping[str, Any]) -> list[str]:
    """The names of the Secrets ``pod`` mounts as volumes, sorted."""
    volumes = (pod.get("spec") or {}).get("volumes") or []
    return sorted({str(v["secret"].get("secretName", "")) for v in volumes if "secret" in v})


def _sandbox_wait(pod: Mapping[str, Any], now: dt.datetime) -> float | None:
    """Seconds a scheduled pod has waited for its sandbox with every container still to be
    created; None when it is not waiting so. Counted from its scheduling (its creation for a
    copy without that time; with neither time, the grace counts as spent)."""
    conds = {x.get("type"): x for x in (pod.get("status") or {}).get("conditions") or []}
    scheduled: Mapping[str, Any] = conds.get("PodScheduled") or {}
    sandbox: Mapping[str, Any] = conds.get("PodReadyToStartContainers") or {}
    if scheduled.get("status") != "True" or sandbox.get("status") != "False":
        return None
    statuses = _container_statuses(pod)
    if not statuses or any(
        ((cs.get("state") or {}).get("waiting") or {}).get("reason") != "ContainerCreating" for cs in statuses
    ):
        return None
    since = scheduled.get("lastTransitionTime") or (pod.get("metadata") or {}).get("creationTimestamp")
    return (now - parse_timestamp(str(since))).total_seconds() if since else MOUNT_GRACE_SECONDS


def mount_verdict_due(pods: Iterable[Mapping[str, Any]], now: dt.datetime) -> float | None:
    """Seconds until the first of ``pods`` that mount a Secret and now wait for their sandbox
    has waited MOUNT_GRACE_SECONDS (None: none waits within it). No watch event comes while the
    kubelet retries a mount, so the pass asks to be run again then."""
    waits = [
        MOUNT_GRACE_SECONDS - waited
        for pod in pods
        if not (pod.get("metadata") or {}).get("deletionTimestamp") and _mounted_secrets(pod)
        if (waited := _sandbox_wait(pod, now)) is not None and waited < MOUNT_GRACE_SECONDS
    ]
    return max(1.0, min(waits)) if waits else None


def track_problem(spec: LLMDeploymentSpec, obs: Observations, track: str, now: dt.datetime) -> Problem | None:
    """What keeps the server pods of one track (stable, canary) from serving at ``now``, a
    shortage of GPUs told in numbers when the nodes were read."""
    return diagnose_pods(
        obs.pods_of(**{"llmops.io/track": track}),
        spec.resources.gpu.resource_name,
        gpu_detail(spec, obs),
        now=now,
    )


def gpus_being_released(problem: Problem | None, spec: LLMDeploymentSpec, obs: Observations) -> int:
    """When ``problem`` is a pod waiting for GPUs: the GPUs that the terminating pods among
    ``obs.pods`` (the LLMDeployment's) hold and free once gone; else 0. Also 0 when the GPU
    nodes were read and, those GPUs freed, the matching nodes will not hold every pod waiting
    for GPUs (each on one node): a shortage that the drain only hides.

    On a cluster with no GPU to spare, a rolling update's new pod waits for its old pod's GPU
    (maxSurge 0), and a replicas-mode canary pod for the stable pod it replaces. The scheduler
    calls that a shortage until the old pod has stopped (TGI drains for up to 90 s): it is a
    replacement under way, and advice to lower ``resources.gpu.count`` would be wrong."""
    if problem is None or problem.reason != c.INSUFFICIENT_GPU:
        return 0
    gpu = spec.resources.gpu
    by_node: dict[str, int] = {}
    for pod in obs.pods:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            node = str((pod.get("spec") or {}).get("nodeName") or "")
            by_node[node] = by_node.get(node, 0) + pod_device_requests(pod)[gpu.resource_name]
    released = sum(by_node.values())
    if not released or obs.gpu_nodes is None:
        return released
    waiting = sum(
        1
        for pod in obs.pods
        if not (pod.get("metadata") or {}).get("deletionTimestamp")
        and waits_for_gpus([pod], gpu.resource_name)
    )
    placement = _placement(spec, obs)
    room = sum((n.free + by_node.get(n.name, 0)) // gpu.count for n in obs.gpu_nodes if placement.admits(n))
    return released if waiting <= room else 0


def diagnose_pods(
    pods: Iterable[Mapping[str, Any]],
    gpu_resource: str = "nvidia.com/gpu",
    gpu_detail: str | None = None,
    *,
    now: dt.datetime,
) -> Problem | None:
    """The most telling problem among ``pods`` at ``now`` (permanent ones first), or None.
    ``gpu_detail`` (see gpu_shortage) replaces the scheduler's words when pods wait for GPUs."""
    problems = [
        p
        for pod in pods
        if not (pod.get("metadata") or {}).get("deletionTimestamp")
        if (p := _pod_problem(pod, gpu_resource, gpu_detail, now))
    ]
    problems.sort(key=lambda p: (not p.permanent, p.reason))
    return problems[0] if problems else None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def job_state(job: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """("Missing"|"Running"|"Complete"|"Failed", reason, message) of a Job."""
    if not job:
        return ("Missing", "", "")
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return ("Complete", cond.get("reason", ""), cond.get("message", ""))
        if cond.get("type") in ("Failed", "FailureTarget"):
            return ("Failed", cond.get("reason", ""), cond.get("message", ""))
    return ("Running", "", "")


JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


JOB_POD_GRACE_SECONDS = 60.0
"""How long a Job may go without any pod before that is reported when no refusal was read: the
Job controller makes its pod within a second or two; a Job that has none after a minute has its
pods refused."""
JOB_REFUSAL_READ_SECONDS = 10.0
"""A Job this old without a pod has its FailedCreate Events read (once at this age, since Events
start no pass, and on any pass after). Younger, it is most likely waiting for the Job controller,
which lags by seconds when many Jobs are made at once: reading then would cost a request and a
pass per Job for nothing."""
_POD_COUNTS = ("active", "ready", "succeeded", "failed", "terminating")


def jobs_without_pods(obs: Observations, now: dt.datetime) -> list[Mapping[str, Any]]:
    """The running Jobs among the children that have made no pod in JOB_REFUSAL_READ_SECONDS:
    those whose FailedCreate Events the shell reads into ``Observations.job_refusals``."""
    return [
        job
        for (kind, _), job in obs.children.items()
        if kind == "Job"
        and job_state(job)[0] == "Running"
        and _has_no_pod(job, obs)
        and not job_suspended(job)
        and (_age(job, now) or 0.0) >= JOB_REFUSAL_READ_SECONDS
    ]


def _age(job: Mapping[str, Any], now: dt.datetime) -> float | None:
    """Seconds since the Job was made (None for a copy without its creationTimestamp)."""
    created = (job.get("metadata") or {}).get("creationTimestamp")
    return (now - parse_timestamp(str(created))).total_seconds() if created else None


def job_suspended(job: Mapping[str, Any]) -> bool:
    """Held by spec.suspend (its template's, or a queue's such as Kueue, which suspends a Job
    until it admits it), or not resumed yet: it makes no pod, and that is no refusal."""
    if (job.get("spec") or {}).get("suspend"):
        return True
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(x.get("type") == "Suspended" and x.get("status") == "True" for x in conditions)


def _has_no_pod(job: Mapping[str, Any], obs: Observations) -> bool:
    status = job.get("status") or {}
    return not any(status.get(count) for count in _POD_COUNTS) and not job_pods(
        obs, str(job["metadata"]["name"])
    )


def pods_not_created(
    job: Mapping[str, Any] | None, obs: Observations, now: dt.datetime
) -> tuple[Problem | None, float | None]:
    """Why a running Job makes no pod: it is suspended (no refusal: a queue may admit it later),
    or the apiserver refuses its pods (Pod Security, a ResourceQuota, a webhook), quoted when the
    shell read the Job's FailedCreate Events, or said after ``JOB_POD_GRACE_SECONDS`` without one.
    Otherwise, while it has no pod yet, the seconds until it is looked at again (when its Events
    are first read, then at the end of the grace). The Job itself says nothing of a refusal (it
    is only in those Events), so without this it would look like a Job that runs forever."""
    if not job or job_state(job)[0] != "Running":
        return None, None
    name = str(job["metadata"]["name"])
    if job_suspended(job):
        why = (
            f"Job {name} is suspended (spec.suspend, or a queue such as Kueue holding it until it admits it)"
        )
        return Problem(c.JOB_SUSPENDED, f"{why}: it makes no pod until it is resumed", permanent=False), None
    if not _has_no_pod(job, obs):
        return None, None
    again = f"Once fixed, delete the Job {name}: the operator makes it again"
    refusal = obs.job_refusals.get(name)
    if refusal:
        return Problem(c.JOB_PODS_REFUSED, f"Job {name} cannot make its pod: {refusal}. {again}", True), None
    age = _age(job, now)
    if age is None:  # our own apply's answer always has one; a copy without it cannot be dated
        return None, None
    if age < JOB_REFUSAL_READ_SECONDS:
        return None, JOB_REFUSAL_READ_SECONDS - age
    if age < JOB_POD_GRACE_SECONDS:
        return None, JOB_POD_GRACE_SECONDS - age
    message = (
        f"Job {name} has made no pod in {JOB_POD_GRACE_SECONDS:.0f}s: the apiserver refuses its pods "
        f"(kubectl describe job {name} shows why in its FailedCreate Events; a pod template the "
        f"namespace's Pod Security level forbids, or a ResourceQuota, is the usual cause). {again}"
    )
    return Problem(c.JOB_PODS_REFUSED, message, permanent=True), None


def job_pods(obs: Observations, job_name: str) -> list[Mapping[str, Any]]:
    """The pods of one Job (by the label the Job controller sets)."""
    return [
        p for p in obs.pods if ((p.get("metadata") or {}).get("labels") or {}).get(JOB_NAME_LABEL) == job_name
    ]


def termination_message(obs: Observations, job_name: str, *, failed_only: bool = False) -> str:
    """The termination message of the Job's most recently finished pod ("" if none)."""
    latest: tuple[str, str] | None = None
    for pod in job_pods(obs, job_name):
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated") or {}
            if not term or (failed_only and term.get("exitCode", 0) == 0):
                continue
            key = (str(term.get("finishedAt") or ""), str(term.get("message") or ""))
            if latest is None or key[0] >= latest[0]:
                latest = key
    return latest[1].strip() if latest else ""


def termination_json(obs: Observations, job_name: str) -> dict[str, Any]:
    """The Job's termination message as JSON (``llmops download`` and ``llmops eval`` write one);
    plain text becomes ``{"message": ...}``, nothing becomes ``{}``."""
    import json

    text = termination_message(obs, job_name)
    try:
        out = json.loads(text)
    except ValueError:
        return {"message": text[:500]} if text else {}
    return out if isinstance(out, dict) else {"message": text[:500]}


_FAIL_JOB_EXIT_CODE = re.compile(r"failed with exit code (\d+) matching FailJob rule")
"""The Job controller's Failed condition message for a pod failure policy rule, e.g. "Container
evaluate for pod ns/x failed with exit code 1 matching FailJob rule at index 0"."""


def evaluation_judged(reason: str, job_message: str, summary: Mapping[str, Any]) -> bool:
    """Whether a failed evaluation Job (``llmops eval``) ended with a verdict on the model: the
    pod failure policy failed it on EVAL_EXIT_FAILED. Not on EVAL_EXIT_INVALID (the evaluation was
    given bad input), nor by its retries or deadline running out: those say nothing about the
    model. The exit code is the Job controller's (its condition message); without one there, the
    summary's verdict decides."""
    if reason != "PodFailurePolicy":
        return False
    found = _FAIL_JOB_EXIT_CODE.search(job_message)
    if found:
        return int(found.group(1)) == EVAL_EXIT_FAILED
    return summary.get("verdict") != VERDICT_BROKEN


def evaluation_broken_cause(reason: str, job_message: str, summary: Mapping[str, Any]) -> str:
    """Why an evaluation Job that judged nothing failed, for a condition's message."""
    detail = summary.get("message") or job_message or reason
    if reason == "PodFailurePolicy":
        return f"not retried, a retry would read the same input: {detail}"
    return f"{reason}: {detail}"


# Child field paths the apiserver names in a refusal, and the spec field the child copies them
# from: the fields the CRD keeps verbatim or cannot validate as Kubernetes does (first match wins).
_SPEC_FIELD_OF_CHILD_PATH: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), field)
    for pattern, field in (
        (r"\bspec\.template\.spec\.affinity\b", "spec.placement.affinity"),
        (r"\bspec\.template\.spec\.nodeSelector\b", "spec.placement.nodeSelector"),
        (r"\bspec\.template\.spec\.tolerations\b", "spec.placement.tolerations"),
        (r"\bspec\.template\.spec\.priorityClassName\b", "spec.placement.priorityClassName"),
        (r"\bcontainers\[\d+\]\.env\b", "spec.engine.env"),
        (r"\bcontainers\[\d+\]\.resources\b", "spec.resources"),
        (r"^spec\.schedule\b|[\s:]spec\.schedule\b", "spec.evaluation.schedule"),
    )
)


def spec_field_behind(refusal: str) -> str | None:
    """The spec field behind the child field an apiserver refusal ("… is invalid: <path>: …") names."""
    _, _, detail = refusal.partition(" is invalid: ")
    for pattern, field in _SPEC_FIELD_OF_CHILD_PATH:
        if pattern.search(detail):
            return field
    return None
