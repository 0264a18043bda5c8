"""The LLMDeployment status: the user interface of the operator (principle 4).

Written only by the operator. The CRD declares this schema and also preserves unknown fields on
`status`, because kopf writes its own bookkeeping there.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from llmops.api.common import X_LIST_MAP_KEYS, X_LIST_TYPE, ApiModel, Timestamp

HISTORY_LIMIT = 20
CONDITIONS_LIMIT = 16

ShortText = Annotated[str, StringConstraints(max_length=256)]
Message = Annotated[str, StringConstraints(max_length=4096)]


class Phase(StrEnum):
    """Where an LLMDeployment is in its life (closed set: printer column and Argo CD health read it)."""

    PENDING = "Pending"
    """Accepted; waiting for something the operator cannot do itself (a Secret, a PVC, GPUs)."""
    CACHING = "Caching"
    """The download Job is filling the model cache."""
    EVALUATING = "Evaluating"
    """The evaluation gate is running against the new revision's staging pods."""
    CANARY = "Canary"
    """The new revision takes part of the traffic; analysis decides each step."""
    SERVING = "Serving"
    """The desired revision serves all traffic and is available."""
    ROLLED_BACK = "RolledBack"
    """The canary failed and the stable revision serves again; the spec's revision is not served."""
    RETRAINING = "Retraining"
    """A retrain Job is producing a new revision; the current one keeps serving."""
    FAILED = "Failed"
    """A permanent error: the conditions say what to fix in the spec or the cluster."""
    DEGRADED = "Degraded"
    """Serving, but with fewer ready replicas than desired or a detected drift."""


class Condition(ApiModel):
    """A metav1.Condition."""

    model_config = ConfigDict(extra="allow")

    type: Annotated[str, StringConstraints(max_length=316)]
    """Available, Progressing, Degraded, ModelCached, Evaluated or Promoted."""
    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown (a failed observation, not a negative one)."""
    reason: Annotated[str, StringConstraints(max_length=1024)] = ""
    """CamelCase reason (llmops.api.conditions)."""
    message: Message = ""
    """What happened and what to do."""
    observed_generation: int | None = None
    """metadata.generation the condition was computed for."""
    last_transition_time: Timestamp | None = None
    """When status last changed."""


class AnalysisCheck(ApiModel):
    """The latest result of one analysis metric."""

    model_config = ConfigDict(extra="allow")

    name: ShortText
    """The analysis metric's name."""
    verdict: Literal["Pass", "Fail", "Inconclusive", "Error"]
    """Outcome of the measurement."""
    value: float | None = None
    """Measured canary value (absent when there was no data)."""
    stable_value: float | None = None
    """Measured stable value, for compareToStable."""
    message: Message = ""
    """Why (e.g. the query returned no series)."""
    time: Timestamp | None = None
    """When it was measured."""


class CanaryStatus(ApiModel):
    """State of a running canary; it survives operator restarts here, not in memory."""

    model_config = ConfigDict(extra="allow")

    revision: ShortText | None = None
    """Revision under test."""
    weight: int | None = None
    """Percent of traffic it takes now."""
    step: int | None = None
    """Index of the current step in spec.rollout.steps."""
    step_start_time: Timestamp | None = None
    """When the current step began (for pause durations)."""
    start_time: Timestamp | None = None
    """When the canary began (for progressDeadlineSeconds)."""
    failed_checks: int = 0
    """Failed measurements so far (rollback at analysis.failureLimit)."""
    inconclusive_checks: int = 0
    """Measurements without data so far."""
    checks: Annotated[list[AnalysisCheck], Field(max_length=16)] = []
    """Latest result of each analysis metric."""
    state: Literal["Progressing", "Paused", "Promoting", "RolledBack"] | None = None
    """Progressing through the steps, Paused (why: message), Promoting (stable moves to the
    revision; the canary stays until stable is ready), or RolledBack (sticks until the spec's
    revision changes)."""
    message: Message = ""
    """Why the canary is where it is (e.g. the pause reason, the failing metric)."""
    ready_time: Timestamp | None = None
    """When every canary pod first was ready (analysis starts from there)."""
    last_check_time: Timestamp | None = None
    """When the analysis last measured."""
    step_checks: int = 0
    """Passing measurements in a row at the current step; any other verdict resets it to 0. A
    step advances (and the last one promotes) only while it is above 0: on a passing latest
    measurement."""
    stable_revision: ShortText | None = None
    """The revision the canary is compared with (and rolled back to)."""
    smoke: Literal["Running", "Passed", "Failed", "Broken"] | None = None
    """The smoke evaluation of the canary pods before they get traffic (spec.rollout.smokeEvaluation)."""


class MetricResult(ApiModel):
    """One evaluation metric against its threshold."""

    model_config = ConfigDict(extra="allow")

    metric: ShortText
    """Metric name."""
    value: float | None = None
    """Score (absent if it could not be computed)."""
    min: float | None = None
    """Threshold min, if any."""
    max: float | None = None
    """Threshold max, if any."""
    passed: bool
    """Whether the value met the threshold."""


class EvaluationStatus(ApiModel):
    """The last evaluation verdict."""

    model_config = ConfigDict(extra="allow")

    revision: ShortText | None = None
    """Revision evaluated."""
    job: ShortText | None = None
    """Name of the evaluation Job."""
    passed: bool | None = None
    """Verdict (absent while running)."""
    time: Timestamp | None = None
    """When the verdict was reached."""
    metrics: Annotated[list[MetricResult], Field(max_length=32)] = []
    """Per-threshold results."""
    broken: Message | None = None
    """Set when the evaluation itself could not be done (not a verdict on the model): why."""


DriftVerdict = Literal["Drifted", "NoDrift", "Unknown"]
REFERENCE_EDGES_LIMIT = 128
"""Bucket edges kept per reference histogram (TGI's token histograms have 100, durations 35)."""


class DriftWindow(ApiModel):
    """A time window [start, end] a statistic was computed over."""

    model_config = ConfigDict(extra="allow")

    start: Timestamp
    """Start of the window."""
    end: Timestamp
    """End of the window."""


class DriftSignalStatus(ApiModel):
    """The latest verdict of one drift signal, with the numbers behind it."""

    model_config = ConfigDict(extra="allow")

    signal: ShortText
    """inputLength, generatedTokens, requestDuration, timePerOutputToken, quality or feedback."""
    verdict: DriftVerdict
    """Drifted, NoDrift, or Unknown (too few samples, no reference yet, Prometheus unreachable)."""
    reason: ShortText = ""
    """Why, as a CamelCase reason (InsufficientSamples, CollectingReference, ObservationFailed, ...)."""
    value: float | None = None
    """The statistic: PSI for traffic signals, the score drop for quality, the negative ratio for feedback."""
    threshold: float | None = None
    """The value at or above which the signal has drifted."""
    ks: float | None = None
    """Kolmogorov-Smirnov D of a traffic signal (second statistic)."""
    ks_threshold: float | None = None
    """The D at or above which a traffic signal has drifted."""
    samples: float | None = None
    """Requests (ratings, scheduled runs in a row) behind the value: the smaller of the two windows."""
    min_samples: int | None = None
    """Samples needed for a verdict."""
    message: Message = ""
    """The verdict in words, with the numbers."""
    current: DriftWindow | None = None
    """The window measured."""
    reference: DriftWindow | None = None
    """The window it was compared with."""


class ReferenceHistogram(ApiModel):
    """One histogram of the reference window: bucket upper edges and de-cumulated counts."""

    model_config = ConfigDict(extra="allow")

    signal: ShortText
    """The traffic signal."""
    edges: Annotated[list[float], Field(max_length=REFERENCE_EDGES_LIMIT)]
    """Finite upper bucket edges (`le`), ascending; the +Inf bucket is implicit."""
    counts: Annotated[list[float], Field(max_length=REFERENCE_EDGES_LIMIT + 1)]
    """Requests per bucket (not cumulative), one more than edges (the last is above every edge)."""


class DriftReferenceStatus(ApiModel):
    """The frozen reference of the serving revision (spec.drift.traffic.reference.mode Promotion)."""

    model_config = ConfigDict(extra="allow")

    revision: ShortText
    """The revision it belongs to: a new serving revision collects a new one."""
    start: Timestamp
    """Start of the reference window."""
    end: Timestamp
    """End of the reference window: the first check at or after it freezes the counts."""
    histograms: Annotated[list[ReferenceHistogram], Field(max_length=4)] = []
    """The frozen counts (empty while the reference is being collected)."""
    message: Message = ""
    """Why the reference is (being) collected again, if it was."""


class QualityDriftStatus(ApiModel):
    """Bookkeeping of the quality signal: each scheduled run is counted once."""

    model_config = ConfigDict(extra="allow")

    last_job: ShortText | None = None
    """The scheduled evaluation Job last compared."""
    consecutive_drops: int = 0
    """Scheduled evaluations in a row that showed a drop above quality.maxDrop."""
    runs: int = 0
    """Scheduled evaluations of the serving revision compared so far."""
    last_score: float | None = None
    """The metric's score in the last compared run."""
    last_drop: float | None = None
    """How much worse than the gate's score it was (negative: better)."""


class DriftStatus(ApiModel):
    """Drift of the serving revision: the latest verdict per signal."""

    model_config = ConfigDict(extra="allow")

    revision: ShortText | None = None
    """The serving revision checked."""
    last_check_time: Timestamp | None = None
    """When the traffic and feedback signals were last measured."""
    signals: Annotated[list[DriftSignalStatus], Field(max_length=8)] = []
    """The latest verdict of each configured signal."""
    reference: DriftReferenceStatus | None = None
    """The frozen reference distribution (Promotion mode)."""
    quality: QualityDriftStatus | None = None
    """Bookkeeping of the quality signal."""


class RetrainStatus(ApiModel):
    """Retraining bookkeeping (cooldown and daily cap survive restarts here)."""

    model_config = ConfigDict(extra="allow")

    runs: int = 0
    """Retrain runs started so far; the next Job is `<name>-retrain-<runs + 1>`."""
    job: ShortText | None = None
    """The running or last retrain Job (also the run ID)."""
    state: Literal["Running", "Succeeded", "Failed"] | None = None
    """Where the last run is."""
    base_revision: ShortText | None = None
    """The revision that served when the run started (LLMOPS_BASE_REVISION)."""
    trigger: Message = ""
    """Why the run started: the drift verdict with its numbers, or the annotation."""
    message: Message = ""
    """What happened: the candidate, what was wrong with the Job or its report, or why no retrain starts."""
    last_start_time: Timestamp | None = None
    """When the last retrain started (cooldown)."""
    start_times: Annotated[list[Timestamp], Field(max_length=24)] = []
    """Starts within the last 24 hours (maxRetrainsPerDay)."""
    candidate_model: ShortText | None = None
    """The Hub repository the last run reported."""
    candidate_revision: ShortText | None = None
    """The revision (40-hex commit) the last run reported."""
    candidate_path: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """Or the path on the model cache it reported (a full model or a LoRA adapter)."""
    annotation: ShortText | None = None
    """The llmops.io/retrain value last acted upon."""
    awaiting_approval: bool = False
    """True while a Manual approval is pending (annotate llmops.io/approve-retrain)."""


class ManualGates(ApiModel):
    """Annotation values already acted upon, so a stale annotation does not act twice."""

    model_config = ConfigDict(extra="allow")

    promote: ShortText | None = None
    """The llmops.io/promote value last acted upon (cleared when the annotation is removed)."""
    abort: ShortText | None = None
    """The llmops.io/abort value last acted upon (cleared when the annotation is removed)."""


class HistoryEntry(ApiModel):
    """One decision, with the numbers behind it (bounded audit trail)."""

    model_config = ConfigDict(extra="allow")

    time: Timestamp
    """When it was decided."""
    action: ShortText
    """What was done, e.g. Deployed, Evaluated, CanaryStep, Promoted, RolledBack, RetrainStarted."""
    revision: ShortText | None = None
    """Revision concerned."""
    reason: ShortText = ""
    """CamelCase reason."""
    message: Message = ""
    """Details: the measured values and thresholds."""


class LLMDeploymentStatus(ApiModel):
    """Observed state of an LLMDeployment."""

    # kopf keeps data under status too; keep what we do not model rather than drop it.
    model_config = ConfigDict(extra="allow")

    observed_generation: int | None = None
    """metadata.generation this status was computed for."""
    phase: Phase | None = None
    """Where the LLMDeployment is in its life."""
    conditions: Annotated[
        list[Condition],
        Field(
            max_length=CONDITIONS_LIMIT,
            json_schema_extra={X_LIST_TYPE: "map", X_LIST_MAP_KEYS: ["type"]},
        ),
    ] = []
    """Available, Progressing, Degraded, ModelCached, Evaluated, Promoted."""
    ready: ShortText | None = None
    """Ready replicas over desired replicas, like a Deployment's READY column ("1/1")."""
    ready_replicas: int | None = None
    """Ready serving pods (all tracks that take traffic)."""
    replicas: int | None = None
    """Desired serving pods."""
    serving_revision: ShortText | None = None
    """Revision that serves production traffic (stable)."""
    desired_revision: ShortText | None = None
    """Revision in spec.model.revision the operator is working towards."""
    endpoint: Annotated[str, StringConstraints(max_length=512)] | None = None
    """In-cluster URL, http://<service>.<namespace>.svc.cluster.local:<port>."""
    model: Annotated[str, StringConstraints(max_length=200)] | None = None
    """Repository id being served."""
    canary: CanaryStatus | None = None
    """The running canary."""
    evaluation: EvaluationStatus | None = None
    """The last evaluation verdict."""
    scheduled_evaluation: EvaluationStatus | None = None
    """The latest scheduled re-evaluation of the serving revision (spec.evaluation.schedule)."""
    drift: DriftStatus | None = None
    """The last drift check."""
    retrain: RetrainStatus | None = None
    """Retraining bookkeeping."""
    manual_gates: ManualGates | None = None
    """Manual gate annotations already acted upon."""
    history: Annotated[list[HistoryEntry], Field(max_length=HISTORY_LIMIT)] = []
    """Latest decisions, oldest first, at most 20."""
    last_applied_spec_hash: ShortText | None = None
    """Hash of the spec last applied to the children (Flagger's lastAppliedSpec)."""
    last_promoted_revision: ShortText | None = None
    """The revision the last canary promoted."""
    last_promoted_spec_hash: ShortText | None = None
    """Hash of the spec last promoted: a return to it needs no new analysis."""
