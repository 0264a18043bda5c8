"""Starting, probing and stopping the local cluster's processes.

Every process is started in its own session with its output in a log file, so that a
failure can point at the log, and is stopped by PID (TERM, then KILL after a deadline).
A PID read back from a state file is only signalled when ``/proc/<pid>/cmdline`` still
shows the binary we started, so a recycled PID is never killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ClusterError", "Proc", "free_port", "is_ours", "port_in_use", "stop_pid", "tail", "wait_until"]


class ClusterError(RuntimeError):
    """A component of the local cluster failed; the message names it and its log."""


@dataclass
class Proc:
    """A started component."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @classmethod
    def start(cls, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Proc:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            try:
                popen = subprocess.Popen(
                    argv,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    env=env,
                )
            except OSError as exc:
                raise ClusterError(f"{name}: cannot start {argv[0]}: {exc}") from exc
        return cls(name, popen, log)

    def failed(self) -> str | None:
        """The reason this process is gone, or None while it runs."""
        code = self.popen.poll()
        if code is None:
            return None
        return f"{self.name} exited with code {code}; its log is {self.log}:\n{tail(self.log)}"


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log, indented, for error messages."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "    (no log)"
    return "\n".join("    " + line for line in text)


def free_port() -> int:
    """A loopback port that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def wait_until(
    what: str,
    check: Callable[[], bool],
    deadline_s: float,
    procs: list[Proc],
    interval_s: float = 0.1,
) -> None:
    """Poll ``check`` until it is true; fail early if one of ``procs`` dies."""
    end = time.monotonic() + deadline_s
    while True:
        for p in procs:
            reason = p.failed()
            if reason:
                raise ClusterError(f"while waiting for {what}: {reason}")
        try:
            if check():
                return
        except Exception:
            pass
        if time.monotonic() > end:
            logs = ", ".join(f"{p.name}: {p.log}" for p in procs)
            raise ClusterError(f"timed out after {deadline_s:.0f}s waiting for {what}; logs: {logs}")
        time.sleep(interval_s)


def is_ours(pid: int, binary_marker: str) -> bool:
    """True when ``pid`` is alive and its command line mentions ``binary_marker``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return binary_marker in cmdline


def stop_pid(pid: int, binary_marker: str, deadline_s: float = 10.0) -> None:
    """TERM the process group, wait, then KILL; only if the PID is still ours."""
    if not is_ours(pid, binary_marker):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and is_ours(pid, binary_marker):
        _reap(pid)
        time.sleep(0.05)
    if is_ours(pid, binary_marker):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        _reap(pid)


def _reap(pid: int) -> None:
    # Our own children become zombies until waited for; others are reaped by init.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
