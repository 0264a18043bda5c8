"""Chaos: the operator killed at random moments through serve → gate → canary → promote, and
through the retrain loop.

One *round* serves revision A of an LLMDeployment with an evaluation gate and a canary, then
moves it to revision B and waits for B to be promoted; then (``retrain=True``) it starts a retrain
run with the annotation ``llmops.io/retrain``: the retrain Job reports revision C in its
termination message, and C goes through its own gate (paired against what serves), its canary and
promotion. Once C's run has reported, a second retrain is asked for: ``maxRetrainsPerDay: 1``
must refuse it, whatever restarts happened meanwhile. While rounds run, a ``Killer`` thread
follows a schedule: each entry waits for a moment (a random gap, or a phase of the round),
then SIGKILLs the operator (or restarts a control-plane part or Prometheus in place), checks the
invariants while nothing reconciles, and starts the operator again. The invariants:

- every child has exactly one controller ownerReference, to a live LLMDeployment, under a
  deterministic name (no generateName), and no two Deployments serve the same track;
- no Job is ever created twice for the same revision: a ``JobLedger`` watches Job events for
  the whole run, so a Job deleted and created again is still counted; that includes retrain Jobs:
  one run per round, never a second Job for a run or a second run after a restart mid-retrain;
- the retrain bookkeeping in status (runs, start times: the cooldown and the daily cap) never
  goes back, across every restart;
- the end state of every round (phase, revisions, conditions' type/status/reason, the set of
  children; with the loop, what serves and where it came from, the retrain bookkeeping, the
  refused second run and the lineage in ``status.history``) equals that of a round nobody
  interrupted.

Used by tests/integration/test_chaos.py (a few kills) and tests/bench/chaos.py (``make chaos``).
"""

from __future__ import annotations

import contextlib
import random
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes

from llmops.api.constants import ANNOTATION_RETRAIN, LABEL_COMPONENT, LABEL_DEPLOYMENT, LABEL_REVISION
from llmops.kube import load_client
from llmops.render.labels import COMPONENT_DOWNLOAD
from llmops.render.names import revision_label
from llmops_dev.cluster import Cluster
from llmops_dev.loadgen import Traffic
from testkit import get_json, wait_for
from testkit.datasets import apply_qa
from testkit.operator import OperatorProcess, llmd, sample, set_behaviour
from testkit.retrain import trainer_job_template

REV_A, REV_B = "1a" * 20, "2b" * 20
REV_C = "3c" * 20
"""What the retrain Job of every round reports: the retrained revision, promoted at its end."""
LABELS = {REV_A: "A", REV_B: "B", REV_C: "C"}
MODEL = "sim-org/tiny-chat"
EVALUATION = {
    "dataset": {"configMapRef": {"name": "qa", "key": "qa.jsonl"}},
    "thresholds": [{"metric": "exactMatch", "min": 0.8}],
    "concurrency": 4,
    "timeoutSeconds": 10,
    "maxNewTokens": 16,
}
ROLLOUT: dict[str, Any] = {
    "steps": [{"setWeight": 25, "pause": {"duration": "3s"}}, {"setWeight": 50, "pause": {"duration": "3s"}}],
    "analysis": {
        "interval": "3s",
        "failureLimit": 2,
        "inconclusiveLimit": 6,
        "metrics": [{"name": "errors", "template": "tgi-error-ratio", "thresholdRange": {"max": 0.05}}],
    },
    "progressDeadlineSeconds": 300,
}
RETRAINS_PER_DAY = 1
"""The daily cap of every round: one run, so the second one asked for must be refused."""


def retrain_spec(training_seconds: float) -> dict[str, Any]:
    """spec.retrain of every round: its Job "trains" for ``training_seconds``, then reports C."""
    return {
        "jobTemplate": trainer_job_template(MODEL, REV_C, sleep=training_seconds),
        "approval": "Auto",
        # The cooldown is over by the time the second retrain is asked for; the daily cap is not.
        "cooldown": "5s",
        "maxRetrainsPerDay": RETRAINS_PER_DAY,
        "noWorseThan": [{"metric": "exactMatch", "maxDrop": 0.05}],
    }


CHILD_KINDS = "deployments,services,persistentvolumeclaims,jobs,cronjobs,poddisruptionbudgets,networkpolicies"
_JOB_FAMILY = re.compile(r"-(eval|smoke|download|retrain)-[0-9a-f]+$")


# --------------------------------------------------------------------------- the workload
def prepare(cluster: Cluster, namespace: str) -> None:
    """The evaluation dataset in ``namespace``, and TGI simulators that answer it for A, B and C."""
    answers = apply_qa(cluster, namespace)
    for rev in (REV_A, REV_B, REV_C):
        set_behaviour(cluster, rev, dataset=str(answers), accuracy=1.0)


def _apply(cluster: Cluster, namespace: str, name: str, revision: str, training: float | None) -> None:
    loop = {"retrain": retrain_spec(training)} if training is not None else {}
    body = sample(name, revision, evaluation=EVALUATION, rollout=ROLLOUT, replicas=2, **loop)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=body)


def _status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return llmd(cluster, namespace, name).get("status") or {}


def _serving(cluster: Cluster, namespace: str, name: str, revision: str) -> bool:
    st = _status(cluster, namespace, name)
    if st.get("servingRevision") != revision or st.get("phase") != "Serving":
        return False
    # Settled (what a round's end state is read from): the canary and the staging pods are gone,
    # and so is the download Job of the revision served before. The operator deletes that one in
    # the pass after the one whose status names the new revision: were it deleted first, a restart
    # before the status write would find the old revision serving and make its Job again.
    deployments = get_json(cluster, "deployments", "-n", namespace, "-l", f"{LABEL_DEPLOYMENT}={name}")
    if [d["metadata"]["name"] for d in deployments.get("items", [])] != [f"{name}-stable"]:
        return False
    downloads = get_json(
        cluster,
        "jobs",
        "-n",
        namespace,
        "-l",
        f"{LABEL_DEPLOYMENT}={name},{LABEL_COMPONENT}={COMPONENT_DOWNLOAD}",
    )
    serving, jobs = revision_label(revision), downloads.get("items")  # none: the apiserver was away
    return jobs is not None and all(
        (j["metadata"].get("labels") or {}).get(LABEL_REVISION) == serving for j in jobs
    )


def run_round(
    cluster: Cluster,
    namespace: str,
    name: str,
    timeout: float = 300,
    *,
    retrain: bool = False,
    spec_change: bool = True,
    training_seconds: float = 2.0,
    took: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Serve A through its gate, then canary B to promotion (``spec_change``), then (``retrain``)
    the retrain loop to C's promotion, its Job training for ``training_seconds``; return the end
    state. ``took`` gets each part's seconds."""
    took = {} if took is None else took
    training = training_seconds if retrain else None
    t0 = time.monotonic()
    _apply(cluster, namespace, name, REV_A, training)
    wait_for(f"{name}: A served", lambda: _serving(cluster, namespace, name, REV_A), timeout, 0.5)
    took["A served"], t0 = time.monotonic() - t0, time.monotonic()
    assert cluster.state_dir is not None
    with Traffic(cluster.state_dir, namespace, name, rate=10):
        if spec_change:
            _apply(cluster, namespace, name, REV_B, training)
            wait_for(f"{name}: B promoted", lambda: _serving(cluster, namespace, name, REV_B), timeout, 0.5)
            took["B promoted"], t0 = time.monotonic() - t0, time.monotonic()
        if retrain:
            _retrain_loop(cluster, namespace, name, timeout)
            took["retrain loop"] = time.monotonic() - t0
    return end_state(cluster, namespace, name)


def _retrain_loop(cluster: Cluster, namespace: str, name: str, timeout: float) -> None:
    """A retrain run on the annotation, its candidate C to promotion; a second run asked for
    while C is on its road (it waits), refused by the daily cap once C serves."""
    _annotate_retrain(cluster, namespace, name, "first")
    wait_for(f"{name}: the retrain run reported C", lambda: _reported(cluster, namespace, name), timeout, 0.5)
    _annotate_retrain(cluster, namespace, name, "second")
    wait_for(
        f"{name}: C promoted and a second retrain refused",
        lambda: _serving(cluster, namespace, name, REV_C)
        and _second_refused(_status(cluster, namespace, name)),
        timeout,
        0.5,
    )


def _reported(cluster: Cluster, namespace: str, name: str) -> bool:
    st = _status(cluster, namespace, name)
    retrain = st.get("retrain") or {}
    assert retrain.get("state") != "Failed", f"{name}: the retrain run failed: {retrain.get('message')}"
    return (st.get("candidate") or {}).get("revision") == REV_C


def _annotate_retrain(cluster: Cluster, namespace: str, name: str, value: str) -> None:
    cluster.kubectl("annotate", "llmd", name, "-n", namespace, f"{ANNOTATION_RETRAIN}={value}", "--overwrite")


def _second_refused(st: dict[str, Any]) -> bool:
    return "(maxRetrainsPerDay)" in str((st.get("retrain") or {}).get("message"))


def end_state(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """What an interrupted round must end with, as an uninterrupted one does (names made generic)."""
    st = _status(cluster, namespace, name)
    kids = get_json(cluster, CHILD_KINDS, "-n", namespace, "-l", f"llmops.io/deployment={name}")
    out = {
        "phase": st.get("phase"),
        "servingRevision": st.get("servingRevision"),
        "desiredRevision": st.get("desiredRevision"),
        "lastPromotedRevision": st.get("lastPromotedRevision"),
        "conditions": sorted((c["type"], c["status"], c.get("reason")) for c in st.get("conditions") or []),
        "children": sorted(
            f"{k['kind']}/{k['metadata']['name'].replace(name, '<name>', 1)}" for k in kids.get("items", [])
        ),
    }
    if "retrain" in st:
        out["loop"] = _loop_state(st, name)
    return out


def _loop_state(st: dict[str, Any], name: str) -> dict[str, Any]:
    """The retrain loop's end: what serves and from which run, the bookkeeping the cooldown and
    the daily cap read, the candidate, and the lineage from the retrain on."""
    serving, retrain, candidate = st.get("serving") or {}, st["retrain"], st.get("candidate") or {}
    actions = [(h["action"], LABELS.get(h.get("revision") or "", "?")) for h in st.get("history") or []]
    starts = [i for i, (action, _) in enumerate(actions) if action == "RetrainStarted"]

    def generic(text: object) -> str:
        return str(text).replace(name, "<name>")

    return {
        "serving": (
            serving.get("model"),
            LABELS.get(serving.get("revision", ""), "?"),
            generic(serving.get("origin")),
        ),
        "retrain": {
            "runs": retrain.get("runs"),
            "state": retrain.get("state"),
            "job": generic(retrain.get("job")),
            "startTimes": len(retrain.get("startTimes") or []),
            "lastStartIsTheStart": retrain.get("startTimes") == [retrain.get("lastStartTime")],
            "secondRefused": _second_refused(st),
            "annotation": retrain.get("annotation"),
        },
        "candidate": (
            generic(candidate.get("run")),
            LABELS.get(candidate.get("revision", ""), "?"),
            candidate.get("state"),
        ),
        "lineage": actions[starts[0] :] if starts else [],
    }


# --------------------------------------------------------------------------- the invariants
def child_violations(cluster: Cluster, namespace: str) -> list[str]:
    """Duplicated, orphaned or oddly named children in ``namespace`` (empty: none)."""
    live = {o["metadata"]["uid"]: o["metadata"]["name"] for o in _items(cluster, "llmd", "-n", namespace)}
    kids = _items(cluster, CHILD_KINDS, "-n", namespace, "-l", "llmops.io/deployment")
    out: list[str] = []
    tracks: dict[tuple[str, str], list[str]] = defaultdict(list)
    for kid in kids:
        meta, what = kid["metadata"], f"{kid['kind']}/{kid['metadata']['name']}"
        owner = meta["labels"]["llmops.io/deployment"]
        controllers = [r for r in meta.get("ownerReferences") or [] if r.get("controller")]
        if len(controllers) != 1 or len(meta.get("ownerReferences") or []) != 1:
            out.append(f"{what}: {len(controllers)} controller references")
        elif controllers[0]["kind"] != "LLMDeployment" or live.get(controllers[0]["uid"]) != owner:
            out.append(
                f"{what}: orphaned (owner {controllers[0]['kind']} {controllers[0]['uid']} is not live)"
            )
        if meta.get("generateName") or not (meta["name"] == owner or meta["name"].startswith(f"{owner}-")):
            out.append(f"{what}: not a deterministic name for {owner}")
        if kid["kind"] == "Deployment":
            track = kid["spec"]["selector"]["matchLabels"].get("llmops.io/track", "?")
            tracks[(owner, track)].append(meta["name"])
    out += [
        f"{owner}: {len(names)} Deployments for track {t}: {names}"
        for (owner, t), names in tracks.items()
        if len(names) > 1
    ]
    return out


def _items(cluster: Cluster, *args: str) -> list[dict[str, Any]]:
    """A list through kubectl, retried while the apiserver is not answering (just restarted)."""
    return list(
        wait_for(f"kubectl get {args[0]}", lambda: get_json(cluster, *args) or None, 60, 0.5)["items"]
    )


class JobLedger:
    """Every Job that existed in a namespace while the ledger ran, from the watch (ADDED and
    any other event of a Job not seen before), resumed from the last resourceVersion after an
    apiserver restart, so a Job deleted and created again is counted twice."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.api = kubernetes.client.BatchV1Api(load_client(str(kubeconfig)))
        self.namespace = namespace
        self.jobs: dict[str, tuple[str, dict[str, str]]] = {}
        """uid -> (name, labels)"""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-ledger", daemon=True)

    def __enter__(self) -> JobLedger:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        # Close the client's connections now: the ledger and its thread hold each other, so the
        # cyclic collector frees them some tests later, and a socket still open then is a
        # ResourceWarning (an error under our filterwarnings) in whichever test runs.
        self.api.api_client.close()

    def _see(self, meta: Any) -> None:
        if meta.uid not in self.jobs:
            self.jobs[meta.uid] = (meta.name, dict(meta.labels or {}))

    def _run(self) -> None:
        rv: str | None = None
        while not self._stop.is_set():
            try:
                if rv is None:
                    listed = self.api.list_namespaced_job(self.namespace, _request_timeout=10)
                    for job in listed.items:
                        self._see(job.metadata)
                    rv = listed.metadata.resource_version if listed.metadata else None
                stream = kubernetes.watch.Watch().stream(
                    self.api.list_namespaced_job,
                    self.namespace,
                    resource_version=rv,
                    timeout_seconds=5,
                    allow_watch_bookmarks=True,
                )
                for event in stream:
                    meta = event["object"].metadata
                    rv = meta.resource_version
                    if event["type"] != "BOOKMARK":
                        self._see(meta)
            except kubernetes.client.ApiException as exc:
                if exc.status == 410:  # too old a resourceVersion: list again (the list sees what is left)
                    rv = None
                self._stop.wait(0.5)  # the apiserver is down or restarting: retry at a gentle pace
            except Exception:
                self._stop.wait(0.5)

    def violations(self) -> list[str]:
        """A Job name created more than once, or more than one Job of a kind for a revision."""
        by_name: dict[str, int] = defaultdict(int)
        by_revision: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        for name, labels in list(self.jobs.values()):
            by_name[name] += 1
            if m := _JOB_FAMILY.search(name):
                key = (labels.get("llmops.io/deployment", "?"), m[1], labels.get("llmops.io/revision", name))
                by_revision[key].add(name)
        out = [f"Job {n} created {k} times" for n, k in by_name.items() if k > 1]
        out += [
            f"{d}: {len(ns)} {fam} Jobs for revision {r}: {sorted(ns)}"
            for (d, fam, r), ns in by_revision.items()
            if len(ns) > 1
        ]
        out += [
            f"{d}: {len(ns)} retrain Jobs {sorted(ns)}, more runs than maxRetrainsPerDay ({RETRAINS_PER_DAY})"
            for d, ns in self.retrain_jobs().items()
            if len(ns) > RETRAINS_PER_DAY
        ]
        return out

    def retrain_jobs(self) -> dict[str, set[str]]:
        """deployment -> the names of its retrain Jobs, every one that ever existed."""
        out: dict[str, set[str]] = defaultdict(set)
        for name, labels in list(self.jobs.values()):
            if labels.get("app.kubernetes.io/component") == "retrain":
                out[labels.get("llmops.io/deployment", "?")].add(name)
        return out

    def count(self) -> int:
        return len(self.jobs)


# --------------------------------------------------------------------------- the chaos
@dataclass
class Blow:
    """One entry of a kill schedule: when, then what."""

    action: str
    """"operator" (SIGKILL and restart it) or a component: kube-apiserver, etcd, prometheus."""
    delay: tuple[float, float] = (1.0, 5.0)
    """A random gap, in seconds, after ``when`` holds."""
    when: Callable[[], bool] | None = None
    """Wait for this first (a phase of the round); None: right after the previous blow."""
    label: str = ""


@dataclass
class Killer:
    """Runs a schedule of blows in a thread, checking the invariants after each one."""

    cluster: Cluster
    operator: OperatorProcess
    namespaces: list[str]
    schedule: list[Blow]
    ledger: JobLedger | None = None
    prometheus: Any = None
    seed: int = 0
    done: list[tuple[str, float]] = field(default_factory=list)
    """(what, seconds the operator or component took to be back)."""
    stages: list[str] = field(default_factory=list)
    """Where the newest round was at each operator kill (see ``stage_of``)."""
    bookkeeping_checks: int = 0
    """How many times the retrain bookkeeping of an LLMDeployment was checked against before."""
    _bookkeeping: dict[str, tuple[int, list[str]]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @contextlib.contextmanager
    def running(self) -> Iterator[Killer]:
        thread = threading.Thread(target=self._run, name="killer", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=120)
            if self.operator.proc is None or self.operator.proc.poll() is not None:
                self.operator.start()

    def finished(self) -> bool:
        return len(self.done) == len(self.schedule) or bool(self.errors)

    def _run(self) -> None:
        rng = random.Random(self.seed)
        try:
            for blow in self.schedule:
                if blow.when is not None:
                    while not self._stop.is_set() and not _quietly(blow.when):
                        self._stop.wait(0.2)
                if self._stop.wait(rng.uniform(*blow.delay)):
                    return  # the chaos schedule's random gap, cut short when the run ends
                self.done.append((blow.label or blow.action, self._strike(blow.action)))
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.errors.append(exc)

    def _strike(self, action: str) -> float:
        t0 = time.monotonic()
        if action == "operator":
            self.operator.kill()
            self.stages.append(_newest_stage(self.cluster, self.namespaces[-1]))
            self._check(f"after kill {len(self.done) + 1}")
            self.operator.start()
        elif action == "prometheus":
            self.prometheus.restart()
        else:
            self.cluster.restart(action)
            self._check(f"after restarting {action}")
        return time.monotonic() - t0

    def _check(self, when: str) -> None:
        for ns in self.namespaces:
            self.violations += [f"{when}: {v}" for v in child_violations(self.cluster, ns)]
            self.violations += [f"{when}: {v}" for v in self._bookkeeping_violations(ns)]
        if self.ledger is not None:
            self.violations += [
                f"{when}: {v}" for v in self.ledger.violations() if f"{when}: {v}" not in self.violations
            ]

    def _bookkeeping_violations(self, namespace: str) -> list[str]:
        """The retrain bookkeeping (status.retrain runs and startTimes, which the daily cap and
        the cooldown read) of each LLMDeployment lost something it had at the previous check."""
        out: list[str] = []
        for obj in _items(self.cluster, "llmd", "-n", namespace):
            retrain = (obj.get("status") or {}).get("retrain") or {}
            now = (int(retrain.get("runs") or 0), list(retrain.get("startTimes") or []))
            before = self._bookkeeping.get(obj["metadata"]["uid"])
            if before is not None:
                self.bookkeeping_checks += 1
                if now[0] < before[0] or not set(before[1]) <= set(now[1]):
                    out.append(f"{obj['metadata']['name']}: status.retrain went from {before} to {now}")
            self._bookkeeping[obj["metadata"]["uid"]] = now
        return out


def stage_of(st: dict[str, Any]) -> str:
    """Where a round is, from its status: which revision in which phase, or which step of the loop."""
    retrain, candidate = st.get("retrain") or {}, st.get("candidate") or {}
    phase = st.get("phase") or "no status"
    if retrain.get("state") == "Running":
        return "retrain Job running"
    if candidate.get("state") == "Promoted":
        return "C promoted, a second retrain refused" if _second_refused(st) else "C promoted"
    if candidate:
        return f"C {phase} (candidate {candidate.get('state')})"
    return f"{LABELS.get(st.get('desiredRevision') or '', '?')} {phase}"


def _newest_stage(cluster: Cluster, namespace: str) -> str:
    """The stage of the newest live LLMDeployment in ``namespace`` (the round being run)."""
    live = [o for o in _items(cluster, "llmd", "-n", namespace) if not o["metadata"].get("deletionTimestamp")]
    if not live:
        return "between rounds"
    newest = max(live, key=lambda o: str(o["metadata"]["creationTimestamp"]))
    return stage_of(newest.get("status") or {})


def _quietly(probe: Callable[[], bool]) -> bool:
    try:
        return probe()
    except Exception:  # a probe through the apiserver while a part of it restarts
        return False


def phase_is(cluster: Cluster, namespace: str, name: str, *, revision: str, phase: str) -> Callable[[], bool]:
    """A ``Blow.when``: the LLMDeployment is in ``phase`` for ``revision``."""

    def probe() -> bool:
        st = _status(cluster, namespace, name)
        return st.get("desiredRevision") == revision and st.get("phase") == phase

    return probe


def canary_weight_above(cluster: Cluster, namespace: str, name: str, weight: int) -> Callable[[], bool]:
    def probe() -> bool:
        return int((_status(cluster, namespace, name).get("canary") or {}).get("weight") or 0) > weight

    return probe


def stage_starts(cluster: Cluster, namespace: str, name: str, prefix: str) -> Callable[[], bool]:
    """A ``Blow.when``: the round's stage (``stage_of``) starts with ``prefix``."""
    return lambda: stage_of(_status(cluster, namespace, name)).startswith(prefix)


def newest_stage_starts(cluster: Cluster, namespace: str, prefix: str) -> Callable[[], bool]:
    """A ``Blow.when``: the stage of the newest round in ``namespace`` starts with ``prefix``."""
    return lambda: _newest_stage(cluster, namespace).startswith(prefix)
