"""`llmops eval` with the held-out set of feedback corrections: a real capture store (in a thread)
holding captured requests and feedback with corrections, the TGI simulator as the candidate and
the baseline, and the summary's `heldOut` section."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from llmops.capture_store import CaptureStore, StoreConfig
from llmops.capture_store.records import held_out
from llmops.evaluation.heldout import HeldOutSource, records_url, samples_of
from llmops.evaluation.main import main
from llmops.evaluation.report import EXIT_BROKEN, EXIT_FAILED, EXIT_INVALID, EXIT_PASSED, SUMMARY_LIMIT
from llmops_dev.store_thread import run_store_in_thread
from llmops_dev.tgisim import Behaviour, Simulator, run_in_thread

TOKEN = "store-token"
QUESTIONS = {f"What is item {i}?": f"item {i} is a thing" for i in range(40)}
# Captured prompts and what users said the answer should have been.
ASKED = {f"Which colour is box {i}?": f"box {i} is blue" for i in range(120)}
IDS = {prompt: f"req-{i:03d}" for i, prompt in enumerate(ASKED)}
HELD = sorted(rid for rid in IDS.values() if held_out(rid, 0.5))


def stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[str]:
    config = StoreConfig(
        data_dir=tmp_path / "store", token=TOKEN.encode(), max_bytes=1 << 30, retention=dt.timedelta(days=30)
    )
    with run_store_in_thread(CaptureStore(config)) as (api, _):
        now = dt.datetime.now(dt.UTC)
        records: list[dict[str, Any]] = []
        for prompt, rid in IDS.items():
            base = {"time": stamp(now), "requestId": rid, "revision": "r" * 40, "track": "stable"}
            records.append({**base, "kind": "request", "prompt": prompt, "response": "no idea"})
            records.append({**base, "kind": "feedback", "rating": "down", "correction": ASKED[prompt]})
        body = b"".join(json.dumps(r).encode() + b"\n" for r in records)
        r = httpx2.post(f"{api}/v1/records", content=body, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200, r.text
        yield api


@contextlib.contextmanager
def _serve(answers: dict[str, str]) -> Iterator[str]:
    sim = Simulator(Behaviour(answers=answers, latency_seconds=0.001), shutdown_timeout=0.1)
    with run_in_thread(sim) as url:
        yield url


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "qa.jsonl"
    lines = [{"id": f"q{i}", "prompt": p, "reference": r} for i, (p, r) in enumerate(QUESTIONS.items())]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def _run(argv: list[str], tmp_path: Path) -> tuple[int, dict[str, Any]]:
    summary_file = tmp_path / "termination-log"
    code = main([*argv, "--summary-file", str(summary_file)])
    text = summary_file.read_bytes()
    assert len(text) < SUMMARY_LIMIT
    return code, json.loads(text)


def _args(url: str, dataset: Path, store: str, *extra: str) -> list[str]:
    return [
        "--endpoint", url, "--dataset", str(dataset), "--backoff-base", "0.001",
        "--thresholds", '[{"metric": "exactMatch", "min": 0.8}]',
        "--held-out-url", store, "--held-out-token-env", "STORE_TOKEN", "--held-out-fraction", "0.5",
        "--held-out-min", "20", *extra,
    ]  # fmt: skip


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORE_TOKEN", TOKEN)


def test_a_candidate_that_forgot_the_corrections_loses_on_the_held_out_set_only(
    store: str, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The baseline answers the corrected prompts as users wanted, the candidate does not: both are
    perfect on the dataset, and only the held-out set's paired comparison shows the loss."""
    assert 40 <= len(HELD) <= 80
    with _serve({**QUESTIONS, **ASKED}) as serving, _serve(QUESTIONS) as candidate:
        argv = _args(
            candidate, dataset, store, "--baseline-endpoint", serving, "--max-drop", '{"exactMatch": 0.05}'
        )
        code, summary = _run(argv, tmp_path)
    assert code == EXIT_PASSED, summary  # no held-out threshold: the comparison is the operator's to judge
    held = summary["heldOut"]
    assert (held["verdict"], held["records"], held["skipped"]) == ("Passed", len(HELD), 0)
    assert held["counts"] == {"samples": len(HELD), "completed": len(HELD), "errors": 0}
    assert held["metrics"]["exactMatch"] == {"value": 0.0, "n": len(HELD)}
    paired = held["comparison"]["metrics"]["exactMatch"]
    assert (paired["candidate"], paired["baseline"], paired["losses"], paired["wins"]) == (
        0.0,
        1.0,
        len(HELD),
        0,
    )
    assert paired["verdict"] == "Worse"
    # The dataset's own comparison: the same on both.
    assert summary["comparison"]["metrics"]["exactMatch"]["delta"] == 0
    sent = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    held_ids = sorted(line["id"] for line in sent if line.get("target") == "heldout")
    assert held_ids == [f"heldout-{rid}" for rid in HELD]  # only the held-out view, never the rest


def test_held_out_thresholds_are_judged_on_their_bound(store: str, dataset: Path, tmp_path: Path) -> None:
    with _serve(QUESTIONS) as candidate:
        argv = _args(
            candidate, dataset, store, "--held-out-thresholds", '[{"metric": "exactMatch", "min": 0.5}]'
        )
        code, summary = _run(argv, tmp_path)
    assert code == EXIT_FAILED and summary["verdict"] == "Failed"
    held = summary["heldOut"]["metrics"]["exactMatch"]
    assert (held["passed"], held["verdict"], held["min"]) == (False, "Failed", 0.5)
    assert "held-out corrections: failed: exactMatch 0.00" in summary["message"]
    assert summary["metrics"]["exactMatch"]["passed"] is True  # the dataset itself passed


def test_too_few_corrections_is_insufficient_samples_never_a_pass(
    store: str, dataset: Path, tmp_path: Path
) -> None:
    with _serve({**QUESTIONS, **ASKED}) as candidate:
        code, summary = _run(_args(candidate, dataset, store, "--held-out-min", "1000"), tmp_path)
    assert code == EXIT_FAILED and summary["verdict"] == "InsufficientSamples"
    held = summary["heldOut"]
    assert held["verdict"] == "InsufficientSamples" and held["metrics"]["exactMatch"]["value"] == 1.0
    assert f"{len(HELD)} correction(s) in the window, fewer than minRecords 1000" in summary["message"]


def test_an_empty_window_and_an_unreadable_store(store: str, dataset: Path, tmp_path: Path) -> None:
    with _serve(QUESTIONS) as candidate:
        # A window that ends before the records: no correction at all.
        future = _args(candidate, dataset, store, "--held-out-window", "0.001")
        code, summary = _run(future, tmp_path)
        assert code == EXIT_FAILED and summary["heldOut"]["records"] == 0, summary
        wrong = _args(candidate, dataset, store)
        code, summary = _run([*wrong, "--held-out-token-env", "NO_SUCH_VARIABLE"], tmp_path)
        assert code == EXIT_INVALID and "--held-out-token-env" in summary["message"]
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("STORE_TOKEN", "wrong")
            code, summary = _run(_args(candidate, dataset, store), tmp_path)
        assert code == EXIT_BROKEN and "answered 401" in summary["message"], summary


def _line(rid: str, when: str, correction: Any, **record: Any) -> str:
    return json.dumps({"requestId": rid, "time": when, "feedback": {"correction": correction}, **record})


def test_samples_of_keeps_the_newest_once_each_and_skips_what_the_route_cannot_send() -> None:
    chat = [{"role": "user", "content": "hi"}]
    lines = [
        _line("a", "2026-11-30T10:00:00.000Z", "A", prompt="pa"),
        _line("b", "2026-11-30T11:00:00.000Z", "B", messages=chat),
        _line("c", "2026-11-30T12:00:00.000Z", "C", prompt="pc"),
        _line("a", "2026-11-30T10:00:00.000Z", "A", prompt="pa"),  # delivered twice
        _line("d", "2026-11-30T09:00:00.000Z", "  ", prompt="pd"),  # a blank correction
    ]
    both = samples_of(lines, 10, "chat")
    assert [s.id for s in both.samples] == ["heldout-a", "heldout-b", "heldout-c"] and both.skipped == 1
    assert both.samples[1].messages == ({"role": "user", "content": "hi"},)
    assert both.samples[0].references == ("A",)
    newest = samples_of(lines, 2, "completion")
    assert [s.id for s in newest.samples] == ["heldout-a", "heldout-c"] and newest.skipped == 2


def test_records_url_asks_for_the_held_out_view_of_the_window() -> None:
    source = HeldOutSource("http://s:8080/", "t", 0.2, 3600, 10, 1)
    url = records_url(source, dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC))
    assert url == (
        "http://s:8080/v1/records?since=2026-11-30T11%3A00%3A00.000Z&feedback=corrected&split=heldout&fraction=0.2"
    )
