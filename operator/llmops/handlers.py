"""kopf wiring only: watch events in, work-queue triggers out.

Every watch event of an LLMDeployment (kopf's watch, whose bodies the passes read), or of a
child labelled with its name (the informers of ``llmops.kube``, which also feed the passes'
observations), triggers a reconcile pass of that LLMDeployment through one work queue; decisions are made in
``llmops.lifecycle.plan``. The handlers are raw event handlers, so kopf
writes nothing on its own: no finalizer, no progress annotations, no status.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import kopf

from llmops.api.constants import GROUP, PLURAL, VERSION
from llmops.informer import Change, Latest
from llmops.kube import OPTIONAL_CRDS, Kube, load_client
from llmops.peering import PeeringGate
from llmops.reconciler import Reconciler
from llmops.workqueue import WorkQueue

log = logging.getLogger("llmops.handlers")
PEERING_LIFETIME_SECONDS = 15
DEFAULT_WORKERS = 8
"""Passes in flight at once (LLMOPS_WORKERS); a pass mostly waits on the API, so more than cores."""
COALESCE_SECONDS = 0.3
"""An LLMDeployment's passes start at least this long after its previous pass ended (the work
queue's ``coalesce``), so that the events of one moment make one pass: a pass's own writes come
back as one event each (its children's, its status'), and the controllers answer with more (a
Deployment's status, its pods'), within a few hundred milliseconds. Each used to start a pass
that found nothing to do: about ten passes per LLMDeployment created, most of the operator's
CPU at 300 created at once. An event after a quiet moment still starts its pass at once."""


@dataclass
class _Running:
    """What startup made, for the other handlers (None before startup)."""

    kube: Kube | None = None
    queue: WorkQueue[tuple[str, str]] | None = None


_state = _Running()


class _NoDiffBase(kopf.DiffBaseStorage):
    """No diff base: kopf builds one for every watch event (a deep copy of the body) to detect
    changes for create/update handlers; the handlers here are raw event handlers, which get no
    diff, so it was built for nothing: a few percent of the operator's CPU with many objects."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = _NoDiffBase()
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # A replica killed without a goodbye keeps its place in the peering object for this long;
    # kopf's 60 s default made a failover take about a minute (controller-runtime's lease: 15 s).
    settings.peering.lifetime = PEERING_LIFETIME_SECONDS
    # Children are watched by the Kube's informers, not by kopf: one watch per kind feeds both
    # the triggers and the observations of every pass (see llmops.informer).
    # The LLMDeployments' bodies come with kopf's watch events (llmdeployment_event): a pass
    # reads them from there instead of a GET.
    # Watching every namespace (no -n), one informer per kind serves them all.
    kube = Kube(
        # `llmops run` sets LLMOPS_WATCH_SCOPES: the namespaces of -n, 1 for every namespace.
        load_client(
            os.environ.get("KUBECONFIG"), watch_scopes=int(os.environ.get("LLMOPS_WATCH_SCOPES") or 1)
        ),
        use_informers=True,
        llmds=Latest(),
        cluster_wide=settings.peering.clusterwide,
    )
    loop = asyncio.get_running_loop()

    def child_changed(change: Change) -> None:  # on an informer's thread: the queue is the loop's
        loop.call_soon_threadsafe(_trigger, change.namespace, change.deployment)

    kube.on_change = child_changed
    reconciler = Reconciler(kube)
    process: Callable[[tuple[str, str]], Awaitable[float | None]] = reconciler
    if not settings.peering.standalone:
        gate = PeeringGate(
            kube,
            name=settings.peering.name,
            identity=os.environ.get("LLMOPS_PEERING_ID", ""),
            priority=settings.peering.priority,
            clusterwide=settings.peering.clusterwide,
        )

        async def process(key: tuple[str, str]) -> float | None:
            namespace, name = key
            if not await asyncio.to_thread(gate.active, namespace):
                log.info("%s/%s: paused, another replica acts (kopf peering)", namespace, name)
                return None  # kopf lists every object again when it resumes, triggering each
            return await reconciler(key)

    workers = int(os.environ.get("LLMOPS_WORKERS", str(DEFAULT_WORKERS)))
    # Each pass runs in a thread (the kubernetes client is synchronous); asyncio's default pool
    # has cpu+4 threads, which would quietly cap the workers on a small machine.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(workers, thread_name_prefix="llmops-pass")
    )
    queue = WorkQueue(process, workers=workers, coalesce=COALESCE_SECONDS)
    queue.start()
    _state.kube, _state.queue = kube, queue


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if queue := _state.queue:
        await queue.stop()
    if kube := _state.kube:
        kube.stop()


# The handlers are coroutines on purpose: kopf runs plain functions in a thread pool, and the
# work queue (asyncio.Queue) must only be touched from the event loop's thread.
def _trigger(namespace: str | None, name: str | None) -> None:
    if namespace and name and (queue := _state.queue):
        queue.trigger((namespace, name))


@kopf.on.event(GROUP, VERSION, PLURAL)
async def llmdeployment_event(
    type: str | None, event: Mapping[str, Any], namespace: str | None, name: str | None, **_: Any
) -> None:
    copies = _state.kube.llmds if _state.kube else None
    if type == "DELETED":
        if copies is not None:
            copies.delete(event["object"])
        return
    if copies is not None:
        copies.put(event["object"])  # before the trigger: the pass reads this body
    _trigger(namespace, name)


@kopf.on.event(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    when=lambda name, **_: name in OPTIONAL_CRDS.values(),
)
async def optional_api_event(**_: Any) -> None:
    """The Prometheus Operator, Gateway API or KEDA CRDs came or went: every LLMDeployment may now
    want (or no longer get) its PodMonitor and PrometheusRule, or a ScaledObject instead of a
    HorizontalPodAutoscaler. Look again at once."""
    if (kube := _state.kube) is None:
        return
    kube.forget_apis()
    # Every LLMDeployment kopf's watch has delivered (the passes' copies; a kopf index of them
    # cost each watch event another pass through kopf's machinery).
    for namespace, name in kube.llmds.keys() if kube.llmds is not None else []:
        _trigger(namespace, name)


@kopf.on.probe(id="queue")
async def queue_alive(**_: Any) -> bool:
    return _state.queue is not None
