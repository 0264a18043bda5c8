"""`make bench-gateway`: what the gateway costs in front of the TGI simulator, in two regimes.

The simulator and the gateway run as separate processes (so the gateway's CPU can be read from
/proc); this process drives load over keep-alive connections with a minimal HTTP/1.1 client on
uvloop (`_Connection`). All three share the machine's cores, so whatever the load generator and
the simulator spend per request is taken from the arm with more processes (the gateway's): both
are kept cheap, the same for both arms, and their CPU per request is printed. At concurrency C
(default 64) it sends N `/generate` requests straight to the simulator and N through the gateway
(with an API key, so authentication and request-ID signing are in the path), and N through a
capturing gateway. The three take turns in slices of `--slice` requests, the order rotating, so
that the shared machine's changing load falls on each alike; each figure is over all of a
path's slices.

Two regimes, each with its own simulator and gateways:

- realistic: an answer takes what a short one takes on a GPU (24 tokens, 50 ms ± 40 ms to the
  first and 20 ms each after: about 0.5 s; TGI's recorded answers are 5 to 100 tokens long). At
  concurrency 64 that is about 125 requests a second, which leaves the CPU unsaturated, as in a
  pod where the engine works on the GPU and the gateway has CPU to spare: the figures are the
  gateway's own overhead. The prefill varies so that the 64 clients do not move in lockstep
  (`--jitter 0` shows what lockstep does: each wave of 64 queues behind itself).
- saturated (worst case): a 50 ms engine, about 1,000 requests a second, where load generator,
  simulator and gateway are all CPU-bound on the same two shared cores: throughput through the
  gateway then tends to the simulator's CPU per request over the gateway's, a measure of Python
  CPU contention more than of the gateway's overhead.

Each regime prints:

- throughput through the gateway as a share of direct;
- latency p50 and p99 of both, and the difference (added latency);
- first-token time of streamed answers, direct and through the gateway (p50);
- gateway CPU seconds per request, the share of the machine's CPU in use and the load average
  (the machine is shared: read the figures with them);
- the same load through a second gateway that captures every request (sampleRate 1.0, every
  built-in redaction) and sends the records to a receiver speaking the capture store's protocol
  (llmops_dev.capture_sink, its own process): throughput as a share of direct, CPU per request,
  and how many records arrived and were dropped. The receiver only counts lines, as a store on
  another machine would cost the gateway nothing.

It prints figures; it is a benchmark, not a test, and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
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


class _Connection:
    """One keep-alive HTTP/1.1 connection of the load generator, speaking just enough HTTP.

    The load generator shares the two cores with the simulator and the gateway, so every
    microsecond it spends per request is taken from whichever arm has more processes (the
    gateway's): aiohttp's client costs about 200 us per request here, this about a quarter of
    that. It sends one prebuilt request and reads the answer: Content-Length or chunked.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> tuple[int, float]:
        """Send `request`, read the whole answer; returns its status and the perf_counter time
        its body's first chunk was in (a stream's first SSE event: the first token)."""
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, close = None, False, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if chunked:
            first = await self._read_chunked()
        else:
            if length is None:
                close = True
                await self.reader.read()
            else:
                await self.reader.readexactly(length)
            first = time.perf_counter()
        if close:
            self.close()
        return status, first

    async def _read_chunked(self) -> float:
        """Read a chunked body; returns when its first chunk was in."""
        assert self.reader is not None
        first = None
        while True:
            size = int((await self.reader.readline()).split(b";")[0], 16)
            if size == 0:
                await self.reader.readline()  # no trailers: the blank line that ends the body
                return first if first is not None else time.perf_counter()
            await self.reader.readexactly(size + 2)
            if first is None:
                first = time.perf_counter()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _request_bytes(url: str, path: str, key: str | None, body: bytes) -> bytes:
    netloc = urllib.parse.urlsplit(url).netloc
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {netloc}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _run(coro: Coroutine[Any, Any, Run]) -> Run:
    """Run a load on uvloop (cheaper per request than asyncio's loop, as in the gateway)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


async def _load(
    url: str, key: str | None, concurrency: int, count: int, stream: bool = False, tokens: int = 8
) -> Run:
    """`count` requests of `tokens` new tokens over `concurrency` connections; for streams the
    latency is the first token's (the first SSE event), and the rest of the stream is read
    before the next request."""
    path = "/generate_stream" if stream else "/generate"
    body = json.dumps({"inputs": "Benchmark prompt.", "parameters": {"max_new_tokens": tokens}}).encode()
    request = _request_bytes(url, path, key, body)
    split = urllib.parse.urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    latencies: list[float] = []
    errors = 0
    queue = iter(range(count))

    async def worker() -> None:
        nonlocal errors
        connection = _Connection(host, port)
        try:
            for _ in queue:
                started = time.perf_counter()
                status, first = await connection.exchange(request)
                latencies.append(first - started)
                errors += status != 200
        finally:
            connection.close()

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


@dataclass
class _Arm:
    """One path measured (direct, or through a gateway): its turns added up."""

    url: str
    key: str | None
    pid: int
    """The process whose CPU this path costs (the simulator for direct, else the gateway)."""
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    cpu: float = 0.0
    sim_cpu: float = 0.0
    loader_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall

    def pct(self, q: float) -> float:
        return Run(self.wall, self.latencies, self.errors).pct(q)


def _cpu(pid: int) -> float:
    return _proc_cpu(pid) or 0.0  # 0 where /proc is not


def _interleaved(
    arms: tuple[_Arm, ...],
    concurrency: int,
    count: int,
    size: int,
    sim: int,
    stream: bool = False,
    tokens: int = 8,
) -> None:
    """`count` requests per arm, in turns of `size`, the order rotating each round: a change in
    the shared machine's load (or work an arm leaves behind, such as a capture batch) falls on
    every arm alike, rather than on whichever ran in that moment."""
    for turn, start in enumerate(range(0, count, size)):
        for arm in arms[turn % len(arms) :] + arms[: turn % len(arms)]:
            before = _cpu(arm.pid), _cpu(sim), time.process_time()
            run = _run(_load(arm.url, arm.key, concurrency, min(size, count - start), stream, tokens))
            arm.cpu += _cpu(arm.pid) - before[0]
            arm.sim_cpu += _cpu(sim) - before[1]
            arm.loader_cpu += time.process_time() - before[2]
            arm.wall += run.wall
            arm.latencies += run.latencies
            arm.errors += run.errors


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


_LONG_ANSWER = " ".join(["The simulated engine answers with a sentence long enough for every regime."] * 8)
"""Longer than any regime's max_new_tokens, so every answer has exactly that many tokens."""


@dataclass(frozen=True)
class Regime:
    """How the simulator answers, and how much load: one set of figures."""

    name: str
    why: str
    """Printed with the figures: what the regime stands for."""
    prefill: float
    """Seconds before the first token."""
    jitter: float
    """Half-width of the uniform spread of the prefill. Without any, a closed-loop load at a fixed
    answer time sends its requests in lockstep, each wave of `concurrency` at once, so each waits
    behind the wave's share of CPU in gateway and simulator: an artefact of the load generator,
    since a deployment's clients do not wait for one another."""
    time_per_token: float
    tokens: int
    """max_new_tokens of every request."""
    requests: int
    """Per path."""
    slice: int


@dataclass
class _Figures:
    """What one regime measured: the three paths, the two streaming paths, the capture counts."""

    regime: Regime
    concurrency: int
    direct: _Arm
    plain: _Arm
    capture: _Arm
    direct_first: _Arm
    via_first: _Arm
    received: int
    dropped: float
    busy: float
    """Share of the machine's CPU time in use (all processes, everyone's) during the run."""
    load: tuple[float, float, float]


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat ((0, 0) where there is none)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _measure(regime: Regime, concurrency: int, work: Path) -> _Figures:
    """Start a simulator, a plain gateway, a capturing one and its receiver; measure the regime."""
    work.mkdir()
    key, token = secrets.token_hex(24), secrets.token_hex(24)
    sim, direct_url = _start_simulator(
        regime.prefill, work, regime.time_per_token, _LONG_ANSWER, regime.jitter
    )
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
    c, n, size, tokens = concurrency, regime.requests, regime.slice, regime.tokens
    try:
        direct = _Arm(direct_url, None, sim.pid)
        plain = _Arm(gateway_url, key, gateway.pid)
        capture = _Arm(capturing_url, key, capturing.pid)
        warm_n = min(n, 2 * c)
        for arm in (direct, plain, capture):
            _run(_load(arm.url, arm.key, c, warm_n, tokens=tokens))  # warm-up: connections, imports
        warm = _wait_received(receiver_url, warm_n)
        busy_before = _cpu_ticks()
        _interleaved((direct, plain, capture), c, n, size, sim.pid, tokens=tokens)
        busy_after = _cpu_ticks()
        load = os.getloadavg()
        received = _wait_received(receiver_url, warm + n) - warm
        dropped = _dropped(capturing_health)
        direct_first = _Arm(direct_url, None, sim.pid)
        via_first = _Arm(gateway_url, key, gateway.pid)
        stream_n = max(c, n // 3)  # enough streams that the first-token p50s are not noise
        _interleaved(
            (direct_first, via_first), c, stream_n, max(c, size // 2), sim.pid, stream=True, tokens=tokens
        )
    finally:
        for proc in (gateway, capturing, receiver, sim):
            proc.terminate()
            proc.wait(timeout=10)
    busy = (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])
    return _Figures(regime, c, direct, plain, capture, direct_first, via_first, received, dropped, busy, load)


def _report(f: _Figures) -> None:
    r, c, n = f.regime, f.concurrency, f.regime.requests
    direct, plain, capture = f.direct, f.plain, f.capture
    ms, us = 1000.0, 1e6
    answer = r.prefill + r.time_per_token * (r.tokens - 1)
    print(
        f"{r.name}: concurrency {c}, {n} requests per path in turns of {r.slice}, "
        f"{r.tokens} tokens per answer: prefill {r.prefill * ms:.0f} ms (± {r.jitter * ms:.0f}) "
        f"+ {r.time_per_token * ms:.0f} ms per token = {answer * ms:.0f} ms per answer"
    )
    print(f"  ({r.why})")
    for name, arm in (("direct ", direct), ("gateway", plain)):
        print(
            f"  {name}: {arm.rate:8.1f} req/s  p50 {arm.pct(0.5) * ms:6.1f} ms  "
            f"p99 {arm.pct(0.99) * ms:6.1f} ms  errors {arm.errors}"
        )
    print(f"  throughput through the gateway: {plain.rate / direct.rate:.1%} of direct (goal >= 95%)")
    print(
        f"  added latency: p50 {(plain.pct(0.5) - direct.pct(0.5)) * ms:+.2f} ms (goal <= 2 ms), "
        f"p99 {(plain.pct(0.99) - direct.pct(0.99)) * ms:+.2f} ms"
    )
    first_d, first_v = f.direct_first.pct(0.5), f.via_first.pct(0.5)
    print(
        f"  first token (streamed, p50): direct {first_d * ms:.1f} ms, "
        f"gateway {first_v * ms:.1f} ms ({(first_v - first_d) * ms:+.1f} ms); gateway CPU "
        f"{f.via_first.cpu / len(f.via_first.latencies) * us:.0f} us per stream of {r.tokens} events"
    )
    print(
        f"  gateway CPU: {plain.cpu / n * us:.0f} us per request (on the same cores, per request through "
        f"the gateway: simulator {plain.sim_cpu / n * us:.0f} us, load generator {plain.loader_cpu / n * us:.0f} us)"
    )
    print(
        f"  capturing gateway (sampleRate 1.0, every redaction, batches to a store-protocol receiver): "
        f"{capture.rate:8.1f} req/s  p50 {capture.pct(0.5) * ms:6.1f} ms  p99 {capture.pct(0.99) * ms:6.1f} ms  "
        f"errors {capture.errors}"
    )
    print(f"  throughput with capture: {capture.rate / direct.rate:.1%} of direct (goal >= 90%)")
    print(
        f"  capture: CPU {capture.cpu / n * us:.0f} us per request "
        f"({(capture.cpu - plain.cpu) / n * us:+.0f} us), {f.received}/{n} records received, {f.dropped:.0f} dropped"
    )
    print(f"  capture against the plain gateway: {capture.rate / plain.rate:.1%} of its throughput")
    print(
        f"  machine: {f.busy:.0%} of its CPU busy during the run (everyone's), load average "
        f"{' '.join(f'{x:.2f}' for x in f.load)} ({os.cpu_count()} CPUs)"
    )


def _regimes(args: argparse.Namespace) -> list[Regime]:
    realistic = Regime(
        "realistic regime",
        "the engine's time is a short answer's on a GPU: TGI's recorded answers are 5 to 100 tokens; "
        "the gateway's CPU is not saturated, as in a pod where the engine runs on the GPU"
        + (
            "; the prefill varies, as it does with the prompt, so that clients do not move in lockstep"
            if args.jitter
            else "; the prefill does not vary, so the clients move in lockstep, in waves"
        ),
        args.prefill,
        args.jitter,
        args.time_per_token,
        args.tokens,
        args.realistic_requests,
        args.realistic_slice,
    )
    saturated = Regime(
        "saturated regime (worst case)",
        "a 50 ms engine: load generator, simulator and gateway all CPU-bound on the same shared "
        "cores, so this measures Python CPU contention more than the gateway's own overhead",
        args.latency,
        0.0,
        0.0,
        8,
        args.requests,
        args.slice,
    )
    return {"both": [realistic, saturated], "realistic": [realistic], "saturated": [saturated]}[args.regime]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m llmops_dev.bench.gateway", description=__doc__)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--regime", choices=["both", "realistic", "saturated"], default="both")
    p.add_argument("--requests", type=int, default=3000, help="saturated: requests per path")
    p.add_argument("--latency", type=float, default=0.05, help="saturated: the simulator's time to answer, s")
    p.add_argument(
        "--slice", type=int, default=500, help="saturated: the paths take turns in slices this long"
    )
    p.add_argument("--realistic-requests", type=int, default=1500, help="realistic: requests per path")
    p.add_argument("--realistic-slice", type=int, default=250, help="realistic: requests per turn")
    p.add_argument("--prefill", type=float, default=0.05, help="realistic: time to the first token, s")
    p.add_argument(
        "--jitter", type=float, default=0.04, help="realistic: the prefill varies uniformly by this much, s"
    )
    p.add_argument("--time-per-token", type=float, default=0.02, help="realistic: each further token, s")
    p.add_argument("--tokens", type=int, default=24, help="realistic: new tokens per answer")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        for number, regime in enumerate(_regimes(args)):
            _report(_measure(regime, args.concurrency, Path(tmp) / str(number)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
