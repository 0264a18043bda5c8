"""The working state of one planning pass, shared by the lifecycle's stages.

A ``Pass`` collects what the stages decide (desired children, conditions, events, history)
so that each stage is a small function of (pass, observations) instead of one long function.
It is plain data and pure helpers: no I/O, no clock (``now`` is given).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmops.api.resource import LLMDeployment
from llmops.api.status import HISTORY_LIMIT, ConditionDict, HistoryEntryDict, StatusDict
from llmops.contracts import format_timestamp
from llmops.lifecycle.conditions import set_condition
from llmops.lifecycle.observations import Observations

__all__ = [
    "ANNOTATION_APPLIED_HASH",
    "ANNOTATION_MODEL_REVISION",
    "Event",
    "Pass",
    "Rollout",
    "applied_hash",
    "manifest_hash",
    "rollout_of",
    "served_revision",
]

ANNOTATION_APPLIED_HASH = "llmops.io/applied-hash"
"""Hash of the manifest last applied to a child: equal hash, nothing to apply."""
ANNOTATION_MODEL_REVISION = "llmops.io/model-revision"
"""The full model revision a Deployment serves (the label holds a shortened form)."""


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post about the LLMDeployment."""

    type: str
    reason: str
    message: str


def manifest_hash(obj: Mapping[str, Any]) -> str:
    """The ``applied-hash`` of a rendered child. Stays on the standard library's ``json`` (not
    orjson, as the informers and applies use): any other byte in its input (non-ASCII escaped or
    not, a float's exponent) would change the hash of every child, and an upgraded operator
    would apply them all again. tests/unit/test_manifest_hash.py pins its values."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def applied_hash(obj: Mapping[str, Any] | None) -> str | None:
    if not obj:
        return None
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_APPLIED_HASH)


def served_revision(dep: Mapping[str, Any] | None) -> str | None:
    """The model revision an observed Deployment is set to serve."""
    if not dep:
        return None
    return ((dep.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_MODEL_REVISION)


@dataclass(frozen=True)
class Rollout:
    """The observed state of one track's Deployment."""

    exists: bool
    revision: str | None
    ready: int
    complete: bool
    """Every pod runs the current template and is ready; no old pod is left."""
    settled: bool = False
    """The rollout of the current template completed once, whatever is ready now: a replica
    missing is lost (crashed, evicted, or added by a scale-up), not still rolling out."""


# kube-controller-manager sets it when a rollout completes and keeps it (resyncs and scaling do
# not re-estimate progress) until the template changes and a new ReplicaSet rolls out.
_ROLLOUT_COMPLETED = "NewReplicaSetAvailable"


def rollout_of(dep: Mapping[str, Any] | None, replicas: int) -> Rollout:
    if not dep:
        return Rollout(False, None, 0, False)
    st = dep.get("status") or {}
    ready = int(st.get("readyReplicas") or 0)
    current = int(st.get("observedGeneration") or 0) >= int(dep["metadata"].get("generation") or 0)
    updated = int(st.get("updatedReplicas") or 0)
    complete = (
        current and updated == replicas and int(st.get("replicas") or 0) == replicas and ready == replicas
    )
    reasons = {x.get("type"): x.get("reason") for x in st.get("conditions") or []}
    settled = (
        current
        and reasons.get("Progressing") == _ROLLOUT_COMPLETED
        and updated == int(st.get("replicas") or 0)
    )
    return Rollout(True, served_revision(dep), ready, complete, settled)


@dataclass
class Pass:
    """What one pass has decided so far."""

    ld: LLMDeployment
    obs: Observations
    old_status: StatusDict
    now: dt.datetime
    conditions: list[ConditionDict] = field(default_factory=list)
    desired: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    history: list[HistoryEntryDict] = field(default_factory=list)
    fields: StatusDict = field(default_factory=lambda: StatusDict())
    """Status fields other than conditions and history, set by the stages."""
    patches: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    """Merge patches of objects the operator does not own: (kind, name, patch)."""
    pod_conditions: list[tuple[str, str, str]] = field(default_factory=list)
    """Pod conditions to set True (readiness gates): (pod name, condition type, reason)."""
    handover: list[dict[str, Any]] = field(default_factory=list)
    """Replica counts to apply under the hand-over field manager before the children
    (lifecycle.autoscaling)."""
    spec_model: str = ""
    """spec.model as git has it, ``id@revision`` (``ld`` may carry a retrained model instead)."""
    due: list[float] = field(default_factory=list)
    """Seconds until something a stage reads at a time of its own is due (a download's progress):
    the pass asks to be run again then, since no watch event would bring it."""

    def __post_init__(self) -> None:
        self.conditions = [x.copy() for x in self.old_status.get("conditions") or []]
        self.history = [x.copy() for x in self.old_status.get("history") or []]

    @property
    def generation(self) -> int | None:
        gen = self.ld.metadata.get("generation")
        return int(gen) if gen is not None else None

    def cond(self, type_: str, status: str, reason: str, message: str) -> None:
        self.conditions = set_condition(
            self.conditions, type_, status, reason, message, generation=self.generation, now=self.now
        )

    def drop_condition(self, type_: str) -> None:
        self.conditions = [x for x in self.conditions if x.get("type") != type_]

    def want(self, obj: dict[str, Any] | None, *, revision: str | None = None) -> dict[str, Any] | None:
        """Add a rendered child to the desired set, annotated with its hash (and model revision)."""
        if obj is None:
            return None
        meta = obj["metadata"]
        annotations = dict(meta.get("annotations") or {})
        if revision is not None:
            annotations[ANNOTATION_MODEL_REVISION] = revision
        meta["annotations"] = annotations
        annotations[ANNOTATION_APPLIED_HASH] = manifest_hash(obj)
        # A later decision in the same pass replaces an earlier one for the same child.
        key = (obj["kind"], meta["name"])
        self.desired = [d for d in self.desired if (d["kind"], d["metadata"]["name"]) != key]
        self.desired.append(obj)
        return obj

    def record(self, action: str, revision: str | None, reason: str, message: str) -> None:
        """Append a decision to the bounded history (oldest dropped first)."""
        self.history.append(
            {
                "time": format_timestamp(self.now),
                "action": action,
                "revision": revision,
                "reason": reason,
                "message": message,
            }
        )
        del self.history[:-HISTORY_LIMIT]
