"""The LLMDeployment status: the user interface of the operator (principle 4).

Written only by the operator. The CRD declares this schema and also preserves unknown fields on
`status`, because kopf writes its own bookkeeping there.

Two views of the same schema: the pydantic models (snake_case attributes, camelCase aliases)
generate the CRD and parse a stored object; the ``...Dict`` TypedDicts at the end are the
camelCase JSON the lifecycle reads from and writes to ``status``, so that a type checker checks
its keys. tests/unit/test_api_models.py checks that both views have the same keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal, NotRequired, TypedDict

from pydantic import ConfigDict, Field, StringConstraints

from llmops.api.common import X_LIST_MAP_KEYS, X_LIST_TYPE, ApiModel, Timestamp

HISTORY_LIMIT = 20
CONDITIONS_LIMIT = 32
"""Room for every condition type the operator writes (15 today) and the ones to come."""

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
    """The desired revision was rolled out, and replicas are missing for a reason its pods show
    (a crash loop, no GPU left for a replacement); whatever is ready keeps serving. A replica only
    starting again (replaced, or added by a scale-up) is not Degraded."""


_ANYTIME = frozenset({Phase.PENDING, Phase.FAILED})
"""A missing prerequisite or a permanent error can stop the pipeline at any point."""
_PIPELINE = frozenset({Phase.CACHING, Phase.EVALUATING, Phase.CANARY})
"""A new spec revision enters the pipeline at the first stage that applies to it."""
_SETTLED = frozenset({Phase.SERVING, Phase.DEGRADED})
"""The desired revision serves (with all or fewer ready replicas)."""

PHASE_TRANSITIONS: Mapping[Phase | None, frozenset[Phase]] = {
    # The first pass: nothing serves yet, so no canary (there is no stable to compare with).
    None: _ANYTIME | _SETTLED | {Phase.CACHING, Phase.EVALUATING},
    Phase.PENDING: _ANYTIME | _PIPELINE | _SETTLED,
    Phase.CACHING: _ANYTIME | _PIPELINE | _SETTLED,
    Phase.EVALUATING: _ANYTIME | _PIPELINE | _SETTLED,
    # Only a canary can be rolled back.
    Phase.CANARY: _ANYTIME | _PIPELINE | _SETTLED | {Phase.ROLLED_BACK},
    Phase.ROLLED_BACK: _ANYTIME | _PIPELINE | _SETTLED,
    # A retrain starts only from a serving model.
    Phase.SERVING: _ANYTIME | _PIPELINE | _SETTLED | {Phase.RETRAINING},
    Phase.DEGRADED: _ANYTIME | _PIPELINE | _SETTLED | {Phase.RETRAINING},
    Phase.RETRAINING: _ANYTIME | _PIPELINE | _SETTLED,
    Phase.FAILED: _ANYTIME | _PIPELINE | _SETTLED,
}
"""The phase moves ``plan()`` may make, from a phase (None: no status yet) to the next; staying
is always allowed. tests/testkit/planning.py checks every pass of the unit scenarios against it."""


def phase_change_allowed(before: str | None, after: str) -> bool:
    """Whether a pass may move the phase from ``before`` to ``after`` (see PHASE_TRANSITIONS)."""
    if before == after:
        return True
    origin = Phase(before) if before is not None else None
    return Phase(after) in PHASE_TRANSITIONS[origin]


class CanaryState(StrEnum):
    """Where a canary is (status.canary.state; the lifecycle's canary stage moves it)."""

    PROGRESSING = "Progressing"
    """Going through spec.rollout.steps: a step advances after its pause and a passing measurement."""
    PAUSED = "Paused"
    """Held without failing: no data, a rejected query, unschedulable pods or a broken smoke evaluation."""
    PROMOTING = "Promoting"
    """Every step passed (or llmops.io/promote): stable rolls to the revision; the canary serves meanwhile."""
    PROMOTED = "Promoted"
    """Stable serves the revision and the canary is gone (status.canary is cleared in the same pass)."""
    ROLLED_BACK = "RolledBack"
    """Failed: stable serves all traffic again; sticks until the spec's revision changes."""


class SmokeState(StrEnum):
    """The smoke evaluation of the canary pods before they take traffic (status.canary.smoke)."""

    RUNNING = "Running"
    """The smoke Job runs against the canary pods."""
    PASSED = "Passed"
    """The canary pods answered well enough: they may take traffic."""
    FAILED = "Failed"
    """The model failed the smoke thresholds: the canary rolls back."""
    BROKEN = "Broken"
    """The smoke evaluation itself could not run: the canary pauses."""


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


class Outcome(StrEnum):
    """The verdict of one analysis check (status.canary.checks[].verdict; llmops.analysis decides it)."""

    PASS = "Pass"
    """A number that met every bound."""
    FAIL = "Fail"
    """A number that broke a bound: evidence against the canary."""
    INCONCLUSIVE = "Inconclusive"
    """No number to judge (no data, NaN, Prometheus unreachable): never promote on it."""
    ERROR = "Error"
    """The query is wrong (Prometheus rejected it): only a spec fix helps."""


class AnalysisCheck(ApiModel):
    """The latest result of one analysis metric."""

    model_config = ConfigDict(extra="allow")

    name: ShortText
    """The analysis metric's name."""
    verdict: Outcome
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
    state: CanaryState | None = None
    """Progressing through the steps, Paused (why: message), Promoting (stable moves to the
    revision; the canary stays until stable is ready), Promoted, or RolledBack (sticks until the
    spec's revision changes)."""
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
    smoke: SmokeState | None = None
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
    """Whether the value met the threshold (for a rate: whether the bound of its interval did)."""
    verdict: Literal["Passed", "Failed", "InsufficientSamples"] | None = None
    """Passed, Failed, or InsufficientSamples: the dataset is too small to ever show the threshold."""
    samples: int | None = None
    """For a rate: the prompts it was measured on (n)."""
    lower: float | None = None
    """For a rate: the lower bound of its confidence interval."""
    upper: float | None = None
    """For a rate: the upper bound of its confidence interval."""
    required_samples: int | None = None
    """With InsufficientSamples: the prompts needed to show the threshold even with perfect results."""


class EvaluationCounts(ApiModel):
    """What the evaluation's requests did."""

    model_config = ConfigDict(extra="allow")

    samples: int | None = None
    """Prompts sent."""
    errors: int | None = None
    """Prompts with no answer after every retry."""
    retried: int | None = None
    """Prompts that needed at least one retry (errorRate counts them: their first request failed)."""
    retries: int | None = None
    """Retries sent."""


class PairedMetric(ApiModel):
    """One metric of a paired comparison: the candidate and the serving revision on the same prompts."""

    model_config = ConfigDict(extra="allow")

    metric: ShortText
    """Metric name."""
    candidate: float | None = None
    """The candidate's value (absent in a compacted report)."""
    baseline: float | None = None
    """The serving revision's value on the same prompts (absent in a compacted report)."""
    delta: float | None = None
    """candidate - baseline."""
    n: int | None = None
    """Prompts compared."""
    wins: int | None = None
    """Prompts the candidate did better on."""
    losses: int | None = None
    """Prompts the candidate did worse on."""
    p_value: float | None = None
    """The paired test's p-value (exact McNemar or sign test)."""
    test: ShortText | None = None
    """Which test."""


class HeldOutScore(ApiModel):
    """One metric of the held-out set: its value, and its threshold's verdict when it has one."""

    model_config = ConfigDict(extra="allow")

    metric: ShortText
    """Metric name."""
    value: float | None = None
    """Score on the corrections."""
    samples: int | None = None
    """For a rate: the corrections it was measured on."""
    min: float | None = None
    """Threshold min (spec.evaluation.heldOut.corrections.thresholds), if any."""
    max: float | None = None
    """Threshold max, if any."""
    passed: bool | None = None
    """Whether the threshold held (absent: the metric has no threshold on this set)."""
    verdict: Literal["Passed", "Failed", "InsufficientSamples"] | None = None
    """The threshold's verdict."""
    lower: float | None = None
    """For a thresholded rate: the lower bound of its confidence interval."""
    upper: float | None = None
    """For a thresholded rate: the upper bound of its confidence interval."""


class HeldOutStatus(ApiModel):
    """The held-out set of feedback corrections, as the gate scored it."""

    model_config = ConfigDict(extra="allow")

    verdict: Literal["Passed", "Failed", "InsufficientSamples"] | None = None
    """Passed, Failed (a threshold of the set), or InsufficientSamples (fewer than minRecords)."""
    records: int | None = None
    """Corrections scored."""
    min_records: int | None = None
    """spec.evaluation.heldOut.corrections.minRecords when it was scored."""
    skipped: int | None = None
    """Corrections the route could not send (a chat conversation on a raw-prompt route)."""
    message: Message | None = None
    """The set's verdict in words."""
    metrics: Annotated[list[HeldOutScore], Field(max_length=8)] = []
    """The scores on the corrections."""
    comparison: Annotated[list[PairedMetric], Field(max_length=8)] = []
    """A candidate's gate: each compared metric against the serving revision on the same corrections."""


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
    verdict: Literal["Passed", "Failed", "InsufficientSamples"] | None = None
    """Passed, Failed, or InsufficientSamples (too few prompts to show a threshold: not a pass)."""
    confidence: float | None = None
    """Confidence level of the rates' intervals."""
    counts: EvaluationCounts | None = None
    """What the requests did: errors, retried prompts, retries."""
    comparison: Annotated[list[PairedMetric], Field(max_length=32)] = []
    """A retrained candidate's gate only: each compared metric against the serving revision on the
    same prompts (the report's paired comparison)."""
    held_out: HeldOutStatus | None = None
    """The held-out set of feedback corrections (spec.evaluation.heldOut), when this gate scored it."""


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
    """inputLength, generatedTokens, requestDuration, timePerOutputToken, quality, feedback or prompts."""
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


class PromptsReferenceStatus(ApiModel):
    """The prompts signal's reference window: only its bounds, since the capture store keeps the
    records and computes the window's term histogram again at every check."""

    model_config = ConfigDict(extra="allow")

    revision: ShortText
    """The revision it belongs to: a new serving revision collects a new one."""
    start: Timestamp
    """Start of the reference window."""
    end: Timestamp
    """End of the reference window: the first check at or after it freezes it."""
    prompts: int | None = None
    """Captured prompts in the window when it was frozen (absent while collecting)."""
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
    prompts_reference: PromptsReferenceStatus | None = None
    """The prompts signal's reference window (spec.drift.prompts)."""


class AdapterStatus(ApiModel):
    """A LoRA adapter served on top of the model (spec.model.adapter, or a retrain run's report)."""

    model_config = ConfigDict(extra="allow")

    name: ShortText
    """Its id: the gateway selects it for every request (TGI adapter_id, OpenAI model)."""
    path: Annotated[str, StringConstraints(max_length=1024)]
    """Its folder on the model cache."""
    base_revision: ShortText
    """The Hub revision of the model it applies to (spec.model.revision to pin it)."""


class RetrainStatus(ApiModel):
    """Retraining bookkeeping (cooldown and daily cap survive restarts here)."""

    model_config = ConfigDict(extra="allow")

    runs: int = 0
    """Retrain runs started so far; the next Job is `<name>-retrain-<runs + 1>`."""
    job: ShortText | None = None
    """The running or last retrain Job (also the run ID)."""
    state: Literal["Running", "Succeeded", "Failed", "Abandoned"] | None = None
    """Where the last run is (Abandoned: spec.model changed while it ran; its Job was deleted)."""
    base_model: ShortText | None = None
    """The model that served when the run started (LLMOPS_BASE_MODEL)."""
    base_revision: ShortText | None = None
    """The Hub revision that served when the run started (LLMOPS_BASE_REVISION)."""
    base_adapter: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """The folder of the LoRA adapter that served on top of it, if one did (LLMOPS_BASE_ADAPTER)."""
    dataset_since: Timestamp | None = None
    """Where the run's LLMOPS_DATASET_URL (the capture store's records) begins: the start of the
    drift reference of what served when it started."""
    spec_model: ShortText | None = None
    """spec.model (``id@revision``) when the run started: a change abandons the run and its candidate."""
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
    """Or the path on the model cache it reported (a full model)."""
    candidate_adapter: AdapterStatus | None = None
    """Or the LoRA adapter it reported, on top of the model it started from."""
    annotation: ShortText | None = None
    """The llmops.io/retrain value last acted upon."""


class CaptureStatus(ApiModel):
    """Health of capture (spec.gateway.capture): the store and what the gateways dropped, over
    the last `window` (measured in Prometheus; a count is absent when it could not be read)."""

    model_config = ConfigDict(extra="allow")

    store_ready: bool | None = None
    """The capture store `<name>-capture` has a ready pod (absent with a sink)."""
    window: ShortText = ""
    """The window the counts cover, e.g. 5m."""
    records: int | None = None
    """Records the store wrote (and fsynced) in the window."""
    dropped: int | None = None
    """Records the gateways dropped in the window (queue full, store or sink down)."""
    refused: int | None = None
    """Batches the store refused in the window for lack of room (size cap or full volume)."""
    message: Message = ""
    """What is wrong, or that capture is healthy (the CaptureDegraded condition's message)."""


CandidateState = Literal["Evaluating", "AwaitingApproval", "Rolling", "Promoted", "Rejected", "Abandoned"]


class Comparison(ApiModel):
    """One metric of a candidate against the serving revision's gate score (spec.retrain.noWorseThan)."""

    model_config = ConfigDict(extra="allow")

    metric: ShortText
    """Metric name."""
    value: float | None = None
    """The candidate's gate score."""
    serving: float | None = None
    """The serving revision's gate score (absent: it has none to compare with)."""
    drop: float | None = None
    """How much worse the candidate is (negative: better), in the metric's direction."""
    max_drop: float
    """The tolerance from spec.retrain.noWorseThan."""
    passed: bool
    """No worse than allowed (True when there is nothing to compare with)."""
    set: Literal["dataset", "heldOut"] | None = None
    """Which prompts: spec.evaluation.dataset (absent or dataset) or the held-out corrections."""


class CandidateStatus(ApiModel):
    """The model a retrain run produced, on its road: cache, gate, no-worse-than, approval, canary."""

    model_config = ConfigDict(extra="allow")

    run: ShortText
    """The retrain run (its Job's name) that produced it."""
    model: Annotated[str, StringConstraints(max_length=1024)]
    """The Hub repository it reported, or the path on the model cache."""
    revision: ShortText
    """The 40-hex revision it reported (for a path: the run ID, which names it in the children)."""
    path: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """The path on the model cache, for a model written there rather than to the Hub."""
    adapter: AdapterStatus | None = None
    """The LoRA adapter it reported, served on top of ``model`` (then ``revision`` is
    ``<base revision>+<name>-<hash of the path>``)."""
    spec_model: ShortText | None = None
    """spec.model (``id@revision``) it was produced under: a change of spec.model abandons it."""
    state: CandidateState
    """Where it is on its road."""
    reason: ShortText = ""
    """CamelCase reason of the last change (CandidateWorse, EvaluationFailed, RolledBack, ...)."""
    message: Message = ""
    """What happened, with the numbers."""
    comparison: Annotated[list[Comparison], Field(max_length=32)] = []
    """Its gate scores against the serving revision's (spec.retrain.noWorseThan)."""


class ServingStatus(ApiModel):
    """What serves production traffic, where it came from, and its gate scores."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[str, StringConstraints(max_length=1024)]
    """Hub repository (or path on the model cache) the stable track serves."""
    revision: ShortText
    """Its revision (status.servingRevision)."""
    origin: ShortText
    """``spec``, or the retrain run that produced it."""
    path: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """The path on the model cache, for a retrained model written there."""
    adapter: AdapterStatus | None = None
    """The LoRA adapter served on top of ``model`` (then ``revision`` is
    ``<base revision>+<name>-<hash of the path>``)."""
    spec_model: ShortText | None = None
    """spec.model (``id@revision``) when it started serving: git still says that, so it keeps serving."""
    scores: Annotated[list[MetricResult], Field(max_length=32)] = []
    """Its gate scores: what a retrained candidate must not be worse than."""


class DownloadStatus(ApiModel):
    """The download of the desired revision into the model cache, while the revision is Caching.

    Read from the download Job's progress endpoint every few seconds; gone once the revision is
    cached (or its download failed)."""

    model_config = ConfigDict(extra="allow")

    revision: ShortText
    """The revision being downloaded."""
    files_done: int | None = None
    """Files of the snapshot in the cache."""
    files_total: int | None = None
    """Files of the snapshot."""
    bytes_done: int | None = None
    """Bytes written into the cache so far."""
    bytes_total: int | None = None
    """Bytes of the whole snapshot (from the Hub's file listing)."""
    percent: int | None = None
    """bytesDone of bytesTotal, in percent."""
    bytes_per_second: int | None = None
    """The download's rate over its last seconds."""
    eta_seconds: int | None = None
    """Seconds left at that rate."""
    progress: ShortText = ""
    """All of it in a few words, for `kubectl get llmd` (e.g. "42% of 3.2 GiB, 48 MiB/s, 40s left")."""
    time: Timestamp | None = None
    """When the download Job was last asked."""
    error: ShortText | None = None
    """Why the last reading failed (the Job's progress endpoint did not answer)."""


class ManualGates(ApiModel):
    """Annotation values already acted upon, so a stale annotation does not act twice."""

    model_config = ConfigDict(extra="allow")

    promote: ShortText | None = None
    """The llmops.io/promote value last acted upon (cleared when the annotation is removed)."""
    abort: ShortText | None = None
    """The llmops.io/abort value last acted upon (cleared when the annotation is removed)."""


ReplicasOwner = Literal["Spec", "HorizontalPodAutoscaler", "ScaledObject", "Nobody"]
"""Who sets the stable Deployment's replicas: the operator from spec.replicas, an autoscaler, or
Nobody (spec.autoscaling is set but no autoscaler can be rendered: the count stays as it is)."""


class AutoscalingStatus(ApiModel):
    """The autoscaler of the stable Deployment (spec.autoscaling) and what it follows."""

    model_config = ConfigDict(extra="allow")

    scaler: ShortText | None = None
    """HorizontalPodAutoscaler or ScaledObject (KEDA), named like the LLMDeployment; absent while
    none is rendered (a custom query that does not parse)."""
    min_replicas: int | None = None
    """spec.autoscaling.minReplicas."""
    max_replicas: int | None = None
    """spec.autoscaling.maxReplicas."""
    replicas: int | None = None
    """The stable Deployment's replicas as the autoscaler last set them (read, never written)."""
    query: Message | None = None
    """The PromQL the autoscaler follows."""
    target: float | None = None
    """The value it keeps the query near."""
    target_type: ShortText | None = None
    """AverageValue (per replica) or Value."""
    checked_query: Message | None = None
    """The custom query last checked against Prometheus (checked again when it changes)."""
    query_error: Message | None = None
    """Prometheus' parse error for checked_query; absent when it parsed."""


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
    """Desired serving pods (with autoscaling: the count the autoscaler set)."""
    replicas_owner: ReplicasOwner | None = None
    """Who sets the stable Deployment's replicas: Spec (the operator applies spec.replicas and
    takes back manual edits), the autoscaler's kind (the operator never writes them), or Nobody
    (autoscaling is on but its autoscaler cannot be rendered: the Autoscaling condition says why)."""
    autoscaling: AutoscalingStatus | None = None
    """The autoscaler, while spec.autoscaling is set."""
    serving_revision: ShortText | None = None
    """Revision that serves production traffic (stable)."""
    serving: ServingStatus | None = None
    """What serves: model, revision, origin (spec or a retrain run) and its gate scores."""
    candidate: CandidateStatus | None = None
    """The last retrained candidate and where it is on its road."""
    desired_revision: ShortText | None = None
    """Revision in spec.model.revision the operator is working towards."""
    endpoint: Annotated[str, StringConstraints(max_length=512)] | None = None
    """In-cluster URL, http://<service>.<namespace>.svc.cluster.local:<port>."""
    model: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """Repository id (or model-cache path) being served or rolled to."""
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
    capture: CaptureStatus | None = None
    """Capture health: the store's readiness, records written and dropped (spec.gateway.capture)."""
    download: DownloadStatus | None = None
    """How far the download of the desired revision is, while it is Caching."""
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


# ------------------------------------------------------------- the status as JSON (camelCase)
# What the lifecycle reads and writes. Every key is optional: a pass writes None to delete one.


class ConditionDict(TypedDict):
    """A Condition as JSON."""

    type: str
    status: str
    reason: NotRequired[str]
    message: NotRequired[str]
    observedGeneration: NotRequired[int | None]
    lastTransitionTime: NotRequired[str]


class AnalysisCheckDict(TypedDict, total=False):
    """An AnalysisCheck as JSON."""

    name: str
    verdict: Outcome
    value: float
    stableValue: float
    message: str
    time: str


class CanaryStatusDict(TypedDict, total=False):
    """A CanaryStatus as JSON."""

    revision: str
    weight: int
    step: int
    stepStartTime: str
    startTime: str
    failedChecks: int
    inconclusiveChecks: int
    checks: list[AnalysisCheckDict]
    state: CanaryState
    message: str
    readyTime: str
    lastCheckTime: str
    stepChecks: int
    stableRevision: str | None
    smoke: SmokeState


class MetricResultDict(TypedDict):
    """A MetricResult as JSON."""

    metric: str
    value: float | None
    passed: bool
    min: NotRequired[float]
    max: NotRequired[float]
    verdict: NotRequired[str]
    samples: NotRequired[int]
    lower: NotRequired[float]
    upper: NotRequired[float]
    requiredSamples: NotRequired[int]


class EvaluationStatusDict(TypedDict, total=False):
    """An EvaluationStatus as JSON (status.evaluation and status.scheduledEvaluation)."""

    revision: str
    job: str
    passed: bool
    time: str
    metrics: list[MetricResultDict]
    broken: str
    verdict: str
    confidence: float
    counts: dict[str, int]
    comparison: list[dict[str, Any]]
    heldOut: dict[str, Any]


class DriftStatusDict(TypedDict, total=False):
    """A DriftStatus as JSON (the drift stage builds the nested sections as plain JSON)."""

    revision: str | None
    lastCheckTime: str | None
    signals: list[dict[str, Any]]
    reference: dict[str, Any] | None
    quality: dict[str, Any] | None
    promptsReference: dict[str, Any] | None


class RetrainStatusDict(TypedDict, total=False):
    """A RetrainStatus as JSON."""

    runs: int
    job: str | None
    state: str | None
    baseModel: str | None
    baseRevision: str | None
    baseAdapter: str | None
    datasetSince: str | None
    specModel: str | None
    trigger: str
    message: str
    lastStartTime: str | None
    startTimes: list[str]
    candidateModel: str | None
    candidateRevision: str | None
    candidatePath: str | None
    candidateAdapter: AdapterStatusDict | None
    annotation: str | None


class CaptureStatusDict(TypedDict, total=False):
    """A CaptureStatus as JSON."""

    storeReady: bool | None
    window: str
    records: int | None
    dropped: int | None
    refused: int | None
    message: str


class ComparisonDict(TypedDict, total=False):
    """A Comparison as JSON."""

    metric: str
    value: float | None
    serving: float | None
    drop: float | None
    maxDrop: float
    passed: bool
    set: str


class AdapterStatusDict(TypedDict, total=False):
    """An AdapterStatus as JSON."""

    name: str
    path: str
    baseRevision: str


class CandidateStatusDict(TypedDict, total=False):
    """A CandidateStatus as JSON."""

    run: str
    model: str
    revision: str
    path: str | None
    adapter: AdapterStatusDict | None
    specModel: str | None
    state: str
    reason: str
    message: str
    comparison: list[ComparisonDict]


class ServingStatusDict(TypedDict, total=False):
    """A ServingStatus as JSON."""

    model: str
    revision: str
    origin: str
    path: str | None
    adapter: AdapterStatusDict | None
    specModel: str | None
    scores: list[MetricResultDict]


class DownloadStatusDict(TypedDict, total=False):
    """A DownloadStatus as JSON."""

    revision: str
    filesDone: int | None
    filesTotal: int | None
    bytesDone: int | None
    bytesTotal: int | None
    percent: int | None
    bytesPerSecond: int | None
    etaSeconds: int | None
    progress: str
    time: str | None
    error: str | None


class ManualGatesDict(TypedDict, total=False):
    """ManualGates as JSON."""

    promote: str
    abort: str


class AutoscalingStatusDict(TypedDict, total=False):
    """AutoscalingStatus as JSON."""

    scaler: str | None
    minReplicas: int
    maxReplicas: int
    replicas: int | None
    query: str | None
    target: float | None
    targetType: str | None
    checkedQuery: str | None
    queryError: str | None


class HistoryEntryDict(TypedDict):
    """A HistoryEntry as JSON."""

    time: str
    action: str
    revision: str | None
    reason: str
    message: str


class StatusDict(TypedDict, total=False):
    """LLMDeploymentStatus as JSON; a None value deletes the field (merge-patch semantics)."""

    observedGeneration: int | None
    phase: Phase
    conditions: list[ConditionDict]
    ready: str
    readyReplicas: int
    replicas: int
    replicasOwner: str
    autoscaling: AutoscalingStatusDict | None
    servingRevision: str | None
    serving: ServingStatusDict | None
    candidate: CandidateStatusDict | None
    desiredRevision: str
    endpoint: str
    model: str
    canary: CanaryStatusDict | None
    evaluation: EvaluationStatusDict | None
    scheduledEvaluation: EvaluationStatusDict | None
    drift: DriftStatusDict | None
    retrain: RetrainStatusDict | None
    capture: CaptureStatusDict | None
    download: DownloadStatusDict | None
    manualGates: ManualGatesDict | None
    history: list[HistoryEntryDict]
    lastAppliedSpecHash: str | None
    lastPromotedRevision: str | None
    lastPromotedSpecHash: str | None
