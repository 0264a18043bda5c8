"""Running the evaluation's requests on more than one core: the dataset split across processes.

One event loop on one core tops out at a few hundred requests a second (the client's own JSON and
HTTP work; see `make bench-eval`). With `workers` > 1, the samples are dealt round-robin to that
many processes, each running `client.run_requests` on its share with its share of the
concurrency (rounded up); completions come back in sample order. Per-sample results are reported
(`on_result`) as each worker finishes rather than as each request does.

`default_workers()` is what the process may use: the cgroup CPU quota (a Job's CPU limit) if set,
else the CPUs it is allowed to run on.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

from llmops.evaluation.client import ClientConfig, run_requests
from llmops.evaluation.completion import Completion
from llmops.evaluation.dataset import Sample

__all__ = ["default_workers", "run_sharded"]

_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def default_workers(cpu_max: Path = _CPU_MAX) -> int:
    """CPUs this process may use: the cgroup v2 quota (`cpu.max`, "quota period"), else its affinity."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return max(1, allowed)
    if quota == "max":
        return max(1, allowed)
    return max(1, min(allowed, math.floor(int(quota) / int(period))))


def _run_in_process(samples: Sequence[Sample], config: ClientConfig) -> tuple[list[Completion], int]:
    # A fresh loop in the worker process (the parent's loop, if any, does not survive a fork).
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(run_requests(samples, config))


def run_sharded(
    samples: Sequence[Sample],
    config: ClientConfig,
    workers: int,
    on_result: Callable[[int, Completion], None] | None = None,
) -> tuple[list[Completion], int]:
    """Send every sample using `workers` processes; returns completions in sample order and retries.

    Raises what run_requests raises (EndpointUnreachable, ValueError), from whichever worker met it.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    workers = min(workers, len(samples)) or 1
    if workers == 1:
        with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
            return runner.run(run_requests(samples, config, on_result))
    shards = [list(range(w, len(samples), workers)) for w in range(workers)]
    share = replace(config, concurrency=max(1, math.ceil(config.concurrency / workers)))
    results: list[Completion | None] = [None] * len(samples)
    retries = 0
    # forkserver, not fork: forking a process that runs threads (a test's in-thread server, a
    # library's pool) can deadlock the child; the samples and config travel pickled.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
        futures = {
            pool.submit(_run_in_process, [samples[i] for i in shard], share): shard for shard in shards
        }
        for future in as_completed(futures):
            completions, shard_retries = future.result()
            retries += shard_retries
            for index, completion in zip(futures[future], completions, strict=True):
                results[index] = completion
                if on_result is not None:
                    on_result(index, completion)
    return [r for r in results if r is not None], retries
