"""The kopf wiring: every handler that can touch the work queue runs on the event loop.

kopf runs a plain (synchronous) handler in a thread pool; the work queue is an asyncio.Queue,
which must only be used from the loop's own thread. A synchronous handler calling
``queue.trigger`` from a worker thread wakes no waiting worker, so a trigger could sit in the
queue until some other event happened to run the loop (found by ``make bench-scale``).
"""

from __future__ import annotations

import inspect

import kopf

import llmops.handlers  # noqa: F401 - registers the handlers


def _our_handlers() -> list[tuple[str, object]]:
    registry = kopf.get_default_registry()
    handlers = [
        *registry._watching.get_all_handlers(),
        *registry._indexing.get_all_handlers(),
        *registry._activities.get_all_handlers(),
    ]
    return [(h.id, h.fn) for h in handlers if getattr(h.fn, "__module__", "") == "llmops.handlers"]


def test_every_handler_is_a_coroutine() -> None:
    handlers = _our_handlers()
    assert {"llmdeployment_event", "optional_api_event"} <= {hid for hid, _ in handlers}
    sync = [hid for hid, fn in handlers if not inspect.iscoroutinefunction(fn)]
    assert sync == [], f"handlers kopf would run in a thread, off the work queue's loop: {sync}"


async def test_an_llmdeployment_event_leaves_its_body_for_the_pass_it_triggers() -> None:
    """The pass reads the body the watch event carried (no GET); a deletion removes it.
    (A coroutine test: asyncio.run here, after an async test of another file, left that test's
    event loop unclosed, and pytest failed the run at its end.)"""
    from llmops.handlers import _state, llmdeployment_event
    from llmops.informer import Latest
    from llmops.kube import Kube

    body = {"metadata": {"name": "chat", "namespace": "ns", "resourceVersion": "3"}, "spec": {}}
    kube = Kube(client=None, llmds=Latest())  # type: ignore[arg-type]  # no request is made
    _state.kube = kube
    try:
        await llmdeployment_event(
            type="ADDED", event={"type": "ADDED", "object": body}, namespace="ns", name="chat"
        )
        assert kube.get_llmd("ns", "chat") == body
        gone = {**body, "metadata": {**body["metadata"], "resourceVersion": "4"}}
        await llmdeployment_event(
            type="DELETED", event={"type": "DELETED", "object": gone}, namespace="ns", name="chat"
        )
        assert kube.get_llmd("ns", "chat") is None  # known deleted: no request (there is no client)
    finally:
        _state.kube = None


def test_a_childs_deletion_makes_the_next_pass_read_its_owner_from_the_apiserver() -> None:
    """The garbage collector's deletions of a deleted LLMDeployment's children trigger passes; if
    kopf's watch missed the owner's deletion (cut, then listed again), its copy must not make
    those passes apply the children again."""
    from llmops.informer import Change, Latest
    from llmops.kube import Kube

    kube = Kube(client=None, llmds=Latest())  # type: ignore[arg-type]  # no request is made
    triggered: list[Change] = []
    kube.on_change = triggered.append
    assert kube.llmds is not None
    kube.llmds.put({"metadata": {"name": "chat", "namespace": "ns", "resourceVersion": "3"}})
    kube._changed(Change("Deployment", "ns", "chat", deleted=False))
    assert kube.llmds.get("ns", "chat") is not None  # a child changed: the copy still serves
    kube._changed(Change("Deployment", "ns", "chat", deleted=True))
    assert kube.llmds.get("ns", "chat") is None and not kube.llmds.deleted("ns", "chat")
    assert [c.deleted for c in triggered] == [False, True]


def test_the_apiservers_answer_after_a_doubt_serves_the_passes_that_follow() -> None:
    """After a child's deletion the pass reads its owner with one GET, kept as the copy: the
    passes after it (the other children's deletions) ask no more; a 404 drops the key."""
    from typing import Any

    from llmops.informer import Latest
    from llmops.kube import ApiError, Kube

    answers: list[dict[str, Any] | ApiError] = [
        {"metadata": {"name": "chat", "namespace": "ns", "resourceVersion": "5"}, "spec": {}},
        ApiError(404, "not found"),
    ]
    gets: list[str] = []

    class OneGet(Kube):
        def _call_object(self, method: str, path: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
            gets.append(f"{method} {path}")
            answer = answers.pop(0)
            if isinstance(answer, ApiError):
                raise answer
            return answer

    kube = OneGet(client=None, llmds=Latest())  # type: ignore[arg-type]  # no request is made
    assert kube.llmds is not None
    kube.llmds.put({"metadata": {"name": "chat", "namespace": "ns", "resourceVersion": "3"}})
    kube.llmds.forget("ns", "chat")
    for _ in range(3):
        assert kube.get_llmd("ns", "chat")["metadata"]["resourceVersion"] == "5"  # type: ignore[index]
    assert len(gets) == 1
    kube.llmds.forget("ns", "chat")
    assert kube.get_llmd("ns", "chat") is None
    assert len(gets) == 2 and kube.llmds.keys() == []


async def test_an_optional_crd_change_triggers_every_llmdeployment_once() -> None:
    """A PodMonitor, HTTPRoute or ScaledObject CRD came or went: every LLMDeployment the watch
    delivered gets a pass, and the next pass reads the APIs again."""
    from llmops.handlers import _state, optional_api_event
    from llmops.informer import Latest
    from llmops.kube import Kube, SharedRead

    class Queue:
        def __init__(self) -> None:
            self.keys: list[tuple[str, str]] = []

        def trigger(self, key: tuple[str, str]) -> None:
            self.keys.append(key)

    kube = Kube(client=None, llmds=Latest())  # type: ignore[arg-type]  # no request is made
    assert kube.llmds is not None
    for ns, name in (("a", "chat"), ("b", "chat"), ("a", "code")):
        kube.llmds.put({"metadata": {"name": name, "namespace": ns, "resourceVersion": "3"}})
    kube.llmds.forget("a", "code")
    kube.discovery = SharedRead(lambda: frozenset({"monitoring.coreos.com"}), ttl=60)
    kube.optional_apis()
    queue = Queue()
    _state.kube, _state.queue = kube, queue  # type: ignore[assignment]  # a queue's trigger only
    try:
        await optional_api_event(name="podmonitors.monitoring.coreos.com", type="ADDED")
    finally:
        _state.kube, _state.queue = None, None
    assert sorted(queue.keys) == [("a", "chat"), ("a", "code"), ("b", "chat")]
    kube.optional_apis()
    assert kube.discovery.reads == 2  # read again after the event, not after the TTL


def test_kopf_builds_no_diff_base_for_raw_event_handlers() -> None:
    """kopf deep-copied every body to detect changes no handler here asks for."""
    import kopf

    from llmops.handlers import _NoDiffBase

    storage = _NoDiffBase()
    body = kopf.Body({"metadata": {"name": "chat"}, "spec": {"model": {"id": "m"}}})
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None
