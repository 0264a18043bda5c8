"""`llmops download`: pre-warm the model cache with a snapshot download from the Hugging Face Hub.

It runs in the operator's download Job (the operator's own image), so that TGI pods find the
model in the shared cache volume and start fast::

    llmops download --model ORG/NAME --revision REV [--cache-dir DIR] [--timeout S]
                    [--termination-log PATH] [--progress-port PORT] [--progress-host HOST]

The cache is ``--cache-dir``, else ``$HF_HUB_CACHE``, else ``$HF_HOME/hub`` (TGI's cache with
its image's ``HF_HOME=/data``). The token comes from ``HF_TOKEN`` (never from a file), the Hub
from ``HF_ENDPOINT``. Progress lines go to stdout, and ``GET /progress`` on ``--progress-port``
answers how far it is (files and bytes done and in total, the rate: llmops.contracts'
DownloadProgress), which the operator reads into status while the revision is Caching: the
Job itself never talks to the Kubernetes API. The outcome is a JSON termination message
(the Job pod's ``/dev/termination-log``; ``--termination-log`` or ``LLMOPS_TERMINATION_LOG``
override the path) and the exit code:

    0  downloaded: {"revision": "<resolved sha>", "files": n, "bytes": b}
    1  permanent, retrying will not help: {"error": ..., "reason": "RepositoryNotFound" |
       "GatedRepo" | "RevisionNotFound" | "EntryNotFound"} (llmops.hub)
    2  transient, worth a retry: {"error": ..., "reason": "Timeout" | "Network" | "Unexpected"}
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

# snapshot_download wants a subclass of tqdm.auto's class (tqdm_asyncio outside notebooks).
from tqdm.auto import tqdm as auto_tqdm

from llmops import hub
from llmops.contracts import (
    DOWNLOAD_EXIT_OK,
    DOWNLOAD_EXIT_PERMANENT,
    DOWNLOAD_EXIT_TRANSIENT,
    DOWNLOAD_PROGRESS_PATH,
    DOWNLOAD_PROGRESS_PORT,
    DownloadProgress,
)

if TYPE_CHECKING:
    _BarBase = auto_tqdm[Any]
else:
    _BarBase = auto_tqdm  # generic in the stubs only: not subscriptable at run time

__all__ = [
    "DEFAULT_TERMINATION_LOG",
    "EXIT_OK",
    "EXIT_PERMANENT",
    "EXIT_TRANSIENT",
    "Outcome",
    "classify",
    "download",
    "main",
]

# The contract with the rendered Job's podFailurePolicy (llmops.contracts), under this module's names.
EXIT_OK, EXIT_PERMANENT, EXIT_TRANSIENT = DOWNLOAD_EXIT_OK, DOWNLOAD_EXIT_PERMANENT, DOWNLOAD_EXIT_TRANSIENT
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
_MAX_ERROR = 1500  # the whole message must fit the kubelet's 4096-byte termination message
RATE_WINDOW_SECONDS = 20.0
"""The rate in /progress is over this many seconds of the download: recent enough to follow
a slower mirror, long enough to smooth huggingface_hub's 10 MB steps."""


@dataclass
class Outcome:
    """What the download came to: the exit code and the termination message."""

    code: int
    message: dict[str, Any]
    path: str | None = None
    timed_out: bool = field(default=False)


def classify(exc: BaseException) -> tuple[str, int]:
    """The termination reason and exit code for a failed snapshot download."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    if reason := hub.refusal(exc):
        return reason, EXIT_PERMANENT
    if isinstance(exc, HfHubHTTPError | LocalEntryNotFoundError | ConnectionError | TimeoutError):
        # snapshot_download turns unreachable-Hub errors into LocalEntryNotFoundError.
        return "Network", EXIT_TRANSIENT
    if type(exc).__module__.startswith(("httpx", "httpcore")):
        return "Network", EXIT_TRANSIENT
    return "Unexpected", EXIT_TRANSIENT


class _Sink:
    """Where tqdm draws its bars: nowhere (the log gets `_Progress` lines instead)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


class _Progress:
    """Follows huggingface_hub's progress bars: plain log lines (at most one a second) and the
    readings ``GET /progress`` answers."""

    def __init__(self, out: TextIO, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.out, self.what, self.clock = out, what, clock
        self.files_done = self.files_total = 0
        self.bytes_done = 0
        self.bytes_started = 0
        """Sizes of the files whose download has begun (the bars learn them one by one)."""
        self.bytes_total: int | None = None
        """The snapshot's size from the Hub's file listing, when it could be read."""
        self._started = clock()
        self._last = 0.0
        self._readings: collections.deque[tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()

    def bar_class(self) -> type[_BarBase]:
        progress = self

        class Bar(_BarBase):
            monitor_interval = 0  # no tqdm monitor thread

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs.pop("name", None)
                kwargs["file"] = _Sink()
                super().__init__(*args, **kwargs)
                self.counts = _counted(str(self.desc))
                if self.counts == "files":
                    progress.files_total = int(self.total or 0)

            def update(self, n: float | None = 1) -> bool | None:
                shown = super().update(n)
                progress.saw(self.counts, int(self.n), int(self.total or 0))
                return shown

        return Bar

    def saw(self, counts: str | None, done: int, total: int) -> None:
        """A bar moved: ``counts`` says what it counts (files, or bytes written to the cache)."""
        with self._lock:
            if counts == "files":
                self.files_done = done
            elif counts == "bytes":
                self.bytes_done, self.bytes_started = done, total
        self.report()

    def reading(self) -> DownloadProgress:
        """How far the download is now."""
        now = self.clock()
        with self._lock:
            self._remember(now)
            oldest_t, oldest_bytes = self._readings[0]
            rate = (self.bytes_done - oldest_bytes) / (now - oldest_t) if now - oldest_t >= 1.0 else None
            total = self.bytes_total
            return DownloadProgress(
                files_done=self.files_done,
                files_total=self.files_total,
                bytes_done=self.bytes_done if total is None else min(self.bytes_done, total),
                bytes_total=total,
                bytes_per_second=None if rate is None else round(max(rate, 0.0), 1),
                elapsed_seconds=round(now - self._started, 1),
            )

    def _remember(self, now: float) -> None:
        """Keep the readings of the last RATE_WINDOW_SECONDS (and the one just before them)."""
        self._readings.append((now, self.bytes_done))
        while len(self._readings) > 2 and now - self._readings[1][0] >= RATE_WINDOW_SECONDS:
            self._readings.popleft()

    def report(self, force: bool = False) -> None:
        now = self.clock()
        with self._lock:
            if not force and now - self._last < 1.0:
                return
            self._last = now
            self._remember(now)
            total = f" of {self.bytes_total}" if self.bytes_total is not None else ""
            print(
                f"progress: {self.what}: {self.files_done}/{self.files_total} files, {self.bytes_done}{total} bytes",
                file=self.out,
                flush=True,
            )


def _counted(desc: str) -> str | None:
    """What one of snapshot_download's bars counts, from its description: the files fetched
    ("Fetching 3 files"), the bytes written into the cache ("Reconstructing …": resumed bytes
    included, unlike the network bar "Downloading bytes"), or something we do not follow."""
    if desc.startswith("Fetching"):
        return "files"
    if desc.startswith("Reconstruct"):
        return "bytes"
    return None


def _snapshot_size(model: str, revision: str, endpoint: str | None) -> tuple[int, int] | None:
    """(files, bytes) of the whole snapshot, from the Hub's file listing; None when it cannot be
    read (then snapshot_download's own request says why, and progress has no total)."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    try:
        entries = HfApi(endpoint=endpoint, token=_token()).list_repo_tree(
            model, revision=revision, recursive=True
        )
        sizes = [e.size for e in entries if isinstance(e, RepoFile)]
    except Exception:  # the snapshot's own request reports the real error; progress just lacks a total
        return None
    return len(sizes), sum(sizes)


@contextlib.contextmanager
def serve_progress(progress: _Progress, host: str, port: int | None) -> Iterator[int | None]:
    """Answer ``GET /progress`` with ``progress.reading()`` on ``host:port`` while the download
    runs (no server when ``port`` is None); yields the port actually bound (0 picks one)."""
    if port is None:
        yield None
        return

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != DOWNLOAD_PROGRESS_PATH:
                self.send_error(404, f"only {DOWNLOAD_PROGRESS_PATH} is served here")
                return
            body = json.dumps(progress.reading().to_json()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one poll every few seconds is not worth a log line

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:  # progress is for people watching; the download goes on without it
        print(f"progress endpoint not served on {host}:{port}: {exc}", file=sys.stderr, flush=True)
        yield None
        return
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="progress", daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _cache_dir(explicit: str | None) -> str | None:
    # Read at call time: huggingface_hub reads its env only once, at import.
    if explicit:
        return explicit
    if env := os.environ.get("HF_HUB_CACHE"):
        return env
    if home := os.environ.get("HF_HOME"):
        return str(Path(home) / "hub")
    return None


def _token() -> str | bool:
    # Only the environment: a token file in the pod's home must not be picked up silently.
    return os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or False


def _error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."


def download(
    model: str,
    revision: str,
    *,
    cache_dir: str | None = None,
    timeout: float | None = None,
    out: TextIO | None = None,
    progress_port: int | None = None,
    progress_host: str = "0.0.0.0",
) -> Outcome:
    """Download ``model`` at ``revision`` into the cache, within ``timeout`` seconds, answering
    ``GET /progress`` on ``progress_port`` meanwhile (none when it is None).

    On timeout the download thread is left running (a daemon); `main` then ends the process.
    """
    out = out or sys.stdout
    progress = _Progress(out, f"{model}@{revision}")
    result: dict[str, Any] = {}
    cache = _cache_dir(cache_dir)
    endpoint = os.environ.get("HF_ENDPOINT") or None

    def run() -> None:
        # Imported here, in the worker: the progress endpoint answers meanwhile (a second or two).
        from huggingface_hub import snapshot_download

        if size := _snapshot_size(model, revision, endpoint):
            progress.files_total, progress.bytes_total = size
        try:
            result["path"] = snapshot_download(
                model,
                revision=revision,
                cache_dir=cache,
                token=_token(),
                endpoint=endpoint,
                tqdm_class=progress.bar_class(),
            )
        except BaseException as exc:  # reported by the caller
            result["error"] = exc

    print(f"downloading {model}@{revision} into {cache or 'the default cache'}", file=out, flush=True)
    worker = threading.Thread(target=run, name="snapshot-download", daemon=True)
    with serve_progress(progress, progress_host, progress_port) as port:
        if port is not None:
            print(
                f"progress: GET http://{progress_host}:{port}{DOWNLOAD_PROGRESS_PATH}", file=out, flush=True
            )
        worker.start()
        worker.join(timeout)
    if worker.is_alive():
        progress.report(force=True)
        msg = f"the download of {model}@{revision} did not finish within {timeout:g}s"
        return Outcome(EXIT_TRANSIENT, {"error": msg, "reason": "Timeout"}, timed_out=True)
    if "error" in result:
        exc = result["error"]
        reason, code = classify(exc)
        return Outcome(code, {"error": _error(exc), "reason": reason})
    path = Path(result["path"])
    files = [p for p in path.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    progress.files_done = progress.files_total = len(files)
    progress.report(force=True)
    message = {"revision": path.name, "files": len(files), "bytes": size}
    return Outcome(EXIT_OK, message, path=str(path))


def write_termination_log(path: str, message: dict[str, Any]) -> None:
    """Write the termination message; outside a pod the path may not exist: say so and go on."""
    try:
        with open(path, "w") as f:
            f.write(json.dumps(message, separators=(",", ":")))
    except OSError as exc:
        print(f"cannot write the termination message to {path}: {exc}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="llmops download", description="Pre-warm the model cache with a Hugging Face Hub snapshot."
    )
    p.add_argument("--model", required=True, help="the Hub repo id, e.g. meta-llama/Llama-3.1-8B-Instruct")
    p.add_argument("--revision", default="main", help="a commit sha (pinned) or a branch or tag")
    p.add_argument("--cache-dir", default=None, help="default: $HF_HUB_CACHE, else $HF_HOME/hub")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds (exit 2)")
    p.add_argument(
        "--progress-port",
        type=int,
        default=None,
        help=f"answer GET {DOWNLOAD_PROGRESS_PATH} on this port while downloading (the Job uses {DOWNLOAD_PROGRESS_PORT})",
    )
    p.add_argument("--progress-host", default="0.0.0.0", help="the address of the progress endpoint")
    p.add_argument(
        "--termination-log",
        default=None,
        help=f"where the JSON outcome goes (default: $LLMOPS_TERMINATION_LOG, else {DEFAULT_TERMINATION_LOG})",
    )
    return p


def main(argv: list[str] | None = None, *, exit_on_timeout: Callable[[int], None] | None = None) -> int:
    """Run `llmops download`; returns the exit code.

    After a timeout the snapshot's worker threads may still be blocked on the network, and
    interpreter shutdown would wait for them: the process ends at once (``os._exit``) instead.
    """
    args = _parser().parse_args(argv)
    outcome = download(
        args.model,
        args.revision,
        cache_dir=args.cache_dir,
        timeout=args.timeout,
        progress_port=args.progress_port,
        progress_host=args.progress_host,
    )
    log_path = args.termination_log or os.environ.get("LLMOPS_TERMINATION_LOG") or DEFAULT_TERMINATION_LOG
    write_termination_log(log_path, outcome.message)
    if outcome.code == EXIT_OK:
        print(f"downloaded {args.model}@{outcome.message['revision']} to {outcome.path}", flush=True)
    else:
        print(f"download failed ({outcome.message['reason']}): {outcome.message['error']}", flush=True)
    if outcome.timed_out:
        sys.stdout.flush()
        sys.stderr.flush()
        (exit_on_timeout or os._exit)(outcome.code)
    return outcome.code


if __name__ == "__main__":
    sys.exit(main())
