"""The body of `POST /v1/feedback`, validated field by field.

    {"request_id": "llm1....", "rating": "up" | "down" | 1..5,
     "correction": "the answer I wanted", "comment": "...", "tags": ["tone", "wrong-facts"]}

`request_id` and `rating` are required; unknown fields are refused, so a typo never silently
drops data. Every error names the field. A rating is negative when it is "down", 1 or 2.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_FEEDBACK_BYTES", "NEGATIVE_RATINGS", "Feedback", "FeedbackError", "parse_feedback"]

MAX_FEEDBACK_BYTES = 64 * 1024
"""A larger body is refused with 413."""
NEGATIVE_RATINGS: tuple[str, ...] = ("down", "1", "2")
"""Values of the `rating` label that count as negative (feedback-negative-ratio)."""
_MAX_CORRECTION = 32 * 1024
_MAX_COMMENT = 4096
_MAX_TAGS = 16
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_FIELDS = ("request_id", "rating", "correction", "comment", "tags")


class FeedbackError(ValueError):
    """Invalid feedback; `field` names the offending field ("" for the body as a whole)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


@dataclass(frozen=True)
class Feedback:
    """Validated feedback."""

    request_id: str
    rating: str
    """"up", "down" or "1".."5" (the metric label)."""
    correction: str | None = None
    comment: str | None = None
    tags: tuple[str, ...] = ()


def _rating(value: Any) -> str:
    if isinstance(value, str) and value in ("up", "down"):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5:
        return str(value)
    raise FeedbackError("rating", 'must be "up", "down" or an integer from 1 to 5')


def _text(body: dict[str, Any], field: str, limit: int) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise FeedbackError(field, "must be a string")
    if len(value) > limit:
        raise FeedbackError(field, f"must be at most {limit} characters")
    return value


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > _MAX_TAGS:
        raise FeedbackError("tags", f"must be a list of at most {_MAX_TAGS} strings")
    for tag in value:
        if not isinstance(tag, str) or not _TAG.match(tag):
            raise FeedbackError(
                "tags", "each tag must be 1-64 letters, digits or _.:- (starting alphanumeric)"
            )
    return tuple(value)


def parse_feedback(raw: bytes) -> Feedback:
    """Feedback from a request body; raises FeedbackError naming the field."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FeedbackError("", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise FeedbackError("", "the body must be a JSON object")
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise FeedbackError(unknown[0], f"unknown field (known: {', '.join(_FIELDS)})")
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise FeedbackError("request_id", "is required: the X-LLMOps-Request-ID of the answer")
    if "rating" not in body:
        raise FeedbackError("rating", 'is required: "up", "down" or an integer from 1 to 5')
    return Feedback(
        request_id=request_id,
        rating=_rating(body["rating"]),
        correction=_text(body, "correction", _MAX_CORRECTION),
        comment=_text(body, "comment", _MAX_COMMENT),
        tags=_tags(body.get("tags")),
    )
