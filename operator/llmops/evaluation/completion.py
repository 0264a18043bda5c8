"""What one request to the model produced: the output, or why there is none."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Completion"]


@dataclass(frozen=True, slots=True)
class Completion:
    """The result of one sample's request, after retries.

    `latency` is the duration in seconds of the attempt that succeeded (waiting between retries is
    not the model's latency); `generated_tokens` is what the server reported (TGI's
    `details.generated_tokens`, or `usage.completion_tokens` for chat). On failure `text` is None
    and `error` says what happened last.
    """

    text: str | None
    latency: float | None = None
    generated_tokens: int | None = None
    attempts: int = 1
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True if the model answered."""
        return self.text is not None
