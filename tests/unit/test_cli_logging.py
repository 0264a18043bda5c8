"""The operator's log setup: kopf's line per handled watch event only with --verbose."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from llmops.cli import configure_logging


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    objects = logging.getLogger("kopf.objects")
    saved = (root.level, list(root.handlers), objects.level)
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    objects.setLevel(saved[2])


@pytest.mark.parametrize("verbose", [False, True])
def test_kopf_handler_success_lines_only_when_verbose(restored_logging: None, verbose: bool) -> None:
    configure_logging(verbose=verbose, json_format=False)
    objects = logging.getLogger("kopf.objects")
    assert objects.isEnabledFor(logging.INFO) is verbose  # "Handler '...' succeeded." is INFO
    assert objects.isEnabledFor(logging.WARNING)  # kopf's warnings and errors always show
