"""``make bench-cluster``: how long the local cluster takes to build and start, and its memory.

Prints figures; it is a benchmark, not a test. Warm start-to-ready is measured over several
runs (fresh state each time, binaries cached). The cold build (empty Go build cache and empty
binary cache; the module cache is kept, so the network is not what is measured) runs only
with ``--cold`` because it takes minutes and evicts the build cache.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from llmops_dev.cluster.build import repo_root
from llmops_dev.cluster.controlplane import Cluster


def _rss_mib(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[pid] = int(line.split()[1]) / 1024
        except OSError:
            continue
    return out


def cold_build() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GOCACHE": f"{tmp}/gocache", "LLMOPS_CACHE": f"{tmp}/llmops"}
        t0 = time.monotonic()
        subprocess.run(
            ["bash", str(repo_root() / "cluster" / "build.sh")],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-cluster")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="also time a cold build (minutes)")
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores")
    if args.cold:
        print(f"cold build (empty GOCACHE and binary cache, module cache kept): {cold_build():.0f} s")
    times, rss = [], []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.monotonic()
            c = Cluster.start(Path(tmp) / "state")
            ready = time.monotonic() - t0
            mem = _rss_mib([p.pid for p in c.procs])
            names = {p.pid: p.name for p in c.procs}
            c.stop()
        times.append(ready)
        rss.append(sum(mem.values()))
        detail = ", ".join(f"{names[p]} {m:.0f}" for p, m in mem.items())
        print(f"run {i + 1}: start-to-ready {ready:.2f} s (nodes Ready); RSS {rss[-1]:.0f} MiB ({detail})")
    print(
        f"warm start-to-ready: median {statistics.median(times):.2f} s, max {max(times):.2f} s (goal < 15 s); "
        f"control-plane RSS at ready: median {statistics.median(rss):.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
