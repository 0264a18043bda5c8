"""``make bench-scale``: N LLMDeployments created at once, against the floor of ``kubectl apply``.

Three figures, all from the same run on one fresh local cluster:

- **floor**: ``kubectl apply --server-side`` of every object the operator's first pass writes
  (the children ``plan()`` renders and the gateway's signing-key Secret the server pods mount,
  for LLMDeployments created in a namespace the operator does not watch), in one kubectl call.
  Without the Secret the floor's pods never started (the kubelet could not mount it), while the
  operator's 16 did: a TGI simulator and a gateway each, and the status updates and endpoints
  that follow, work the floor was spared;
- **operator**: from the start of one ``kubectl apply`` of the N LLMDeployments until every one
  has all those children and a status for its generation (seen by a watch of the LLMDeployments,
  then the children checked once: ``StatusWatch``); the ratio operator / floor (goal <= 1),
  also from the end of that apply (the LLMDeployments' own creation is not in the floor). The
  floor's namespace is deleted first, so both run on a cluster without the other's pods. For
  both turns, the CPU seconds each process spent meanwhile (the cluster's parts, the pods the
  fake kubelet runs, kubectl, the operator) and the API requests served meanwhile: on a shared
  machine the time moves with the load, these much less;
- **idle** (after the objects settle): objects whose resourceVersion changed during the idle
  window (goal 0), API requests per LLMDeployment per hour (the apiserver's own
  ``apiserver_request_total``, delta over the window, for the resources the operator reads and
  writes; the other components' watches and leases are left out), and the operator's RSS.

``make bench-scale FLOOR=0`` skips the floor's turn, for the idle figures and the RSS alone (at
5,000, the floor and the deletion of its namespace take longer than the operator's turn).

The LLMDeployments are what a new user would write: one replica, one GPU, the cache disabled.
The cluster has 16 GPUs, so 16 pods run (TGI simulators) and the rest stay Pending, which the
status says. It prints figures; it is a benchmark, not a test, and asserts nothing. The helpers
are shared with ``tests/integration/test_scale.py``, which runs a small sample.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import secrets
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.api.resource import parse
from llmops.informer import WATCH_TIMEOUT_SECONDS
from llmops.kube import load_client, watch_stream
from llmops.lifecycle.observations import Observations
from llmops.lifecycle.plan import plan
from llmops.render.gateway import signing_secret
from llmops_dev.cluster.build import repo_root
from llmops_dev.cluster.controlplane import Cluster
from llmops_dev.kubelet.proxy import pod_network_env
from llmops_dev.processes import Proc, free_port, stop_pid, wait_until

__all__ = [
    "ApiReader",
    "StatusWatch",
    "children_of",
    "floor_objects",
    "llmd_body",
    "main",
    "unsettled",
    "versions",
]

REVISION = "a" * 40
OPERATOR_NAMESPACE = "scale"  # the operator's turn; the floor's runs in "floor"
OWNED = {  # kind -> (REST collection path, without the namespace part)
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "Service": "/api/v1/namespaces/{ns}/services",
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
}
LLMD_PATH = "/apis/llmops.io/v1alpha1/namespaces/{ns}/llmdeployments"
# What the operator reads and writes; apiserver_request_total has no client label, and the other
# components reach these only through watches (left out) once the objects exist. Not Events: at
# idle the scheduler posts and patches FailedScheduling Events for every pod waiting for a GPU
# (2,108 of 2,855 requests in a minute at 1,000), the operator only on transitions; they are
# printed apart.
OPERATOR_RESOURCES = frozenset(
    {
        "llmdeployments",
        "deployments",
        "services",
        "persistentvolumeclaims",
        "jobs",
        "cronjobs",
        "poddisruptionbudgets",
        "networkpolicies",
        "podmonitors",
        "prometheusrules",
        "httproutes",
        "customresourcedefinitions",
        "pods",
        "pods@cluster",
    }
)
_REQUESTS = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def llmd_body(name: str, namespace: str) -> dict[str, Any]:
    """An LLMDeployment as a new user writes one: one replica, one GPU, no cache."""
    return {
        "apiVersion": "llmops.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"id": "sim-org/tiny-chat", "revision": REVISION},
            "resources": {"gpu": {"count": 1}},
            "replicas": 1,
            "cache": {"enabled": False},
        },
    }


def children_of(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The children the operator's first pass applies for ``body`` (``plan()`` with nothing observed)."""
    return plan(body, Observations(), dt.datetime.now(dt.UTC)).apply


def floor_objects(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What the operator's first pass writes for ``body``: its children, and the gateway's
    signing-key Secret (created by the reconciler, not rendered by ``plan()``: its keys are random)."""
    secret = signing_secret(
        parse(body),
        signing_key=secrets.token_bytes(32),
        internal_api_key=secrets.token_urlsafe(32).encode(),
        capture_token=secrets.token_urlsafe(32).encode(),
    )
    return [*children_of(body), secret]


def as_list(items: Iterable[Mapping[str, Any]]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)})


class ApiReader:
    """Plain GETs against the cluster (children as metadata only, to keep polling cheap)."""

    def __init__(self, kubeconfig: Path) -> None:
        self.client = load_client(str(kubeconfig))

    def get(self, path: str, metadata_only: bool = False) -> Any:
        accept = "application/json"
        if metadata_only:
            accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1," + accept
        method, url, headers, _, _ = self.client.param_serialize(
            "GET", path, header_params={"Accept": accept}, auth_settings=["BearerToken"]
        )
        resp = self.client.call_api(method, url, header_params=headers, _request_timeout=60)
        raw = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {resp.status}: {raw[:300]!r}")
        return raw if path == "/metrics" else json.loads(raw)

    def llmds(self, namespace: str) -> list[dict[str, Any]]:
        return list(self.get(LLMD_PATH.format(ns=namespace))["items"])

    def owned(self, namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
        """Metadata of the children kinds in ``namespace``, by (kind, name)."""
        out = {}
        for kind, path in OWNED.items():
            for item in self.get(path.format(ns=namespace), metadata_only=True)["items"] or []:
                out[(kind, item["metadata"]["name"])] = item["metadata"]
        return out


def unsettled(reader: ApiReader, namespace: str, expected: Mapping[str, set[tuple[str, str]]]) -> list[str]:
    """Names of the LLMDeployments that lack a child from ``expected`` (by name), its controller
    owner reference, or a status for their generation. Empty: all converged."""
    llmds = {o["metadata"]["name"]: o for o in reader.llmds(namespace)}
    owned = reader.owned(namespace)
    missing = []
    for name, wanted in expected.items():
        obj = llmds.get(name)
        if not obj or not has_status(obj):
            missing.append(name)
            continue
        uid = obj["metadata"]["uid"]
        for key in wanted:
            refs = (owned.get(key) or {}).get("ownerReferences") or []
            if not any(r["uid"] == uid and r.get("controller") for r in refs):
                missing.append(name)
                break
    return missing


def has_status(obj: Mapping[str, Any]) -> bool:
    """Whether an LLMDeployment has a status (a phase) for its generation."""
    status = obj.get("status") or {}
    return bool(status.get("phase")) and status.get("observedGeneration") == obj["metadata"].get("generation")


class StatusWatch:
    """When the last of ``names`` got a status for its generation, as one watch of the
    namespace's LLMDeployments reports it.

    Why not poll: the bench used to list every LLMDeployment (whole, with status) and the
    metadata of every child kind each 0.5-2 s while the operator worked. Those lists cost the
    apiserver and the bench CPU in the operator's turn that the floor's turn (which only waits
    for its kubectl) did not pay, on cores both turns saturate. A watch costs one event per
    change, whose JSON the apiserver has already made for the operator's own watch. The children
    are checked once, by ``unsettled()``, when every status is in (a pass applies its children
    before it writes the status).
    """

    def __init__(self, reader: ApiReader, namespace: str, names: Iterable[str]) -> None:
        self.reader = reader
        self.namespace = namespace
        self.path = LLMD_PATH.format(ns=namespace)
        self.pending = set(names)
        self.done_at: float | None = None
        self.failure: str | None = None
        self._ended = threading.Event()
        self._version = str(reader.get(self.path)["metadata"]["resourceVersion"])
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="status-watch", daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> float | None:
        """The monotonic time the last status came, or None (timeout, or the watch failed)."""
        self._ended.wait(timeout)
        return self.done_at

    def stop(self) -> None:
        self._stop = True

    def _run(self) -> None:
        try:
            while not self._stop and self.pending:
                self._follow()
        except Exception as exc:  # reported; the caller falls back to polling
            self.failure = f"{type(exc).__name__}: {exc}"
        finally:
            self._ended.set()

    def _follow(self) -> None:
        """One watch from the last resourceVersion seen, until the server ends it."""
        query = [
            ("watch", "true"),
            ("resourceVersion", self._version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(WATCH_TIMEOUT_SECONDS)),
        ]
        for event in watch_stream(self.reader.client, self.path, query):
            if event["type"] == "ERROR":
                raise RuntimeError(f"watch {self.path}: {event['object'].get('message')}")
            obj = event["object"]
            self._version = obj["metadata"]["resourceVersion"]
            if event["type"] in ("ADDED", "MODIFIED") and has_status(obj):
                self.pending.discard(obj["metadata"]["name"])
                if not self.pending:
                    self.done_at = time.monotonic()
                    return
            if self._stop:
                return


def versions(reader: ApiReader, namespace: str) -> dict[str, str]:
    """resourceVersion of every LLMDeployment and child kind in ``namespace``, by kind/name."""
    out = {
        f"LLMDeployment/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
        for o in reader.llmds(namespace)
    }
    out.update({f"{k}/{n}": m["resourceVersion"] for (k, n), m in reader.owned(namespace).items()})
    return out


def changed(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """Objects modified, created or deleted between two ``versions()``."""
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def request_counts(reader: ApiReader) -> Counter[tuple[str, str]]:
    """The apiserver's request counters, summed by (verb, resource); a cluster-wide list of a
    namespaced resource (the GPU diagnosis' pod list) is counted as ``<resource>@cluster``."""
    text = reader.get("/metrics").decode()
    out: Counter[tuple[str, str]] = Counter()
    for m in _REQUESTS.finditer(text):
        labels = dict(_LABEL.findall(m["labels"]))
        resource = labels.get("resource", "")
        if resource == "pods" and labels.get("scope") == "cluster":
            resource = "pods@cluster"
        out[(labels.get("verb", ""), resource)] += int(float(m["value"]))
    return out


def operator_requests(delta: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """The part of a request delta that is the operator's: its resources, watches left out."""
    return Counter(
        {
            k: v
            for k, v in delta.items()
            if k[1] in OPERATOR_RESOURCES and k[0] not in ("WATCH", "WATCHLIST") and v
        }
    )


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (empty once the process is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def cpu_seconds(pid: int, reaped_children: bool = False) -> float:
    """User plus system CPU time of one process so far (0 once it is gone), with that of its
    children it has waited for when ``reaped_children``."""
    fields = _stat(pid)
    if not fields:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(parent: int) -> float:
    """CPU time of ``parent``'s children: the running ones and those it has waited for."""
    running = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and int(fields[1]) == parent:
            running += cpu_seconds(int(entry.name), reaped_children=True)
    return running + cpu_seconds(parent, reaped_children=True) - cpu_seconds(parent)


def cpu_by_process(procs: Iterable[Proc]) -> dict[str, float]:
    """CPU seconds of each process so far, by name; "pods" is the containers the fake kubelet
    runs (TGI simulators, gateways), which also run on this machine's cores."""
    out = {p.name: cpu_seconds(p.pid) for p in procs}
    for p in procs:
        if p.name == "kubelet":
            out["pods"] = children_cpu_seconds(p.pid)
    return out


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_settled(reader: ApiReader, namespace: str, quiet_s: float, deadline_s: float) -> float:
    """Wait until nothing in ``namespace`` changes for ``quiet_s``; returns how long it took."""
    t0 = time.monotonic()
    last, since = versions(reader, namespace), time.monotonic()
    while time.monotonic() - since < quiet_s:
        if time.monotonic() - t0 > deadline_s:
            break
        time.sleep(1.0)
        now = versions(reader, namespace)
        if now != last:
            last, since = now, time.monotonic()
    return time.monotonic() - t0


@dataclass
class _Usage:
    """CPU seconds and API requests from a start, to compare the floor's turn with the
    operator's: the machine has few cores, so the time follows the CPU both spend."""

    procs: list[Proc]
    reader: ApiReader
    cpu_at_start: dict[str, float]
    requests_at_start: Counter[tuple[str, str]]
    kubectl_at_start: float
    bench_at_start: float
    machine_at_start: tuple[float, float]

    @classmethod
    def start(cls, procs: Iterable[Proc], reader: ApiReader) -> _Usage:
        procs = list(procs)
        return cls(
            procs,
            reader,
            cpu_by_process(procs),
            request_counts(reader),
            _kubectl_cpu(),
            _own_cpu(),
            idle_and_stolen(),
        )

    def spent(self) -> dict[str, float]:
        """CPU seconds by process since the start, kubectl (this process' children) included."""
        now = cpu_by_process(self.procs)
        out = {k: v - self.cpu_at_start.get(k, 0.0) for k, v in now.items()}
        out["kubectl"] = _kubectl_cpu() - self.kubectl_at_start
        out["bench"] = _own_cpu() - self.bench_at_start  # its own waiting for convergence
        return out

    def requests(self) -> Counter[tuple[str, str]]:
        return request_counts(self.reader) - self.requests_at_start

    def report(
        self,
        when: str,
        spent: Mapping[str, float] | None = None,
        delta: Counter[tuple[str, str]] | None = None,
    ) -> None:
        """Print where the CPU went and how many requests (watches left out) the apiserver served."""
        spent = self.spent() if spent is None else spent
        delta = self.requests() if delta is None else delta
        ranked = sorted(((v, k) for k, v in spent.items() if v >= 0.1), reverse=True)
        served = sum(n for (verb, _), n in delta.items() if verb not in ("WATCH", "WATCHLIST"))
        print(
            f"  CPU seconds {when}: {sum(spent.values()):.1f} ("
            + ", ".join(f"{k} {v:.1f}" for v, k in ranked)
            + f"); API requests served: {served}"
        )
        idle, stolen = (
            now - then for now, then in zip(idle_and_stolen(), self.machine_at_start, strict=True)
        )
        print(
            f"  the machine meanwhile: {idle:.1f} CPU seconds idle, {stolen:.1f} stolen by the host "
            "(other guests of a shared host: a turn with more stolen ran slower for it)"
        )


def idle_and_stolen() -> tuple[float, float]:
    """The machine's idle (with I/O wait) and stolen CPU seconds so far, all cores (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(f) for f in fields] + [0] * 8
    hz = os.sysconf("SC_CLK_TCK")
    return (ticks[3] + ticks[4]) / hz, ticks[7] / hz


def _kubectl_cpu() -> float:
    """CPU seconds of the child processes this process has waited for (the kubectl calls)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _own_cpu() -> float:
    """CPU seconds of this process (the bench itself) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(what: str, call: Callable[[], Any]) -> float:
    t0 = time.monotonic()
    call()
    took = time.monotonic() - t0
    print(f"  {what}: {took:.1f} s", flush=True)
    return took


def _delete_namespace(cluster: Cluster, namespace: str, timeout: float) -> None:
    cluster.kubectl("delete", "namespace", namespace, f"--timeout={int(timeout)}s", timeout=timeout + 30)


def _start_operator(cluster: Cluster, namespace: str, log: Path) -> Proc:
    port = free_port()
    llmops = Path(sys.executable).with_name("llmops")
    assert cluster.state_dir is not None  # the bench starts its own cluster
    env = {**os.environ, **pod_network_env(cluster.state_dir), "KUBECONFIG": str(cluster.kubeconfig)}
    argv = [str(llmops), "run", "-n", namespace, "--standalone", "--liveness-port", str(port)]
    proc = Proc.start("operator", argv, log, env=env)

    def alive() -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    wait_until("operator /healthz", alive, 60, [proc])
    return proc


def _create_llmds(cluster: Cluster, names: list[str], namespace: str, timeout: float) -> None:
    """The LLMDeployments ``names`` in ``namespace``, in one ``kubectl apply --server-side``."""
    cluster.kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        input=as_list(llmd_body(n, namespace) for n in names),
        timeout=timeout,
    )


def _floor_turn(cluster: Cluster, reader: ApiReader, names: list[str], timeout: float) -> tuple[float, float]:
    """The floor: the same children, in one kubectl call, owned by LLMDeployments nobody
    reconciles (in a namespace the operator does not watch); returns its seconds and the CPU
    seconds every process spent meanwhile."""
    cluster.kubectl("create", "namespace", "floor")
    scale = len(names)
    # Not part of the floor, but part of the operator's time below: what creating the
    # LLMDeployments costs the apiserver (schema and CEL validation) with no one reconciling.
    _timed(
        f"creating the {scale} LLMDeployments alone, nothing reconciling them (not counted)",
        lambda: _create_llmds(cluster, names, "floor", timeout),
    )
    floor_children = [c for obj in reader.llmds("floor") for c in floor_objects(obj)]
    usage = _Usage.start(cluster.procs, reader)
    floor = _timed(
        f"floor: kubectl apply --server-side of {len(floor_children)} objects in one call "
        "(the children and the signing-key Secrets)",
        lambda: cluster.kubectl(
            "apply", "--server-side", "-f", "-", input=as_list(floor_children), timeout=timeout * 3
        ),
    )
    spent = usage.spent()
    usage.report("during the floor", spent)
    # The floor's Deployments made pods that wait for GPUs; left in place they would cost the
    # scheduler and the controller-manager CPU all through the operator's turn.
    _timed("floor namespace deleted (not counted)", lambda: _delete_namespace(cluster, "floor", timeout * 3))
    return floor, sum(spent.values())


def _converged(
    reader: ApiReader,
    operator: Proc,
    watch: StatusWatch,
    expected: Mapping[str, set[tuple[str, str]]],
    t0: float,
    deadline_s: float,
) -> float:
    """Seconds from ``t0`` until every LLMDeployment of ``expected`` has its children and a
    status: when the watch saw the last status, if the children were all there then; else (a
    child missing, or the watch failed) when polling finds them."""
    while watch.wait(min(5.0, max(0.0, t0 + deadline_s - time.monotonic()))) is None:
        if watch.failure or operator.failed() or time.monotonic() - t0 > deadline_s:
            break
    watch.stop()
    if watch.failure:
        print(f"  the status watch failed ({watch.failure}); polling instead", flush=True)
    if watch.done_at is not None and not unsettled(reader, watch.namespace, expected):
        return watch.done_at - t0
    interval = max(0.5, len(expected) / 500)  # polling 1,000 objects costs the apiserver CPU too
    while left := unsettled(reader, watch.namespace, expected):
        if operator.failed() or time.monotonic() - t0 > deadline_s:
            raise RuntimeError(
                f"{len(left)} not converged (e.g. {left[:3]}): {operator.failed() or 'timeout'}"
            )
        time.sleep(interval)
    return time.monotonic() - t0


def run(scale: int, idle_s: float, state_dir: Path, floor_turn: bool = True) -> dict[str, float]:
    """The benchmark; returns its figures (also printed). Without ``floor_turn``, only the
    operator's turn, the idle window and the RSS (the floor of 5,000 takes longer than the rest)."""
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; N = {scale}")
    cluster = Cluster.start(state_dir)
    operator: Proc | None = None
    try:
        reader = ApiReader(cluster.kubeconfig)
        crd = repo_root() / "crds" / "llmops.io_llmdeployments.yaml"
        cluster.kubectl("apply", "--server-side", "-f", str(crd))
        # Polled: `kubectl wait` right after the apply exits 1 now and then on a loaded machine.
        established = 'jsonpath={.status.conditions[?(@.type=="Established")].status}'
        wait_until(
            "the LLMDeployment CRD Established",
            lambda: cluster.kubectl(
                "get", "crd/llmdeployments.llmops.io", "-o", established, check=False
            ).stdout
            == "True",
            60,
            [],
            interval_s=0.5,
        )
        names = [f"m{i:04d}" for i in range(scale)]
        timeout = 120 + 2 * scale

        floor, floor_cpu = _floor_turn(cluster, reader, names, timeout) if floor_turn else (float("nan"), 0.0)

        # The operator: N LLMDeployments in one call, until each has its children and a status.
        cluster.kubectl("create", "namespace", OPERATOR_NAMESPACE)
        operator = _start_operator(cluster, OPERATOR_NAMESPACE, state_dir / "logs" / "operator.log")
        expected = {
            n: {(c["kind"], c["metadata"]["name"]) for c in children_of(llmd_body(n, OPERATOR_NAMESPACE))}
            for n in names
        }
        watch = StatusWatch(reader, OPERATOR_NAMESPACE, names)
        usage = _Usage.start([*cluster.procs, operator], reader)
        t0 = time.monotonic()
        _create_llmds(cluster, names, OPERATOR_NAMESPACE, timeout)
        created = time.monotonic() - t0
        took = _converged(reader, operator, watch, expected, t0, timeout * 3)
        load = os.getloadavg()
        spent, delta = usage.spent(), usage.requests()
        busy = operator_requests(delta)
        print(
            f"  operator: {took:.1f} s from the first LLMDeployment created to all converged "
            f"(creating the {scale} LLMDeployments took {created:.1f} s of it)"
        )
        if floor_turn:
            print(
                f"  ratio operator / floor: {took / floor:.2f} (goal <= 1.0); "
                f"from the last LLMDeployment created: {(took - created) / floor:.2f}"
            )
        print(f"  load average during the run (1, 5, 15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        usage.report("during it", spent, delta)
        if floor_turn:
            # Time follows CPU when both turns saturate the cores: the work the operator's turn
            # adds to the cluster's, with the operator's own CPU left out.
            others = sum(spent.values()) - spent.get("operator", 0.0)
            print(
                f"  CPU seconds without the operator's own: {others:.1f}, against {floor_cpu:.1f} for the floor"
            )
        print(
            f"  API requests during it (operator's resources, the bench's own reads included): "
            f"{sum(busy.values())}: " + ", ".join(f"{v} {r} {n}" for (v, r), n in busy.most_common(10))
        )

        settle = wait_settled(reader, OPERATOR_NAMESPACE, quiet_s=10, deadline_s=180)
        print(f"  settled (10 s without a change) after {settle:.0f} s more")
        before_v, before_r = versions(reader, OPERATOR_NAMESPACE), request_counts(reader)
        time.sleep(idle_s)  # the measurement window itself, not a synchronisation
        # The counts first: the bench's own lists of versions() stay out of the window.
        after_r = request_counts(reader)
        after_v = versions(reader, OPERATOR_NAMESPACE)
        diff = changed(before_v, after_v)
        ours = operator_requests(after_r - before_r)
        per_hour = sum(ours.values()) / scale * 3600 / idle_s
        rss = rss_mib(operator.pid)
        print(
            f"idle {idle_s:.0f} s: objects changed {len(diff)} (goal 0){': ' + ', '.join(diff[:10]) if diff else ''}"
        )
        print(
            f"  operator API requests: {sum(ours.values())} in {idle_s:.0f} s = {per_hour:.1f} per LLMDeployment per hour"
        )
        print("  by verb and resource: " + ", ".join(f"{v} {r} {n}" for (v, r), n in ours.most_common(8)))
        events = sum(n for (v, r), n in (after_r - before_r).items() if r == "events")
        print(f"  Events written by anyone (mostly the scheduler's FailedScheduling), not counted: {events}")
        print(f"  operator RSS: {rss:.0f} MiB")
        return {
            "floor_s": floor,
            "operator_s": took,
            "ratio": took / floor,
            "idle_changed": float(len(diff)),
            "requests_per_llmd_hour": per_hour,
            "rss_mib": rss,
            "operator_cpu_s": spent.get("operator", 0.0),
        }
    finally:
        if operator is not None:
            stop_pid(operator.pid, "llmops")
            operator.popen.wait(timeout=30)
        cluster.stop()


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that the cluster and the operator are stopped on SIGTERM too


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupted)
    parser = argparse.ArgumentParser(prog="bench-scale", description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=100, help="LLMDeployments created at once")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of the idle window")
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="skip the floor's turn (for the idle figures and the RSS alone)",
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep the cluster's state and logs in this directory"
    )
    args = parser.parse_args(argv)
    if args.keep:
        run(args.scale, args.idle, args.keep, floor_turn=not args.no_floor)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        run(args.scale, args.idle, Path(tmp) / "state", floor_turn=not args.no_floor)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
