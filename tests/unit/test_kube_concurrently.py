"""``Kube.concurrently``: the calls of one pass are in flight together, bounded, and all finish
before an error is raised (a pass never leaves half its writes running behind it)."""

from __future__ import annotations

import threading
import time

import pytest

from llmops.kube import API_CONCURRENCY, ApiError, Kube


def _kube() -> Kube:
    return Kube(client=None)  # type: ignore[arg-type] - concurrently() makes no API call itself


def test_calls_run_together_and_results_keep_their_order() -> None:
    barrier = threading.Barrier(4, timeout=5)  # only passes if all four calls are in flight at once

    def call(i: int) -> int:
        barrier.wait()
        return i * 10

    assert _kube().concurrently(call, range(4)) == [0, 10, 20, 30]


def test_at_most_api_concurrency_calls_at_once() -> None:
    lock, running, peak = threading.Lock(), [0], [0]

    def call(_: int) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)  # holds the call open so that others overlap it
        with lock:
            running[0] -= 1

    _kube().concurrently(call, range(API_CONCURRENCY * 3))
    assert 1 < peak[0] <= API_CONCURRENCY


def test_an_error_is_raised_after_every_call_finished() -> None:
    done: list[int] = []

    def call(i: int) -> None:
        if i == 0:
            raise ApiError(409, "conflict")
        time.sleep(0.05)
        done.append(i)

    with pytest.raises(ApiError, match="conflict"):
        _kube().concurrently(call, range(5))
    assert sorted(done) == [1, 2, 3, 4]


def test_nothing_to_do() -> None:
    assert _kube().concurrently(lambda x: x, []) == []
