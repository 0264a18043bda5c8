"""`llmops gateway`: run the gateway in a model-server pod.

    llmops gateway --upstream http://127.0.0.1:8080 --deployment ns/name --revision R --track stable \\
        --signing-key-file /etc/llmops/gateway/signing/signing-key [--api-keys-dir /etc/llmops/gateway/api-keys] \\
        [--adapter NAME]

Capture (spec.gateway.capture) is on with --capture-sample-rate:

    --capture-sample-rate 0.1 --capture-keep Both --capture-redact email,phone,card,ip,iban \\
    [--capture-pattern ACCOUNT='ACC-[0-9]{6}' ...] --capture-queue-size 10000 \\
    (--capture-url http://<name>-capture.<ns>.svc:8080 --capture-token-file <file>
     | --capture-sink-url https://collector.example/events)

The engine's own API key, when it needs one, comes from $LLMOPS_ENGINE_API_KEY (a secretKeyRef),
never from a flag (flags show in `ps`); the capture store's token comes from a file. SIGTERM
stops it after in-flight answers end (up to the grace period aiohttp's runner allows) and queued
capture records had a few seconds to go out.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from llmops.aioserve import UsageError, run_until_signalled
from llmops.gateway.capture import CaptureConfig
from llmops.gateway.ids import RequestIdSigner
from llmops.gateway.keys import KeyStore
from llmops.gateway.redact import BUILTIN_KINDS, InvalidPattern, compile_patterns
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
    p.add_argument(
        "--adapter",
        default=None,
        help="the LoRA adapter the engine serves: every generation request is made to name it",
    )
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
    c = p.add_argument_group("capture (on with --capture-sample-rate)")
    c.add_argument("--capture-sample-rate", type=float, default=None, help="share of requests, (0, 1]")
    c.add_argument("--capture-keep", choices=["Prompts", "Responses", "Both"], default="Both")
    c.add_argument(
        "--capture-redact",
        default=",".join(BUILTIN_KINDS),
        help="built-in redactions, comma-separated (empty: none)",
    )
    c.add_argument(
        "--capture-pattern",
        action="append",
        default=[],
        metavar="NAME=REGEX",
        help="a user redaction pattern (repeatable, applied in order)",
    )
    c.add_argument("--capture-queue-size", type=int, default=10_000)
    c.add_argument("--capture-url", default=None, help="the capture store's base URL")
    c.add_argument("--capture-token-file", type=Path, default=None, help="the store's bearer token")
    c.add_argument("--capture-sink-url", default=None, help="send CloudEvents here instead of the store")
    return p


def _read_secret_file(path: Path, what: str) -> bytes:
    try:
        value = path.read_bytes().strip()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} at {path}: {exc.strerror}") from None
    if not value:
        raise UsageError(f"the {what} at {path} is empty")
    return value


def build(args: argparse.Namespace) -> Gateway:
    """The gateway the flags describe (raises UsageError naming what is wrong)."""
    if args.deployment.count("/") != 1:
        raise UsageError(f"--deployment must be namespace/name, got {args.deployment!r}")
    signer = RequestIdSigner(_read_secret_file(args.signing_key_file, "signing key"), args.deployment)
    keys = None
    if args.api_keys_dir is not None:
        extra = {}
        if args.internal_key_file is not None:
            extra[INTERNAL_CLIENT] = _read_secret_file(args.internal_key_file, "internal API key")
        keys = KeyStore(args.api_keys_dir, extra)
    config = GatewayConfig(
        capture=_capture(args),
        upstream=args.upstream.rstrip("/"),
        deployment=args.deployment,
        revision=args.revision,
        track=args.track,
        adapter=args.adapter or None,
        max_request_bytes=args.max_request_bytes,
        upstream_timeout=args.upstream_timeout,
        engine_api_key=os.environ.get(ENGINE_API_KEY_ENV) or None,
    )
    return Gateway(config, signer, keys)


def _capture(args: argparse.Namespace) -> CaptureConfig | None:
    """The capture config the --capture-* flags describe (None without --capture-sample-rate)."""
    rate = args.capture_sample_rate
    if rate is None:
        return None
    if not 0 < rate <= 1:
        raise UsageError(f"--capture-sample-rate must be in (0, 1], got {rate}")
    builtins = tuple(k.strip() for k in args.capture_redact.split(",") if k.strip())
    unknown = sorted(set(builtins) - set(BUILTIN_KINDS))
    if unknown:
        raise UsageError(f"--capture-redact: unknown kind {unknown[0]!r} (known: {', '.join(BUILTIN_KINDS)})")
    patterns = []
    for flag in args.capture_pattern:
        name, eq, regex = flag.partition("=")
        if not eq or not name or not regex:
            raise UsageError(f"--capture-pattern must be NAME=REGEX, got {flag!r}")
        patterns.append((name, regex))
    try:
        compile_patterns(patterns)
    except InvalidPattern as exc:
        raise UsageError(f"--capture-pattern: {exc}") from None
    if not args.capture_sink_url and not args.capture_url:
        raise UsageError("capture needs --capture-url (the capture store) or --capture-sink-url")
    if args.capture_queue_size < 1:
        raise UsageError(f"--capture-queue-size must be positive, got {args.capture_queue_size}")
    return CaptureConfig(
        sample_rate=rate,
        keep=args.capture_keep,
        builtins=builtins,
        patterns=tuple(patterns),
        queue_size=args.capture_queue_size,
        store_url=args.capture_url,
        token=_capture_token(args.capture_token_file) if not args.capture_sink_url else "",
        sink_url=args.capture_sink_url,
    )


def _capture_token(path: Path | None) -> str:
    """The store's token. Missing (a Secret made before capture-token existed): capture runs and
    the store refuses its batches (counted as rejected) rather than the gateway not serving."""
    if path is None:
        raise UsageError("--capture-url needs --capture-token-file")
    try:
        return _read_secret_file(path, "capture token").decode()
    except UsageError as exc:
        log.error("capture: %s; the store will refuse the records", exc)
        return ""


def _announce(gateway: Gateway, url: str, health: str) -> None:
    log.info(
        "gateway for %s serving on %s (health %s), engine at %s",
        gateway.config.deployment,
        url,
        health,
        gateway.config.upstream,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_until_signalled(
        "llmops gateway",
        lambda: build(args),
        (args.host, args.port, args.health_port),
        _announce,
        fast_loop=True,
    )
