"""The test tree itself: pytest imports test files by basename (rootdir-relative, no packages),
so two tiers holding the same file name cannot be collected in one run (`make test`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_file_name_is_unique_across_tiers() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
