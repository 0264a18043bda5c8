"""The static manifests agree with the chart: install.yaml, the kustomize base and overlays
are what `make manifests` generates, and what kustomize builds from them is what the chart
renders with the same values."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops_dev.cluster.build import binaries
from llmops_dev.packaging import generate, static
from llmops_dev.packaging.argocd import HEALTH_KEY

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "llmops-operator"


@pytest.fixture(scope="module")
def expected() -> dict[Path, str]:
    return generate.expected_files(REPO)


def test_generated_files_are_up_to_date(expected: dict[Path, str]) -> None:
    report = generate.out_of_date(REPO, expected)
    assert not report.changed, f"out of date: {[str(p) for p in report.changed]}: run `make manifests`"
    assert not report.stale, f"no longer generated: {[str(p) for p in report.stale]}: run `make manifests`"


def test_check_mode_reports_an_edited_file(tmp_path: Path, expected: dict[Path, str]) -> None:
    for rel, text in expected.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "manifests/install.yaml").write_text("# edited by hand\n")
    stale = tmp_path / "manifests/overlays/gone/kustomization.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text(f"# {generate.GENERATED_MARKER} from somewhere. Do not edit.\n")
    report = generate.out_of_date(tmp_path, expected)
    assert report.changed == [Path("manifests/install.yaml")]
    assert report.stale == [Path("manifests/overlays/gone/kustomization.yaml")]


def _objs(text: str) -> dict[static.Key, dict[str, Any]]:
    return {static.doc_key(o): o for o in yaml.safe_load_all(text) if o}


def _chart(values: dict[str, Any]) -> dict[static.Key, dict[str, Any]]:
    docs = [static.namespace_doc(generate.NAMESPACE), *generate.render(CHART, values)]
    return {d.key: d.obj for d in docs}


def _kustomize(path: Path) -> str:
    res = subprocess.run(
        [str(binaries() / "kubectl"), "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_install_yaml_is_the_default_render() -> None:
    assert _objs((REPO / "manifests/install.yaml").read_text()) == _chart({})


def test_kustomize_base_is_the_default_render() -> None:
    assert _objs(_kustomize(REPO / "manifests/base")) == _chart({})


@pytest.mark.parametrize("overlay", generate.OVERLAYS, ids=lambda o: o.name)
def test_kustomize_overlay_is_the_chart_with_its_values(overlay: generate.Overlay) -> None:
    built = _objs(_kustomize(REPO / "manifests/overlays" / overlay.name))
    want = _chart(overlay.values)
    assert set(built) == set(want)
    for key in want:
        assert built[key] == want[key], key


def test_overlays_change_what_they_say() -> None:
    ha = _objs(_kustomize(REPO / "manifests/overlays/ha"))
    dep = next(o for k, o in ha.items() if k[1] == "Deployment")
    assert dep["spec"]["replicas"] == 2
    assert "--peering=llmops-operator" in dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {k[1] for k in ha} >= {"ClusterKopfPeering", "CustomResourceDefinition"}
    namespaced = _objs(_kustomize(REPO / "manifests/overlays/namespaced"))
    assert [k[2] for k in namespaced if k[1] == "Role"] == ["llmops-models"]


def test_argocd_cm_embeds_the_health_check_verbatim() -> None:
    cm = yaml.safe_load((REPO / "manifests/argocd/argocd-cm.yaml").read_text())
    assert cm["metadata"] == {
        "name": "argocd-cm",
        "namespace": "argocd",
        "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
    }
    assert cm["data"][HEALTH_KEY] == (REPO / generate.HEALTH_LUA).read_text()


def test_split_render_refuses_duplicates_and_non_objects() -> None:
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: b\n"
    assert len(static.split_render(f"---\n# Source: x\n---\n{doc}")) == 1
    with pytest.raises(ValueError, match="rendered twice"):
        static.split_render(f"{doc}---\n{doc}")
    with pytest.raises(ValueError, match="not a Kubernetes object"):
        static.split_render("- a\n- b\n")
