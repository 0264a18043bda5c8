"""The Grafana dashboards (llmops_dev.packaging.dashboards) and the chart's ConfigMaps that ship
them: one per engine, each query over that engine's own metric names and the analysis templates
the canary is judged on, the ConfigMaps only when grafanaDashboards.enabled, and the JSON Helm
prints is the dashboard as generated (legends' `{{label}}` survive the template).
Whether the queries return data is tests/integration/test_dashboards_prometheus.py's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from llmops import metrics
from llmops.analysis.queries import feedback_negative_ratio
from llmops.engines import engine_names, get_engine, selector
from llmops_dev.packaging import helm, static
from llmops_dev.packaging.dashboards import (
    DEPLOYMENT,
    NAMESPACE,
    RATE_INTERVAL,
    dashboard,
    expressions,
    variable_matches,
)

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "llmops-operator"
PANELS = {
    "Finished requests per second",
    "Error ratio",
    "Request latency",
    "Time per output token",
    "Queue",
    "GPUs",
    "Phase",
    "Canary weight",
    "Canary verdicts",
    "Drift score",
    "Feedback per second",
    "Negative feedback ratio",
}
# A name that belongs to one engine only, to show the other engine's dashboard never uses it.
OWN_PREFIX = {"tgi": "tgi_", "vllm": "vllm:"}


def config_maps(values: dict[str, Any]) -> list[dict[str, Any]]:
    text = helm.template(CHART, release="llmops-operator", namespace="llmops-system", values=values)
    return [d.obj for d in static.split_render(text) if d.obj["kind"] == "ConfigMap"]


def panels(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in board["panels"] if p["type"] != "row"}


@pytest.mark.parametrize("engine", engine_names())
def test_each_panel_reads_the_engines_own_metrics(engine: str) -> None:
    board = dashboard(engine)
    assert set(panels(board)) == PANELS
    text = "\n".join(expr for _, expr in expressions(board))
    m = get_engine(engine).metrics
    for name in (m.request_success, m.request_duration_bucket, m.time_per_token_bucket, m.queue_size):
        assert name in text, name
    for other, prefix in OWN_PREFIX.items():
        assert (prefix in text) == (other == engine), prefix
    for series in ("llmops_canary_weight", "llmops_drift_score", "llmops_llmdeployment_gpus_per_pod"):
        assert f'{series}{{llmd_namespace="$namespace",llmd_name="$deployment"}}' in text


@pytest.mark.parametrize("engine", engine_names())
def test_error_and_feedback_panels_are_the_analysis_templates_per_track(engine: str) -> None:
    by_title = panels(dashboard(engine))
    errors = [t["expr"] for t in by_title["Error ratio"]["targets"]]
    assert errors == [
        get_engine(engine).query(
            "error-ratio", selector=selector(NAMESPACE, DEPLOYMENT, track), window=RATE_INTERVAL
        )
        for track in ("stable", "canary")
    ]
    negative = [t["expr"] for t in by_title["Negative feedback ratio"]["targets"]]
    assert negative == [
        feedback_negative_ratio(NAMESPACE, DEPLOYMENT, track, RATE_INTERVAL) for track in ("stable", "canary")
    ]


@pytest.mark.parametrize("engine", engine_names())
def test_the_layout_is_a_grid_of_unique_panels_on_the_datasource_variable(engine: str) -> None:
    board = dashboard(engine)
    assert board["uid"] == f"llmops-{engine}"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in board["panels"]:
        pos = p["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        covered = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not covered & cells, p["title"]
        cells |= covered
        for target in p.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert target["legendFormat"]


@pytest.mark.parametrize("engine", engine_names())
def test_variables_select_namespace_then_deployment(engine: str) -> None:
    board = dashboard(engine)
    names = [v["name"] for v in board["templating"]["list"]]
    assert names == ["datasource", "namespace", "deployment"]
    queue = get_engine(engine).metrics.queue_size
    assert list(variable_matches(board)) == [
        ("namespace", f'{queue}{{llmops_deployment!=""}}', "namespace"),
        ("deployment", f'{queue}{{namespace="$namespace"}}', "llmops_deployment"),
    ]


def test_the_chart_ships_the_dashboards_only_when_enabled() -> None:
    assert config_maps({}) == []
    maps = config_maps({"grafanaDashboards": {"enabled": True}})
    assert [m["metadata"]["name"] for m in maps] == [
        f"llmops-operator-dashboard-{engine}" for engine in engine_names()
    ]
    for cm, engine in zip(maps, engine_names(), strict=True):
        assert cm["metadata"]["namespace"] == "llmops-system"
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert "annotations" not in cm["metadata"]
        assert json.loads(cm["data"][f"llmops-{engine}.json"]) == dashboard(engine)


def test_the_sidecars_label_namespace_and_folder_are_values() -> None:
    values = {
        "grafanaDashboards": {
            "enabled": True,
            "namespace": "monitoring",
            "label": "grafana.io/dashboard",
            "labelValue": "true",
            "annotations": {"grafana_folder": "LLMs"},
        }
    }
    for cm in config_maps(values):
        meta = cm["metadata"]
        assert meta["namespace"] == "monitoring"
        assert meta["labels"]["grafana.io/dashboard"] == "true" and "grafana_dashboard" not in meta["labels"]
        assert meta["annotations"] == {"grafana_folder": "LLMs"}


def test_the_operator_exports_gpus_per_pod_for_the_gpu_panel() -> None:
    labels = {"llmd_namespace": "ns", "llmd_name": "gpus"}
    metrics.observe_status(
        "ns", "gpus", {"replicas": 3, "readyReplicas": 2}, rolled_back=False, gpus_per_pod=4
    )
    assert REGISTRY.get_sample_value("llmops_llmdeployment_gpus_per_pod", labels) == 4
    assert REGISTRY.get_sample_value("llmops_llmdeployment_replicas", labels) == 3
    metrics.forget("ns", "gpus")
    assert REGISTRY.get_sample_value("llmops_llmdeployment_gpus_per_pod", labels) is None
