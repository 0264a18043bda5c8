"""The Argo CD health check for LLMDeployment, run by a real Lua 5.1 interpreter (the Lua of
Argo CD's gopher-lua) on the fixtures in Argo CD's layout: health_test.yaml lists each input
object and the health status (and message) Argo CD must report for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa.lua51 as lua51
import pytest
import yaml

from llmops.api.status import Phase

REPO = Path(__file__).resolve().parents[2]
CHECK = REPO / "manifests/argocd/resource_customizations/llmops.io/LLMDeployment"
CASES = yaml.safe_load((CHECK / "health_test.yaml").read_text())["tests"]
HEALTH_STATES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


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


def test_interpreter_is_lua_51() -> None:
    assert lua51.LuaRuntime().eval("_VERSION") == "Lua 5.1"


@pytest.mark.parametrize("case", CASES, ids=lambda c: Path(c["inputPath"]).stem)
def test_health_check(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((CHECK / case["inputPath"]).read_text())
    assert obj["apiVersion"] == "llmops.io/v1alpha1" and obj["kind"] == "LLMDeployment"
    assert run_health_check(obj) == case["healthStatus"]


def test_every_fixture_is_listed() -> None:
    listed = {Path(c["inputPath"]).name for c in CASES}
    assert listed == {p.name for p in (CHECK / "testdata").glob("*.yaml")}
    for case in CASES:
        assert case["healthStatus"]["status"] in HEALTH_STATES


def test_every_phase_of_the_api_is_covered() -> None:
    """A phase added to the API without a fixture would fall through to Unknown in Argo CD."""
    covered = set()
    for case in CASES:
        obj = yaml.safe_load((CHECK / case["inputPath"]).read_text())
        covered.add((obj.get("status") or {}).get("phase"))
        if case["healthStatus"]["status"] == "Unknown":
            assert obj["status"]["phase"] not in {p.value for p in Phase}
    assert {p.value for p in Phase} <= covered


@pytest.mark.parametrize("phase", [p.value for p in Phase])
def test_no_known_phase_is_unknown_to_argo_cd(phase: str) -> None:
    obj = {"metadata": {"name": "m", "generation": 1}, "status": {"observedGeneration": 1, "phase": phase}}
    assert run_health_check(obj)["status"] != "Unknown"


def test_observed_generation_comes_first() -> None:
    base = {
        "metadata": {"generation": 5},
        "status": {"phase": "Serving", "conditions": [{"type": "Available", "status": "True"}]},
    }
    assert (
        run_health_check({**base, "status": {**base["status"], "observedGeneration": 5}})["status"]
        == "Healthy"
    )
    assert (
        run_health_check({**base, "status": {**base["status"], "observedGeneration": 4}})["status"]
        == "Progressing"
    )
    no_observed = run_health_check(base)
    assert no_observed == {
        "status": "Progressing",
        "message": "Waiting for the operator to observe generation 5",
    }
