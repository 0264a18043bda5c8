"""A real Prometheus (Debian's `prometheus` package) for the tests and `make dev`.

It scrapes the simulated TGI pods through a file_sd targets file: the fake kubelet writes one
target per Ready TGI pod, `127.0.0.1:<simulator port>`, with the labels a PodMonitor's
relabelings give a real pod (namespace, pod, container, endpoint, llmops_deployment,
llmops_track, llmops_revision). `write_targets` writes that file atomically (Prometheus must
never read half of it).

Layout under `<state-dir>/prometheus/`: `prometheus.yml` (generated), `prometheus.log`, `data/`
(scratch TSDB, emptied on every start) and `prometheus.json` (PID and URL, so that another
process can stop it: `stop_recorded`). Listens on a free loopback port; `--web.enable-lifecycle`.

Timing: Prometheus' discovery manager passes target changes on at most every 5 s, so a target
is first scraped up to ~5 s after the file changes (or after start).

    python -m llmops_dev.prometheus --state-dir DIR [--targets-file F] [--scrape-interval 1s]

runs one in the foreground until interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llmops.api.constants import PROM_LABEL_DEPLOYMENT, PROM_LABEL_REVISION, PROM_LABEL_TRACK
from llmops.engines import CONTAINER_NAME, PORT_NAME
from llmops_dev.processes import ClusterError, Proc, free_port, stop_pid, tail, wait_until

__all__ = [
    "JOB_NAME",
    "Prometheus",
    "Target",
    "find_binary",
    "find_promtool",
    "stop_recorded",
    "tgi_target",
    "write_targets",
]

JOB_NAME = "tgi"
INSTALL_HINT = (
    "install Debian's prometheus package: apt-get update && "
    "apt-get install -y --no-install-recommends prometheus "
    "(then stop the service it may start: systemctl disable --now prometheus || service prometheus stop)"
)
_START_ATTEMPTS = 3  # a free port can be taken between free_port() and Prometheus' bind


@dataclass(frozen=True)
class Target:
    """One file_sd entry: scrape `address`, attach `labels` to every series."""

    address: str
    """host:port"""
    labels: Mapping[str, str]


def tgi_target(
    address: str, *, namespace: str, pod: str, deployment: str, track: str, revision: str
) -> Target:
    """A TGI pod as a target, labelled as the PodMonitor (render.monitoring) would label it."""
    return Target(
        address,
        {
            "namespace": namespace,
            "pod": pod,
            "container": CONTAINER_NAME,
            "endpoint": PORT_NAME,
            PROM_LABEL_DEPLOYMENT: deployment,
            PROM_LABEL_TRACK: track,
            PROM_LABEL_REVISION: revision,
        },
    )


def write_targets(path: Path, targets: Iterable[Target]) -> None:
    """Write a file_sd targets file atomically (temp file + rename in the same directory)."""
    entries = [{"targets": [t.address], "labels": dict(t.labels)} for t in targets]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(entries, out, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def find_binary() -> Path:
    """The prometheus binary: $LLMOPS_PROMETHEUS, else on PATH, else ClusterError saying how to install it."""
    configured = os.environ.get("LLMOPS_PROMETHEUS")
    found = configured or shutil.which("prometheus") or "/usr/bin/prometheus"
    path = Path(found)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ClusterError(f"prometheus binary not found at {path}; {INSTALL_HINT}")
    return path


def find_promtool() -> Path:
    """promtool, which Debian's prometheus package installs beside prometheus: $LLMOPS_PROMTOOL,
    else next to the prometheus binary, else on PATH; ClusterError saying how to install it."""
    configured = os.environ.get("LLMOPS_PROMTOOL")
    if configured:
        candidates = [configured]
    else:
        candidates = [shutil.which("promtool") or "/usr/bin/promtool"]
        with contextlib.suppress(ClusterError):
            candidates.insert(0, str(find_binary().with_name("promtool")))
    for found in candidates:
        path = Path(found)
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise ClusterError(f"promtool not found at {' or '.join(candidates)}; {INSTALL_HINT}")


def _config(targets_file: Path, scrape_interval: str) -> dict[str, Any]:
    return {
        "global": {
            "scrape_interval": scrape_interval,
            # Must not exceed the interval; a simulator answers /metrics in milliseconds.
            "scrape_timeout": scrape_interval,
            "evaluation_interval": scrape_interval,
        },
        "scrape_configs": [
            {
                "job_name": JOB_NAME,
                "metrics_path": "/metrics",
                # file_sd watches the file (inotify); the refresh is only a fallback.
                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "30s"}],
            }
        ],
    }


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Prometheus:
    """A running Prometheus started by `start`."""

    url: str
    """http://127.0.0.1:<port>"""
    port: int
    proc: Proc
    config_file: Path
    targets_file: Path
    home: Path
    """<state-dir>/prometheus: config, log, data, prometheus.json."""

    @classmethod
    def start(
        cls,
        state_dir: Path,
        targets_file: Path,
        scrape_interval: str = "1s",
        *,
        deadline_s: float = 30.0,
        retention: str = "1d",
    ) -> Prometheus:
        """Start Prometheus scraping the file_sd `targets_file`; returns once /-/ready answers 200.
        `retention` is its `--storage.tsdb.retention.time` (what /api/v1/status/runtimeinfo reports).

        A Prometheus recorded in `state_dir` by an earlier start is stopped first. Raises
        ClusterError naming the log when the binary is missing or Prometheus does not get ready.
        """
        binary = find_binary()
        home = state_dir / "prometheus"
        stop_recorded(state_dir)
        shutil.rmtree(home / "data", ignore_errors=True)
        (home / "data").mkdir(parents=True)
        # file_sd watches the file's directory: it must exist (the file itself may come later).
        targets_file.parent.mkdir(parents=True, exist_ok=True)
        config_file = home / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(_config(targets_file, scrape_interval), sort_keys=False))
        log = home / "prometheus.log"
        log.write_text("")
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = free_port()
            argv = [
                str(binary),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--storage.tsdb.retention.time={retention}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
                "--log.level=info",
            ]
            proc = Proc.start("prometheus", argv, log)
            url = f"http://127.0.0.1:{port}"
            prom = cls(url, port, proc, config_file, targets_file, home)
            (home / "prometheus.json").write_text(
                json.dumps({"pid": proc.pid, "url": url, "config": str(config_file)})
            )
            try:
                wait_until("prometheus /-/ready", functools.partial(_ready, url), deadline_s, [proc])
                return prom
            except ClusterError:
                code = proc.popen.poll()
                prom.stop()
                if (
                    code is not None
                    and attempt < _START_ATTEMPTS
                    and "address already in use" in tail(log, 5)
                ):
                    continue
                why = (
                    f"exited with code {code}" if code is not None else f"not ready within {deadline_s:.0f}s"
                )
                raise ClusterError(f"prometheus {why} (log: {log}):\n{tail(log)}") from None
        raise AssertionError("unreachable")

    def restart(self, *, deadline_s: float = 30.0) -> float:
        """Kill it (SIGKILL, as a node loss or an OOM kill would) and start it again in place:
        the same port, configuration and TSDB. Returns the seconds until it was ready again."""
        started = time.monotonic()
        self.proc.popen.kill()
        self.proc.popen.wait(timeout=10)
        self.proc = Proc.start("prometheus", list(self.proc.popen.args), self.proc.log)  # type: ignore[arg-type]
        (self.home / "prometheus.json").write_text(
            json.dumps({"pid": self.proc.pid, "url": self.url, "config": str(self.config_file)})
        )
        wait_until("prometheus /-/ready", functools.partial(_ready, self.url), deadline_s, [self.proc])
        return time.monotonic() - started

    def stop(self) -> None:
        """Stop it by PID (TERM, then KILL after a deadline)."""
        stop_pid(self.proc.pid, str(self.config_file))
        # stop_pid returns once the command line is gone, which can be just before the exit is
        # complete: wait for it, so the process is reaped here and not left as a zombie.
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.popen.wait(timeout=10)
        with contextlib.suppress(OSError):
            (self.home / "prometheus.json").unlink()


def stop_recorded(state_dir: Path) -> bool:
    """Stop the Prometheus recorded in `<state_dir>/prometheus/prometheus.json`, if it still runs.

    The PID is only signalled while its command line still names our config file, so a reused
    PID is never hit. Returns whether a record was found.
    """
    record = state_dir / "prometheus" / "prometheus.json"
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return False
    stop_pid(int(data["pid"]), str(data["config"]))
    with contextlib.suppress(OSError):
        record.unlink()
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m llmops_dev.prometheus",
        description="Run a Prometheus that scrapes a file_sd targets file.",
    )
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--targets-file", type=Path, help="default: <state-dir>/tgi-targets.json")
    p.add_argument("--scrape-interval", default="1s")
    args = p.parse_args(argv)
    targets = args.targets_file or args.state_dir / "tgi-targets.json"
    try:
        prom = Prometheus.start(args.state_dir, targets, args.scrape_interval)
    except ClusterError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"prometheus: {prom.url} scraping {targets} (log: {prom.proc.log}); Ctrl-C stops it", flush=True)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        while not stopping.is_set() and prom.proc.failed() is None:
            stopping.wait(1.0)
    finally:
        prom.stop()
    reason = prom.proc.failed()
    if reason and not stopping.is_set():
        print(reason, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
