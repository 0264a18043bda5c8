"""`make bench-store`: records per second the capture store writes, with and without fsync batching.

The store runs as its own process (`llmops capture-store`, segments in a temporary folder on the
machine's disk, so every acknowledgement waits for a real fsync); this process sends batches of
`--batch` records from `--concurrency` senders for `--seconds`, as gateways would, twice: with
fsync batching (one fsync round covers every batch queued meanwhile) and with `--no-group-commit`
(one round per batch). It prints, per mode: records and batches per second, acknowledgement
latency p50/p99, fsync rounds and batches per round (from the store's own metrics), store CPU
per 1000 records; then the batching speed-up, and the load average (the machine is shared:
read the figures with it).

It prints figures; it is a benchmark, not a test, and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from llmops_dev.bench.evaluation import _proc_cpu
from llmops_dev.processes import free_port

__all__ = ["main"]

TOKEN = "bench-token"


@dataclass
class Run:
    mode: str
    wall: float
    batch: int
    latencies: list[float]
    errors: int
    rounds: float
    cpu: float | None

    @property
    def records(self) -> int:
        return len(self.latencies) * self.batch

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _batch(size: int) -> bytes:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    lines = []
    for _ in range(size):
        rid = uuid.uuid4().hex
        lines.append(
            json.dumps(
                {
                    "kind": "request",
                    "time": now,
                    "requestId": rid,
                    "deployment": "bench/bench",
                    "revision": "r1",
                    "track": "stable",
                    "client": "bench",
                    "route": "/v1/chat/completions",
                    "messages": [
                        {"role": "user", "content": f"Question {rid}: what is the capital of France?"}
                    ],
                    "response": "The capital of France is Paris. " * 4,
                    "promptTokens": 14,
                    "completionTokens": 28,
                    "latencyMs": 412.5,
                    "finishReason": "stop",
                }
            )
        )
    return ("\n".join(lines) + "\n").encode()


async def _load(url: str, concurrency: int, batch: int, seconds: float) -> tuple[float, list[float], int]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}
    bodies = [_batch(batch) for _ in range(32)]
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        end = time.perf_counter() + seconds

        async def sender(i: int) -> None:
            nonlocal errors
            n = i
            while time.perf_counter() < end:
                started = time.perf_counter()
                async with session.post(
                    f"{url}/v1/records", data=bodies[n % len(bodies)], headers=headers
                ) as r:
                    await r.read()
                    if r.status == 200:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors += 1
                n += 1

        started = time.perf_counter()
        await asyncio.gather(*(sender(i) for i in range(concurrency)))
        return time.perf_counter() - started, latencies, errors


def _rounds(health: str) -> float:
    with urllib.request.urlopen(f"{health}/metrics", timeout=10) as r:
        text = r.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "llmops_capture_store_group_batches_count":
                return sample.value
    return 0.0


def _start_store(workdir: Path, group_commit: bool) -> tuple[subprocess.Popen[bytes], str, str]:
    token = workdir / "token"
    token.write_text(TOKEN)
    port, health = free_port(), free_port()
    data = workdir / ("data-group" if group_commit else "data-single")
    log = (workdir / "store.log").open("ab")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "llmops.cli", "capture-store", "--host", "127.0.0.1"),
            *("--port", str(port), "--health-port", str(health), "--data-dir", str(data)),
            *("--token-file", str(token), "--max-size", "64Gi"),
            *([] if group_commit else ["--no-group-commit"]),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the store exited with {proc.returncode}; see {workdir / 'store.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=1):
                return proc, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{health}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the store did not start within 30 s")


def _run(workdir: Path, group_commit: bool, args: argparse.Namespace) -> Run:
    proc, url, health = _start_store(workdir, group_commit)
    try:
        asyncio.run(_load(url, 4, args.batch, 0.5))  # warm-up: connections, imports
        rounds_before = _rounds(health)
        cpu_before = _proc_cpu(proc.pid)
        wall, latencies, errors = asyncio.run(_load(url, args.concurrency, args.batch, args.seconds))
        cpu_after = _proc_cpu(proc.pid)
        rounds = _rounds(health) - rounds_before
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    mode = "fsync batching" if group_commit else "fsync per batch"
    return Run(mode, wall, args.batch, latencies, errors, rounds, cpu)


def _report(run: Run) -> None:
    ms = 1000.0
    batches = len(run.latencies)
    cpu = f"  CPU {run.cpu / run.records * 1000 * ms:.0f} ms/1000 records" if run.cpu and run.records else ""
    print(
        f"  {run.mode:16}: {run.records / run.wall:9.0f} records/s  {batches / run.wall:7.1f} batches/s  "
        f"ack p50 {run.pct(0.5) * ms:6.1f} ms  p99 {run.pct(0.99) * ms:6.1f} ms  "
        f"fsync rounds {run.rounds:.0f} ({batches / max(run.rounds, 1):.1f} batches each){cpu}  errors {run.errors}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m llmops_dev.bench.store", description=__doc__)
    p.add_argument("--concurrency", type=int, default=32, help="concurrent senders (gateways)")
    p.add_argument("--batch", type=int, default=50, help="records per batch")
    p.add_argument("--seconds", type=float, default=5.0, help="per mode")
    args = p.parse_args(argv)
    # On the machine's disk, not a tmpfs: fsync must reach storage for the figure to mean anything.
    with tempfile.TemporaryDirectory(
        prefix="bench-store-", dir=os.environ.get("BENCH_STORE_DIR", ".")
    ) as tmp:
        work = Path(tmp)
        batched = _run(work, True, args)
        single = _run(work, False, args)
    print(
        f"capture store benchmark: {args.concurrency} senders, {args.batch} records per batch, "
        f"{args.seconds:g} s per mode, segments on {Path(os.environ.get('BENCH_STORE_DIR', '.')).resolve()}"
    )
    _report(batched)
    _report(single)
    if single.records:
        print(
            f"  fsync batching writes {batched.records / batched.wall / (single.records / single.wall):.1f}x the records/s"
        )
    print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
