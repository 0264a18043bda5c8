"""Chaos: the operator killed at random moments through serve → gate → canary → promote.

One *round* serves revision A of an LLMDeployment with an evaluation gate and a canary, then
moves it to revision B and waits for B to be promoted. While rounds run, a ``Killer`` thread
follows a schedule: each entry waits for a moment (a random gap, or a phase of the round),
then SIGKILLs the operator (or restarts a control-plane part or Prometheus in place), checks the
invariants while nothing reconciles, and starts the operator again. The invariants:

- every child has exactly one controller ownerReference, to a live LLMDeployment, under a
  deterministic name (no generateName), and no two Deployments serve the same track;
- no Job is ever created twice for the same revision: a ``JobLedger`` watches Job events for
  the whole run, so a Job deleted and created again is still counted;
- the end state of every round (phase, revisions, conditions' type/status/reason, the set of
  children) equals that of a round nobody interrupted.

Used by tests/integration/test_chaos.py (a few kills) and tests/bench/chaos.py (``make chaos``).
"""

from __future__ import annotations

import contextlib
import json
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

from llmops.kube import load_client
from llmops_dev.cluster import Cluster
from llmops_dev.loadgen import Traffic
from testkit import get_json, wait_for
from testkit.operator import OperatorProcess, llmd, sample, set_behaviour

REV_A, REV_B = "1a" * 20, "2b" * 20
# 20 prompts: a perfect score shows exactMatch >= 0.8 at 95% from 16 on (the gate judges bounds).
QA = [{"prompt": f"What is {i} + {i}?", "reference": str(2 * i)} for i in range(20)]
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
CHILD_KINDS = "deployments,services,persistentvolumeclaims,jobs,cronjobs,poddisruptionbudgets,networkpolicies"
_JOB_FAMILY = re.compile(r"-(eval|smoke|download)-[0-9a-f]+$")


# --------------------------------------------------------------------------- the workload
def prepare(cluster: Cluster, namespace: str) -> None:
    """The evaluation dataset in ``namespace``, and TGI simulators that answer it for A and B."""
    text = "\n".join(json.dumps(x) for x in QA) + "\n"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "qa"}, "data": {"qa.jsonl": text}}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(cm))
    assert cluster.state_dir is not None
    answers = cluster.state_dir / "chaos-qa.jsonl"
    answers.write_text(text)
    for rev in (REV_A, REV_B):
        set_behaviour(cluster, rev, dataset=str(answers), accuracy=1.0)


def _apply(cluster: Cluster, namespace: str, name: str, revision: str) -> None:
    body = sample(name, revision, evaluation=EVALUATION, rollout=ROLLOUT, replicas=2)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=body)


def _status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return llmd(cluster, namespace, name).get("status") or {}


def _serving(cluster: Cluster, namespace: str, name: str, revision: str) -> bool:
    st = _status(cluster, namespace, name)
    if st.get("servingRevision") != revision or st.get("phase") != "Serving":
        return False
    # Settled: the canary and the staging pods are gone (what a round's end state is read from).
    deployments = get_json(cluster, "deployments", "-n", namespace, "-l", f"llmops.io/deployment={name}")
    return [d["metadata"]["name"] for d in deployments.get("items", [])] == [f"{name}-stable"]


def run_round(cluster: Cluster, namespace: str, name: str, timeout: float = 300) -> dict[str, Any]:
    """Serve A through its gate, then canary B to promotion; return the end state."""
    _apply(cluster, namespace, name, REV_A)
    wait_for(f"{name}: A served", lambda: _serving(cluster, namespace, name, REV_A), timeout, 0.5)
    assert cluster.state_dir is not None
    with Traffic(cluster.state_dir, namespace, name, rate=10):
        _apply(cluster, namespace, name, REV_B)
        wait_for(f"{name}: B promoted", lambda: _serving(cluster, namespace, name, REV_B), timeout, 0.5)
    return end_state(cluster, namespace, name)


def end_state(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """What an interrupted round must end with, as an uninterrupted one does (names made generic)."""
    st = _status(cluster, namespace, name)
    kids = get_json(cluster, CHILD_KINDS, "-n", namespace, "-l", f"llmops.io/deployment={name}")
    return {
        "phase": st.get("phase"),
        "servingRevision": st.get("servingRevision"),
        "desiredRevision": st.get("desiredRevision"),
        "lastPromotedRevision": st.get("lastPromotedRevision"),
        "conditions": sorted((c["type"], c["status"], c.get("reason")) for c in st.get("conditions") or []),
        "children": sorted(
            f"{k['kind']}/{k['metadata']['name'].replace(name, '<name>', 1)}" for k in kids.get("items", [])
        ),
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
        if self.ledger is not None:
            self.violations += [
                f"{when}: {v}" for v in self.ledger.violations() if f"{when}: {v}" not in self.violations
            ]


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
