"""The example Argo CD Applications point at the real chart, with values the chart accepts,
and ask for the sync options the README explains."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
APPS = [d for d in yaml.safe_load_all((REPO / "manifests/argocd/application.yaml").read_text()) if d]
SCHEMA = json.loads((REPO / "charts/llmops-operator/values.schema.json").read_text())


def _app(name: str) -> dict[str, Any]:
    return next(a for a in APPS if a["metadata"]["name"] == name)


def test_applications_are_argo_cd_applications() -> None:
    assert {a["kind"] for a in APPS} == {"Application"}
    assert {a["apiVersion"] for a in APPS} == {"argoproj.io/v1alpha1"}


def test_operator_application_installs_the_chart_with_valid_values() -> None:
    app = _app("llmops-operator")
    source = app["spec"]["source"]
    assert (REPO / source["path"] / "Chart.yaml").is_file()
    jsonschema.validate(source["helm"]["valuesObject"], SCHEMA, cls=jsonschema.Draft7Validator)
    assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_models_sync_after_the_operator_and_tolerate_a_missing_crd() -> None:
    operator, models = _app("llmops-operator"), _app("llm-models")
    wave = lambda a: int(a["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])  # noqa: E731
    assert wave(operator) < wave(models)
    options = models["spec"]["syncPolicy"]["syncOptions"]
    assert "SkipDryRunOnMissingResource=true" in options
    assert "ServerSideApply=true" in options


def test_crds_come_first_within_the_operator_application() -> None:
    crds = yaml.safe_load_all((REPO / "manifests/base/crds.yaml").read_text())
    for crd in filter(None, crds):
        assert crd["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
    for doc in filter(None, yaml.safe_load_all((REPO / "manifests/base/operator.yaml").read_text())):
        assert "argocd.argoproj.io/sync-wave" not in (doc["metadata"].get("annotations") or {})
