"""Spec sections for delivering a revision: the evaluation gate, the canary rollout, drift
detection and retraining.

Names follow the anchors: Argo Rollouts (`steps[].setWeight`, `pause.duration`, `failureLimit`,
`inconclusiveLimit`), Flagger (`thresholdRange`, `progressDeadlineSeconds`, `interval`) and
Kaito/KServe for Jobs. These sections are designed with the whole API; the lifecycle fills them in.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from llmops.api.common import (
    SHA40,
    WHITE_SPACE,
    X_LIST_MAP_KEYS,
    X_LIST_TYPE,
    X_PRESERVE_UNKNOWN,
    ApiModel,
    ConfigMapKeyRef,
    Duration,
    FreeForm,
    Image,
    LocalObjectReference,
    TokenSecretRef,
    cel,
    validations,
)
from llmops.api.metric_names import MetricName

# Cron: five fields, or one of the @-macros Kubernetes CronJobs accept.
# Five cron fields as the CronJob controller parses them (numbers, 3-letter month and day names,
# * and ?, joined by - / ,), separated by spaces or tabs (not \s: see WHITE_SPACE), or a macro.
# No "TZ=" prefix: Kubernetes refuses it in schedule (spec.timeZone is its place). Ranges are not
# checked here: "99 * * * *" still passes.
_CRON_ATOM = r"(\*|\?|[0-9]+|[A-Za-z]{3})"
_CRON_FIELD = rf"{_CRON_ATOM}([-/,]{_CRON_ATOM})*"
CRON = rf"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|({_CRON_FIELD}[ \t]+){{4}}{_CRON_FIELD})$"
REPO_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$"
DATASET_URL = rf"^[a-z][a-z0-9+.-]*://[^{WHITE_SPACE}]+$"

AnalysisTemplate = Literal[
    "error-ratio",
    "latency-p95",
    "time-per-token-p95",
    "queue-size",
    # Over the gateway's feedback counter, not the engine's metrics: the same for every engine.
    "feedback-negative-ratio",
    # Deprecated aliases of the names above, from when TGI was the only engine: accepted for one
    # more release (engine tgi only), and reported by the Deprecated condition.
    "tgi-error-ratio",
    "tgi-latency-p95",
    "tgi-time-per-token-p95",
    "tgi-queue-size",
]
ANALYSIS_TEMPLATES: tuple[str, ...] = get_args(AnalysisTemplate)
DEPRECATED_TEMPLATES: dict[str, str] = {
    "tgi-error-ratio": "error-ratio",
    "tgi-latency-p95": "latency-p95",
    "tgi-time-per-token-p95": "time-per-token-p95",
    "tgi-queue-size": "queue-size",
}
"""Deprecated analysis template name → the engine-neutral name it stands for."""
GATEWAY_TEMPLATES: tuple[str, ...] = ("feedback-negative-ratio",)
"""Analysis templates over the gateway's metrics (llmops.analysis.queries builds them, not the engine)."""
NEUTRAL_TEMPLATES: tuple[str, ...] = tuple(
    t for t in ANALYSIS_TEMPLATES if t not in DEPRECATED_TEMPLATES and t not in GATEWAY_TEMPLATES
)
"""The analysis templates every engine resolves to its own PromQL."""


def neutral_template(name: str) -> str:
    """The engine-neutral name of an analysis template (itself unless it is a deprecated alias)."""
    return DEPRECATED_TEMPLATES.get(name, name)


EvaluationRoute = Literal["chat", "completion", "generate"]


# ----------------------------------------------------------------------------------- evaluation

_PATH_FILE = r"^[^/].*$"


class DatasetPath(ApiModel):
    """A JSON Lines file on a volume mounted into the evaluation Job."""

    volume: FreeForm
    """A core/v1 Volume (name plus one volume source, e.g. persistentVolumeClaim)."""
    file: Annotated[str, StringConstraints(pattern=_PATH_FILE, min_length=1, max_length=1024)]
    """Path of the file relative to the volume's root."""


class DatasetHub(ApiModel):
    """One file of a Hugging Face dataset repository, at a pinned commit."""

    repo: Annotated[str, StringConstraints(pattern=REPO_ID, max_length=200)]
    """Dataset repository id, org/name."""
    revision: Annotated[str, StringConstraints(pattern=SHA40)]
    """Commit sha (40 hex): a gate must evaluate the same data every time."""
    filename: Annotated[str, StringConstraints(pattern=_PATH_FILE, min_length=1, max_length=1024)]
    """Path of the JSON Lines file in the repository."""
    token_secret_ref: TokenSecretRef | None = None
    """Token for a private or gated dataset (defaults to none)."""


_ONE_SOURCE = cel(
    "(has(self.configMapRef) ? 1 : 0) + (has(self.path) ? 1 : 0) + (has(self.hub) ? 1 : 0) == 1",
    "dataset needs exactly one source: configMapRef, path or hub",
)


class DatasetSource(ApiModel):
    """Where the evaluation prompts come from: exactly one of configMapRef, path, hub."""

    model_config = ConfigDict(json_schema_extra=validations(_ONE_SOURCE))

    config_map_ref: ConfigMapKeyRef | None = None
    """A ConfigMap key holding the JSON Lines dataset (up to ConfigMap's 1 MiB)."""
    path: DatasetPath | None = None
    """A file on a volume."""
    hub: DatasetHub | None = None
    """A file of a Hub dataset repository."""

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if sum(x is not None for x in (self.config_map_ref, self.path, self.hub)) != 1:
            raise ValueError(_ONE_SOURCE["message"])
        return self


_MIN_OR_MAX = cel("has(self.min) || has(self.max)", "a threshold needs min, max or both")
_MIN_LE_MAX = cel(
    "!has(self.min) || !has(self.max) || self.min <= self.max", "min must not exceed max", ".min"
)


class _Bounds(ApiModel):
    """The bounds of a threshold: min, max or both, and min no greater than max."""

    model_config = ConfigDict(json_schema_extra=validations(_MIN_OR_MAX, _MIN_LE_MAX))

    min: float | None = None
    """Lowest passing value (inclusive)."""
    max: float | None = None
    """Highest passing value (inclusive)."""

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError(_MIN_OR_MAX["message"])
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(_MIN_LE_MAX["message"])
        return self


class Threshold(_Bounds):
    """A bound on one evaluation metric; the revision passes when every threshold holds."""

    metric: MetricName
    """The metric (see llmops.api.metric_names)."""


HeldOutMetric = Literal["exactMatch", "contains", "tokenF1", "rougeL", "errorRate"]
"""What a feedback correction can score: the answer against the correction as its reference, and
whether the request got an answer at all."""
HELD_OUT_METRICS: tuple[str, ...] = get_args(HeldOutMetric)


class HeldOutThreshold(_Bounds):
    """A bound on one metric of the held-out set of corrections."""

    metric: HeldOutMetric
    """A metric a correction can score (exactMatch, contains, tokenF1, rougeL, errorRate)."""


class HeldOutCorrections(ApiModel):
    """The feedback corrections as a held-out set: the gate also sends the prompts whose feedback
    carried a ``correction`` (read from the capture store) and scores the answers against the
    corrections. Held out by a hash split of the request IDs: the store's ``split=heldout`` and
    ``split=train`` views of GET /v1/records never share a record, and the retrain Job's records
    URL (``LLMOPS_CAPTURE_RECORDS_URL``) is the ``train`` view. Needs spec.gateway.capture with
    the store, keeping prompts."""

    fraction: Annotated[float, Field(gt=0, le=0.5)] = 0.2
    """Share of the captured requests (by a hash of their requestId) held out of training and scored
    here. Changing it moves records between the two views: keep it fixed."""
    window: Duration = "7d"
    """Corrections on requests of this last stretch of time (the store keeps gateway.capture.retention)."""
    max_records: Annotated[int, Field(ge=1, le=5000)] = 500
    """The newest corrections scored, at most."""
    min_records: Annotated[int, Field(ge=1, le=5000)] = 30
    """Fewer corrections than this: the held-out set's verdict is InsufficientSamples, never a pass."""
    thresholds: Annotated[
        list[HeldOutThreshold],
        Field(max_length=5, json_schema_extra={X_LIST_TYPE: "map", X_LIST_MAP_KEYS: ["metric"]}),
    ] = []
    """Bounds on the held-out set's scores, judged as the gate's are (rates on their interval's bound)."""
    gates: Literal["Candidates", "All"] = "Candidates"
    """Candidates: only a retrained candidate's gate scores the held-out set (paired with the serving
    revision under spec.retrain.noWorseThan); All: every revision's gate."""


class HeldOutSpec(ApiModel):
    """Sets the gate scores besides spec.evaluation.dataset."""

    corrections: HeldOutCorrections
    """The prompts whose feedback carried a correction, with the correction as the expected answer."""


class EvaluationSpec(ApiModel):
    """The evaluation gate: a Job sends the dataset to the new revision (on its staging pods) and
    scores the answers; the revision is rolled out only when every threshold holds."""

    dataset: DatasetSource
    """The prompts (JSON Lines)."""
    thresholds: Annotated[
        list[Threshold],
        # A map keyed by metric: the apiserver refuses the same metric twice ("Duplicate value").
        Field(
            min_length=1, max_length=32, json_schema_extra={X_LIST_TYPE: "map", X_LIST_MAP_KEYS: ["metric"]}
        ),
    ]
    """Bounds the scores must meet, at most one entry per metric (use min and max together for a range)."""
    concurrency: Annotated[int, Field(ge=1, le=256)] = 8
    """Requests in flight at once."""
    timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 60
    """Timeout of one request."""
    max_new_tokens: Annotated[int, Field(ge=1, le=65536)] = 256
    """max_new_tokens sent with every prompt (TGI otherwise allows up to maxTotalTokens)."""
    active_deadline_seconds: Annotated[int, Field(ge=60)] = 3600
    """Deadline of the evaluation Job. Changing it evaluates nothing again: it holds from the next
    evaluation Job on (as do backoffLimit, workers and client; a change of any other field but
    schedule means a new evaluation)."""
    backoff_limit: Annotated[int, Field(ge=0, le=10)] = 2
    """Retries of the evaluation Job when it broke for a reason a retry may fix (the server
    unreachable, say). A failed model, or a bad dataset line or threshold, is never retried.
    Changing it evaluates nothing again: it holds from the next evaluation Job on."""
    schedule: Annotated[str, StringConstraints(pattern=CRON, max_length=128)] | None = None
    """Cron schedule to re-evaluate the serving revision (feeds drift.quality)."""
    image: Image | None = None
    """Image of the evaluation Job (defaults to the operator's image)."""
    route: EvaluationRoute = "chat"
    """How samples are sent: chat (the OpenAI-compatible /v1/chat/completions of either engine; a
    `prompt` sample becomes one user message), completion (/v1/completions, raw prompts; `messages`
    samples are refused) or generate (TGI's native route; engine tgi only)."""
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    """Processes the evaluation Job splits the dataset across (its CPU request grows with them).
    Changing it evaluates nothing again: it holds from the next evaluation Job on."""
    client: Literal["huggingface_hub", "aiohttp"] = "aiohttp"
    """The HTTP client of the evaluation: aiohttp, or huggingface_hub's AsyncInferenceClient, which
    sends the same requests for about six times the client CPU (llmops eval --transport).
    Changing it evaluates nothing again: it holds from the next evaluation Job on."""
    confidence: Annotated[float, Field(ge=0.5, le=0.999)] = 0.95
    """Confidence level of the rates' intervals: a threshold on a rate (exactMatch, errorRate, …)
    passes only when the bound of its Wilson interval at the dataset's size meets it, so a small
    dataset cannot pass a tight threshold (six prompts cannot show errorRate <= 0.01: that takes
    381 at 0.95)."""
    held_out: HeldOutSpec | None = None
    """Held-out sets scored besides the dataset (feedback corrections from the capture store)."""


# -------------------------------------------------------------------------------------- rollout


class Pause(ApiModel):
    """A pause after a step. Without a duration it waits for the llmops.io/promote annotation."""

    duration: Duration | None = None
    """How long to hold the weight, e.g. 10m."""


class RolloutStep(ApiModel):
    """One canary step: send setWeight percent of the traffic to the new revision, then pause."""

    set_weight: Annotated[int, Field(ge=0, le=100)]
    """Percent of traffic for the canary (0 to 100)."""
    pause: Pause | None = None
    """Hold the weight for a while (or until promoted) before the next step."""


_ONE_OF_TEMPLATE_QUERY = cel(
    "has(self.template) != has(self.query)", "set exactly one of template and query", ".template"
)
_ONE_CHECK = cel(
    "has(self.thresholdRange) || has(self.compareToStable)",
    "a metric needs thresholdRange, compareToStable or both",
)
_RANGE_BOUND = cel("has(self.min) || has(self.max)", "thresholdRange needs min, max or both")


class ThresholdRange(ApiModel):
    """Flagger's thresholdRange: the check passes when min <= value <= max."""

    model_config = ConfigDict(json_schema_extra=validations(_RANGE_BOUND))

    min: float | None = None
    """Lowest passing value."""
    max: float | None = None
    """Highest passing value."""

    @model_validator(mode="after")
    def _bound(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError(_RANGE_BOUND["message"])
        return self


class CompareToStable(ApiModel):
    """Pass while canary value <= maxRatio * stable value (same query on both tracks)."""

    max_ratio: Annotated[float, Field(gt=0)]
    """Largest allowed canary/stable ratio, e.g. 1.5."""


class AnalysisMetric(ApiModel):
    """One Prometheus check of the canary, run every analysis interval."""

    model_config = ConfigDict(json_schema_extra=validations(_ONE_OF_TEMPLATE_QUERY, _ONE_CHECK))

    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
    """Name of the check (in status and history)."""
    template: AnalysisTemplate | None = None
    """A built-in query, resolved by the engine to PromQL over its own metrics: error-ratio,
    latency-p95, time-per-token-p95, queue-size (the tgi-* names are deprecated aliases)."""
    query: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    """A PromQL query returning one number. Placeholders: {{ namespace }}, {{ name }}, {{ track }},
    {{ interval }}, and {{ selector }} (label matchers for the track's pods)."""
    threshold_range: ThresholdRange | None = None
    """Absolute bounds."""
    compare_to_stable: CompareToStable | None = None
    """Bound relative to the stable track."""

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if (self.template is None) == (self.query is None):
            raise ValueError(_ONE_OF_TEMPLATE_QUERY["message"])
        if self.threshold_range is None and self.compare_to_stable is None:
            raise ValueError(_ONE_CHECK["message"])
        return self


def _default_analysis_metrics() -> list[AnalysisMetric]:
    return [
        AnalysisMetric(name="error-ratio", template="error-ratio", threshold_range=ThresholdRange(max=0.05)),
        AnalysisMetric(
            name="latency-p95", template="latency-p95", compare_to_stable=CompareToStable(max_ratio=1.5)
        ),
    ]


class AnalysisSpec(ApiModel):
    """How the canary is judged between steps (Argo Rollouts/Flagger vocabulary)."""

    interval: Duration = "1m"
    """Time between measurements (also the PromQL rate window)."""
    failure_limit: Annotated[int, Field(ge=1, le=100)] = 2
    """Failed measurements that roll the canary back."""
    inconclusive_limit: Annotated[int, Field(ge=0, le=100)] = 3
    """Measurements without data (no traffic, no series) tolerated before the rollout pauses."""
    metrics: Annotated[list[AnalysisMetric], Field(max_length=16)] = Field(
        default_factory=_default_analysis_metrics,
        json_schema_extra={
            "default": [
                {"name": "error-ratio", "template": "error-ratio", "thresholdRange": {"max": 0.05}},
                {"name": "latency-p95", "template": "latency-p95", "compareToStable": {"maxRatio": 1.5}},
            ]
        },
    )
    """The checks; all must pass."""


class SmokeEvaluation(ApiModel):
    """A short evaluation run against the canary pods before the first traffic step."""

    enabled: bool = True
    """Run it."""
    samples: Annotated[int, Field(ge=1, le=1000)] = 20
    """Number of dataset samples sent."""


_ROUTE_NEEDED = cel(
    "!has(self.mode) || self.mode != 'gatewayAPI' || has(self.httpRouteRef)",
    "traffic.mode gatewayAPI requires httpRouteRef",
    ".httpRouteRef",
)


class TrafficSpec(ApiModel):
    """How traffic is split: by replica ratio behind the one Service, or by Gateway API weights."""

    model_config = ConfigDict(json_schema_extra=validations(_ROUTE_NEEDED))

    mode: Literal["replicas", "gatewayAPI"] = "replicas"
    """replicas: the weight is approximated by canary/stable pod counts; gatewayAPI: exact weights
    on backendRefs of an HTTPRoute."""
    http_route_ref: LocalObjectReference | None = None
    """The HTTPRoute whose backendRefs the operator weights (gatewayAPI mode)."""

    @model_validator(mode="after")
    def _route(self) -> Self:
        if self.mode == "gatewayAPI" and self.http_route_ref is None:
            raise ValueError(_ROUTE_NEEDED["message"])
        return self


_INCREASING = cel(
    "self.map(s, s.setWeight).isSorted() && self.all(s, self.exists_one(t, t.setWeight == s.setWeight))",
    "steps[].setWeight must be strictly increasing",
)


class RolloutSpec(ApiModel):
    """Progressive delivery of a new revision: canary steps judged by Prometheus analysis."""

    steps: Annotated[
        list[RolloutStep],
        Field(min_length=1, max_length=20, json_schema_extra=validations(_INCREASING)),
    ]
    """Canary steps, weights strictly increasing; after the last step the canary is promoted."""
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    """How each step is judged."""
    progress_deadline_seconds: Annotated[int, Field(ge=60)] = 3600
    """Time the canary may take to become ready (GPU scheduling, download, load) before rollback."""
    smoke_evaluation: SmokeEvaluation = Field(default_factory=SmokeEvaluation)
    """A quick evaluation on the canary before it takes traffic (needs spec.evaluation)."""
    traffic: TrafficSpec = Field(default_factory=TrafficSpec)
    """How traffic is split."""

    @model_validator(mode="after")
    def _increasing(self) -> Self:
        weights = [s.set_weight for s in self.steps]
        if any(a >= b for a, b in pairwise(weights)):
            raise ValueError(_INCREASING["message"])
        return self


# ---------------------------------------------------------------------------------------- drift

DriftSignal = Literal["inputLength", "generatedTokens", "requestDuration", "timePerOutputToken"]
DRIFT_SIGNALS: tuple[str, ...] = get_args(DriftSignal)
DEFAULT_DRIFT_SIGNALS: tuple[DriftSignal, ...] = ("inputLength", "generatedTokens")

_UNIQUE_SIGNALS = cel("self.all(s, self.exists_one(t, t == s))", "each signal may appear once")


class DriftReference(ApiModel):
    """What the current window is compared with."""

    mode: Literal["Promotion", "Offset"] = "Promotion"
    """Promotion: the bucket counts of the serving revision's first window of serving (with at
    least minSamples requests), frozen in status.drift.reference; a new serving revision or new
    bucket edges (changed token limits) collect it again. Offset: the same-length window `offset`
    into the past, at every check."""
    offset: Duration = "7d"
    """How far back the reference window ends in Offset mode (PromQL `offset`)."""


class TrafficDrift(ApiModel):
    """Drift of the traffic's distribution: the engine's histograms (input length, generated
    tokens, ...) over the current window against the reference, by PSI and KS."""

    signals: Annotated[
        list[DriftSignal], Field(max_length=4, json_schema_extra=validations(_UNIQUE_SIGNALS))
    ] = Field(
        default_factory=lambda: list(DEFAULT_DRIFT_SIGNALS),
        json_schema_extra={"default": list(DEFAULT_DRIFT_SIGNALS)},
    )
    """Which histograms to compare (an empty list turns the traffic signals off)."""
    psi: Annotated[float, Field(gt=0)] = 0.2
    """Population stability index at or above which a signal has drifted (0.1-0.2 moderate, >=0.2 major)."""
    ks: Annotated[float, Field(gt=0, le=1)] = 0.2
    """Kolmogorov-Smirnov D (largest gap between the two CDFs at the bucket edges) at or above
    which a signal has drifted."""
    min_samples: Annotated[int, Field(ge=1)] = 1000
    """Requests each window must hold; below it the verdict is Unknown, never drift."""
    bins: Annotated[int, Field(ge=2, le=100)] = 10
    """PSI merges the engine's buckets into at most this many bins of equal reference mass: PSI
    over many sparse buckets grows with noise alone (about bins/samples)."""
    reference: DriftReference = Field(default_factory=DriftReference)
    """The reference distribution."""

    @model_validator(mode="after")
    def _unique(self) -> Self:
        if len(set(self.signals)) != len(self.signals):
            raise ValueError(_UNIQUE_SIGNALS["message"])
        return self


class QualityDrift(ApiModel):
    """Drift measured by the scheduled evaluations: the score fell from the one the serving
    revision had at its evaluation gate."""

    metric: MetricName
    """The evaluation metric to watch (it must be one of spec.evaluation.thresholds)."""
    max_drop: Annotated[float, Field(gt=0)]
    """Largest tolerated fall from the gate's score (a rise for metrics whose threshold is a max)."""
    consecutive: Annotated[int, Field(ge=1, le=100)] = 2
    """Scheduled evaluations in a row that must show the drop."""


class FeedbackDrift(ApiModel):
    """Drift measured by user feedback: the share of negative ratings (llmops_feedback_total,
    exported by the gateway) over the current window."""

    max_negative_ratio: Annotated[float, Field(gt=0, le=1)] = 0.2
    """Negative share of the ratings at or above which the signal has drifted."""
    min_samples: Annotated[int, Field(ge=1)] = 100
    """Ratings the window must hold; below it the verdict is Unknown."""


class PromptDrift(ApiModel):
    """Drift of what users ask: the capture store's hashed-term histogram of the captured prompts
    (GET /v1/terms) over the current window against the serving revision's first window of
    serving, by PSI. Needs spec.gateway.capture sending prompts to the store."""

    psi: Annotated[float, Field(gt=0)] = 0.2
    """PSI of the two term distributions at or above which the prompts have drifted."""
    min_samples: Annotated[int, Field(ge=1)] = 200
    """Captured prompts each window must hold; below it the verdict is Unknown, never drift."""
    buckets: Annotated[int, Field(ge=16, le=65536)] = 1024
    """Buckets the store hashes terms into (more: fewer unrelated words share one)."""
    bins: Annotated[int, Field(ge=2, le=1024)] = 50
    """PSI merges the buckets into at most this many bins of equal reference mass, as for traffic:
    PSI over 1024 sparse buckets grows with sampling noise alone."""


class DriftSpec(ApiModel):
    """Drift detection on the serving revision, checked every interval: traffic distribution (PSI
    and KS of the engine's histograms against a reference), quality (scheduled evaluation scores
    against the gate's) and feedback. The result is status.drift and the Drifted condition."""

    enabled: bool = True
    """Run the checks."""
    interval: Duration = "1h"
    """Time between checks."""
    window: Duration = "24h"
    """Length of the current (and the reference) window; at least twice the scrape interval
    (spec.monitoring.podMonitor.interval), since increase() needs two samples."""
    traffic: TrafficDrift = Field(default_factory=TrafficDrift)
    """Drift of the traffic's distribution."""
    quality: QualityDrift | None = None
    """Drift of scheduled evaluation scores (needs spec.evaluation.schedule)."""
    feedback: FeedbackDrift | None = None
    """Drift of user feedback (needs the gateway's llmops_feedback_total)."""
    prompts: PromptDrift | None = None
    """Drift of the captured prompts' content (needs spec.gateway.capture with the store, keeping
    prompts)."""


# -------------------------------------------------------------------------------------- retrain


_PRESERVED = {"type": "object", X_PRESERVE_UNKNOWN: True}
# A schema for the two levels the operator relies on, open below them: the apiserver refuses a
# template without spec.template naming the field ("spec.retrain.jobTemplate.spec.template:
# Required value"). CEL cannot: a schemaless object has no fields to ask has() about.
JobTemplate = Annotated[
    dict[str, Any],
    Field(
        json_schema_extra={
            X_PRESERVE_UNKNOWN: True,
            "required": ["spec"],
            "properties": {
                "metadata": dict(_PRESERVED),
                "spec": {
                    **_PRESERVED,
                    "required": ["template"],
                    "properties": {"template": dict(_PRESERVED)},
                },
            },
        }
    ),
]
_JOB_TEMPLATE_MESSAGE = (
    "retrain.jobTemplate needs spec.template (a batch/v1 Job template: {metadata, spec: {template}})"
)


class NoWorseThan(ApiModel):
    """How much worse than the serving revision's gate score a retrained candidate may score on one
    metric. "Worse" follows the metric's threshold: lower for a ``min`` bound (exactMatch), higher
    for a ``max`` bound (errorRate)."""

    metric: MetricName
    """A metric of spec.evaluation.thresholds."""
    max_drop: Annotated[float, Field(ge=0)] = 0.0
    """Largest allowed loss against the serving revision's score (0: not worse at all)."""


class RetrainSpec(ApiModel):
    """Retraining on drift: the operator runs jobTemplate; the Job reports the new model revision,
    which then goes through the evaluation gate and the rollout like any other revision."""

    enabled: bool = True
    """Start retrain Jobs on drift."""
    job_template: JobTemplate
    """A batch/v1 Job template ({metadata, spec}), kept verbatim; spec.template is required."""
    approval: Literal["Manual", "Auto"] = "Manual"
    """Manual: a retrained candidate that passed its gate waits before its canary until the annotation
    llmops.io/approve-retrain names its run (status.candidate.run); Auto: it goes straight on."""
    cooldown: Duration = "24h"
    """Least time between two retrains."""
    max_retrains_per_day: Annotated[int, Field(ge=0, le=24)] = 1
    """Cap on retrains in any 24 hours (0 disables retraining without removing the section)."""
    no_worse_than: Annotated[
        list[NoWorseThan],
        Field(max_length=32, json_schema_extra={X_LIST_TYPE: "map", X_LIST_MAP_KEYS: ["metric"]}),
    ] = []
    """A candidate must also score no worse than what serves, per metric, beyond these tolerances;
    one that loses never serves (condition Candidate, reason CandidateWorse, with the numbers)."""
    dataset_url: Annotated[str, StringConstraints(pattern=DATASET_URL, max_length=2048)] | None = None
    """The training data, given to the Job as LLMOPS_DATASET_URL (any scheme your trainer reads:
    https, s3, gs, hf, ...). Absent: the capture store's records (the same URL as
    LLMOPS_CAPTURE_RECORDS_URL) when the store is on, else no LLMOPS_DATASET_URL."""
    output_repo: Annotated[str, StringConstraints(pattern=REPO_ID, max_length=200)] | None = None
    """The Hub repository (org/name) the Job should publish to, given as LLMOPS_OUTPUT_REPO.
    Absent: no LLMOPS_OUTPUT_REPO (the trainer decides, e.g. the base model's repository)."""

    @model_validator(mode="after")
    def _template(self) -> Self:
        spec = self.job_template.get("spec")
        if not isinstance(spec, dict) or "template" not in spec:
            raise ValueError(_JOB_TEMPLATE_MESSAGE)
        return self
