"""What an error of the Hugging Face Hub client says about asking again.

The model download and the evaluation's dataset download both ask the Hub for something at a
pinned revision. When the Hub answers that it is not there (the repository, the revision, the
file) or not for this token, a retry asks the same question and gets the same answer, so the
Job should fail at once and name it; anything else (the Hub unreachable, a 5xx, a timeout) may
pass on a later pod. One list, here, for both programs.
"""

from __future__ import annotations

GATED = "GatedRepo"
REPOSITORY_NOT_FOUND = "RepositoryNotFound"
REVISION_NOT_FOUND = "RevisionNotFound"
ENTRY_NOT_FOUND = "EntryNotFound"


def refusal(exc: BaseException) -> str | None:
    """The Hub's definite "no" in ``exc`` as a reason (GatedRepo, RepositoryNotFound,
    RevisionNotFound, EntryNotFound), or None when asking again may get another answer."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    # GatedRepoError is a RepositoryNotFoundError: test it first. Not EntryNotFoundError: its
    # LocalEntryNotFoundError is what the client raises when the Hub cannot be reached.
    if isinstance(exc, GatedRepoError):
        return GATED
    if isinstance(exc, RepositoryNotFoundError):
        return REPOSITORY_NOT_FOUND
    if isinstance(exc, RevisionNotFoundError):
        return REVISION_NOT_FOUND
    if isinstance(exc, RemoteEntryNotFoundError):
        return ENTRY_NOT_FOUND
    if isinstance(exc, HfHubHTTPError) and exc.response.status_code in (401, 403):
        # A private or gated repository the token may not read, answered without the Hub's
        # error code (a mirror, a proxy): the same token gets the same answer.
        return GATED
    return None
