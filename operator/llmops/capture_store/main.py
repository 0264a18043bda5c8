"""`llmops capture-store`: run the capture store (the pod `<name>-capture`).

    llmops capture-store --data-dir /var/lib/llmops/capture \\
        --token-file /etc/llmops/capture/capture-token --retention 30d --max-size 8Gi

The token comes from a file (the mounted `<name>-gateway` Secret's `capture-token` key), never
from a flag (flags show in `ps`). SIGTERM stops it after the batches in flight are answered.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from pathlib import Path

from llmops.aioserve import UsageError, run_until_signalled
from llmops.api.common import parse_duration
from llmops.api.quantity import quantity_bytes
from llmops.capture_store.server import CaptureStore, StoreConfig

__all__ = ["main"]

log = logging.getLogger("llmops.capture_store")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmops capture-store", description="Serve the capture store.")
    p.add_argument("--host", default="0.0.0.0", help="address of both ports")
    p.add_argument("--port", type=int, default=8080, help="records API port (the Service's target)")
    p.add_argument("--health-port", type=int, default=9090, help="/healthz, /ready and /metrics")
    p.add_argument("--data-dir", type=Path, required=True, help="the segments' folder (the PVC)")
    p.add_argument("--token-file", type=Path, required=True, help="the bearer token gateways send")
    p.add_argument("--retention", default="30d", help="delete segments older than this (30d, 12h)")
    p.add_argument("--max-size", default="8Gi", help="cap on all segments (a quantity)")
    p.add_argument("--max-batch-bytes", type=int, default=16 * 1024 * 1024)
    p.add_argument("--sweep-interval", type=float, default=30.0, help="seconds between retention sweeps")
    p.add_argument(
        "--no-group-commit", action="store_true", help="fsync batch by batch (benchmark comparison)"
    )
    return p


def build(args: argparse.Namespace) -> CaptureStore:
    """The store the flags describe (raises UsageError naming the flag)."""
    try:
        token = args.token_file.read_bytes().strip()
    except OSError as exc:
        raise UsageError(f"--token-file: cannot read {args.token_file}: {exc.strerror}") from None
    if not token:
        raise UsageError(f"--token-file: {args.token_file} is empty")
    try:
        retention = dt.timedelta(seconds=parse_duration(args.retention))
    except ValueError as exc:
        raise UsageError(f"--retention: {exc}") from None
    try:
        max_bytes = quantity_bytes(args.max_size)
    except ValueError as exc:
        raise UsageError(f"--max-size: {exc}") from None
    if max_bytes < 1:
        raise UsageError(f"--max-size: {args.max_size!r} is not more than 0 bytes")
    config = StoreConfig(
        data_dir=args.data_dir,
        token=token,
        max_bytes=max_bytes,
        retention=retention,
        max_batch_bytes=args.max_batch_bytes,
        sweep_interval=args.sweep_interval,
        group_commit=not args.no_group_commit,
    )
    try:
        return CaptureStore(config)
    except OSError as exc:
        raise UsageError(f"--data-dir: cannot use {args.data_dir}: {exc.strerror}") from None


def _announce(store: CaptureStore, url: str, health: str) -> None:
    log.info(
        "capture store on %s (health %s): %d segments, %d bytes in %s",
        url,
        health,
        len(store.segments.sizes),
        store.segments.total_bytes,
        store.config.data_dir,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_until_signalled(
        "llmops capture-store", lambda: build(args), (args.host, args.port, args.health_port), _announce
    )
