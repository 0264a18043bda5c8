"""The capture store: segments on disk, torn-tail recovery, retention, the size cap, a full disk,
auth, batch validation, group commit, the read side's filters and feedback join, and the
hashed-term histograms of `GET /v1/terms`.

The store runs for real (aiohttp on free ports, segments in a temporary folder); the tests speak
HTTP to it as a gateway and a retrain Job would.
"""

from __future__ import annotations

import datetime as dt
import errno
import gzip
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from llmops.api.common import DURATION, POSITIVE_QUANTITY, parse_duration
from llmops.api.quantity import quantity_bytes
from llmops.api.resource import parse
from llmops.capture_store import CaptureStore, Query, SegmentKey, Segments, StoreConfig, read_records
from llmops.capture_store import segments as segments_module
from llmops.capture_store.records import RecordError, held_out, parse_batch, parse_query
from llmops.capture_store.segments import complete_length, compress, list_segments, read_members
from llmops.capture_store.terms import bucket_of, histogram_of, parse_terms_query, prompt_text, terms_of
from llmops.render.capture import capture_deployment
from llmops_dev.store_thread import run_store_in_thread
from testkit.planning import body

TOKEN = b"t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN.decode()}"}
NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def request(rid: str, when: dt.datetime = NOW, revision: str = "rev-a", **extra: Any) -> dict[str, Any]:
    return {
        "kind": "request",
        "time": stamp(when),
        "requestId": rid,
        "deployment": "prod/chat",
        "revision": revision,
        "track": "stable",
        "client": "team-a",
        "route": "/generate",
        "prompt": f"prompt of {rid}",
        "response": f"answer to {rid}",
        "promptTokens": 3,
        "completionTokens": 5,
        "latencyMs": 12.5,
        "finishReason": "length",
        **extra,
    }


def feedback(rid: str, rating: Any, when: dt.datetime = NOW, revision: str = "rev-a") -> dict[str, Any]:
    return {
        "kind": "feedback",
        "time": stamp(when),
        "requestId": rid,
        "revision": revision,
        "track": "stable",
        "client": "team-a",
        "rating": rating,
        "comment": f"rated {rating}",
        "tags": ["t"],
    }


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


class Store:
    """A running store and an HTTP client to it."""

    def __init__(self, api: str, health: str, store: CaptureStore, client: httpx2.Client) -> None:
        self.api, self.health, self.store, self.client = api, health, store, client

    def post(self, records: list[dict[str, Any]], **headers: str) -> httpx2.Response:
        return self.client.post(
            f"{self.api}/v1/records",
            content=jsonl(records),
            headers={**AUTH, "Content-Type": "application/x-ndjson", **headers},
        )

    def read(self, **params: str) -> list[dict[str, Any]]:
        r = self.client.get(f"{self.api}/v1/records", params=params, headers=AUTH)
        assert r.status_code == 200, r.text
        return [json.loads(line) for line in r.text.splitlines()]

    def metric(self, name: str, **labels: str) -> float:
        text = self.client.get(f"{self.health}/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return sample.value
        return 0.0


def make_store(tmp_path: Path, **overrides: Any) -> CaptureStore:
    config = StoreConfig(
        data_dir=tmp_path / "data",
        token=TOKEN,
        max_bytes=overrides.pop("max_bytes", 1 << 30),
        retention=overrides.pop("retention", dt.timedelta(days=30)),
        **overrides,
    )
    return CaptureStore(config, clock=lambda: NOW)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    cs = make_store(tmp_path)
    with run_store_in_thread(cs) as (api, health), httpx2.Client(timeout=30) as client:
        yield Store(api, health, cs, client)


# -- the write path -------------------------------------------------------------------------------


def test_a_batch_lands_in_one_segment_per_day_revision_and_kind(store: Store) -> None:
    batch = [
        request("a1"),
        request("a2", NOW - DAY),
        request("b1", revision="refs/pr/1"),
        feedback("a1", "up"),
    ]
    r = store.post(batch)
    assert r.status_code == 200 and r.json() == {"accepted": 4}
    root = store.store.config.data_dir
    assert sorted(str(p.relative_to(root)) for _, p in list_segments(root)) == [
        "2026-11-29/rev-a.requests.jsonl.gz",
        "2026-11-30/refs%2Fpr%2F1.requests.jsonl.gz",
        "2026-11-30/rev-a.feedback.jsonl.gz",
        "2026-11-30/rev-a.requests.jsonl.gz",
    ]
    # Each segment is a valid gzip file of JSONL (any gzip reader can open it).
    lines = gzip.decompress((root / "2026-11-30/rev-a.requests.jsonl.gz").read_bytes()).splitlines()
    assert [json.loads(x)["requestId"] for x in lines] == ["a1"]
    assert store.metric("llmops_capture_store_records_written_total", kind="request") == 3
    assert store.metric("llmops_capture_store_records_written_total", kind="feedback") == 1
    assert store.metric("llmops_capture_store_segments") == 4


def test_gzip_bodies_are_accepted(store: Store) -> None:
    body = gzip.compress(jsonl([request("z1"), request("z2")]))
    r = store.client.post(
        f"{store.api}/v1/records",
        content=body,
        headers={**AUTH, "Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"},
    )
    assert r.json() == {"accepted": 2}
    assert [x["requestId"] for x in store.read()] == ["z1", "z2"]


@pytest.mark.parametrize(
    ("line", "field", "needle"),
    [
        ("{not json", "", "not JSON"),
        ('["a"]', "", "JSON object"),
        ('{"kind": "request", "time": "2026-11-30T12:00:00Z", "revision": "r"}', "requestId", "required"),
        (
            '{"kind": "other", "time": "2026-11-30T12:00:00Z", "requestId": "x", "revision": "r"}',
            "kind",
            "one of",
        ),
        ('{"kind": "request", "time": "yesterday", "requestId": "x", "revision": "r"}', "time", "RFC 3339"),
        (
            '{"kind": "request", "time": "2026-11-30T12:00:00+02:00", "requestId": "x", "revision": "r"}',
            "time",
            "UTC",
        ),
        (
            '{"kind": "request", "time": "2026-11-30T12:00:00Z", "requestId": "x", "revision": "r", "latencyMs": "9"}',
            "latencyMs",
            "number",
        ),
        (
            '{"kind": "feedback", "time": "2026-11-30T12:00:00Z", "requestId": "x", "revision": "r"}',
            "rating",
            "required",
        ),
        (
            '{"kind": "feedback", "time": "2026-11-30T12:00:00Z", "requestId": "x", "revision": "r", "rating": 7}',
            "rating",
            "1 to 5",
        ),
    ],
)
def test_a_malformed_record_is_refused_naming_its_line_and_field_and_nothing_is_written(
    store: Store, line: str, field: str, needle: str
) -> None:
    body = jsonl([request("ok")]) + line.encode() + b"\n"
    r = store.client.post(f"{store.api}/v1/records", content=body, headers=AUTH)
    assert r.status_code == 400, r.text
    assert r.json()["line"] == 2 and r.json()["field"] == field, r.json()
    assert needle in r.json()["error"] and r.json()["error"].startswith("line 2: ")
    assert store.read() == []
    assert store.metric("llmops_capture_store_refused_batches_total", reason="malformed") == 1


def test_unknown_fields_are_kept(store: Store) -> None:
    store.post([request("u1", futureField={"x": 1})])
    assert store.read()[0]["futureField"] == {"x": 1}


def test_oversized_batches_are_refused_with_413(tmp_path: Path) -> None:
    cs = make_store(tmp_path, max_batch_bytes=4096)
    with run_store_in_thread(cs) as (api, _), httpx2.Client(timeout=30) as client:
        big = jsonl([request(f"r{i}") for i in range(100)])
        r = client.post(f"{api}/v1/records", content=big, headers=AUTH)
        assert r.status_code == 413, r.text
        # A small gzip body that inflates past the limit (a gzip bomb) is refused too.
        bomb = gzip.compress(jsonl([request("x", prompt="a" * 100_000)]))
        assert len(bomb) < 4096
        r = client.post(f"{api}/v1/records", content=bomb, headers={**AUTH, "Content-Encoding": "gzip"})
        assert r.status_code == 413 and "decompressed" in r.json()["error"]
    assert list_segments(tmp_path / "data") == []


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic dDBrZW4=", f"bearer {TOKEN.decode()}x"])
def test_without_the_token_nothing_is_written_nor_read(store: Store, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    r = store.client.post(f"{store.api}/v1/records", content=jsonl([request("x")]), headers=headers)
    assert r.status_code == 401
    assert store.client.get(f"{store.api}/v1/records", headers=headers).status_code == 401
    assert list_segments(store.store.config.data_dir) == []


def test_concurrent_batches_share_fsyncs(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # A disk whose fsync takes 20 ms (a network volume, say): batches that arrive meanwhile must
    # wait for the next round together, not one round each.
    real_sync = Segments.sync

    def slow_sync(fds: Any) -> None:
        time.sleep(0.02)
        real_sync(fds)

    monkeypatch.setattr(Segments, "sync", staticmethod(slow_sync))

    def send(i: int) -> int:
        batch = jsonl([request(f"c{i}-{j}") for j in range(20)])
        return store.client.post(f"{store.api}/v1/records", content=batch, headers=AUTH).status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(send, range(64)))
    assert codes == [200] * 64
    assert len(store.read()) == 64 * 20
    rounds = store.metric("llmops_capture_store_group_batches_count")
    assert store.metric("llmops_capture_store_group_batches_sum") == 64
    assert rounds <= 32, f"{rounds} fsync rounds for 64 batches from 16 senders: too little batching"


# -- crashes, full disks, the size cap, retention -------------------------------------------------


def test_a_torn_last_member_is_discarded_on_read_and_cut_before_the_next_append(tmp_path: Path) -> None:
    root = tmp_path / "data"
    seg = Segments(root, 1 << 30, dt.timedelta(days=30))
    key = SegmentKey(NOW.date(), "rev-a", "request")
    good = [compress([jsonl([request("g1")])]), compress([jsonl([request("g2")])])]
    for member in good:
        fds, _ = seg.write([(key, member)])
        seg.sync(fds)
    seg.close()
    path = root / key.relpath
    intact = path.stat().st_size
    torn = compress([jsonl([request("torn")])])
    with path.open("ab") as f:
        f.write(torn[: len(torn) // 2])  # the crash: half a member made it to disk
    assert [json.loads(x)["requestId"] for x in read_records(root, Query())] == ["g1", "g2"]
    assert complete_length(path) == intact
    # A restarted writer cuts the torn tail before appending, so the new member is readable.
    seg = Segments(root, 1 << 30, dt.timedelta(days=30))
    fds, _ = seg.write([(key, compress([jsonl([request("after")])]))])
    seg.sync(fds)
    assert seg.discarded_bytes == len(torn) // 2
    assert [json.loads(x)["requestId"] for x in read_records(root, Query())] == ["g1", "g2", "after"]
    assert len(list(read_members(path))) == 3


def test_a_corrupt_member_ends_the_segment_for_readers(tmp_path: Path) -> None:
    root = tmp_path / "data"
    path = root / SegmentKey(NOW.date(), "rev-a", "request").relpath
    path.parent.mkdir(parents=True)
    member = compress([jsonl([request("ok")])])
    flipped = bytearray(compress([jsonl([request("bad")])]))
    flipped[-6] ^= 0xFF  # the CRC no longer matches
    path.write_bytes(member + bytes(flipped) + member)
    assert [json.loads(x)["requestId"] for x in read_records(root, Query())] == ["ok"]


def test_a_full_disk_refuses_the_batch_with_507_and_leaves_segments_intact(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert store.post([request("before")]).status_code == 200
    root = store.store.config.data_dir
    sizes = {p: p.stat().st_size for _, p in list_segments(root)}
    real_write = os.write

    def half_then_enospc(fd: int, data: Any) -> int:
        real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(segments_module.os, "write", half_then_enospc)
    r = store.post([request("refused"), request("refused-2", revision="rev-b")])
    assert r.status_code == 507 and r.json()["reason"] == "disk", r.text
    monkeypatch.undo()
    assert {p: p.stat().st_size for _, p in list_segments(root) if p in sizes} == sizes
    assert [x["requestId"] for x in store.read()] == ["before"]
    assert store.metric("llmops_capture_store_refused_batches_total", reason="disk_full") == 1
    assert store.post([request("after")]).status_code == 200
    assert [x["requestId"] for x in store.read()] == ["before", "after"]


def test_the_size_cap_deletes_the_oldest_days_and_refuses_while_the_newest_alone_exceeds_it(
    tmp_path: Path,
) -> None:
    filler = os.urandom(3000).hex()  # hex of random bytes: about 3.4 kB per record on disk
    cs = make_store(tmp_path, max_bytes=15_000)
    with run_store_in_thread(cs) as (api, health), httpx2.Client(timeout=30) as client:
        s = Store(api, health, cs, client)
        for days_ago in (3, 2, 1):
            assert s.post([request(f"old{days_ago}", NOW - days_ago * DAY, prompt=filler)]).status_code == 200
        for i in range(3):
            assert s.post([request(f"new{i}", prompt=filler)]).status_code == 200
        # 6 records of ~3.4 kB: past 15 kB the oldest days went, whole, oldest first.
        kept = [x["requestId"] for x in s.read()]
        assert kept[0] != "old3" and kept[-3:] == ["new0", "new1", "new2"], kept
        assert s.metric("llmops_capture_store_deleted_segments_total", reason="size_cap") >= 1
        # Only today is left once today alone fills the cap: refused, and nothing of today is lost.
        codes = [s.post([request(f"more{i}", prompt=filler)]).status_code for i in range(8)]
        assert 507 in codes
        refused = s.post([request("refused", prompt=filler)])
        assert refused.status_code == 507 and refused.json()["reason"] == "size", refused.text
        today = [x["requestId"] for x in s.read(since=stamp(NOW.replace(hour=0)))]
        assert today[:3] == ["new0", "new1", "new2"] and "refused" not in today
        assert s.read(until=stamp(NOW.replace(hour=0))) == []
        assert cs.segments.total_bytes <= 15_000


def test_retention_deletes_whole_segments_whose_day_ended_before_the_cutoff(tmp_path: Path) -> None:
    root = tmp_path / "data"
    seg = Segments(root, 1 << 30, dt.timedelta(days=2))
    for days_ago in (4, 3, 2, 1, 0):
        key = SegmentKey((NOW - days_ago * DAY).date(), "rev-a", "request")
        fds, _ = seg.write([(key, compress([jsonl([request(f"d{days_ago}", NOW - days_ago * DAY)])]))])
        seg.sync(fds)
    # 2 days before NOW (12:00) is 11-28 12:00: the days up to 11-27 ended before it.
    gone = seg.sweep(NOW)
    assert sorted(k.day.isoformat() for k in gone) == ["2026-11-26", "2026-11-27"]
    assert sorted(p.parent.name for _, p in list_segments(root)) == ["2026-11-28", "2026-11-29", "2026-11-30"]
    assert not (root / "2026-11-26").exists()


def test_the_store_sweeps_retention_at_start(tmp_path: Path) -> None:
    root = tmp_path / "data"
    old = root / SegmentKey((NOW - 40 * DAY).date(), "rev-a", "request").relpath
    old.parent.mkdir(parents=True)
    old.write_bytes(compress([jsonl([request("ancient", NOW - 40 * DAY)])]))
    cs = make_store(tmp_path)
    with run_store_in_thread(cs) as (api, health), httpx2.Client(timeout=30) as client:
        assert not old.exists()
        assert (
            Store(api, health, cs, client).metric(
                "llmops_capture_store_deleted_segments_total", reason="retention"
            )
            == 1
        )


# -- the read side --------------------------------------------------------------------------------


def test_reads_join_the_latest_feedback_and_filter_by_it(store: Store) -> None:
    store.post([request(f"q{i}") for i in range(6)])
    store.post(
        [
            feedback("q0", "up"),
            feedback("q1", "down"),
            feedback("q2", 5),
            feedback("q3", 1),
            feedback("q4", 3),
            # Feedback a day later, and a change of mind: the latest feedback wins.
            feedback("q1", "up", NOW + DAY),
        ]
    )
    rows = {x["requestId"]: x for x in store.read()}
    assert rows["q1"]["feedback"]["rating"] == "up" and rows["q1"]["feedback"]["time"].startswith(
        "2026-12-01"
    )
    assert rows["q5"]["feedback"] is None
    assert rows["q0"]["feedback"] == {
        "time": stamp(NOW),
        "track": "stable",
        "client": "team-a",
        "rating": "up",
        "comment": "rated up",
        "tags": ["t"],
    }

    def ids(**params: str) -> list[str]:
        return sorted(x["requestId"] for x in store.read(**params))

    assert ids(feedback="any") == ["q0", "q1", "q2", "q3", "q4", "q5"]
    assert ids(feedback="with") == ["q0", "q1", "q2", "q3", "q4"]
    assert ids(feedback="without") == ["q5"]
    assert ids(feedback="up") == ["q0", "q1", "q2"]
    assert ids(feedback="down") == ["q3"]
    assert all(x["kind"] == "request" for x in store.read())


def test_reads_filter_by_time_window_and_revision(store: Store) -> None:
    store.post(
        [
            request("early", NOW - 2 * DAY),
            request("mid", NOW - DAY),
            request("late", NOW),
            request("other", NOW - DAY, revision="rev-b"),
        ]
    )

    def ids(**params: str) -> list[str]:
        return [x["requestId"] for x in store.read(**params)]

    assert ids() == ["early", "mid", "other", "late"]
    assert ids(since=stamp(NOW - DAY)) == ["mid", "other", "late"]
    assert ids(until=stamp(NOW - DAY)) == ["early"]  # until is exclusive
    assert ids(since=stamp(NOW - DAY - dt.timedelta(hours=1)), until=stamp(NOW)) == ["mid", "other"]
    assert ids(revision="rev-b") == ["other"]
    assert ids(revision="rev-b", feedback="with") == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "last week"}, "since"),
        ({"since": "2026-11-30T00:00:00Z", "until": "2026-11-29T00:00:00Z"}, "until"),
        ({"feedback": "maybe"}, "feedback"),
        ({"limit": "10"}, "limit"),
        ({"split": "half"}, "split"),
        ({"split": "heldout"}, "fraction"),
        ({"split": "train", "fraction": "1.5"}, "fraction"),
        ({"fraction": "0.2"}, "fraction"),
    ],
)
def test_a_bad_query_parameter_is_refused_naming_it(store: Store, params: dict[str, str], field: str) -> None:
    r = store.client.get(f"{store.api}/v1/records", params=params, headers=AUTH)
    assert r.status_code == 400 and r.json()["field"] == field, r.text


def test_the_held_out_and_train_splits_partition_the_records_and_corrected_keeps_corrections(
    store: Store,
) -> None:
    ids = [f"r{i}" for i in range(200)]
    store.post([request(rid) for rid in ids])
    store.post([{**feedback(rid, "down"), "correction": f"right {rid}"} for rid in ids[:100]])
    store.post([{**feedback(rid, "down"), "correction": "  "} for rid in ids[100:110]])

    def read(**params: str) -> set[str]:
        return {x["requestId"] for x in store.read(**params)}

    held, train = read(split="heldout", fraction="0.2"), read(split="train", fraction="0.2")
    assert held | train == set(ids) and not held & train
    assert 20 <= len(held) <= 60  # 20% of 200, by a hash: about 40
    assert held == {rid for rid in ids if held_out(rid, 0.2)}
    # The same split in any window, and nested across fractions.
    assert read(split="heldout", fraction="0.2", since=stamp(NOW - DAY)) == held
    assert read(split="heldout", fraction="0.1") <= held
    corrected = read(feedback="corrected")
    assert corrected == set(ids[:100])  # a blank correction is no correction
    assert read(feedback="corrected", split="heldout", fraction="0.2") == held & set(ids[:100])


def test_parse_batch_and_query_units() -> None:
    (rec,) = parse_batch(jsonl([request("x", NOW - DAY)]))
    assert (rec.kind, rec.day.isoformat(), rec.revision) == ("request", "2026-11-29", "rev-a")
    assert parse_query({"feedback": "down"}).feedback == "down"
    with pytest.raises(RecordError, match="line 1: revision"):
        parse_batch(b'{"kind": "request", "time": "2026-11-30T00:00:00Z", "requestId": "x", "revision": ""}')
    assert quantity_bytes("8Gi") == 8 << 30 and quantity_bytes("500M") == 500_000_000
    assert quantity_bytes("1.5Ki") == 1536
    with pytest.raises(ValueError, match="quantity"):
        quantity_bytes("8 gigs")


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--token-file", "{tmp}/missing"], "--token-file"),
        (["--token-file", "{tmp}/empty"], "--token-file"),
        (["--token-file", "{tmp}/token", "--retention", "a month"], "--retention"),
        (["--token-file", "{tmp}/token", "--max-size", "8 gigs"], "--max-size"),
        (["--token-file", "{tmp}/token", "--max-size", "0Gi"], "--max-size"),
    ],
)
def test_the_command_refuses_bad_flags_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], named: str
) -> None:
    from llmops.cli import main as llmops_main

    (tmp_path / "empty").write_text("")
    (tmp_path / "token").write_text("t")
    argv = ["capture-store", "--data-dir", str(tmp_path / "data"), *(f.format(tmp=tmp_path) for f in flags)]
    assert llmops_main(argv) == 2
    assert capsys.readouterr().err.startswith(f"llmops capture-store: {named}: ")


@settings(max_examples=100, deadline=None)
@given(
    max_size=st.from_regex(POSITIVE_QUANTITY, fullmatch=True).filter(lambda s: len(s) <= 64),
    retention=st.from_regex(DURATION, fullmatch=True).filter(lambda s: 2 <= len(s) <= 32),
)
def test_the_store_takes_the_flags_of_every_capture_spec_the_api_admits(
    max_size: str, retention: str
) -> None:
    """What the API admits reaches the store as flags (render.capture): a quantity such as 1e10,
    +8Gi, .5Gi or 8Ei passed the spec's pattern and then stopped the store at startup."""
    from llmops.capture_store.main import _parser

    ld = parse(body(gateway={"capture": {"maxSize": max_size, "retention": retention}}))
    deployment = capture_deployment(ld)
    assert deployment is not None
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    flags = _parser().parse_args(args[1:])
    assert quantity_bytes(flags.max_size) >= 1
    assert parse_duration(flags.retention) >= 0


@pytest.mark.parametrize(
    ("quantity", "size"),
    [
        ("1e10", 10**10),
        ("+8Gi", 8 << 30),
        (".5Gi", 1 << 29),
        ("8.Gi", 8 << 30),
        ("8Ei", 8 << 60),
        ("2E", 2 * 10**18),
        ("1500m", 2),  # rounded up to whole bytes, as resource.Quantity.Value() does
        ("1.5k", 1500),
        ("12E-1", 2),
    ],
)
def test_max_size_is_read_as_kubernetes_reads_a_quantity(quantity: str, size: int) -> None:
    assert quantity_bytes(quantity) == size


# -- hashed-term histograms ----------------------------------------------------------------------


def terms(store: Store, **params: str) -> dict[str, Any]:
    r = store.client.get(f"{store.api}/v1/terms", params=params, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_text_of_a_prompt_is_its_prompt_or_its_user_messages() -> None:
    assert prompt_text({"prompt": "Hello there"}) == "Hello there"
    messages = [
        {"role": "system", "content": "You are a helpful assistant"},
        {"role": "user", "content": "What is PSI?"},
        {"role": "assistant", "content": "A statistic"},
        {"role": "user", "content": [{"type": "text", "text": "and KS?"}, {"type": "image_url"}]},
    ]
    assert prompt_text({"messages": messages}) == "What is PSI?\nand KS?"
    assert prompt_text({"response": "no prompt"}) == ""
    assert terms_of("The cat, the CAT and the dog!") == {"the", "cat", "and", "dog"}


def test_buckets_are_stable_across_processes() -> None:
    # Python's hash() is salted per process: a histogram of the reference window asked for again
    # by a restarted store would not match. blake2b is the same everywhere.
    code = "from llmops.capture_store.terms import bucket_of; print([bucket_of(w, 1024) for w in ('cat', 'dog')])"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == str([bucket_of("cat", 1024), bucket_of("dog", 1024)])
    assert len({bucket_of(f"word{i}", 1024) for i in range(2000)}) > 800  # spread over the buckets


def test_each_distinct_term_of_a_prompt_counts_once() -> None:
    h = histogram_of([{"prompt": "cat cat cat dog"}, {"prompt": "cat"}, {"prompt": "   "}], 64)
    assert h.prompts == 2  # an empty prompt has no terms and does not count
    assert h.counts[bucket_of("cat", 64)] >= 2 and sum(h.counts) == 3


def test_the_store_serves_the_histogram_of_a_window_and_revision(store: Store) -> None:
    store.post(
        [
            request("a", NOW - DAY, prompt="tax return deadline"),
            request("b", NOW, prompt="tax refund"),
            request("c", NOW, prompt="football score", revision="rev-b"),
            request("d", NOW, prompt=None, messages=[{"role": "user", "content": "Tax forms"}]),
        ]
    )
    everything = terms(store, buckets="256")
    assert everything["buckets"] == 256 and everything["prompts"] == 4
    assert everything["counts"][bucket_of("tax", 256)] >= 3
    today = terms(store, since=stamp(NOW - dt.timedelta(hours=1)), revision="rev-a", buckets="256")
    assert today["prompts"] == 2 and today["counts"][bucket_of("tax", 256)] >= 2
    assert sum(today["counts"]) == 4  # tax, refund / tax, forms
    assert terms(store)["buckets"] == 1024  # the default


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"buckets": "0"}, "buckets"),
        ({"buckets": "many"}, "buckets"),
        ({"since": "yesterday"}, "since"),
        ({"feedback": "down"}, "feedback"),
        ({"limit": "3"}, "limit"),
    ],
)
def test_a_bad_terms_parameter_is_refused_naming_it(store: Store, params: dict[str, str], field: str) -> None:
    r = store.client.get(f"{store.api}/v1/terms", params=params, headers=AUTH)
    assert r.status_code == 400 and r.json()["field"] == field, r.text
    with pytest.raises(RecordError):
        parse_terms_query(params)


def test_terms_need_the_token(store: Store) -> None:
    assert store.client.get(f"{store.api}/v1/terms").status_code == 401
