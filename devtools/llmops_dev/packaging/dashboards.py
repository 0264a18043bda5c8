"""Grafana dashboards, one per engine, and the chart templates that ship them as ConfigMaps.

Every metric name comes from where the metric is defined: the engine's `Metrics` and its
analysis queries (`Engine.query`, so the error-ratio panel is exactly what a canary is judged
on), the operator's own gauges (`llmops.metrics`), the gateway's feedback counter and the
feedback template (`llmops.analysis.queries`). Nothing here spells a metric name.

Each dashboard has three template variables: `datasource` (a Prometheus data source),
`namespace` and `deployment` (the LLMDeployment's name), which select the server series by
their PodMonitor labels (`namespace`, `llmops_deployment`) and the operator's series by
`llmd_namespace`/`llmd_name`. Rates use Grafana's `$__rate_interval`.

`make manifests` writes the chart templates (`templates/dashboards/`, rendered when
`grafanaDashboards.enabled`); `expressions()` and `variable_matches()` list every query, which
tests/integration/test_dashboards_prometheus.py evaluates against a real Prometheus.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from llmops import metrics as operator_metrics
from llmops.analysis.queries import CANARY, FEEDBACK_METRIC, STABLE, feedback_negative_ratio
from llmops.api.constants import PROM_LABEL_DEPLOYMENT, PROM_LABEL_TRACK
from llmops.engines import Engine, engine_names, get_engine, matchers, selector

__all__ = [
    "DASHBOARD_TEMPLATES",
    "DEPLOYMENT",
    "NAMESPACE",
    "RATE_INTERVAL",
    "chart_templates",
    "dashboard",
    "expressions",
    "variable_matches",
]

DASHBOARD_TEMPLATES = Path("charts/llmops-operator/templates/dashboards")
NAMESPACE = "$namespace"
"""The dashboard variable holding the LLMDeployment's namespace."""
DEPLOYMENT = "$deployment"
"""The dashboard variable holding the LLMDeployment's name."""
RATE_INTERVAL = "$__rate_interval"
"""Grafana's rate window: at least four scrape intervals."""
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
TRACKS = (STABLE, CANARY)
_DISPLAY_NAMES = {"tgi": "TGI", "vllm": "vLLM"}
_WIDTH, _HEIGHT = 12, 8  # two panels per row of Grafana's 24-column grid


def _series(metric: MetricWrapperBase) -> str:
    """The name a prometheus_client metric is exposed under (counters gain `_total`)."""
    (family,) = metric.describe()
    name = str(family.name)
    return name + "_total" if family.type == "counter" else name


# The operator's own series (llmops.metrics), about one LLMDeployment.
PHASE = operator_metrics.PHASE
READY = operator_metrics.READY
REPLICAS = operator_metrics.REPLICAS
GPUS_PER_POD = operator_metrics.GPUS_PER_POD
CANARY_STATE = operator_metrics.CANARY_STATE
CANARY_WEIGHT = operator_metrics.CANARY_WEIGHT
CANARY_STEP = operator_metrics.CANARY_STEP
ROLLBACKS = _series(operator_metrics.ROLLBACKS)
DRIFT_SCORE = _series(operator_metrics.DRIFT_SCORE)


@dataclass(frozen=True)
class Query:
    """One PromQL target of a panel and the legend Grafana draws for each of its series."""

    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    """One Grafana panel: a title, what it shows, its queries and the unit of their values."""

    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"
    options: dict[str, Any] = field(default_factory=dict)
    thresholds: tuple[tuple[float, str], ...] = ()
    """(value, colour) steps above the base green: a line where a value turns bad."""


@dataclass(frozen=True)
class Row:
    """A titled row of panels, laid out two by two."""

    title: str
    panels: tuple[Panel, ...]


def _servers() -> str:
    """Matchers of the LLMDeployment's server pods (every track), as the PodMonitor labels them."""
    return selector(NAMESPACE, DEPLOYMENT)


def _operator() -> str:
    """Matchers of the operator's series about the LLMDeployment."""
    namespace_label, name_label = operator_metrics.LLMD_LABELS
    return f'{namespace_label}="{NAMESPACE}",{name_label}="{DEPLOYMENT}"'


def _rate(metric: str, by: str | None = None) -> str:
    rate = f"rate({metric}{matchers(_servers())}[{RATE_INTERVAL}])"
    return f"sum by ({by}) ({rate})" if by else f"sum({rate})"


def _quantiles(bucket: str, quantiles: tuple[float, ...]) -> tuple[Query, ...]:
    """Quantiles of a histogram per track, from its `_bucket` series."""
    return tuple(
        Query(
            f"histogram_quantile({q}, {_rate(bucket, by=f'le, {PROM_LABEL_TRACK}')})",
            f"p{round(q * 100)} {{{{{PROM_LABEL_TRACK}}}}}",
        )
        for q in quantiles
    )


def _per_track(template: str, engine: Engine) -> tuple[Query, ...]:
    """An analysis template of the engine over each serving track, as the canary analysis asks it."""
    return tuple(
        Query(
            engine.query(template, selector=selector(NAMESPACE, DEPLOYMENT, track), window=RATE_INTERVAL),
            track,
        )
        for track in TRACKS
    )


def _serving(engine: Engine) -> Row:
    m = engine.metrics
    track = f"{{{{{PROM_LABEL_TRACK}}}}}"
    return Row(
        "Serving",
        (
            Panel(
                "Finished requests per second",
                f"Requests the engine finished, per track ({m.request_success}).",
                (Query(_rate(m.request_success, by=PROM_LABEL_TRACK), track),),
                unit="reqps",
            ),
            Panel(
                "Error ratio",
                "The error-ratio analysis template per track: the share of failed requests the "
                "canary is judged on (client errors excluded). No traffic: no value.",
                _per_track("error-ratio", engine),
                unit="percentunit",
            ),
            Panel(
                "Request latency",
                f"p50, p95 and p99 of the whole request, per track ({m.request_duration_bucket}).",
                _quantiles(m.request_duration_bucket, (0.5, 0.95, 0.99)),
                unit="s",
            ),
            Panel(
                "Time per output token",
                f"p50 and p95 of the time per generated token, per track ({m.time_per_token_bucket}).",
                _quantiles(m.time_per_token_bucket, (0.5, 0.95)),
                unit="s",
            ),
            Panel(
                "Queue",
                f"Requests waiting for a batch slot, per pod ({m.queue_size}). A queue that keeps "
                "growing needs more replicas (or a smaller max batch).",
                (Query(f"sum by (pod) ({m.queue_size}{matchers(_servers())})", "{{pod}}"),),
            ),
            Panel(
                "GPUs",
                "GPUs requested by the desired serving pods and held by the ready ones "
                "(replicas times spec.resources.gpu.count, from the operator).",
                (
                    Query(f"{REPLICAS}{{{_operator()}}} * {GPUS_PER_POD}{{{_operator()}}}", "requested"),
                    Query(f"{READY}{{{_operator()}}} * {GPUS_PER_POD}{{{_operator()}}}", "ready"),
                ),
            ),
        ),
    )


def _rollout() -> Row:
    return Row(
        "Rollout",
        (
            Panel(
                "Phase",
                "status.phase of the LLMDeployment, as the operator last wrote it.",
                (Query(f"{PHASE}{{{_operator()}}} == 1", "{{phase}}"),),
                kind="stat",
                options={
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "textMode": "name",
                    "colorMode": "none",
                    "graphMode": "none",
                },
            ),
            Panel(
                "Canary weight",
                "Percent of the traffic the canary takes, and the index of its current step.",
                (
                    Query(f"{CANARY_WEIGHT}{{{_operator()}}}", "weight %"),
                    Query(f"{CANARY_STEP}{{{_operator()}}}", "step"),
                ),
            ),
            Panel(
                "Canary verdicts",
                "The canary's state (1 while in it): Progressing, Paused (no data or no GPUs), "
                "Promoting, RolledBack; and the rollbacks decided over the last day.",
                (
                    Query(f"{CANARY_STATE}{{{_operator()}}} == 1", "{{state}}"),
                    Query(f"sum(increase({ROLLBACKS}{{{_operator()}}}[1d]))", "rollbacks (1d)"),
                ),
            ),
        ),
    )


def _drift_and_feedback() -> Row:
    feedback = matchers(f'namespace="{NAMESPACE}"', f'{PROM_LABEL_DEPLOYMENT}="{DEPLOYMENT}"')
    return Row(
        "Drift and feedback",
        (
            Panel(
                "Drift score",
                "Each drift signal's statistic over its threshold (PSI, KS, quality drop, negative "
                "feedback ratio): 1 is the threshold, at or above it the signal drifted. No series "
                "while a verdict is Unknown.",
                (Query(f"{DRIFT_SCORE}{{{_operator()}}}", "{{signal}}"),),
                thresholds=((1.0, "red"),),
            ),
            Panel(
                "Feedback per second",
                "User ratings through the gateway, by the track that produced the rated answer "
                "and the rating (up/down or 1-5).",
                (
                    Query(
                        f"sum by (track, rating) (rate({FEEDBACK_METRIC}{feedback}[{RATE_INTERVAL}]))",
                        "{{track}} {{rating}}",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Negative feedback ratio",
                "The feedback-negative-ratio analysis template per track: down, 1 and 2 over every "
                "rating. No rating: no value.",
                tuple(
                    Query(feedback_negative_ratio(NAMESPACE, DEPLOYMENT, track, RATE_INTERVAL), track)
                    for track in TRACKS
                ),
                unit="percentunit",
            ),
        ),
    )


def rows(engine: Engine) -> tuple[Row, ...]:
    """The dashboard's rows of panels for `engine`."""
    return (_serving(engine), _rollout(), _drift_and_feedback())


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": colour, "value": value} for value, colour in panel.thresholds]
    options = panel.options or {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "none"},
    }
    custom = {"thresholdsStyle": {"mode": "line"}} if panel.thresholds else {}
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": _HEIGHT, "w": _WIDTH, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {
                "unit": panel.unit,
                "thresholds": {"mode": "absolute", "steps": steps},
                "custom": custom,
            },
            "overrides": [],
        },
        "options": options,
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": q.expr, "legendFormat": q.legend}
            for i, q in enumerate(panel.queries)
        ],
    }


def _variable(name: str, label: str, metric_selector: str, target_label: str) -> dict[str, Any]:
    query = f"label_values({metric_selector}, {target_label})"
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-variable"},
        "definition": query,
        "refresh": 2,  # on time range change: new LLMDeployments appear without a reload
        "sort": 1,
        "includeAll": False,
        "multi": False,
    }


def _variables(engine: Engine) -> list[dict[str, Any]]:
    # The queue gauge exists on every server from its start, before any request.
    gauge = engine.metrics.queue_size
    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "refresh": 1,
        },
        _variable("namespace", "Namespace", f'{gauge}{{{PROM_LABEL_DEPLOYMENT}!=""}}', "namespace"),
        _variable(
            "deployment", "LLMDeployment", f'{gauge}{{namespace="{NAMESPACE}"}}', PROM_LABEL_DEPLOYMENT
        ),
    ]


def dashboard(engine_name: str) -> dict[str, Any]:
    """The Grafana dashboard (JSON model) of the engine named `engine_name`."""
    engine = get_engine(engine_name)
    panels: list[dict[str, Any]] = []
    y = 0
    for row in rows(engine):
        panels.append(
            {"id": len(panels) + 1, "type": "row", "title": row.title, "collapsed": False, "panels": [],
             "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}}
        )  # fmt: skip
        y += 1
        for i, panel in enumerate(row.panels):
            x = (i % 2) * _WIDTH
            panels.append(_panel_json(panel, len(panels) + 1, x, y))
            if x:
                y += _HEIGHT
        if len(row.panels) % 2:
            y += _HEIGHT
    return {
        "uid": f"llmops-{engine.name}",
        "title": f"llmops / {_DISPLAY_NAMES.get(engine.name, engine.name)}",
        "description": f"LLMDeployments served by {_DISPLAY_NAMES.get(engine.name, engine.name)}: "
        "traffic, errors, latency, queue, GPUs, canary, drift and feedback (llmops-operator).",
        "tags": ["llmops", engine.name],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-3h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "templating": {"list": _variables(engine)},
        "panels": panels,
    }


def expressions(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every target of `board`, variables left in."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def variable_matches(board: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(variable name, series selector, label) of every `label_values` variable of `board`:
    Grafana asks Prometheus for the label's values over the series the selector matches."""
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        inner = variable["definition"].removeprefix("label_values(").removesuffix(")")
        series, _, label = inner.rpartition(",")
        yield variable["name"], series.strip(), label.strip()


# --- the chart templates -----------------------------------------------------------------------


def _escape_go_template(text: str) -> str:
    # Grafana's legends are `{{label}}`: print `{{` through a Go string literal so Helm leaves it.
    return text.replace("{{", '{{ "{{" }}')


def chart_template(engine_name: str, marker: str) -> str:
    """The Helm template of the engine's dashboard ConfigMap (rendered when grafanaDashboards.enabled),
    labelled for Grafana's dashboard sidecar."""
    text = json.dumps(dashboard(engine_name), indent=2, ensure_ascii=False)
    body = "".join(f"    {line}\n" for line in _escape_go_template(text).splitlines())
    return (
        f"{{{{- /* {marker} from devtools/llmops_dev/packaging/dashboards.py: do not edit; "
        "run `make manifests`. */}}\n"
        "{{- if .Values.grafanaDashboards.enabled }}\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        f'  name: {{{{ include "llmops.fullname" . }}}}-dashboard-{engine_name}\n'
        "  namespace: {{ default .Release.Namespace .Values.grafanaDashboards.namespace }}\n"
        "  labels:\n"
        '    {{- include "llmops.labels" . | nindent 4 }}\n'
        "    {{ .Values.grafanaDashboards.label }}: {{ .Values.grafanaDashboards.labelValue | quote }}\n"
        "  {{- with .Values.grafanaDashboards.annotations }}\n"
        "  annotations:\n"
        "    {{- toYaml . | nindent 4 }}\n"
        "  {{- end }}\n"
        "data:\n"
        f"  llmops-{engine_name}.json: |\n"
        f"{body}"
        "{{- end }}\n"
    )


def chart_templates(marker: str) -> dict[Path, str]:
    """Every engine's dashboard template, by path relative to the repository."""
    return {
        DASHBOARD_TEMPLATES / f"grafana-dashboard-{name}.yaml": chart_template(name, marker)
        for name in engine_names()
    }
