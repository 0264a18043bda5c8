"""What serves (status.serving) and whether git says so (the PinnedToSpec condition).

status.serving names the model and revision the stable track serves, its origin (``spec`` or
the retrain run that produced it) and its gate scores, which a retrained candidate must not be
worse than. The operator never writes spec: when a retrained model serves, PinnedToSpec=False
gives the exact spec.model lines to commit so that git says what runs. Once spec.model is set
to what serves, the origin becomes ``spec`` and nothing rolls (the revision is the same). A LoRA
adapter is pinned with spec.model.adapter (name and path) on the base model's id and revision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from llmops.api import conditions as c
from llmops.api.spec import ModelSpec
from llmops.api.status import AdapterStatusDict, MetricResultDict, ServingStatusDict
from llmops.lifecycle.context import Pass
from llmops.lifecycle.target import ORIGIN_SPEC, Target, spec_key

__all__ = ["pin_condition", "serving_status"]


def _scores(p: Pass, revision: str, old: Mapping[str, Any]) -> list[MetricResultDict]:
    """The gate scores of ``revision``: kept from before, or from its gate's verdict."""
    if old.get("revision") == revision and old.get("scores"):
        return list(old["scores"])
    gate = p.fields.get("evaluation", p.old_status.get("evaluation")) or {}
    if gate.get("revision") == revision and gate.get("passed"):
        return list(gate.get("metrics") or [])
    return []


def serving_status(
    p: Pass, serving_rev: str | None, target: Target, before: Target, model: ModelSpec
) -> ServingStatusDict | None:
    """status.serving for the revision that serves after this pass (``serving_rev``).

    ``target`` is what the pipeline worked towards and ``before`` what served before this pass.
    """
    if serving_rev is None:
        return None
    old: Mapping[str, Any] = p.old_status.get("serving") or {}
    now = target if serving_rev == target.revision else before
    if now.revision != serving_rev:
        now = Target(model.id, serving_rev)  # status from before this field: spec's model served it
    spec_model = spec_key(model)
    if now.retrained and old.get("origin") == now.origin:
        spec_model = str(old.get("specModel") or spec_model)  # the spec it was produced under
    entry: ServingStatusDict = {
        "model": now.model,
        "revision": now.revision,
        "origin": now.origin,
        "specModel": spec_model,
        "scores": _scores(p, now.revision, old),
    }
    if now.path:
        entry["path"] = now.path
    if (adapter := now.adapter_status()) is not None:
        entry["adapter"] = cast(AdapterStatusDict, adapter)
    return entry


def pin_condition(p: Pass, serving: ServingStatusDict | None, model: ModelSpec) -> None:
    """PinnedToSpec: does spec.model say what serves? With the lines to commit when it does not."""
    retrained = serving is not None and serving.get("origin", ORIGIN_SPEC) != ORIGIN_SPEC
    if p.ld.spec.retrain is None and not retrained:
        p.drop_condition(c.PINNED_TO_SPEC)
        return
    if serving is None or not retrained:
        p.cond(
            c.PINNED_TO_SPEC, c.TRUE, c.SPEC_MODEL_SERVING, f"spec.model ({spec_key(model)}) is what serves"
        )
        return
    run, what = serving.get("origin"), f"{serving.get('model')}@{serving.get('revision')}"
    adapter = serving.get("adapter")
    if adapter:
        message = (
            f"retrain run {run} serves {serving.get('model')}@{adapter.get('baseRevision')} with LoRA adapter "
            f"{adapter.get('name')} ({adapter.get('path')}), not spec.model ({spec_key(model)}); to pin it in git, "
            f"set spec.model to: {{id: {serving.get('model')}, revision: {adapter.get('baseRevision')}, "
            f"adapter: {{name: {adapter.get('name')}, path: {adapter.get('path')}}}}} "
            "(other spec.model fields unchanged); nothing rolls when you do"
        )
    elif serving.get("path"):
        message = (
            f"retrain run {run} serves {serving.get('path')} from the model cache, not spec.model "
            f"({spec_key(model)}); a model-cache path cannot be pinned in spec.model: publish it to the Hub "
            "and commit its repository and revision"
        )
    else:
        message = (
            f"retrain run {run} serves {what}, not spec.model ({spec_key(model)}); to pin it in git, set "
            f"spec.model to: {{id: {serving.get('model')}, revision: {serving.get('revision')}}} "
            "(other spec.model fields unchanged); nothing rolls when you do"
        )
    p.cond(c.PINNED_TO_SPEC, c.FALSE, c.RETRAINED_MODEL_SERVING, message)
