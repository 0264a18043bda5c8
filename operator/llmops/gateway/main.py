"""`llmops gateway`: run the gateway in a model-server pod.

    llmops gateway --upstream http://127.0.0.1:8080 --deployment ns/name --revision R --track stable \\
        --signing-key-file /etc/llmops/gateway/signing/signing-key [--api-keys-dir /etc/llmops/gateway/api-keys]

The engine's own API key, when it needs one, comes from $LLMOPS_ENGINE_API_KEY (a secretKeyRef),
never from a flag (flags show in `ps`). SIGTERM stops it after in-flight answers end (up to the
grace period aiohttp's runner allows).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from llmops.gateway.ids import RequestIdSigner
from llmops.gateway.keys import KeyStore
from llmops.gateway.server import Gateway, GatewayConfig

__all__ = ["ENGINE_API_KEY_ENV", "INTERNAL_CLIENT", "main"]

ENGINE_API_KEY_ENV = "LLMOPS_ENGINE_API_KEY"
INTERNAL_CLIENT = "llmops-internal"
"""The client name of the operator's own Jobs (evaluation), whose key sits in the signing Secret."""
log = logging.getLogger("llmops.gateway")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="llmops gateway", description="Serve the gateway in front of the engine."
    )
    p.add_argument("--host", default="0.0.0.0", help="address of both ports")
    p.add_argument("--port", type=int, default=8088, help="API port (the Service's target)")
    p.add_argument("--health-port", type=int, default=9091, help="/healthz, /health and /metrics")
    p.add_argument("--upstream", required=True, help="the engine's base URL on localhost")
    p.add_argument("--deployment", required=True, help="namespace/name of the LLMDeployment")
    p.add_argument("--revision", required=True)
    p.add_argument("--track", required=True, choices=["stable", "canary", "staging"])
    p.add_argument("--signing-key-file", type=Path, required=True, help="HMAC key for request IDs")
    p.add_argument(
        "--internal-key-file", type=Path, default=None, help="the API key of the operator's own Jobs"
    )
    p.add_argument(
        "--api-keys-dir",
        type=Path,
        default=None,
        help="one file per client (a mounted Secret); none: no auth",
    )
    p.add_argument("--max-request-bytes", type=int, default=4 * 1024 * 1024)
    p.add_argument("--upstream-timeout", type=float, default=300.0, help="seconds")
    return p


class _UsageError(Exception):
    pass


def _read_secret_file(path: Path, what: str) -> bytes:
    try:
        value = path.read_bytes().strip()
    except OSError as exc:
        raise _UsageError(f"cannot read the {what} at {path}: {exc.strerror}") from None
    if not value:
        raise _UsageError(f"the {what} at {path} is empty")
    return value


def build(args: argparse.Namespace) -> Gateway:
    """The gateway the flags describe (raises _UsageError naming what is wrong)."""
    if args.deployment.count("/") != 1:
        raise _UsageError(f"--deployment must be namespace/name, got {args.deployment!r}")
    signer = RequestIdSigner(_read_secret_file(args.signing_key_file, "signing key"), args.deployment)
    keys = None
    if args.api_keys_dir is not None:
        extra = {}
        if args.internal_key_file is not None:
            extra[INTERNAL_CLIENT] = _read_secret_file(args.internal_key_file, "internal API key")
        keys = KeyStore(args.api_keys_dir, extra)
    config = GatewayConfig(
        upstream=args.upstream.rstrip("/"),
        deployment=args.deployment,
        revision=args.revision,
        track=args.track,
        max_request_bytes=args.max_request_bytes,
        upstream_timeout=args.upstream_timeout,
        engine_api_key=os.environ.get(ENGINE_API_KEY_ENV) or None,
    )
    return Gateway(config, signer, keys)


async def _serve(gateway: Gateway, host: str, port: int, health_port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    url, health = await gateway.start(host, port, health_port)
    log.info(
        "gateway for %s serving on %s (health %s), engine at %s",
        gateway.config.deployment,
        url,
        health,
        gateway.config.upstream,
    )
    try:
        await stop.wait()
    finally:
        await gateway.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        gateway = build(args)
    except _UsageError as exc:
        print(f"llmops gateway: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(gateway, args.host, args.port, args.health_port))
    return 0
