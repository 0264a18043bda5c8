"""A TGI simulator: a process that speaks Hugging Face text-generation-inference's HTTP API.

It serves TGI's routes (`/`, `/generate`, `/generate_stream`, `/v1/chat/completions`,
`/v1/completions`, `/tokenize`, `/info`, `/health`, `/metrics`, `/v1/models`) with TGI's JSON
shapes, SSE framing, error bodies, API-key rule and metric names, so that the operator, the
evaluation program and Prometheus can be tested without a GPU. What it answers, how slowly and
how often it fails is a `Behaviour`, changeable at run time through `POST /__sim/behaviour` (a
JSON merge patch) or a watched behaviour file.

This module is the entry point:

- `python -m llmops_dev.tgisim --port N [--host H] [--behaviour-file F | --behaviour-dir D]`
  reads TGI's launcher env too (MODEL_ID, REVISION, PORT, HOSTNAME, MAX_INPUT_TOKENS,
  MAX_TOTAL_TOKENS, MAX_CONCURRENT_REQUESTS, API_KEY, NUM_SHARD, LORA_ADAPTERS;
  TGISIM_BEHAVIOUR_FILE/_DIR) and ignores the launcher flags it does not simulate;
- `python -m llmops_dev.tgisim --engine vllm MODEL [vllm serve flags]` is vLLM's
  OpenAI-compatible server instead (vllm_routes): it reads `--served-model-name`, `--port`,
  `--max-model-len`, `--max-num-seqs`, `--api-key` (else $VLLM_API_KEY), `--revision`,
  `--tensor-parallel-size` and `--enable-lora --lora-modules name=path`, and ignores the other
  `vllm serve` flags;
- `Simulator` (async `start`/`stop`) and `run_in_thread` (sync tests, benchmarks).

The pieces: server (the aiohttp server), openai_routes (OpenAI routes), text (validation,
tokens, JSON shapes), behaviour (answers, latency, errors, file watching), metrics (TGI's
Prometheus metrics), wire (SSE and JSON wire helpers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import sys
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import uvloop

from llmops_dev.tgisim.behaviour import Behaviour
from llmops_dev.tgisim.lora import LoraAdapter, LoraError, check_paths, parse_lora_adapters
from llmops_dev.tgisim.server import VERSION, Simulator

__all__ = ["VERSION", "Behaviour", "Simulator", "main", "run_in_thread"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def run_in_thread(sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run `sim` on its own event loop in a daemon thread; yields the base URL.

    Assigning `sim.behaviour` from the caller's thread is safe: the server swaps in the new
    behaviour with one attribute assignment.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="tgisim", daemon=True)
    thread.start()
    try:
        url = asyncio.run_coroutine_threadsafe(sim.start(host, port), loop).result(timeout=30)
        try:
            yield url
        finally:
            asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(timeout=sim.shutdown_timeout + 30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def _env_int(*names: str, default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value:
            return int(value)
    return default


def _vllm_parser() -> argparse.ArgumentParser:
    """`vllm serve`'s flags the simulator honours (the rest are ignored, as logged)."""
    env = os.environ
    p = argparse.ArgumentParser(prog="python -m llmops_dev.tgisim --engine vllm")
    p.add_argument("--engine", choices=("tgi", "vllm"))
    p.add_argument("model", nargs="?", default="facebook/opt-125m")  # vLLM's default model
    p.add_argument("--served-model-name", default=None)
    p.add_argument("--revision", default="main")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--max-num-seqs", type=int, default=256)
    p.add_argument("--api-key", default=env.get("VLLM_API_KEY") or None)
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument("--enable-lora", action="store_true")
    p.add_argument("--lora-modules", nargs="+", default=[], help="name=path LoRA adapters")
    p.add_argument("--behaviour-file", type=Path, default=env.get("TGISIM_BEHAVIOUR_FILE") or None)
    p.add_argument("--behaviour-dir", type=Path, default=env.get("TGISIM_BEHAVIOUR_DIR") or None)
    return p


def _parser() -> argparse.ArgumentParser:
    env = os.environ
    p = argparse.ArgumentParser(
        prog="python -m llmops_dev.tgisim",
        description="Serve TGI's HTTP API with simulated answers (flags and env as TGI's launcher).",
    )
    p.add_argument("--model-id", default=env.get("MODEL_ID") or "bigscience/bloom-560m")
    p.add_argument("--revision", default=env.get("REVISION") or "main")
    p.add_argument(
        "-p", "--port", type=int, default=_env_int("PORT", default=80), help="default: $PORT or 80"
    )
    p.add_argument(
        "--host",
        "--hostname",
        dest="host",
        default=env.get("HOSTNAME") or "0.0.0.0",
        help="an IP address; anything else (a pod name) means 0.0.0.0, as in TGI",
    )
    p.add_argument(
        "--max-input-tokens", type=int, default=_env_int("MAX_INPUT_TOKENS", "MAX_INPUT_LENGTH", default=1024)
    )
    p.add_argument("--max-total-tokens", type=int, default=_env_int("MAX_TOTAL_TOKENS", default=2048))
    p.add_argument(
        "--max-concurrent-requests", type=int, default=_env_int("MAX_CONCURRENT_REQUESTS", default=128)
    )
    p.add_argument("--api-key", default=env.get("API_KEY") or None)
    p.add_argument("--num-shard", type=int, default=_env_int("NUM_SHARD", default=1))
    p.add_argument("--behaviour-file", type=Path, default=env.get("TGISIM_BEHAVIOUR_FILE") or None)
    p.add_argument(
        "--behaviour-dir",
        type=Path,
        default=env.get("TGISIM_BEHAVIOUR_DIR") or None,
        help="read DIR/<revision>.json if present, else DIR/default.json",
    )
    p.add_argument("--engine", choices=("tgi", "vllm"), default="tgi", help="which server to simulate")
    p.add_argument(
        "--lora-adapters",
        default=env.get("LORA_ADAPTERS") or None,
        help="id, id=path or id@revision, comma-separated; each is loaded at startup",
    )
    return p


def _engine(argv: list[str] | None) -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--engine", choices=("tgi", "vllm"), default="tgi")
    return str(pre.parse_known_args(argv)[0].engine)


def _vllm_simulator(argv: list[str] | None) -> tuple[Simulator, str, int] | None:
    args, ignored = _vllm_parser().parse_known_args(argv)
    if ignored:
        log.info("ignoring vllm serve arguments the simulator does not use: %s", " ".join(ignored))
    if args.behaviour_file is not None and args.behaviour_dir is not None:
        print("give only one of --behaviour-file and --behaviour-dir", file=sys.stderr)
        return None
    modules = [m.partition("=") for m in args.lora_modules]
    if any(not name or not eq or not path for name, eq, path in modules) or (
        modules and not args.enable_lora
    ):
        # vLLM's argument check: name=path pairs, and LoRA must be on to serve them.
        print(f"invalid --lora-modules {args.lora_modules} (name=path, with --enable-lora)", file=sys.stderr)
        return None
    sim = Simulator(
        engine="vllm",
        lora_adapters=tuple(LoraAdapter(name, path) for name, _, path in modules),
        model_id=args.served_model_name or args.model,
        model_root=args.model,
        revision=args.revision,
        api_key=args.api_key,
        max_total_tokens=args.max_model_len,
        max_concurrent_requests=args.max_num_seqs,
        behaviour_dir=args.behaviour_dir,
        behaviour_file=args.behaviour_file,
        num_shard=args.tensor_parallel_size,
        shutdown_timeout=10.0,
    )
    return sim, args.host, args.port


def _bind_host(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # Kubernetes sets HOSTNAME to the pod name; TGI then falls back to 0.0.0.0 the same way.
        log.warning("Invalid hostname %r, defaulting to 0.0.0.0", host)
        return "0.0.0.0"
    return host


async def _serve(sim: Simulator, host: str, port: int) -> None:
    url = await sim.start(host, port)
    # One line on stdout that a supervisor can wait for (the URL carries the bound port).
    print(f"tgisim: serving {sim.model_id}@{sim.revision} on {url}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await sim.stop()


def _run(serving: Coroutine[Any, Any, None]) -> None:
    """Serve on uvloop: the simulator stands for an engine whose own CPU per request is small
    (TGI's router is Rust), and it shares the machine with what is measured against it (the
    gateway benchmark's load generator and gateway), so it should cost as little as it can."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serving)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if _engine(argv) == "vllm":
        made = _vllm_simulator(argv)
        if made is None:
            return 2
        sim, host, port = made
        _run(_serve(sim, _bind_host(host), port))
        return 0
    args, ignored = _parser().parse_known_args(argv)
    if ignored:
        log.info("ignoring launcher arguments the simulator does not use: %s", " ".join(ignored))
    if args.behaviour_file is not None and args.behaviour_dir is not None:
        print("give only one of --behaviour-file and --behaviour-dir", file=sys.stderr)
        return 2
    try:
        adapters = parse_lora_adapters(args.lora_adapters)
        check_paths(adapters)
    except LoraError as exc:
        # TGI's shard fails to start: the server never comes up (the pod crash-loops).
        print(f"Error: ShardCannotStart: {exc}", file=sys.stderr)
        return 1
    sim = Simulator(
        lora_adapters=adapters,
        model_id=args.model_id,
        revision=args.revision,
        api_key=args.api_key,
        max_input_tokens=args.max_input_tokens,
        max_total_tokens=args.max_total_tokens,
        max_concurrent_requests=args.max_concurrent_requests,
        behaviour_dir=args.behaviour_dir,
        behaviour_file=args.behaviour_file,
        num_shard=args.num_shard,
        shutdown_timeout=10.0,
    )
    _run(_serve(sim, _bind_host(args.host), args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
