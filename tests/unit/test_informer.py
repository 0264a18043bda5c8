"""The informer's bookkeeping, driven by scripted lists and watch streams in the apiserver's shapes.

A watch the apiserver can no longer resume (410 Gone) makes the informer list again, and an
object that vanished in between counts as deleted; the operator's own writes never move a copy
back to an older version; every change names the LLMDeployment whose pass it triggers. The
LLMDeployments' own copies (``Latest``, fed by kopf's watch and the status writes' answers) also
only move forward, and a deleted one is not brought back by a write answered before its deletion.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from llmops.api.constants import LABEL_DEPLOYMENT
from llmops.informer import Change, Gone, Informer, Latest, Packer, newer, watch_lines


def _svc(name: str, version: int, owner: str = "chat", namespace: str = "ns", **extra: Any) -> dict[str, Any]:
    meta = {
        "name": name,
        "namespace": namespace,
        "resourceVersion": str(version),
        "labels": {LABEL_DEPLOYMENT: owner},
        "managedFields": [
            {"manager": "llmops", "operation": "Apply", "fieldsV1": {"f:spec": {}}},
            {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:status": {}}},
        ],
    }
    return {"metadata": meta, **extra}


class _Script:
    """Lists and watches answered from scripts; the informer is stopped when both run out."""

    def __init__(self, lists: list[tuple[list[dict[str, Any]], str]], watches: list[list[Any]]) -> None:
        self.lists, self.watches = lists, watches
        self.watched_from: list[str] = []
        self.informer: Informer | None = None

    def lister(self) -> tuple[list[dict[str, Any]], str]:
        return self.lists.pop(0)

    def watcher(self, version: str) -> Iterator[Mapping[str, Any]]:
        self.watched_from.append(version)
        events = self.watches.pop(0) if self.watches else []
        for event in events:
            if isinstance(event, Exception):
                raise event
            yield event
        if not self.watches and self.informer is not None:
            self.informer.stop()  # the last scripted watch is over: run() returns


def _informer(script: _Script, changes: list[Change]) -> Informer:
    informer = Informer("Service", "ns", script.lister, script.watcher, changes.append, sleep=lambda s: None)
    script.informer = informer
    return informer


def test_a_watch_that_is_gone_lists_again_and_what_vanished_counts_as_deleted() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}
    script = _Script(
        lists=[([_svc("a", 5), _svc("b", 6, owner="other")], "10"), ([_svc("a", 5), _svc("c", 12)], "20")],
        watches=[
            [{"type": "ADDED", "object": _svc("c", 11)}, gone],
            [{"type": "MODIFIED", "object": _svc("a", 21)}],
        ],
    )
    changes: list[Change] = []
    informer = _informer(script, changes)
    informer.run()

    assert informer.lists == 2
    assert script.watched_from == ["10", "20"]  # the second watch from the new list's version
    assert [o["metadata"]["name"] for o in informer.of("ns", "chat")] == ["a", "c"]
    assert informer.of("ns", "other") == []  # b went away while no watch ran
    assert Change("Service", "ns", "other", deleted=True) in changes
    # The first list triggers nothing (the passes that wait for it read it); c's newer version
    # in the relist does, the unchanged a does not, until its watch event.
    assert changes == [
        Change("Service", "ns", "chat", False),  # c added by the first watch
        Change("Service", "ns", "chat", False),  # c at a newer version in the relist
        Change("Service", "ns", "other", True),  # b vanished
        Change("Service", "ns", "chat", False),  # a modified
    ]
    # A deletion carries the version it was seen at: the relist's, for one it missed.
    assert [c.version for c in changes if c.deleted] == ["20"]


def test_an_http_410_on_the_watch_itself_also_lists_again() -> None:
    script = _Script(lists=[([], "3"), ([_svc("a", 4)], "4")], watches=[[Gone("410")], []])
    informer = _informer(script, [])
    informer.run()
    assert informer.lists == 2
    assert [o["metadata"]["name"] for o in informer.of("ns", "chat")] == ["a"]


def test_a_failed_watch_resumes_from_the_last_version_seen_without_listing() -> None:
    script = _Script(
        lists=[([], "3")],
        watches=[
            [
                {"type": "ADDED", "object": _svc("a", 4)},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}},
                ConnectionResetError("reset"),
            ],
            [],
        ],
    )
    informer = _informer(script, [])
    informer.run()
    assert informer.lists == 1
    assert script.watched_from == ["3", "9"]


def test_copies_keep_only_our_managers_fields_and_carry_their_kind() -> None:
    script = _Script(lists=[([_svc("a", 4)], "4")], watches=[[]])
    informer = _informer(script, [])
    informer.run()
    (copy,) = informer.of("ns", "chat")
    assert copy["kind"] == "Service"
    # What lifecycle.ownership needs to see a manual edit: our fields, and who else manages some.
    assert copy["metadata"]["managedFields"] == [
        {"manager": "llmops", "operation": "Apply", "fieldsV1": {"f:spec": {}}},
        {"manager": "kube-controller-manager", "operation": "Update"},
    ]


def test_the_operators_own_writes_show_at_once_and_never_go_back_in_time() -> None:
    script = _Script(lists=[([], "1")], watches=[])
    informer = _informer(script, [])
    informer.relist()
    informer.remember(_svc("a", 7))
    assert [o["metadata"]["resourceVersion"] for o in informer.of("ns", "chat")] == ["7"]
    # The watch event of an earlier write arrives after the apply's answer: the copy stays.
    script.watches = [[{"type": "MODIFIED", "object": _svc("a", 6)}]]
    informer.follow("1")
    assert [o["metadata"]["resourceVersion"] for o in informer.of("ns", "chat")] == ["7"]
    informer.forget("ns", "a")
    assert informer.of("ns", "chat") == []


def test_newer_compares_resource_versions_as_numbers() -> None:
    assert newer(_svc("a", 10), _svc("a", 9))
    assert not newer(_svc("a", 9), _svc("a", 10))
    assert newer(_svc("a", 9), None)


def test_watch_lines_joins_events_split_across_chunks() -> None:
    chunks = [b'{"type":"ADDED","object":{"a":1}}\n{"type":"MOD', b'IFIED","object":{}}\n', b"\n"]
    assert [e["type"] for e in watch_lines(iter(chunks))] == ["ADDED", "MODIFIED"]


def test_an_error_event_other_than_gone_is_retried() -> None:
    error = {"type": "ERROR", "object": {"kind": "Status", "code": 500, "message": "boom"}}
    script = _Script(lists=[([], "1")], watches=[[error], []])
    informer = _informer(script, [])
    informer.run()
    assert informer.lists == 1
    assert script.watched_from == ["1", "1"]


def test_wait_synced_is_set_by_the_first_list() -> None:
    script = _Script(lists=[([], "1")], watches=[])
    informer = _informer(script, [])
    assert not informer.wait_synced(0)
    informer.relist()
    assert informer.wait_synced(0)


def test_a_relabelled_object_moves_to_its_new_owner() -> None:
    moved = {"type": "MODIFIED", "object": _svc("a", 5, owner="other")}
    deleted = {"type": "DELETED", "object": _svc("b", 6)}
    script = _Script(lists=[([_svc("a", 4), _svc("b", 4)], "4")], watches=[[moved, deleted]])
    informer = _informer(script, [])
    informer.run()
    assert informer.of("ns", "chat") == []
    assert [o["metadata"]["name"] for o in informer.of("ns", "other")] == ["a"]


def _llmd(version: int, phase: str = "Serving") -> dict[str, Any]:
    return {
        "kind": "LLMDeployment",
        "metadata": {
            "name": "chat",
            "namespace": "ns",
            "resourceVersion": str(version),
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "status": {"phase": phase},
    }


def test_latest_keeps_the_newest_copy_without_managed_fields() -> None:
    latest = Latest()
    assert latest.get("ns", "chat") is None  # never seen: the caller asks the apiserver
    latest.put(_llmd(7, "Caching"))  # the answer to the operator's status write
    latest.put(_llmd(6, "Pending"))  # the watch event of an earlier version, arriving late
    copy = latest.get("ns", "chat")
    assert copy is not None
    assert (copy["metadata"]["resourceVersion"], copy["status"]["phase"]) == ("7", "Caching")
    assert "managedFields" not in copy["metadata"]
    copy["status"]["phase"] = "edited by a pass"
    assert latest.get("ns", "chat")["status"]["phase"] == "Caching"  # type: ignore[index]


def test_latest_a_deleted_object_stays_deleted_until_made_again() -> None:
    latest = Latest()
    latest.put(_llmd(7))
    latest.delete(_llmd(9))
    latest.put(_llmd(8))  # a write answered just before the deletion: must not bring it back
    assert latest.get("ns", "chat") is None
    assert latest.deleted("ns", "chat")
    latest.put(_llmd(12, "Pending"))  # made again under the same name
    assert latest.get("ns", "chat")["status"]["phase"] == "Pending"  # type: ignore[index]
    assert not latest.deleted("ns", "chat")


def test_latest_keeps_a_bounded_number_of_tombstones() -> None:
    latest = Latest()
    latest.TOMBSTONES = 2
    for name in ("a", "b", "c"):
        latest.delete({"metadata": {"name": name, "namespace": "ns", "resourceVersion": "5"}})
    assert list(latest._tombstones) == [("ns", "b"), ("ns", "c")]
    latest.put({"metadata": {"name": "a", "namespace": "ns", "resourceVersion": "4"}})  # forgotten: taken
    assert latest.get("ns", "a") is not None
    assert len(latest) == 1


def test_latest_forgets_a_copy_it_has_reason_to_doubt() -> None:
    """A child deleted (by the garbage collector, after its owner): the owner's copy may outlive
    the owner if kopf's watch was cut when it went; the next read asks the apiserver."""
    latest = Latest()
    latest.put(_llmd(7))
    latest.forget("ns", "chat")
    assert latest.get("ns", "chat") is None and not latest.deleted("ns", "chat")
    latest.put(_llmd(8))  # the watch delivers it again: kept
    assert latest.get("ns", "chat") is not None


def test_latest_a_doubt_is_settled_by_a_read_not_by_an_older_watch_event() -> None:
    """The reproduction of a failed CI run: a Service deleted by hand at version 105 made the
    owner's copy doubtful, but kopf then delivered the echo of a status write at version 100, the
    pass read that copy, and the read the doubt asked for never happened."""
    latest = Latest()
    latest.put(_llmd(90))
    latest.forget("ns", "chat", since="105")
    latest.put(_llmd(100))  # sent before the child's deletion: not taken
    assert latest.get("ns", "chat") is None
    latest.put(_llmd(100), read=True)  # the apiserver's answer to the read: taken, whatever its version
    assert latest.get("ns", "chat") is not None
    latest.put(_llmd(101, "Caching"))  # the doubt is settled: the watch feeds the copy again
    assert latest.get("ns", "chat")["status"]["phase"] == "Caching"  # type: ignore[index]


def test_latest_a_watch_event_newer_than_the_doubt_settles_it() -> None:
    latest = Latest()
    latest.forget("ns", "chat", since="105")
    latest.put(_llmd(106, "Serving"))  # the object as it is after the child's deletion
    assert latest.get("ns", "chat")["status"]["phase"] == "Serving"  # type: ignore[index]


def test_latest_keys_are_every_object_seen_and_not_deleted() -> None:
    """What a change of the optional APIs triggers: every LLMDeployment, its copy forgotten or not."""
    latest = Latest()
    for name in ("a", "b", "c", "d"):
        latest.put({"metadata": {"name": name, "namespace": "ns", "resourceVersion": "5"}})
    latest.forget("ns", "a")  # a doubt: still an LLMDeployment to look at
    latest.delete({"metadata": {"name": "b", "namespace": "ns", "resourceVersion": "6"}})
    latest.gone("ns", "c")  # the apiserver said 404, no deletion event came
    latest.put({"metadata": {"name": "b", "namespace": "ns", "resourceVersion": "4"}})  # late: stays deleted
    assert sorted(latest.keys()) == [("ns", "a"), ("ns", "d")]


def test_packed_copies_come_back_whole_and_objects_of_a_kind_pack_small() -> None:
    """The first object packed is the dictionary of the rest: another Deployment of the same shape
    keeps in a fraction of its JSON, and every object unpacks equal, each time a fresh one."""
    import json

    from llmops_dev.bench.scale import floor_objects, llmd_body

    def deployment(name: str) -> dict[str, Any]:
        return next(o for o in floor_objects(llmd_body(name, "ns")) if o["kind"] == "Deployment")

    packer = Packer()
    first, second = deployment("m0001"), deployment("m0002")
    packer.pack(first)
    packed = packer.pack(second)
    assert len(packed) * 10 < len(json.dumps(second, separators=(",", ":")))
    assert packer.unpack(packed) == second
    one, two = packer.unpack(packed), packer.unpack(packed)
    one["metadata"]["name"] = "changed"
    assert two["metadata"]["name"] == "m0002-stable"  # no pass shares an object with another
    odd = {"kind": "Other", "metadata": {"name": "x"}, "data": {"k": "v" * 1000}}
    assert packer.unpack(packer.pack(odd)) == odd  # unlike the dictionary: bigger, still whole


def test_one_informer_for_every_namespace_keeps_them_apart() -> None:
    """The operator watching all namespaces runs one informer per kind: two LLMDeployments of the
    same name in two namespaces, with children of the same names, each read their own, and each
    change triggers the pass of the LLMDeployment in the object's namespace."""
    script = _Script(
        lists=[([_svc("chat", 5, namespace="a"), _svc("chat", 6, namespace="b")], "10")],
        watches=[
            [
                {"type": "MODIFIED", "object": _svc("chat", 11, namespace="b")},
                {"type": "DELETED", "object": _svc("chat", 12, namespace="a")},
            ]
        ],
    )
    changes: list[Change] = []
    informer = Informer("Service", None, script.lister, script.watcher, changes.append, sleep=lambda s: None)
    script.informer = informer
    informer.run()

    assert informer.of("a", "chat") == []
    assert [o["metadata"]["resourceVersion"] for o in informer.of("b", "chat")] == ["11"]
    assert changes == [Change("Service", "b", "chat", False), Change("Service", "a", "chat", True)]
    assert changes[1].version == "12"  # the DELETED event's: older copies of its owner are doubtful
    informer.remember(_svc("chat", 13, namespace="a"))
    informer.forget("b", "chat")
    assert [o["metadata"]["namespace"] for o in informer.of("a", "chat")] == ["a"]
    assert informer.of("b", "chat") == []
