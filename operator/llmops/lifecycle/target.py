"""Which model the pipeline works towards, and which one serves: from spec, or from a retrain run.

spec.model is what git asks for; a retrained candidate (status.candidate) is what a retrain run
produced from the serving model. The revision pipeline (cache → gate → canary → promotion) takes
either the same way; only *which* one is decided here, purely from spec and status:

    desired_target(spec.model, status.serving, status.candidate) → Target
      1. a candidate on its road (Evaluating, AwaitingApproval, Rolling) produced under the
         current spec.model                                           → the candidate
      2. a retrained model serving, produced under the current spec.model → keep it
      3. otherwise                                                    → spec.model (spec wins)

A change of spec.model (git) therefore always wins: rule 1 and 2 only hold while spec.model is the
one they were produced under. Setting spec.model to what already serves keeps the same revision,
so nothing rolls; the origin becomes ``spec``.

``with_model`` gives the stages an LLMDeployment whose spec.model is the target, so that cache,
gate, canary and render need not know where a revision came from. A model written to the model
cache (a path) has no Hub revision: its run ID stands in as the revision that names its children.
A LoRA adapter is served on top of the model it was trained from: spec.model.adapter, with the
base's Hub revision; the revision that names it is ``<base revision>+<name>-<hash of the path>``
(ModelSpec.served_revision), the same whether it comes from a report or from spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmops.api.resource import LLMDeployment
from llmops.api.spec import AdapterSpec, ModelSpec, adapter_revision

__all__ = [
    "ACTIVE_CANDIDATE_STATES",
    "ORIGIN_SPEC",
    "Target",
    "adapter_target",
    "desired_target",
    "serving_target",
    "spec_key",
    "spec_target",
    "with_model",
]

ORIGIN_SPEC = "spec"
"""status.serving.origin of a model that came from spec.model (else: the retrain run ID)."""
ACTIVE_CANDIDATE_STATES = frozenset({"Evaluating", "AwaitingApproval", "Rolling"})
"""A candidate in these states is on its road: the pipeline works towards it."""


@dataclass(frozen=True)
class Target:
    """A model at a revision, and where it came from."""

    model: str
    """Hub repository id, or the path on the model cache."""
    revision: str
    """Hub revision; for a path, the retrain run ID."""
    origin: str = ORIGIN_SPEC
    """``spec`` or the retrain run ID."""
    path: str | None = None
    """Set for a model on the model cache (then ``model`` is the path too)."""
    adapter: AdapterSpec | None = None
    """A LoRA adapter served on top of ``model``."""
    base_revision: str | None = None
    """With an adapter: the Hub revision of ``model`` (``revision`` then names model + adapter)."""

    @property
    def retrained(self) -> bool:
        return self.origin != ORIGIN_SPEC

    @property
    def hub_revision(self) -> str:
        """The revision of the weights the server loads (the base's, under an adapter)."""
        return self.base_revision or self.revision

    @property
    def text(self) -> str:
        """How messages name it: ``org/name@sha``, the path, or ``org/name@sha + LoRA adapter <name> (<path>)``."""
        if self.adapter is not None:
            return (
                f"{self.model}@{self.hub_revision} + LoRA adapter {self.adapter.name} ({self.adapter.path})"
            )
        return self.path or f"{self.model}@{self.revision}"

    def adapter_status(self) -> dict[str, str] | None:
        """status' ``adapter`` entry (AdapterStatusDict), or None without an adapter."""
        if self.adapter is None:
            return None
        return {"name": self.adapter.name, "path": self.adapter.path, "baseRevision": self.hub_revision}


def adapter_target(model: str, base_revision: str, adapter: AdapterSpec, origin: str = ORIGIN_SPEC) -> Target:
    """``model`` at ``base_revision`` with ``adapter`` on top."""
    return Target(model, adapter_revision(base_revision, adapter), origin, None, adapter, base_revision)


def spec_target(model: ModelSpec) -> Target:
    """spec.model as a target."""
    if model.adapter is not None:
        return adapter_target(model.id, model.revision, model.adapter)
    return Target(model.id, model.revision)


def spec_key(model: ModelSpec) -> str:
    """spec.model as one comparable string, ``id@revision`` (the served revision, with an adapter)."""
    return f"{model.id}@{model.served_revision}"


def _of(entry: Mapping[str, Any], origin: str) -> Target:
    path, adapter = entry.get("path"), entry.get("adapter")
    if adapter:
        spec = AdapterSpec.model_construct(name=str(adapter["name"]), path=str(adapter["path"]))
        return adapter_target(str(entry["model"]), str(adapter["baseRevision"]), spec, origin)
    return Target(str(entry["model"]), str(entry["revision"]), origin, str(path) if path else None)


def desired_target(
    model: ModelSpec, serving: Mapping[str, Any] | None, candidate: Mapping[str, Any] | None
) -> Target:
    """The model the pipeline works towards (see the module docstring)."""
    key = spec_key(model)
    if candidate and candidate.get("state") in ACTIVE_CANDIDATE_STATES and candidate.get("specModel") == key:
        return _of(candidate, str(candidate["run"]))
    if serving and serving.get("origin", ORIGIN_SPEC) != ORIGIN_SPEC and serving.get("specModel") == key:
        return _of(serving, str(serving["origin"]))
    return spec_target(model)


def serving_target(model: ModelSpec, serving: Mapping[str, Any] | None) -> Target:
    """What the stable track serves now according to status (spec.model before anything serves)."""
    if serving and serving.get("model") and serving.get("revision"):
        return _of(serving, str(serving.get("origin") or ORIGIN_SPEC))
    return spec_target(model)


def with_model(ld: LLMDeployment, target: Target) -> LLMDeployment:
    """``ld`` with spec.model set to ``target`` (the token reference and the rest kept)."""
    current = ld.spec.model
    if (current.id, current.served_revision, current.adapter) == (
        target.model,
        target.revision,
        target.adapter,
    ):
        return ld
    # model_copy does not validate: a model-cache path is not a Hub repository id, on purpose.
    model = current.model_copy(
        update={"id": target.model, "revision": target.hub_revision, "adapter": target.adapter}
    )
    return ld.model_copy(update={"spec": ld.spec.model_copy(update={"model": model})})
