"""Every status field the lifecycle writes is declared in the CRD.

The apiserver silently prunes fields a structural schema does not declare (below the top level
of status, which preserves unknown fields for kopf). A pruned field is state lost on every
write: a smoke verdict that never sticks, say. So the statuses that full simulated runs produce
are walked against the generated CRD's status schema.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from llmops.analysis import Value
from llmops.api import status
from llmops.api.crd import crd
from testkit.canary_sim import Sim, smoke_sim, start_canary


def _status_schema() -> dict[str, Any]:
    version = crd()["spec"]["versions"][0]
    return version["schema"]["openAPIV3Schema"]["properties"]["status"]


def undeclared(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Paths in ``value`` that ``schema`` would prune."""
    out: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties")
        if props is None:  # a map, or preserved
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                for k, v in value.items():
                    out += undeclared(v, extra, f"{path}.{k}")
            return out
        for k, v in value.items():
            if k in props:
                out += undeclared(v, props[k], f"{path}.{k}")
            elif not schema.get("x-kubernetes-preserve-unknown-fields") or path != "status":
                out.append(f"{path}.{k}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += undeclared(item, schema["items"], f"{path}[{i}]")
    return out


def _statuses() -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    sim = Sim()
    start_canary(sim)
    seen.append(json.loads(json.dumps(sim.b["status"])))
    sim.step(1, analysis={"errors": (Value(0.5), None)})
    sim.step(1, analysis={"errors": (Value(0.5), None)})
    seen.append(sim.b["status"])  # rolled back
    smoke, pod = smoke_sim()
    smoke.step(pods=[pod])
    seen.append(smoke.b["status"])  # smoke running, gate passed
    return seen


@pytest.mark.parametrize("index", range(3))
def test_statuses_written_by_the_lifecycle_survive_pruning(index: int) -> None:
    status = _statuses()[index]
    assert undeclared(status, _status_schema(), "status") == []


@pytest.mark.parametrize(
    ("typed", "model"),
    [
        (status.StatusDict, status.LLMDeploymentStatus),
        (status.ConditionDict, status.Condition),
        (status.AnalysisCheckDict, status.AnalysisCheck),
        (status.CanaryStatusDict, status.CanaryStatus),
        (status.MetricResultDict, status.MetricResult),
        (status.EvaluationStatusDict, status.EvaluationStatus),
        (status.DriftStatusDict, status.DriftStatus),
        (status.RetrainStatusDict, status.RetrainStatus),
        (status.ManualGatesDict, status.ManualGates),
        (status.HistoryEntryDict, status.HistoryEntry),
    ],
)
def test_the_typed_dicts_have_the_keys_of_the_models(typed: type, model: type[BaseModel]) -> None:
    """The lifecycle's typed view of status (camelCase TypedDicts) and the pydantic models that
    generate the CRD name the same fields, so a key mypy accepts is a key the apiserver keeps."""
    aliases = {f.alias or name for name, f in model.model_fields.items()}
    assert set(typed.__annotations__) == aliases
