"""`make bench-gateway`: what the gateway costs in front of the TGI simulator.

The simulator and the gateway run as separate processes (so the gateway's CPU can be read from
/proc); this process drives load with aiohttp. At concurrency C (default 64) it sends N
`/generate` requests straight to the simulator and N through the gateway (with an API key, so
authentication and request-ID signing are in the path), and prints:

- throughput through the gateway as a share of direct;
- latency p50 and p99 of both, and the difference (added latency);
- first-token time of streamed answers, direct and through the gateway (p50);
- gateway CPU seconds per request, and the load average (the machine is shared: read the
  figures with it);
- the same load through a second gateway that captures every request (sampleRate 1.0, every
  built-in redaction) and sends the records to a receiver speaking the capture store's protocol
  (llmops_dev.capture_sink, its own process): throughput as a share of direct, CPU per request,
  and how many records arrived and were dropped. The plain and the capturing gateway are
  measured in turns, twice each, keeping the better run of each (the machine is shared); the
  receiver only counts lines, as a store on another machine would cost the gateway nothing.

It prints figures; it is a benchmark, not a test, and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from llmops_dev.bench.evaluation import _proc_cpu, _start_simulator
from llmops_dev.processes import free_port

__all__ = ["main"]


@dataclass
class Run:
    wall: float
    latencies: list[float]
    errors: int

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _load(url: str, key: str | None, concurrency: int, count: int, stream: bool = False) -> Run:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    path = "/generate_stream" if stream else "/generate"
    body = {"inputs": "Benchmark prompt.", "parameters": {"max_new_tokens": 8}}
    latencies: list[float] = []
    errors = 0
    queue = iter(range(count))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            for _ in queue:
                started = time.perf_counter()
                async with session.post(url + path, json=body, headers=headers) as r:
                    if stream:
                        await r.content.readline()  # the first SSE line: the first token
                        latencies.append(time.perf_counter() - started)
                        await r.read()
                    else:
                        await r.read()
                        latencies.append(time.perf_counter() - started)
                    errors += r.status != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return Run(wall, latencies, errors)


def _start_gateway(
    upstream: str, workdir: Path, key: str, extra: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], str, str]:
    """A gateway process in `workdir`; returns it with its API and health URLs."""
    workdir.mkdir()
    (workdir / "signing-key").write_bytes(secrets.token_bytes(32))
    keys = workdir / "keys"
    keys.mkdir()
    (keys / "bench").write_text(key)
    port, health = free_port(), free_port()
    log = (workdir / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "llmops.cli", "gateway", "--host", "127.0.0.1"),
            *("--port", str(port), "--health-port", str(health), "--upstream", upstream),
            *("--deployment", "bench/bench", "--revision", "r1", "--track", "stable"),
            *("--signing-key-file", str(workdir / "signing-key"), "--api-keys-dir", str(keys)),
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited with {proc.returncode}; see {workdir / 'gateway.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=1):
                return proc, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{health}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the gateway did not start within 30 s")


def _start_receiver(token: str) -> tuple[subprocess.Popen[str], str]:
    """The capture receiver (store protocol) as its own process; returns it with its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops_dev.capture_sink", "--token", token, "--count-only"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()  # its URL, once it listens ("" if it died)
    if not line.startswith("http://"):
        proc.kill()
        raise RuntimeError("the capture receiver did not start")
    return proc, line


def _measured(pid: int, run: Callable[[], Run]) -> tuple[Run, float]:
    """A load run and the CPU seconds process `pid` spent during it (0 where /proc is not)."""
    before = _proc_cpu(pid)
    result = run()
    after = _proc_cpu(pid)
    return result, (after - before) if before is not None and after is not None else 0.0


def _received(url: str) -> int:
    with urllib.request.urlopen(f"{url}/count", timeout=10) as r:
        return int(json.loads(r.read())["records"])


def _dropped(health: str) -> float:
    with urllib.request.urlopen(f"{health}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "llmops_capture_dropped_total"
    )


def _wait_received(url: str, wanted: int, timeout: float = 30.0) -> int:
    """Records at the receiver once `wanted` arrived or nothing new came for `timeout` seconds."""
    last, since = -1, time.monotonic()
    while time.monotonic() - since < timeout:
        got = _received(url)
        if got >= wanted:
            return got
        if got != last:
            last, since = got, time.monotonic()
        time.sleep(0.2)
    return last


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m llmops_dev.bench.gateway", description=__doc__)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--requests", type=int, default=3000, help="per path (direct, gateway)")
    p.add_argument("--latency", type=float, default=0.05, help="the simulator's time to answer, seconds")
    args = p.parse_args(argv)
    key = secrets.token_hex(24)
    token = secrets.token_hex(24)
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        work = Path(tmp)
        sim, direct_url = _start_simulator(args.latency, work)
        receiver, receiver_url = _start_receiver(token)
        (work / "capture-token").write_text(token)
        capture_flags = (
            *("--capture-sample-rate", "1.0", "--capture-url", receiver_url),
            *("--capture-token-file", str(work / "capture-token")),
        )
        gateway, gateway_url, _ = _start_gateway(direct_url, work / "plain", key)
        capturing, capturing_url, capturing_health = _start_gateway(
            direct_url, work / "capturing", key, capture_flags
        )
        procs: list[subprocess.Popen[Any]] = [gateway, capturing, receiver, sim]
        try:
            c, n = args.concurrency, args.requests
            for url in (gateway_url, capturing_url):
                asyncio.run(_load(url, key, c, min(n, 200)))  # warm-up: connections, imports
            warm = _wait_received(receiver_url, min(n, 200))
            direct = asyncio.run(_load(direct_url, None, c, n))
            # The plain and the capturing gateway take turns (twice each, the better run kept),
            # so that a change in the shared machine's load hits both alike.
            plain_runs: list[tuple[Run, float]] = []
            capture_runs: list[tuple[Run, float]] = []
            for _ in range(2):
                plain_runs.append(_measured(gateway.pid, lambda: asyncio.run(_load(gateway_url, key, c, n))))
                capture_runs.append(
                    _measured(capturing.pid, lambda: asyncio.run(_load(capturing_url, key, c, n)))
                )
            via, via_cpu = max(plain_runs, key=lambda r: r[0].rate)
            captured, captured_cpu = max(capture_runs, key=lambda r: r[0].rate)
            received = _wait_received(receiver_url, warm + 2 * n) - warm
            dropped = _dropped(capturing_health)
            stream_n = max(c, n // 10)
            direct_first = asyncio.run(_load(direct_url, None, c, stream_n, stream=True))
            via_first = asyncio.run(_load(gateway_url, key, c, stream_n, stream=True))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)
    ms = 1000.0
    print(
        f"gateway benchmark: concurrency {c}, {n} requests per path, simulator latency {args.latency * ms:.0f} ms"
    )
    print(
        f"  direct : {direct.rate:8.1f} req/s  p50 {direct.pct(0.5) * ms:6.1f} ms  p99 {direct.pct(0.99) * ms:6.1f} ms  errors {direct.errors}"
    )
    print(
        f"  gateway: {via.rate:8.1f} req/s  p50 {via.pct(0.5) * ms:6.1f} ms  p99 {via.pct(0.99) * ms:6.1f} ms  errors {via.errors}"
    )
    print(f"  throughput through the gateway: {via.rate / direct.rate:.1%} of direct (goal >= 95%)")
    print(
        f"  added latency: p50 {(via.pct(0.5) - direct.pct(0.5)) * ms:+.2f} ms (goal <= 2 ms), "
        f"p99 {(via.pct(0.99) - direct.pct(0.99)) * ms:+.2f} ms"
    )
    print(
        f"  first token (streamed, p50): direct {statistics.median(direct_first.latencies) * ms:.1f} ms, "
        f"gateway {statistics.median(via_first.latencies) * ms:.1f} ms"
    )
    print(f"  gateway CPU: {via_cpu / n * 1e6:.0f} us per request")
    print(
        f"  capturing gateway (sampleRate 1.0, every redaction, batches to a store-protocol receiver): "
        f"{captured.rate:8.1f} req/s  p50 {captured.pct(0.5) * ms:6.1f} ms  p99 {captured.pct(0.99) * ms:6.1f} ms  "
        f"errors {captured.errors}"
    )
    print(f"  throughput with capture: {captured.rate / direct.rate:.1%} of direct (goal >= 90%)")
    print(
        f"  capture: CPU {captured_cpu / n * 1e6:.0f} us per request "
        f"({(captured_cpu - via_cpu) / n * 1e6:+.0f} us), {received}/{2 * n} records received, "
        f"{dropped:.0f} dropped"
    )
    print(
        f"  capture against the plain gateway: {captured.rate / via.rate:.1%} of its throughput "
        "(runs taken in turns, the better of two each)"
    )
    print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
