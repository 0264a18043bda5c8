"""The Argo CD health check of LLMDeployment run by a real Lua 5.1 interpreter (the Lua of
Argo CD's gopher-lua), and what it must say about each status recorded from real runs.

Shared by the unit tier (which replays the recorded statuses in tests/fixtures) and the
integration test that records them (``make argocd-fixtures``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa.lua51 as lua51

REPO = Path(__file__).resolve().parents[2]
CHECK = REPO / "manifests/argocd/resource_customizations/llmops.io/LLMDeployment"
RECORDED = REPO / "tests/fixtures/recorded_statuses.yaml"
"""Statuses snapshotted at each phase of real runs by tests/integration/test_argocd_recorded_statuses.py."""

EXPECTED_HEALTH: dict[str, tuple[str, str]] = {
    # case: (Argo CD health status, where its message comes from)
    "secret-missing": ("Degraded", "condition:Degraded"),
    "caching": ("Progressing", "condition:ModelCached"),
    "pvc-not-bound": ("Progressing", "condition:ModelCached"),
    "evaluating": ("Progressing", "condition:Evaluated"),
    "serving": ("Healthy", "condition:Available"),
    "canary-progressing": ("Progressing", "condition:Progressing"),
    "canary-paused-no-gpu": ("Progressing", "canary"),
    "rolled-back": ("Degraded", "condition:Promoted"),
    "failed-download": ("Degraded", "condition:Degraded"),
    "failed-evaluation": ("Degraded", "condition:Degraded"),
    "insufficient-samples": ("Degraded", "condition:Degraded"),
    "drifted": ("Healthy", "condition:Drifted"),
    "retraining": ("Progressing", "condition:Progressing"),
    "candidate-awaiting-approval": ("Suspended", "condition:Candidate"),
    "retrained-model-serving": ("Healthy", "condition:PinnedToSpec"),
    "candidate-approval-unknown-run": ("Suspended", "condition:Candidate"),
    "candidate-rejected-worse": ("Healthy", "condition:Candidate"),
    "capture-store-unavailable": ("Healthy", "condition:CaptureDegraded"),
    "replica-lost": ("Degraded", "condition:Degraded"),
    "scaled-to-zero": ("Healthy", "condition:Available"),
}
"""The health each recorded case must get; the message must be the one the operator wrote
(a condition's message, the canary's message), never a generic one."""


def run_health_check(obj: dict[str, Any]) -> dict[str, str]:
    """What Argo CD computes: the script with the object as global `obj`, in a sandbox."""
    lua = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    g = lua.globals()
    # Argo CD's VM opens base, table, string, math (and a safe os subset); nothing here may
    # reach for files, processes or modules.
    for name in (
        "io",
        "os",
        "require",
        "dofile",
        "loadfile",
        "load",
        "loadstring",
        "package",
        "debug",
        "module",
    ):
        g[name] = None
    g.obj = lua.table_from(obj, recursive=True)
    result = lua.execute((CHECK / "health.lua").read_text())
    return {key: result[key] for key in ("status", "message") if result[key] is not None}


def expected_message(obj: dict[str, Any], source: str) -> str:
    """The message the operator wrote that the health check must show for ``source``."""
    status = obj.get("status") or {}
    if source == "canary":
        return str(status["canary"]["message"])
    conds = {c["type"]: c for c in status.get("conditions") or []}
    return str(conds[source.removeprefix("condition:")]["message"])


def check_case(case: str, obj: dict[str, Any]) -> None:
    """Assert the health Argo CD gives the recorded status of ``case``."""
    status, source = EXPECTED_HEALTH[case]
    assert run_health_check(obj) == {"status": status, "message": expected_message(obj, source)}, (
        case,
        obj.get("status"),
    )
