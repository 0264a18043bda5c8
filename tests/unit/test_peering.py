"""``llmops.peering.outranked``: the rule by which a peered replica stands still, as kopf's."""

from __future__ import annotations

import datetime as dt

from llmops.peering import outranked

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def _peer(priority: int, seen_ago: float = 1.0, lifetime: int = 15) -> dict[str, object]:
    return {
        "priority": priority,
        "lifetime": lifetime,
        "lastseen": (NOW - dt.timedelta(seconds=seen_ago)).isoformat(),
    }


def test_alone_it_acts() -> None:
    assert not outranked({}, "me", 5, NOW)
    assert not outranked({"me": _peer(5)}, "me", 5, NOW)


def test_a_live_higher_peer_pauses_it_and_a_lower_one_does_not() -> None:
    assert outranked({"me": _peer(5), "other": _peer(7)}, "me", 5, NOW)
    assert not outranked({"me": _peer(5), "other": _peer(3)}, "me", 5, NOW)


def test_an_equal_priority_pauses_both_as_kopf_does() -> None:
    assert outranked({"me": _peer(5), "other": _peer(5)}, "me", 5, NOW)


def test_a_peer_past_its_lifetime_is_dead() -> None:
    assert not outranked({"other": _peer(9, seen_ago=16, lifetime=15)}, "me", 5, NOW)
    assert outranked({"other": _peer(9, seen_ago=14, lifetime=15)}, "me", 5, NOW)


def test_entries_kopf_would_not_count_are_ignored() -> None:
    assert not outranked({"junk": "x", "partial": {"priority": 9}}, "me", 5, NOW)  # type: ignore[dict-item]
    naive = {"priority": 9, "lifetime": 60, "lastseen": "2026-01-01T11:59:50"}  # no zone: UTC, as kopf writes
    assert outranked({"other": naive}, "me", 5, NOW)
