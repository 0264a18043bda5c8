"""`make bench-eval`: the evaluation client's throughput and CPU cost against a simulated TGI server.

Both transports are measured (huggingface_hub's client, the default, and the lean aiohttp path),
and at the top concurrency each one's client CPU per request is printed as a ratio to a bare
aiohttp client sending the same requests (the goal: at most 2x). The load average is printed
too: the machine may be shared, and the figures are only comparable within one run.

The simulator runs as a separate process (`python -m llmops_dev.tgisim`) with a fixed
latency per request and no per-token time, so at concurrency c it can deliver at most
c / latency requests per second; the benchmark reports how close the client gets to that, and the
client's own CPU time per request (`time.process_time()` of this process around the client only:
the simulator's CPU is another process's and is reported separately from /proc).

Concurrency 1 is run on fewer prompts (200 by default: 2,000 at 100 ms would take 200 s); its
requests/s are still comparable, and the speed-up of each concurrency is relative to it.
It prints figures; it is a benchmark, not a test, and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from llmops.evaluation.client import ClientConfig, run_requests
from llmops.evaluation.dataset import Sample
from llmops.evaluation.workers import run_sharded

__all__ = ["BenchResult", "main"]

_SERVING = re.compile(r"serving .* on (http://\S+)")


@dataclass(frozen=True, slots=True)
class BenchResult:
    """One concurrency level's figures."""

    concurrency: int
    requests: int
    errors: int
    wall: float
    client_cpu: float
    sim_cpu: float | None

    @property
    def rate(self) -> float:
        return self.requests / self.wall


def _proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of another process, from /proc (None where /proc is absent)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the ")" closing the command name, utime and stime are the 12th and 13th fields.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_simulator(
    latency: float,
    workdir: Path,
    time_per_token: float = 0.0,
    answer: str | None = None,
    jitter: float = 0.0,
) -> tuple[subprocess.Popen[str], str]:
    """The simulator answering after `latency` ± `jitter` (its prefill) plus `time_per_token` per
    token after the first, with `answer` (default: the simulator's own, 10 tokens); returns it
    with its URL."""
    behaviour = workdir / "behaviour.json"
    settings: dict[str, object] = {
        "latency_seconds": latency,
        "jitter_seconds": jitter,
        "time_per_token_seconds": time_per_token,
    }
    if answer is not None:
        settings["default_answer"] = answer
    behaviour.write_text(json.dumps(settings))
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "llmops_dev.tgisim", "--host", "127.0.0.1", "--port", "0"),
            *("--behaviour-file", str(behaviour), "--max-concurrent-requests", "1024"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    # The simulator prints one line with its URL once it is listening; readline blocks until then
    # (or returns "" if it died), and the deadline bounds how many lines we wait through.
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        match = _SERVING.search(line)
        if match:
            return proc, match.group(1)
    proc.kill()
    proc.wait()
    raise RuntimeError("the TGI simulator did not start within 30 s")


def _samples(count: int) -> list[Sample]:
    return [Sample(id=str(i), line=i + 1, prompt=f"Benchmark prompt number {i}.") for i in range(count)]


def _measure(
    url: str,
    sim_pid: int,
    concurrency: int,
    count: int,
    max_new_tokens: int,
    transport: str = "huggingface_hub",
) -> BenchResult:
    config = ClientConfig(
        endpoint=url,
        concurrency=concurrency,
        timeout=30.0,
        retries=0,
        max_new_tokens=max_new_tokens,
        transport=transport,
    )
    samples = _samples(count)
    sim_before = _proc_cpu(sim_pid)
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    completions, _ = asyncio.run(run_requests(samples, config))
    wall = time.perf_counter() - wall_before
    client_cpu = time.process_time() - cpu_before
    sim_after = _proc_cpu(sim_pid)
    sim_cpu = None if sim_before is None or sim_after is None else sim_after - sim_before
    errors = sum(1 for c in completions if not c.ok)
    return BenchResult(concurrency, count, errors, wall, client_cpu, sim_cpu)


async def _raw_requests(url: str, concurrency: int, count: int, max_new_tokens: int) -> int:
    """The same requests (the chat route, the evaluation's default) through a bare aiohttp session:
    what the simulator allows a cheap client, and the CPU floor the clients are compared with."""
    pending = iter(range(count))
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            nonlocal errors
            for i in pending:
                messages = [{"role": "user", "content": f"Benchmark prompt number {i}."}]
                body = {"messages": messages, "max_tokens": max_new_tokens, "temperature": 0.0}
                async with session.post(url + "/v1/chat/completions", json=body) as response:
                    await response.read()
                    errors += response.status != 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return errors


def _measure_workers(
    url: str, sim_pid: int, concurrency: int, count: int, max_new_tokens: int
) -> BenchResult:
    """The default client split across 2 processes (`llmops eval --workers 2`): wall-clock rate only,
    since the workers' CPU is not this process's (client_cpu is NaN)."""
    config = ClientConfig(
        endpoint=url, concurrency=concurrency, timeout=30.0, retries=0, max_new_tokens=max_new_tokens
    )
    sim_before = _proc_cpu(sim_pid)
    wall_before = time.perf_counter()
    completions, _ = run_sharded(_samples(count), config, 2)
    wall = time.perf_counter() - wall_before
    sim_after = _proc_cpu(sim_pid)
    sim_cpu = None if sim_before is None or sim_after is None else sim_after - sim_before
    errors = sum(1 for c in completions if not c.ok)
    return BenchResult(concurrency, count, errors, wall, float("nan"), sim_cpu)


def _measure_raw(url: str, sim_pid: int, concurrency: int, count: int, max_new_tokens: int) -> BenchResult:
    sim_before = _proc_cpu(sim_pid)
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    errors = asyncio.run(_raw_requests(url, concurrency, count, max_new_tokens))
    wall = time.perf_counter() - wall_before
    client_cpu = time.process_time() - cpu_before
    sim_after = _proc_cpu(sim_pid)
    sim_cpu = None if sim_before is None or sim_after is None else sim_after - sim_before
    return BenchResult(concurrency, count, errors, wall, client_cpu, sim_cpu)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table; returns 1 if any request failed."""
    p = argparse.ArgumentParser(
        prog="python -m llmops_dev.bench.evaluation", description=__doc__.split("\n")[0]
    )
    p.add_argument("--prompts", type=int, default=2000)
    p.add_argument("--serial-prompts", type=int, default=200, help="prompts at concurrency 1")
    p.add_argument("--latency", type=float, default=0.1, help="simulated seconds per request")
    p.add_argument("--concurrency", default="1,8,32,64", help="comma-separated levels")
    p.add_argument("--max-new-tokens", type=int, default=32)
    args = p.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        proc, url = _start_simulator(args.latency, Path(tmp))
        try:
            # Warm-up at the highest concurrency: the first run at a level pays for imports, new
            # connections and both processes' first allocations (measured: ~10 points at 64).
            top = max(levels)
            _measure(url, proc.pid, top, 4 * top, args.max_new_tokens)
            results = [
                _measure(
                    url, proc.pid, c, args.serial_prompts if c == 1 else args.prompts, args.max_new_tokens
                )
                for c in levels
            ]
            lean = _measure(url, proc.pid, top, args.prompts, args.max_new_tokens, transport="aiohttp")
            split = _measure_workers(url, proc.pid, top, args.prompts, args.max_new_tokens)
            ceiling = _measure_raw(url, proc.pid, max(levels), args.prompts, args.max_new_tokens)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    base = next((r.rate for r in results if r.concurrency == 1), None)
    print(f"evaluation client vs TGI simulator ({args.latency * 1000:g} ms per request, separate process)")
    if 1 in levels:
        print(
            f"concurrency 1 runs {args.serial_prompts} prompts ({args.prompts} would take "
            f"{args.prompts * args.latency:g} s); the others run {args.prompts}."
        )
    header = (
        f"{'concurrency':>11} {'requests':>8} {'errors':>6} {'wall s':>7} {'req/s':>8} {'sim max req/s':>13} "
        f"{'achieved':>8} {'speed-up':>8} {'client CPU ms/req':>17} {'sim CPU ms/req':>14}"
    )
    print(header)
    rows = [
        *((str(r.concurrency), r) for r in results),
        (f"{split.concurrency} x2 proc", split),
        (f"{lean.concurrency} lean", lean),
        (f"{ceiling.concurrency} bare", ceiling),
    ]
    for label, r in rows:
        theoretical = r.concurrency / args.latency
        speedup = f"{r.rate / base:.1f}x" if base else "-"
        sim_cpu = f"{1000 * r.sim_cpu / r.requests:.2f}" if r.sim_cpu is not None else "-"
        client_cpu = 1000 * r.client_cpu / r.requests  # NaN for the 2-process row
        print(
            f"{label:>11} {r.requests:>8} {r.errors:>6} {r.wall:>7.2f} {r.rate:>8.1f} "
            f"{theoretical:>13.1f} {r.rate / theoretical:>8.1%} {speedup:>8} {client_cpu:>17.2f} {sim_cpu:>14}"
        )
    top_result = max(results, key=lambda r: r.concurrency)
    ratio = top_result.rate / (top_result.concurrency / args.latency)
    print(
        f"goal: achieved/theoretical >= 90% at concurrency {top_result.concurrency}: {ratio:.1%} "
        f"({'met' if ratio >= 0.9 else 'NOT met'})"
    )
    print(
        f"'{split.concurrency} x2 proc' is the default client in 2 processes (--workers 2; its CPU is theirs, "
        f"not shown); '{lean.concurrency} lean' is the evaluation with --transport aiohttp; "
        f"'{ceiling.concurrency} bare' is the "
        "same load from a bare aiohttp client: the most this simulator, on this machine, lets any client achieve."
    )
    bare_cpu = ceiling.client_cpu / ceiling.requests
    for label, r in (("huggingface_hub", top_result), ("aiohttp (lean)", lean)):
        ratio_cpu = (r.client_cpu / r.requests) / bare_cpu if bare_cpu else float("inf")
        print(
            f"client CPU per request at concurrency {r.concurrency}, {label}: "
            f"{1000 * r.client_cpu / r.requests:.2f} ms = {ratio_cpu:.1f}x the bare client's "
            f"{1000 * bare_cpu:.2f} ms (goal <= 2x: {'met' if ratio_cpu <= 2 else 'NOT met'})"
        )
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 1 if any(r.errors for r in [*results, split, lean, ceiling]) else 0


if __name__ == "__main__":
    sys.exit(main())
