"""Prometheus' retention: runtimeinfo's storageRetention parsed, and read through a cache that
sends one request per Prometheus per TTL whatever the number of passes."""

from __future__ import annotations

import pytest

from llmops.analysis.results import Error
from llmops.prom import RetentionCache, parse_retention


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15d", 15 * 86400.0),
        ("15d or 10GiB", 15 * 86400.0),
        ("10GiB or 2h", 7200.0),
        ("1h30m", 5400.0),
        ("1y", 365 * 86400.0),
        ("10GiB", None),
        ("", None),
        ("forever", None),
    ],
)
def test_storage_retention_as_prometheus_reports_it(text: str, seconds: float | None) -> None:
    assert parse_retention(text) == seconds


def test_the_cache_reads_once_per_ttl_and_a_failure_is_unknown_until_its_shorter_ttl() -> None:
    now = [0.0]
    answers: list[float | None | Error] = [86400.0, Error("down", "unreachable"), 3600.0]
    cache = RetentionCache(ttl=600, error_ttl=60, clock=lambda: now[0], read=lambda url: answers.pop(0))
    assert [cache.get("http://p") for _ in range(1000)] == [86400.0] * 1000
    assert cache.reads == 1
    now[0] = 601
    assert cache.get("http://p") is None and cache.reads == 2  # unreadable: unknown, blocks nothing
    now[0] = 650
    assert cache.get("http://p") is None and cache.reads == 2
    now[0] = 662
    assert cache.get("http://p") == 3600.0 and cache.reads == 3
