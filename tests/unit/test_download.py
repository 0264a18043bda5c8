"""`llmops download` against the fake Hub with the real huggingface_hub client."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from huggingface_hub.errors import LocalEntryNotFoundError

from llmops import download
from llmops.contracts import DOWNLOAD_PROGRESS_PATH, DownloadProgress
from llmops_dev.fakehub import HubThread, commit_for, model_files, serve_in_thread
from llmops_dev.processes import free_port
from testkit import wait_for

SHA = "89abcdef0123456789abcdef0123456789abcdef"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubThread]:
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE", "HF_HOME", "LLMOPS_TERMINATION_LOG"):
        monkeypatch.delenv(var, raising=False)
    with serve_in_thread(tmp_path) as h:
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        yield h


def configure(tmp_path: Path, **config: object) -> None:
    (tmp_path / "hub.json").write_text(json.dumps(config))


def run(tmp_path: Path, *args: str) -> tuple[int, dict[str, object]]:
    log = tmp_path / "termination-log"
    code = download.main([*args, "--cache-dir", str(tmp_path / "cache"), "--termination-log", str(log)])
    return code, json.loads(log.read_text())


def test_download_fills_the_cache_and_reports_the_resolved_sha(
    hub: HubThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, message = run(tmp_path, "--model", "org/llm", "--revision", "main")

    sha = commit_for("org/llm", "main")
    expected = model_files("org/llm", sha)
    assert code == download.EXIT_OK
    assert message == {"revision": sha, "files": 3, "bytes": sum(len(b) for b in expected.values())}
    # huggingface_hub's cache layout, which TGI reads: blobs, a snapshot of symlinks, the ref.
    repo = tmp_path / "cache" / "models--org--llm"
    assert (repo / "refs" / "main").read_text() == sha
    for name, data in expected.items():
        link = repo / "snapshots" / sha / name
        assert link.is_symlink() and link.resolve().parent == repo / "blobs"
        assert link.read_bytes() == data
    out = capsys.readouterr().out
    assert "progress: org/llm@main: 3/3 files" in out
    assert f"downloaded org/llm@{sha}" in out


def test_a_pinned_sha_is_not_resolved_again(hub: HubThread, tmp_path: Path) -> None:
    code, message = run(tmp_path, "--model", "org/llm", "--revision", SHA)
    assert (code, message["revision"]) == (0, SHA)
    assert not [r for r in hub.hub.requests if "/revision/" in r["path"]]


@pytest.mark.parametrize(
    ("config", "args", "reason"),
    [
        ({"missing": ["org/nope"]}, ["--model", "org/nope"], "RepositoryNotFound"),
        ({"gated": ["org/gated"]}, ["--model", "org/gated"], "GatedRepo"),
        ({"missing": ["org/nope"]}, ["--model", "org/nope", "--revision", SHA], "RepositoryNotFound"),
        ({}, ["--model", "org/llm", "--revision", "no-such-branch"], "RevisionNotFound"),
    ],
)
def test_permanent_failures_exit_1_with_the_reason(
    hub: HubThread, tmp_path: Path, config: dict[str, object], args: list[str], reason: str
) -> None:
    configure(tmp_path, **config)
    code, message = run(tmp_path, *args)
    assert code == download.EXIT_PERMANENT
    assert message["reason"] == reason
    assert len(json.dumps(message)) < 4096
    assert not (tmp_path / "cache" / "models--org--nope" / "snapshots").exists()


def test_the_token_comes_from_hf_token(
    hub: HubThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(tmp_path, gated=["org/gated"])
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    code, message = run(tmp_path, "--model", "org/gated")
    assert code == 0, message
    assert all(r["authorization"] for r in hub.hub.requests if r["path"].startswith("/api/"))


def test_cache_and_termination_log_default_from_the_environment(
    hub: HubThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("LLMOPS_TERMINATION_LOG", str(tmp_path / "tlog"))
    assert download.main(["--model", "org/llm"]) == 0
    sha = json.loads((tmp_path / "tlog").read_text())["revision"]
    assert (tmp_path / "data" / "hub" / "models--org--llm" / "snapshots" / sha / "config.json").is_file()


def test_a_download_past_its_deadline_ends_the_process_with_exit_2(hub: HubThread, tmp_path: Path) -> None:
    configure(tmp_path, slow={"org/big": 30})
    log = tmp_path / "tlog"
    started = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "llmops.download", "--model", "org/big", "--timeout", "1"],
        env={**os.environ, "LLMOPS_TERMINATION_LOG": str(log), "HF_HUB_CACHE": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=25,
        check=False,
    )
    # It does not wait for the trickling files (30 s each): the process ends at the deadline.
    assert time.monotonic() - started < 20
    assert res.returncode == download.EXIT_TRANSIENT, res.stderr
    assert json.loads(log.read_text()) == {
        "error": "the download of org/big@main did not finish within 1s",
        "reason": "Timeout",
    }


def test_unreachable_hub_errors_are_transient() -> None:
    request = httpx2.Request("GET", "http://127.0.0.1:9/api/models/x")
    assert download.classify(LocalEntryNotFoundError("offline")) == ("Network", download.EXIT_TRANSIENT)
    assert download.classify(httpx2.ConnectError("refused", request=request)) == ("Network", 2)
    assert download.classify(ValueError("bug")) == ("Unexpected", download.EXIT_TRANSIENT)


def _poll(url: str) -> dict[str, object] | None:
    try:
        return dict(httpx2.get(url, timeout=2).json())
    except httpx2.TransportError:
        return None  # not listening yet, or the download finished and took the endpoint away


def test_progress_endpoint_answers_files_bytes_and_rate_while_the_download_runs(
    hub: HubThread, tmp_path: Path
) -> None:
    # 25 MiB trickling over 3 s: huggingface_hub writes in 10 MiB steps, so there are readings
    # between nothing and everything.
    weights = 25 * 1024 * 1024
    configure(tmp_path, slow={"org/big": 3}, weights={"org/big": weights})
    sha = commit_for("org/big", "main")
    total = sum(len(b) for b in model_files("org/big", sha, weights).values())
    port = free_port()
    outcome: dict[str, download.Outcome] = {}
    worker = threading.Thread(
        target=lambda: outcome.setdefault(
            "it",
            download.download(
                "org/big",
                "main",
                cache_dir=str(tmp_path / "cache"),
                out=io.StringIO(),
                progress_port=port,
                progress_host="127.0.0.1",
            ),
        )
    )
    readings: list[DownloadProgress] = []

    def finished_watching() -> bool:
        answer = _poll(f"http://127.0.0.1:{port}{DOWNLOAD_PROGRESS_PATH}")
        if answer is not None:
            readings.append(DownloadProgress.from_json(answer))
        return "it" in outcome

    worker.start()
    wait_for("the download to finish", finished_watching, 60, 0.05)
    worker.join(5)
    assert outcome["it"].code == download.EXIT_OK
    assert readings, "the endpoint never answered"
    # The Hub's file listing is read before the files: from then on the totals are known.
    assert {(r.files_total, r.bytes_total) for r in readings} <= {(0, None), (3, total)}
    assert (readings[-1].files_total, readings[-1].bytes_total) == (3, total)
    done = [r.bytes_done for r in readings]
    assert done == sorted(done) and all(d <= total for d in done)
    between = {d for d in done if 0 < d < total}
    assert between, f"no reading between nothing and everything: {sorted(set(done))}"
    assert any(r.bytes_per_second for r in readings if r.elapsed_seconds >= 1.0)


def test_progress_endpoint_answers_only_its_path(hub: HubThread, tmp_path: Path) -> None:
    progress = download._Progress(io.StringIO(), "org/x@main")
    with download.serve_progress(progress, "127.0.0.1", 0) as port:
        assert httpx2.get(f"http://127.0.0.1:{port}/other").status_code == 404
        answer = httpx2.get(f"http://127.0.0.1:{port}{DOWNLOAD_PROGRESS_PATH}").json()
    assert answer == {
        "filesDone": 0,
        "filesTotal": 0,
        "bytesDone": 0,
        "bytesTotal": None,
        "bytesPerSecond": None,
        "elapsedSeconds": answer["elapsedSeconds"],
    }


def test_a_taken_progress_port_does_not_stop_the_download(hub: HubThread, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        outcome = download.download(
            "org/llm",
            "main",
            cache_dir=str(tmp_path / "cache"),
            out=io.StringIO(),
            progress_port=port,
            progress_host="127.0.0.1",
        )
    assert outcome.code == download.EXIT_OK


def test_the_rate_is_over_the_last_seconds() -> None:
    clock = [0.0]
    progress = download._Progress(io.StringIO(), "org/x@main", clock=lambda: clock[0])
    progress.bytes_total = 1000
    assert progress.reading().bytes_per_second is None  # one reading: nothing to compare yet
    for second in range(1, 41):
        clock[0] = float(second)
        progress.saw("bytes", 10 * second if second <= 20 else 200 + 40 * (second - 20), 1000)
        progress.reading()
    # 40 bytes a second for the last 20 s, after 10 a second before: the rate follows the mirror.
    assert progress.reading().bytes_per_second == pytest.approx(40.0, rel=0.06)
    assert progress.reading().bytes_done == 1000  # never more than the total
