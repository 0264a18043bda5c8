"""The servers' shared main: bad flags are one line and status 2; a signal stops a started server."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from llmops.aioserve import UsageError, run_until_signalled
from llmops.capture_store.main import main as store_main
from llmops.gateway.main import main as gateway_main


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def start(self, host: str, port: int, health_port: int) -> tuple[str, str]:
        self.calls.append(f"start {host}:{port}/{health_port}")
        # What a kubelet does to a pod: SIGTERM, once the server listens.
        threading.Timer(0.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
        return f"http://{host}:{port}", f"http://{host}:{health_port}"

    async def stop(self) -> None:
        self.calls.append("stop")


def test_a_started_server_is_stopped_by_sigterm_and_exits_0() -> None:
    server, announced = _Recorder(), []
    status = run_until_signalled(
        "test", lambda: server, ("127.0.0.1", 1, 2), lambda s, url, health: announced.append((url, health))
    )
    assert status == 0
    assert server.calls == ["start 127.0.0.1:1/2", "stop"]
    assert announced == [("http://127.0.0.1:1", "http://127.0.0.1:2")]


def test_a_usage_error_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    def refuse() -> _Recorder:
        raise UsageError("--flag: what is wrong")

    assert run_until_signalled("llmops thing", refuse, ("", 0, 0), lambda *_: None) == 2
    assert capsys.readouterr().err == "llmops thing: --flag: what is wrong\n"


def test_both_programs_refuse_bad_flags_with_status_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = tmp_path / "key"
    key.write_text("k" * 32)
    flags = ["--revision", "a" * 40, "--track", "stable", "--signing-key-file", str(key)]
    assert gateway_main(["--deployment", "no-slash", "--upstream", "http://127.0.0.1:1", *flags]) == 2
    assert "--deployment must be namespace/name" in capsys.readouterr().err
    assert store_main(["--data-dir", "/proc/nope/capture", "--token-file", "/proc/nope/token"]) == 2
    assert capsys.readouterr().err.startswith("llmops capture-store: --")
