"""`spec.gateway.capture`: opt-in capture of production requests by the gateway.

When the section is present, each gateway samples requests (`sampleRate`), redacts personal data
from the kept text (in the pod, before a record leaves it), and sends the records in batches to
the deployment's capture store (a child of the LLMDeployment with its own PVC, `llmops
capture-store`) or, with `sink.url`, as CloudEvents to the user's endpoint. Absent: nothing is
captured. A gateway never blocks a request on the store: records wait in a bounded queue and are
counted as dropped when it is full or the store is down.

CEL cannot compile regular expressions, so `redaction.patterns[].regex` is checked by the
operator, which reports a pattern that does not compile in a condition naming it and applies
nothing of the new spec.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from llmops.api.common import (
    WHITE_SPACE,
    X_LIST_MAP_KEYS,
    X_LIST_TYPE,
    ApiModel,
    Duration,
    ObjectName,
    PositiveQuantity,
)

__all__ = [
    "BUILTIN_REDACTIONS",
    "CaptureSink",
    "CaptureSpec",
    "CaptureStoreSpec",
    "Redaction",
    "RedactionPattern",
]

BuiltinRedaction = Literal["email", "phone", "card", "ip", "iban"]
BUILTIN_REDACTIONS: tuple[BuiltinRedaction, ...] = ("email", "phone", "card", "ip", "iban")
"""The kinds of personal data the gateway recognises itself; each span becomes `[EMAIL]`,
`[PHONE]`, `[CARD]` (only numbers that pass the Luhn check), `[IP]` or `[IBAN]`."""

# The placeholder a user pattern writes: `[NAME]`, upper-case so it reads like the built-in ones.
PlaceholderName = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,31}$")]


class RedactionPattern(ApiModel):
    """A user regular expression (Python `re` syntax); each match becomes `[name]`."""

    name: PlaceholderName
    """The placeholder's name, upper-case (`ACCOUNT` writes `[ACCOUNT]`)."""
    regex: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    """The pattern. One that does not compile (or that matches the empty string) is reported in
    the Available, Progressing and Degraded conditions (reason InvalidCapturePattern), naming it,
    and nothing of that spec is applied."""


class Redaction(ApiModel):
    """What the gateway removes from prompts and responses before a record leaves the pod."""

    builtins: Annotated[
        list[BuiltinRedaction],
        Field(max_length=len(BUILTIN_REDACTIONS), json_schema_extra={X_LIST_TYPE: "set"}),
    ] = Field(
        default_factory=lambda: list(BUILTIN_REDACTIONS),
        json_schema_extra={"default": list(BUILTIN_REDACTIONS)},
    )
    """Built-in detectors to run (an empty list runs none)."""
    patterns: Annotated[
        list[RedactionPattern],
        Field(max_length=32, json_schema_extra={X_LIST_TYPE: "map", X_LIST_MAP_KEYS: ["name"]}),
    ] = Field(default_factory=list)
    """User patterns, applied after the built-in ones."""


class CaptureStoreSpec(ApiModel):
    """The capture store: one pod with its own PVC, owned by the LLMDeployment."""

    storage_class_name: ObjectName | None = None
    """StorageClass of the store's PVC (absent: the cluster's default)."""
    size: PositiveQuantity = "10Gi"
    """Size of the store's PVC."""


_SINK_URL = rf"^https?://[^{WHITE_SPACE}/$.?#][^{WHITE_SPACE}]*$"


class CaptureSink(ApiModel):
    """Send the records to a user endpoint as CloudEvents (binary mode, one event per record)
    instead of the capture store: for users with Knative, Kafka or their own collector."""

    url: Annotated[str, StringConstraints(pattern=_SINK_URL, max_length=2048)]
    """The endpoint (http or https)."""


class CaptureSpec(ApiModel):
    """Opt-in capture of sampled requests, redacted in the gateway."""

    sample_rate: Annotated[float, Field(gt=0, le=1)] = 0.1
    """Share of requests captured (1.0: every request)."""
    keep: Literal["Prompts", "Responses", "Both"] = "Both"
    """What a record holds besides its metadata (time, request ID, revision, track, client,
    route, token counts, latency, finish reason, and the feedback when it arrives)."""
    redaction: Redaction = Field(default_factory=Redaction)
    """Personal data removed before a record leaves the pod."""
    retention: Duration = "30d"
    """Records older than this are deleted (by whole daily segments)."""
    max_size: PositiveQuantity = "8Gi"
    """Cap on the store's segments: past it the store deletes the oldest whole segments, and refuses
    new records while the newest day alone exceeds it."""
    queue_size: Annotated[int, Field(ge=100, le=1_000_000)] = 10_000
    """Records a gateway holds while the store is slow or down; past it, records are dropped and
    counted (llmops_capture_dropped_total)."""
    store: CaptureStoreSpec = Field(default_factory=CaptureStoreSpec)
    """The capture store (unused with sink)."""
    sink: CaptureSink | None = None
    """Send to this endpoint as CloudEvents instead of the store."""
