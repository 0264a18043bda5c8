"""The chart's CRD templates: verbatim copies of crds/*.yaml plus the Helm conditionals."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmops_dev.packaging import helm, static
from llmops_dev.packaging.chart_crds import CHART_LABEL_KEYS, GENERATED_MARKER, chart_crd_template
from llmops_dev.packaging.generate import CRD_TEMPLATES, chart_crd_templates

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "llmops-operator"

PLACEHOLDER = """\
# a comment line before the document, as python -m llmops.api.crd writes
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  labels:
    app.kubernetes.io/name: llmops-operator
    team: ml-platform
  annotations:
    example.com/owner: ml
  name: widgets.example.com
spec:
  group: example.com
  names:
    kind: Widget
    plural: widgets
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        description: 'A PromQL query with placeholders: {{ namespace
          }}, {{ name }}.'
"""


def _spec_block(text: str) -> str:
    return text[text.index("\nspec:\n") + 1 :]


def test_crds_folder_is_not_empty() -> None:
    assert sorted((REPO / "crds").glob("*.yaml")), "crds/ is empty: run `make crds`"


@pytest.mark.parametrize("source", sorted((REPO / "crds").glob("*.yaml")), ids=lambda p: p.name)
def test_chart_crd_template_is_in_sync_with_crds(source: Path) -> None:
    template = REPO / CRD_TEMPLATES / source.name
    expected = chart_crd_template(source.read_text(), source.name)
    assert template.is_file(), f"{template.relative_to(REPO)} is missing: run `make manifests`"
    assert template.read_text() == expected, (
        f"{template.relative_to(REPO)} is out of date with crds/{source.name}: run `make manifests`"
    )


def test_template_keeps_the_spec_byte_for_byte_and_escapes_go_delimiters() -> None:
    out = chart_crd_template(PLACEHOLDER, "widgets.yaml")
    assert out.splitlines()[1] == "{{- if .Values.crds.enabled }}"
    assert out.rstrip().endswith("{{- end }}")
    assert GENERATED_MARKER in out.splitlines()[0]
    body = _spec_block(out).removesuffix("{{- end }}\n")
    assert '{{ "{{" }} namespace' in body
    assert body.replace('{{ "{{" }}', "{{") == _spec_block(PLACEHOLDER)


def test_template_merges_the_crds_own_labels_and_annotations() -> None:
    out = chart_crd_template(PLACEHOLDER, "widgets.yaml")
    meta = out[out.index("metadata:") : out.index("\nspec:")]
    assert '{{- include "llmops.labels" . | nindent 4 }}' in meta
    assert '{{- include "llmops.crdAnnotations" . | nindent 4 }}' in meta
    # The chart's helper sets app.kubernetes.io/name; a second copy would be a duplicate key.
    assert "app.kubernetes.io/name" not in meta
    assert "    team: ml-platform" in meta
    assert "    example.com/owner: ml" in meta


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (PLACEHOLDER + "---\n" + PLACEHOLDER, "exactly one CustomResourceDefinition"),
        (PLACEHOLDER.replace("kind: CustomResourceDefinition", "kind: ConfigMap"), "exactly one"),
        (
            PLACEHOLDER.replace("  name: widgets.example.com\n", "  name: widgets.example.com\n  uid: x\n"),
            "uid",
        ),
        (PLACEHOLDER + "status:\n  acceptedNames: {}\n", "top-level keys"),
    ],
    ids=["two-documents", "not-a-crd", "server-fields", "status"],
)
def test_template_refuses_what_it_cannot_copy_faithfully(source: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        chart_crd_template(source, "widgets.yaml")


def test_generator_needs_crds(tmp_path: Path) -> None:
    (tmp_path / "crds").mkdir()
    with pytest.raises(RuntimeError, match="make crds"):
        chart_crd_templates(tmp_path)


def _rendered_crds(values: dict[str, object]) -> dict[str, dict]:
    text = helm.template(CHART, release="r", namespace="ns", values=values)
    return {
        d.obj["metadata"]["name"]: d.obj
        for d in static.split_render(text)
        if d.obj["kind"] == "CustomResourceDefinition"
    }


def test_rendered_crd_equals_the_source_with_chart_metadata_added() -> None:
    rendered = _rendered_crds({})
    for source in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(source.read_text())
        name = crd["metadata"]["name"]
        assert rendered[name]["spec"] == crd["spec"], (
            f"{name}: the chart's spec differs from crds/{source.name}"
        )
        labels = rendered[name]["metadata"]["labels"]
        for key, value in (crd["metadata"].get("labels") or {}).items():
            assert labels[key] == value, f"{name}: label {key}"
        assert set(CHART_LABEL_KEYS) <= set(labels)
        annotations = rendered[name]["metadata"]["annotations"]
        assert annotations["helm.sh/resource-policy"] == "keep"
        assert annotations["argocd.argoproj.io/sync-wave"] == "-1"
        assert annotations["argocd.argoproj.io/sync-options"] == "ServerSideApply=true"


def test_crds_keep_false_drops_the_resource_policy() -> None:
    for crd in _rendered_crds({"crds": {"keep": False}}).values():
        assert "helm.sh/resource-policy" not in crd["metadata"]["annotations"]
        assert crd["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"


def test_crds_enabled_false_renders_no_crd_even_with_peering() -> None:
    assert _rendered_crds({"crds": {"enabled": False}, "replicaCount": 3}) == {}


def test_kopf_peering_crds_only_with_peering() -> None:
    assert not {n for n in _rendered_crds({}) if n.endswith("kopf.dev")}
    for values in ({"replicaCount": 2}, {"peering": {"enabled": True}}):
        peering = {n for n in _rendered_crds(values) if n.endswith("kopf.dev")}
        assert peering == {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}
