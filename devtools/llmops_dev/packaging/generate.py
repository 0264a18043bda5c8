"""Compute every generated packaging file from its sources, then write or check them.

Sources: ``crds/*.yaml`` (from ``python -m llmops.api.crd``), the chart, the Argo CD health
check and the Grafana dashboards (``dashboards.py``). Generated: the chart's CRD and dashboard
templates, ``manifests/install.yaml``, ``manifests/base/``,
``manifests/overlays/*/`` and ``manifests/argocd/argocd-cm.yaml``. The renders are made from a
temporary copy of the chart holding the freshly generated templates, so ``--check`` never
touches the work tree and one run is enough after a CRD change.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_dev.packaging import helm, static
from llmops_dev.packaging.argocd import argocd_cm
from llmops_dev.packaging.chart_crds import GENERATED_MARKER, chart_crd_template
from llmops_dev.packaging.dashboards import DASHBOARD_TEMPLATES, chart_templates

__all__ = [
    "CHART",
    "CRD_TEMPLATES",
    "GENERATED_MARKER",
    "HEALTH_LUA",
    "NAMESPACE",
    "OVERLAYS",
    "RELEASE",
    "STATIC_API_VERSIONS",
    "GenerateError",
    "Overlay",
    "Report",
    "chart_crd_templates",
    "expected_files",
    "out_of_date",
    "render",
    "stale_files",
    "write",
]

CHART = Path("charts/llmops-operator")
CRD_TEMPLATES = CHART / "templates" / "crds"
HEALTH_LUA = Path("manifests/argocd/resource_customizations/llmops.io/LLMDeployment/health.lua")

# The static manifests are `helm template` with this release name and namespace.
RELEASE = "llmops-operator"
NAMESPACE = "llmops-system"
# Render the kopf peering objects as ordinary resources (not the post-install hook Helm needs
# on a first install): kubectl and kustomize have no hooks.
STATIC_API_VERSIONS = ("kopf.dev/v1/ClusterKopfPeering", "kopf.dev/v1/KopfPeering")


@dataclass(frozen=True)
class Overlay:
    """A kustomize overlay: the chart values it stands for and what to tell its reader."""

    name: str
    values: dict[str, Any]
    comment: str = ""


OVERLAYS = (
    Overlay(
        name="namespaced",
        values={"watchNamespaces": ["llmops-models"]},
        comment=(
            "# Watch only the namespace llmops-models (it must exist): a Role and RoleBinding there, and\n"
            "# a ClusterRole reduced to reading CRDs and namespaces. For other namespaces, render the\n"
            "# chart with --set 'watchNamespaces={a,b}', or copy this overlay and rename.\n"
        ),
    ),
    Overlay(
        name="ha",
        values={
            "replicaCount": 2,
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/name": "llmops-operator",
                            "app.kubernetes.io/instance": RELEASE,
                        }
                    },
                }
            ],
        },
        comment=(
            "# Two replicas with kopf peering (one active, one standby) spread over nodes. On a fresh\n"
            "# cluster the peering object's CRD is created by the same apply: if kubectl reports\n"
            '# "ensure CRDs are installed first" for ClusterKopfPeering, run the apply again.\n'
        ),
    ),
)


class GenerateError(RuntimeError):
    """The sources are missing or inconsistent; the message says what to run."""


def _header(what: str) -> str:
    return f"# {GENERATED_MARKER} from {what}. Do not edit.\n"


def chart_crd_templates(repo: Path) -> dict[Path, str]:
    """The chart's CRD templates, one per ``crds/*.yaml``."""
    sources = sorted((repo / "crds").glob("*.yaml"))
    if not sources:
        raise GenerateError("crds/ holds no CRD: run `make crds` (python -m llmops.api.crd) first")
    return {CRD_TEMPLATES / src.name: chart_crd_template(src.read_text(), src.name) for src in sources}


def render(chart: Path, values: dict[str, Any]) -> list[static.Doc]:
    """The chart as the static manifests see it: fixed release and namespace, no test hooks."""
    text = helm.template(
        chart, release=RELEASE, namespace=NAMESPACE, values=values, api_versions=STATIC_API_VERSIONS
    )
    return static.split_render(text)


def expected_files(repo: Path) -> dict[Path, str]:
    """Every generated file (paths relative to ``repo``) and its content."""
    files = {**chart_crd_templates(repo), **chart_templates(GENERATED_MARKER)}
    with tempfile.TemporaryDirectory(prefix="llmops-chart-") as tmp:
        chart = Path(tmp) / CHART.name
        shutil.copytree(repo / CHART, chart)
        for folder in (CRD_TEMPLATES, DASHBOARD_TEMPLATES):
            for old in (chart / folder.relative_to(CHART)).glob("*.yaml"):
                if GENERATED_MARKER in old.read_text():
                    old.unlink()
        for path, text in files.items():
            (chart / path.relative_to(CHART)).parent.mkdir(parents=True, exist_ok=True)
            (chart / path.relative_to(CHART)).write_text(text)
        default = render(chart, {})
        overlays = {o.name: render(chart, o.values) for o in OVERLAYS}

    default_header = _header(f"{CHART} with its default values")
    files[Path("manifests/install.yaml")] = static.install_yaml(default_header, NAMESPACE, default)
    for name, text in static.base_files(default_header, NAMESPACE, default).items():
        files[Path("manifests/base") / name] = text
    for overlay in OVERLAYS:
        header = _header(f"{CHART} with the {overlay.name!r} values in llmops/packaging/generate.py")
        for name, text in static.overlay_files(
            header, default, overlays[overlay.name], overlay.comment
        ).items():
            files[Path("manifests/overlays") / overlay.name / name] = text
    files[Path("manifests/argocd/argocd-cm.yaml")] = argocd_cm(
        _header(str(HEALTH_LUA)), (repo / HEALTH_LUA).read_text()
    )
    return files


def stale_files(repo: Path, expected: dict[Path, str]) -> list[Path]:
    """Generated files that no source produces any more (a CRD file removed, an overlay dropped)."""
    candidates = [
        *(repo / CRD_TEMPLATES).glob("*.yaml"),
        *(repo / DASHBOARD_TEMPLATES).glob("*.yaml"),
        *(repo / "manifests" / "base").glob("*.yaml"),
        *(repo / "manifests" / "overlays").glob("*/*.yaml"),
    ]
    return sorted(
        p.relative_to(repo)
        for p in candidates
        if p.relative_to(repo) not in expected and GENERATED_MARKER in p.read_text()
    )


@dataclass
class Report:
    """What a check found."""

    changed: list[Path] = field(default_factory=list)
    stale: list[Path] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changed or self.stale)


def out_of_date(repo: Path, expected: dict[Path, str] | None = None) -> Report:
    """The generated files whose content differs from what the sources give, and stale ones."""
    expected = expected if expected is not None else expected_files(repo)
    changed = [
        p for p, text in expected.items() if not (repo / p).is_file() or (repo / p).read_text() != text
    ]
    return Report(changed=sorted(changed), stale=stale_files(repo, expected))


def write(repo: Path) -> Report:
    """Regenerate: write every changed file and delete stale ones; returns what changed."""
    expected = expected_files(repo)
    report = out_of_date(repo, expected)
    for path in report.changed:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(expected[path])
    for path in report.stale:
        (repo / path).unlink()
    return report
