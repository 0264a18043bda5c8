"""The thin adapter to the Kubernetes API: read children, apply, delete, patch status, post events.

Everything the operator writes goes through ``Kube`` so that writes are counted (a test
asserts that a pass with nothing to change writes nothing) and always use server-side apply
with one field manager. Reads of optional APIs (Prometheus Operator, Gateway API) are
discovered, not assumed. The synchronous ``kubernetes`` client runs in worker threads.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import kubernetes
import orjson
import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from llmops.api.constants import API_VERSION, KIND, LABEL_DEPLOYMENT, PLURAL
from llmops.api.quantity import cpu_millis, quantity_bytes
from llmops.contracts import format_timestamp
from llmops.informer import WATCH_TIMEOUT_SECONDS, Change, Gone, Informer, Latest, watch_lines
from llmops.lifecycle.observations import (
    CHILD_KINDS,
    GATEWAY_API,
    KEDA_API,
    MONITORING_API,
    Compute,
    GpuNode,
    Observations,
    device_count,
    pod_compute_requests,
    pod_device_requests,
)
from llmops.lifecycle.ownership import FIELD_MANAGER

__all__ = [
    "FIELD_MANAGER",
    "GPU_CAPACITY_TTL_SECONDS",
    "INFORMED_KINDS",
    "OPTIONAL_CRDS",
    "RESOURCES",
    "USER_AGENT",
    "ApiError",
    "Kube",
    "Resource",
    "SharedRead",
    "load_client",
]

log = logging.getLogger("llmops.kube")
DISCOVERY_TTL_SECONDS = 15.0
"""How long the presence of optional CRDs is cached (installing the Prometheus Operator is noticed
within this time)."""
API_CONCURRENCY = 16
"""Requests of one process in flight at once, shared by every pass: the lists of one observation
and the writes of one pass are independent of each other, so they go out together rather than
one round trip after another (at 100 LLMDeployments created at once, one at a time made the
operator slower than ``kubectl apply`` of the same children)."""
GPU_CAPACITY_TTL_SECONDS = 10.0
"""How long one read of the cluster's GPU nodes and of what pods request on them serves every
pass that needs it. Only passes of LLMDeployments whose pods wait for GPUs read it, to say how
many are free; with one read per pass, 1,000 waiting LLMDeployments made 1,000 cluster-wide
pod lists per round of passes. The numbers are a diagnosis, not a decision (the scheduler
decides), so a few seconds of staleness are harmless; a deleted pod of ours drops it at once."""
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class Resource:
    api_version: str
    plural: str
    optional_api: str | None = None
    """Set when the kind comes from an optional CRD group that may be absent."""

    def path(self, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        """The REST path; ``namespace=None``: the collection across every namespace."""
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        out = f"{base}/namespaces/{namespace}/{self.plural}" if namespace else f"{base}/{self.plural}"
        if name:
            out += f"/{name}"
        if sub:
            out += f"/{sub}"
        return out


# Every kind the operator owns or watches, with its REST path.
RESOURCES: dict[str, Resource] = {
    "Deployment": Resource("apps/v1", "deployments"),
    "Service": Resource("v1", "services"),
    "PersistentVolumeClaim": Resource("v1", "persistentvolumeclaims"),
    "Job": Resource("batch/v1", "jobs"),
    "CronJob": Resource("batch/v1", "cronjobs"),
    "PodDisruptionBudget": Resource("policy/v1", "poddisruptionbudgets"),
    "NetworkPolicy": Resource("networking.k8s.io/v1", "networkpolicies"),
    "PodMonitor": Resource(MONITORING_API, "podmonitors", MONITORING_API),
    "PrometheusRule": Resource(MONITORING_API, "prometheusrules", MONITORING_API),
    "HTTPRoute": Resource(GATEWAY_API, "httproutes", GATEWAY_API),
    "HorizontalPodAutoscaler": Resource("autoscaling/v2", "horizontalpodautoscalers"),
    "ScaledObject": Resource(KEDA_API, "scaledobjects", KEDA_API),
    "Pod": Resource("v1", "pods"),
    # The gateway's signing key (see render.gateway): created once, read only for its capture token.
    "Secret": Resource("v1", "secrets"),
    "LLMDeployment": Resource(API_VERSION, PLURAL),
}
OPTIONAL_CRDS = {
    MONITORING_API: "podmonitors.monitoring.coreos.com",
    GATEWAY_API: "httproutes.gateway.networking.k8s.io",
    KEDA_API: "scaledobjects.keda.sh",
}


INFORMED_KINDS: tuple[str, ...] = (
    *(k for k in CHILD_KINDS if RESOURCES[k].optional_api is None),
    "Pod",
)
"""The kinds kept by informers (``Kube(use_informers=True)``): the children that need no optional
CRD, and the pods. The optional ones (PodMonitor…) are listed by each pass."""
USER_AGENT = "llmops-operator"
"""How the operator's own requests (not kopf's) appear in the apiserver's logs and audit log."""
INFORMER_SYNC_SECONDS = 30.0
"""How long the first pass in a namespace waits for its informers' first lists; past it, the pass
lists what it needs itself."""


class ApiError(Exception):
    """A Kubernetes API call failed; ``status`` is the HTTP status (0 for transport errors).

    Only the API and the network raise it: an exception from our own code (TypeError,
    KeyError, ValueError…) is never wrapped into one, so it is reported as the bug it is."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    @property
    def transient(self) -> bool:
        """Worth retrying as is: the network, a conflict, throttling or a server error. A refusal
        (403, 404, 422) needs a change somewhere else first."""
        return self.status == 0 or self.status in (409, 429) or self.status >= 500

    def about(self, what: str) -> ApiError:
        """The same error, its message prefixed with what was being done ("apply Service chat")."""
        return ApiError(self.status, f"{what}: {self}")


_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError)
"""What the network raises under the client: refused connections, resets, timeouts, TLS
failures (urllib3's errors, and OSError for sockets)."""


def load_client(kubeconfig: str | None = None, watch_scopes: int = 1) -> ApiClient:
    """An ApiClient from a kubeconfig, or in-cluster config when there is none, with room for
    the informers' watches of ``watch_scopes`` scopes (1 for every namespace, else one per
    namespace watched) besides the passes' requests."""
    cfg = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    except (kubernetes.config.ConfigException, FileNotFoundError, TypeError):
        kubernetes.config.load_incluster_config(client_configuration=cfg)
    # One kept-alive connection per request in flight: the fan-out pool's, plus the passes' own
    # reads and status writes, plus the informers' watches, each holding one for minutes
    # (urllib3's default, 5 per core, would open and drop a connection for each request beyond
    # it). Informers per namespace (``llmops run -n``) hold as many per namespace. The size only
    # bounds the connections kept: none is opened before a request needs it.
    cfg.connection_pool_maxsize = 2 * API_CONCURRENCY + len(INFORMED_KINDS) * max(1, watch_scopes)
    client = ApiClient(cfg)
    client.user_agent = USER_AGENT
    return client


class SharedRead(Generic[_T]):
    """One read shared by every caller within ``ttl`` seconds of it.

    Callers that arrive while the read is in flight wait for its answer instead of reading too,
    and a failed read is shared like a successful one (a namespaced install, refused the
    cluster-wide list with 403, does not ask again in every pass). ``forget`` makes the next
    caller read again. ``reads`` counts the reads actually made (for tests and the bench)."""

    def __init__(
        self, read: Callable[[], _T], ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._read, self._ttl, self._clock = read, ttl, clock
        self._lock = threading.Lock()
        self._answer: tuple[float, _T | None, ApiError | None] | None = None
        self.reads = 0

    def get(self) -> _T:
        with self._lock:  # held through the read: the other callers wait for its answer
            if self._answer is None or self._clock() - self._answer[0] >= self._ttl:
                self.reads += 1
                try:
                    self._answer = (self._clock(), self._read(), None)
                except ApiError as exc:
                    self._answer = (self._clock(), None, exc)
            _, value, error = self._answer
        if error is not None:
            raise error
        return value  # type: ignore[return-value]  # None only with an error, raised above

    def forget(self) -> None:
        with self._lock:
            self._answer = None


def _compute_free(node: Mapping[str, Any], requested: Compute) -> Compute | None:
    """The node's allocatable CPU and memory less ``requested``; None when the node does not say
    both (the diagnosis then assumes they fit)."""
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    try:
        have = Compute(cpu_millis(allocatable["cpu"]), quantity_bytes(allocatable["memory"]))
    except (KeyError, ValueError):
        return None
    return have - requested


@dataclass(frozen=True)
class _GpuCapacity:
    """The nodes (as listed) and the extended-resource requests of the unfinished pods on each."""

    nodes: Sequence[Mapping[str, Any]]
    requested: Mapping[str, Counter[str]]
    """Node name → resource name → devices requested by the node's unfinished pods."""
    compute: Mapping[str, Compute] = field(default_factory=dict)
    """Node name → CPU and memory requested by the node's unfinished pods."""


class Kube:
    """Narrow, counted access to the API for the operator."""

    def __init__(
        self,
        client: ApiClient,
        use_informers: bool = False,
        llmds: Latest | None = None,
        cluster_wide: bool = False,
    ) -> None:
        self.client = client
        self._lock = threading.Lock()
        self.writes: list[tuple[str, str, str]] = []
        """(verb, kind, name) of every write, for tests and debugging."""
        self.discovery = SharedRead(self._read_optional_apis, DISCOVERY_TTL_SECONDS)
        """Which optional CRDs exist, read once per TTL for every pass (each pass used to read
        them itself whenever the TTL had run out: a burst of GETs with many objects)."""
        self._pool = ThreadPoolExecutor(API_CONCURRENCY, thread_name_prefix="llmops-api")
        self.gpu_capacity = SharedRead(self._read_gpu_capacity, GPU_CAPACITY_TTL_SECONDS)
        """The cluster's GPU nodes and allocations, shared by the passes of one TTL."""
        self.use_informers = use_informers
        self.cluster_wide = cluster_wide
        """One informer per kind for every namespace (an operator watching them all), rather than
        one per kind and namespace: 9 watches and threads in all, not 9 per namespace that ever
        held an LLMDeployment, each holding one of the client's pooled connections."""
        self._informers: dict[str | None, dict[str, Informer]] = {}
        self.on_change: Callable[[Change], None] = lambda change: None
        """Called (from an informer's thread) when a child of ours changed: triggers its owner's pass."""
        self.llmds = llmds
        """The LLMDeployments as a watch delivers them (kopf's, see handlers), read by ``get_llmd``
        instead of the apiserver; None: every ``get_llmd`` asks the apiserver. Only set it when a
        watch feeds it, or the copies would go stale."""

    def stop(self) -> None:
        """Stop the informers' threads (each ends with its current watch)."""
        with self._lock:
            for informers in self._informers.values():
                for informer in informers.values():
                    informer.stop()

    def concurrently(self, call: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
        """``[call(i) for i in items]`` with the calls in flight together (bounded by
        ``API_CONCURRENCY``); every call completes before the first error, if any, is raised. Never call it from
        ``call`` itself: the pool's threads would wait for each other."""
        futures = [self._pool.submit(call, item) for item in items]
        errors = [exc for f in futures if (exc := f.exception()) is not None]
        if errors:
            raise errors[0]
        return [f.result() for f in futures]

    # ------------------------------------------------------------- raw calls
    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Sequence[tuple[str, Any]] = (),
        content_type: str = "application/json",
    ) -> Any:
        try:
            m, url, headers, payload, _ = self.client.param_serialize(
                method,
                path,
                query_params=list(query),
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
            )
            resp = self.client.call_api(m, url, header_params=headers, body=payload, _request_timeout=30)
            raw = resp.read()
        except _TRANSPORT_ERRORS as exc:
            raise ApiError(0, f"{method} {path}: {exc}") from exc
        except ApiException as exc:
            # The client raises it for a Retry-After response (429/503, with its status) and
            # for a TLS failure (status 0, "SSLError"); status 0 otherwise means it could not
            # build the request from our arguments: our bug, not the network's.
            if exc.status == 0 and "SSLError" not in str(exc.reason):
                raise
            raise ApiError(exc.status or 0, f"{method} {path}: {exc.reason}") from exc
        if not 200 <= resp.status < 300:
            raise ApiError(resp.status, _api_message(resp.status, raw))
        return orjson.loads(raw) if raw else None

    def _call_object(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Sequence[tuple[str, Any]] = (),
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """`_call` for the requests whose answer is a Kubernetes object (or list)."""
        data = self._call(method, path, body=body, query=query, content_type=content_type)
        if not isinstance(data, dict):
            raise ApiError(0, f"{method} {path}: the answer is not a JSON object")
        return data

    def _write(self, verb: str, kind: str, name: str) -> None:
        with self._lock:
            self.writes.append((verb, kind, name))

    # ---------------------------------------------------------------- reads
    def get_llmd(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The LLMDeployment: the watch's latest copy when there is one, else the apiserver's
        (kept as the copy: the passes after it need not ask again before the next event)."""
        if self.llmds is not None:
            if (copy := self.llmds.get(namespace, name)) is not None:
                return copy
            if self.llmds.deleted(namespace, name):
                return None
        try:
            answer = self._call_object("GET", RESOURCES["LLMDeployment"].path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                if self.llmds is not None:
                    self.llmds.gone(namespace, name)
                return None
            raise
        if self.llmds is not None:
            self.llmds.put(answer, read=True)
        return answer

    def forget_apis(self) -> None:
        """Drop the cached discovery (an optional CRD was added or removed)."""
        self.discovery.forget()

    def optional_apis(self) -> frozenset[str]:
        """Which optional CRD groups exist (shared briefly: CRDs come and go rarely)."""
        return self.discovery.get()

    def _read_optional_apis(self) -> frozenset[str]:
        present = set()
        for api, crd in OPTIONAL_CRDS.items():
            try:
                self._call("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}")
                present.add(api)
            except ApiError as exc:
                if exc.status != 404:
                    raise
        return frozenset(present)

    def observe(self, namespace: str, name: str) -> Observations:
        """Children, pods and optional APIs for one LLMDeployment. Failed reads land in ``errors``."""
        selector = [("labelSelector", f"{LABEL_DEPLOYMENT}={name}")]
        errors: list[str] = []
        try:
            apis = self.optional_apis()
        except ApiError as exc:
            apis, errors = frozenset(), [f"discovery: {exc}"]
        kinds = [*(k for k in CHILD_KINDS if RESOURCES[k].optional_api in (None, *apis)), "Pod"]
        informers = self._informers_of(namespace)

        def read(kind: str) -> tuple[list[dict[str, Any]], ApiError | None]:
            informer = informers.get(kind)
            if informer is not None and informer.wait_synced(INFORMER_SYNC_SECONDS):
                return informer.of(namespace, name), None
            return self._list(kind, namespace, selector)

        listed = self.concurrently(read, kinds)
        children: dict[tuple[str, str], Mapping[str, Any]] = {}
        pods: list[Mapping[str, Any]] = []
        for kind, (items, error) in zip(kinds, listed, strict=True):
            if error is not None:
                errors.append(f"list {kind}: {error}")
            elif kind == "Pod":
                pods = list(items)
            else:
                for item in items:
                    item.setdefault("kind", kind)
                    children[(kind, item["metadata"]["name"])] = item
        return Observations(children=children, pods=pods, apis=apis, errors=tuple(errors))

    # ------------------------------------------------------------ informers
    def _informers_of(self, namespace: str) -> Mapping[str, Informer]:
        """The informers of ``namespace``'s children, started by the first pass there (with
        ``cluster_wide``, by the first pass anywhere: they serve every namespace)."""
        if not self.use_informers:
            return {}
        scope = self._scope(namespace)
        with self._lock:
            if scope not in self._informers:
                self._informers[scope] = {
                    kind: Informer(
                        kind,
                        scope,
                        lister=lambda kind=kind: self._list_labelled(kind, scope),  # type: ignore[misc]
                        watcher=lambda version, kind=kind: self._watch_labelled(kind, scope, version),  # type: ignore[misc]
                        on_change=self._changed,
                    )
                    for kind in INFORMED_KINDS
                }
                for informer in self._informers[scope].values():
                    informer.start()
            return self._informers[scope]

    def _scope(self, namespace: str) -> str | None:
        """The informers' key for ``namespace``: None for the cluster-wide ones."""
        return None if self.cluster_wide else namespace

    def watches(self, kind: str) -> bool:
        """Whether a change to a ``kind`` of ours comes back as a watch event that triggers its
        owner's pass (the informed kinds, when informers are on)."""
        return self.use_informers and kind in INFORMED_KINDS

    def _informer(self, kind: str, namespace: str) -> Informer | None:
        with self._lock:
            return self._informers.get(self._scope(namespace), {}).get(kind)

    def _changed(self, change: Change) -> None:
        if change.kind == "Pod" and change.deleted:
            self.gpu_capacity.forget()  # its GPUs are free now: the next diagnosis reads them again
        if change.deleted and self.llmds is not None:
            # The garbage collector deletes the children of a deleted LLMDeployment. kopf, after
            # a cut watch, lists again without reporting what was deleted meanwhile: the pass
            # these deletions trigger must not re-create children from the stale copy, so it
            # reads its LLMDeployment from the apiserver (one GET per child deleted, rare).
            self.llmds.forget(change.namespace, change.deployment, since=change.version)
        self.on_change(change)

    def _list_labelled(self, kind: str, namespace: str | None) -> tuple[list[dict[str, Any]], str]:
        """Every object of ``kind`` in ``namespace`` (None: in all) with our label, from the watch cache."""
        query = [("labelSelector", LABEL_DEPLOYMENT), ("resourceVersion", "0")]
        answer = self._call_object("GET", RESOURCES[kind].path(namespace), query=query)
        return list(answer.get("items") or []), str(answer["metadata"]["resourceVersion"])

    def _watch_labelled(self, kind: str, namespace: str | None, version: str) -> Iterator[Mapping[str, Any]]:
        """The watch events of ``kind`` with our label in ``namespace`` (None: in all) from ``version``."""
        query = [
            ("labelSelector", LABEL_DEPLOYMENT),
            ("watch", "true"),
            ("resourceVersion", version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(WATCH_TIMEOUT_SECONDS)),
        ]
        return watch_stream(self.client, RESOURCES[kind].path(namespace), query)

    def gpu_nodes(self, resource: str) -> list[GpuNode]:
        """The nodes offering ``resource`` and what unfinished pods of any namespace request on
        each, from the shared read (see ``GPU_CAPACITY_TTL_SECONDS``). Only read while pods wait
        for GPUs; a namespaced install (no cluster-wide pod list) gets a 403 here."""
        capacity = self.gpu_capacity.get()
        out = []
        for node in capacity.nodes:
            allocatable = device_count((node.get("status") or {}).get("allocatable", {}).get(resource))
            if allocatable > 0:
                meta = node["metadata"]
                out.append(
                    GpuNode(
                        name=meta["name"],
                        labels=dict(meta.get("labels") or {}),
                        allocatable=allocatable,
                        requested=capacity.requested.get(meta["name"], Counter())[resource],
                        schedulable=not (node.get("spec") or {}).get("unschedulable"),
                        taints=tuple(
                            {k: str(t[k]) for k in ("key", "value", "effect") if t.get(k) is not None}
                            for t in (node.get("spec") or {}).get("taints") or []
                        ),
                        compute_free=_compute_free(node, capacity.compute.get(meta["name"], Compute())),
                    )
                )
        return out

    def pod_refusal(self, namespace: str, job_uid: str) -> str | None:
        """The message of the newest FailedCreate Event of the Job with ``job_uid``: the
        apiserver's refusal of its pods, as the Job controller recorded it. By uid, since an
        earlier Job of the same name (deleted to be made again) keeps its own Events for an hour."""
        selector = ("fieldSelector", f"involvedObject.uid={job_uid},reason=FailedCreate")
        events = self._call_object("GET", f"/api/v1/namespaces/{namespace}/events", query=[selector])["items"]
        newest = max(events, key=_event_time, default=None)
        return str(newest.get("message") or "") or None if newest else None

    def _read_gpu_capacity(self) -> _GpuCapacity:
        """Two cluster-wide lists: the nodes, and the pods bound to a node and not finished.

        Pods waiting for the scheduler hold nothing and are left out by the field selector (at
        1,000 LLMDeployments on 16 GPUs, they are 984 of the 1,000 pods); ``resourceVersion=0``
        lets the apiserver answer from its watch cache instead of a quorum read of etcd."""
        from_cache = ("resourceVersion", "0")
        nodes = self._call_object("GET", "/api/v1/nodes", query=[from_cache])["items"]
        bound = ("fieldSelector", "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed")
        requested: dict[str, Counter[str]] = {}
        compute: dict[str, Compute] = {}
        for pod in self._call_object("GET", "/api/v1/pods", query=[bound, from_cache])["items"]:
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                requested.setdefault(node, Counter()).update(pod_device_requests(pod))
                compute[node] = compute.get(node, Compute()) + pod_compute_requests(pod)
        # Only what the answers need is kept: the nodes' name, labels, spec and allocatable.
        kept = [
            {
                "metadata": {"name": n["metadata"]["name"], "labels": n["metadata"].get("labels") or {}},
                "spec": n.get("spec") or {},
                "status": {"allocatable": (n.get("status") or {}).get("allocatable") or {}},
            }
            for n in nodes
        ]
        return _GpuCapacity(nodes=kept, requested=requested, compute=compute)

    def _list(
        self, kind: str, namespace: str, query: Sequence[tuple[str, Any]]
    ) -> tuple[list[dict[str, Any]], ApiError | None]:
        """The items of one list call, or the error that a failed read becomes in observations."""
        try:
            return self._call_object("GET", RESOURCES[kind].path(namespace), query=query)["items"], None
        except ApiError as exc:
            return [], exc

    def read(self, path: str) -> dict[str, Any] | None:
        """GET of any API path (None when it does not exist)."""
        try:
            return self._call_object("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object (None when it does not exist)."""
        try:
            return self._call_object("GET", RESOURCES[kind].path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    # --------------------------------------------------------------- writes
    def merge_patch(self, kind: str, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """A JSON merge patch of an object we do not own (a resourceVersion in it makes it
        conditional), under our field manager so that managedFields show what we changed."""
        self._write("patch", kind, name)
        try:
            self._call(
                "PATCH",
                RESOURCES[kind].path(namespace, name),
                body=dict(patch),
                query=[("fieldManager", FIELD_MANAGER)],
                content_type="application/merge-patch+json",
            )
        except ApiError as exc:
            raise exc.about(f"patch {kind} {name}") from exc

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply with our field manager, forcing ownership of the fields we send."""
        kind, meta = obj["kind"], obj["metadata"]
        self._write("apply", kind, meta["name"])
        try:
            answer = self._apply(obj, [("fieldManager", FIELD_MANAGER), ("force", "true")])
        except ApiError as exc:
            raise exc.about(f"apply {kind} {meta['name']}") from exc
        if informer := self._informer(kind, meta["namespace"]):
            informer.remember(dict(answer))  # the next pass sees it even before its watch event
        return answer

    def hand_over(self, obj: Mapping[str, Any], manager: str) -> bool:
        """Server-side apply of ``obj`` under ``manager`` without force: it co-owns the fields that
        hold the same values. False on a conflict (another manager set a different value first:
        it owns the field already, which is what a hand-over is for)."""
        kind, meta = obj["kind"], obj["metadata"]
        self._write("hand-over", kind, meta["name"])
        try:
            self._apply(obj, [("fieldManager", manager)])
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise exc.about(f"hand over {kind} {meta['name']}") from exc
        return True

    def _apply(self, obj: Mapping[str, Any], query: Sequence[tuple[str, Any]]) -> dict[str, Any]:
        meta = obj["metadata"]
        return self._call_object(
            "PATCH",
            RESOURCES[obj["kind"]].path(meta["namespace"], meta["name"]),
            body=orjson.dumps(obj),
            query=query,
            content_type="application/apply-patch+yaml",
        )

    def create_if_absent(self, obj: Mapping[str, Any]) -> bool:
        """Create `obj`; False when it exists already. For objects written once and never again
        (the gateway's signing key): no get before it, and never an overwrite."""
        kind, meta = obj["kind"], obj["metadata"]
        try:
            self._call("POST", RESOURCES[kind].path(meta["namespace"]), body=dict(obj))
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise
        self._write("create", kind, meta["name"])
        return True

    def set_pod_condition(self, namespace: str, pod: str, type_: str, reason: str, now: dt.datetime) -> None:
        """Set a readiness-gate condition True on a pod. A strategic merge patch merges the
        conditions list by type, so the kubelet's own conditions are left alone."""
        self._write("patch-status", "Pod", pod)
        cond = {
            "type": type_,
            "status": "True",
            "reason": reason,
            "lastTransitionTime": format_timestamp(now),
        }
        try:
            self._call(
                "PATCH",
                RESOURCES["Pod"].path(namespace, pod, "status"),
                body={"status": {"conditions": [cond]}},
                content_type="application/strategic-merge-patch+json",
            )
        except ApiError as exc:
            if exc.status != 404:  # the pod went away meanwhile: nothing to open
                raise

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self._write("delete", kind, name)
        if informer := self._informer(kind, namespace):
            informer.forget(namespace, name)
        try:
            self._call(
                "DELETE",
                RESOURCES[kind].path(namespace, name),
                body={"propagationPolicy": "Background"},
            )
        except ApiError as exc:
            if exc.status != 404:
                raise exc.about(f"delete {kind} {name}") from exc

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """A merge patch of status (keys mapped to None are removed), under our field manager:
        managedFields then show that ``llmops`` owns status and nothing of spec."""
        self._write("patch-status", KIND, name)
        try:
            answer = self._call_object(
                "PATCH",
                RESOURCES["LLMDeployment"].path(namespace, name, "status"),
                body={"status": status},
                query=[("fieldManager", FIELD_MANAGER)],
                content_type="application/merge-patch+json",
            )
        except ApiError as exc:
            raise exc.about(f"write status of {KIND} {name}") from exc
        if self.llmds is not None:
            self.llmds.put(answer)  # the next pass reads what it wrote, even before the watch event

    def event(
        self, owner: Mapping[str, Any], type_: str, reason: str, message: str, now: dt.datetime
    ) -> None:
        """Post a core/v1 Event about the LLMDeployment (best effort: an event must not fail a pass)."""
        meta = owner["metadata"]
        ts = format_timestamp(now)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "llmops-operator"},
            "reportingComponent": "llmops.io/operator",
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
        }
        self._write("event", KIND, meta["name"])
        try:
            self._call("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=body)
        except ApiError as exc:
            log.warning("could not post event %s for %s/%s: %s", reason, meta["namespace"], meta["name"], exc)


def watch_stream(
    client: ApiClient, path: str, query: Sequence[tuple[str, str]]
) -> Iterator[Mapping[str, Any]]:
    """The events of one watch of ``path`` (``query`` holds ``watch=true`` and where to start),
    until the server ends it: the informers' watches and the scale bench's. 410 (the version is
    gone from the watch cache) raises ``Gone``; a lost connection, ``ApiError(0, ...)``."""
    try:
        m, url, headers, _, _ = client.param_serialize(
            "GET",
            path,
            query_params=list(query),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        resp = client.call_api(
            m, url, header_params=headers, _request_timeout=(10, WATCH_TIMEOUT_SECONDS + 30)
        )
    except _TRANSPORT_ERRORS as exc:
        raise ApiError(0, f"watch {path}: {exc}") from exc
    except ApiException as exc:
        raise ApiError(exc.status or 0, f"watch {path}: {exc.reason}") from exc
    try:
        if resp.status == 410:
            raise Gone(f"watch {path} from {dict(query).get('resourceVersion')}")
        if resp.status != 200:
            raise ApiError(resp.status, _api_message(resp.status, resp.read()))
        yield from watch_lines(resp.response.stream(65536))
    finally:
        resp.response.release_conn()


def _event_time(event: Mapping[str, Any]) -> str:
    """When a core/v1 Event last happened (RFC 3339 strings of one format compare as times)."""
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event["metadata"].get("creationTimestamp")
        or ""
    )


def _api_message(status: int, raw: bytes | None) -> str:
    try:
        return str(json.loads(raw or b"{}").get("message") or status)
    except (TypeError, ValueError):
        return f"HTTP {status}"
