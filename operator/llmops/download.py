"""`llmops download`: pre-warm the model cache with a snapshot download from the Hugging Face Hub.

It runs in the operator's download Job (the operator's own image), so that TGI pods find the
model in the shared cache volume and start fast::

    llmops download --model ORG/NAME --revision REV [--cache-dir DIR] [--timeout S]
                    [--termination-log PATH]

The cache is ``--cache-dir``, else ``$HF_HUB_CACHE``, else ``$HF_HOME/hub`` (TGI's cache with
its image's ``HF_HOME=/data``). The token comes from ``HF_TOKEN`` (never from a file), the Hub
from ``HF_ENDPOINT``. Progress lines go to stdout. The outcome is a JSON termination message
(the Job pod's ``/dev/termination-log``; ``--termination-log`` or ``LLMOPS_TERMINATION_LOG``
override the path) and the exit code:

    0  downloaded: {"revision": "<resolved sha>", "files": n, "bytes": b}
    1  permanent, retrying will not help: {"error": ..., "reason": "RepositoryNotFound" |
       "GatedRepo" | "RevisionNotFound"}
    2  transient, worth a retry: {"error": ..., "reason": "Timeout" | "Network" | "Unexpected"}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

# snapshot_download wants a subclass of tqdm.auto's class (tqdm_asyncio outside notebooks).
from tqdm.auto import tqdm as auto_tqdm

from llmops.contracts import DOWNLOAD_EXIT_OK, DOWNLOAD_EXIT_PERMANENT, DOWNLOAD_EXIT_TRANSIENT

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


@dataclass
class Outcome:
    """What the download came to: the exit code and the termination message."""

    code: int
    message: dict[str, Any]
    path: str | None = None
    timed_out: bool = field(default=False)


def classify(exc: BaseException) -> tuple[str, int]:
    """The termination reason and exit code for a failed snapshot download."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    # GatedRepoError is a RepositoryNotFoundError: test it first.
    if isinstance(exc, GatedRepoError):
        return "GatedRepo", EXIT_PERMANENT
    if isinstance(exc, RepositoryNotFoundError):
        return "RepositoryNotFound", EXIT_PERMANENT
    if isinstance(exc, RevisionNotFoundError):
        return "RevisionNotFound", EXIT_PERMANENT
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code
        if status in (401, 403):
            return "GatedRepo", EXIT_PERMANENT
        return "Network", EXIT_TRANSIENT
    if isinstance(exc, LocalEntryNotFoundError | ConnectionError | TimeoutError):
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
    """Turns huggingface_hub's progress bars into plain log lines, at most one a second."""

    def __init__(self, out: TextIO, what: str) -> None:
        self.out, self.what = out, what
        self.files_done = self.files_total = 0
        self.bytes_done = 0
        self._last = 0.0
        self._lock = threading.Lock()

    def bar_class(self) -> type[_BarBase]:
        progress = self

        class Bar(_BarBase):
            monitor_interval = 0  # no tqdm monitor thread

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs.pop("name", None)
                kwargs["file"] = _Sink()
                super().__init__(*args, **kwargs)
                if str(self.desc).startswith("Fetching"):
                    progress.files_total = int(self.total or 0)

            def update(self, n: float | None = 1) -> bool | None:
                shown = super().update(n)
                desc = str(self.desc)
                if desc.startswith("Fetching"):
                    progress.files_done = int(self.n)
                elif desc.startswith("Downloading bytes"):
                    progress.bytes_done = int(self.n)
                progress.report()
                return shown

        return Bar

    def report(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last < 1.0:
                return
            self._last = now
            print(
                f"progress: {self.what}: {self.files_done}/{self.files_total} files, {self.bytes_done} bytes",
                file=self.out,
                flush=True,
            )


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
) -> Outcome:
    """Download ``model`` at ``revision`` into the cache, within ``timeout`` seconds.

    On timeout the download thread is left running (a daemon); `main` then ends the process.
    """
    from huggingface_hub import snapshot_download

    out = out or sys.stdout
    progress = _Progress(out, f"{model}@{revision}")
    result: dict[str, Any] = {}
    cache = _cache_dir(cache_dir)
    endpoint = os.environ.get("HF_ENDPOINT") or None

    def run() -> None:
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
    outcome = download(args.model, args.revision, cache_dir=args.cache_dir, timeout=args.timeout)
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
