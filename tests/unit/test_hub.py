"""llmops.hub: which answers of the Hub a retry cannot change, the same for the model download and
the evaluation's dataset download."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from llmops import download, hub
from llmops.evaluation.dataset import DatasetError, download_hub_dataset


def _answer(cls: type[HfHubHTTPError], status: int) -> Callable[[], BaseException]:
    def make() -> BaseException:
        request = httpx2.Request("GET", "https://hub.example/api/models/org/x")
        return cls(f"{status} from the Hub", response=httpx2.Response(status, request=request))

    return make


ANSWERS: list[tuple[str, Callable[[], BaseException], str | None]] = [
    ("gated", _answer(GatedRepoError, 401), hub.GATED),
    ("no repository", _answer(RepositoryNotFoundError, 404), hub.REPOSITORY_NOT_FOUND),
    ("no revision", _answer(RevisionNotFoundError, 404), hub.REVISION_NOT_FOUND),
    ("no file", _answer(RemoteEntryNotFoundError, 404), hub.ENTRY_NOT_FOUND),
    ("forbidden without the Hub's code", _answer(HfHubHTTPError, 403), hub.GATED),
    ("unauthorized without the Hub's code", _answer(HfHubHTTPError, 401), hub.GATED),
    ("a server error", _answer(HfHubHTTPError, 503), None),
    ("too many requests", _answer(HfHubHTTPError, 429), None),
    ("unreachable", lambda: LocalEntryNotFoundError("cannot reach the Hub"), None),
    ("connection refused", lambda: ConnectionError("refused"), None),
    ("a bug", lambda: ValueError("bug"), None),
]


@pytest.mark.parametrize(("case", "make", "reason"), ANSWERS, ids=[a[0] for a in ANSWERS])
def test_refusal_names_what_a_retry_cannot_change(
    case: str, make: Callable[[], BaseException], reason: str | None
) -> None:
    assert hub.refusal(make()) == reason


@pytest.mark.parametrize(("case", "make", "reason"), ANSWERS, ids=[a[0] for a in ANSWERS])
def test_the_model_and_the_dataset_download_agree_on_a_retry(
    case: str, make: Callable[[], BaseException], reason: str | None
) -> None:
    """A model download exits 1 (not retried) exactly when a dataset download is not retryable."""

    def downloader(**_: Any) -> str:
        raise make()

    with pytest.raises(DatasetError) as caught:
        download_hub_dataset("org/evals", "a" * 40, "eval.jsonl", downloader=downloader)
    model_reason, code = download.classify(make())
    assert caught.value.retryable == (reason is None)
    assert code == (download.EXIT_TRANSIENT if reason is None else download.EXIT_PERMANENT)
    if reason is not None:
        assert model_reason == reason
