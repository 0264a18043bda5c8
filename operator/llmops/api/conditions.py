"""Condition types, statuses and reasons of an LLMDeployment (constants only).

The condition helper (stamping observedGeneration, keeping lastTransitionTime) lives in
llmops.lifecycle. Reasons are CamelCase and say what happened; messages say what to do.
"""

# --- types
AVAILABLE = "Available"
"""Serving pods of the serving revision are ready and the Service routes to them."""
PROGRESSING = "Progressing"
"""A change is being rolled out (new revision, new spec, scaling)."""
DEGRADED = "Degraded"
"""Something needs a person: a permanent problem (a failed download or evaluation, pods that cannot
run, a rolled-back canary), or replicas of a rolled-out revision lost to a problem their pods show.
Drift and a moving ref have conditions of their own (Drifted, RevisionPinned)."""
MODEL_CACHED = "ModelCached"
"""The model revision is in the cache PVC (the download Job succeeded)."""
EVALUATED = "Evaluated"
"""The evaluation gate's verdict for the desired revision."""
PROMOTED = "Promoted"
"""The canary's fate: promoted, in progress, or rolled back."""
DRIFTED = "Drifted"
"""Whether the serving revision's traffic, quality or feedback drifted (spec.drift); Unknown when
a signal cannot be judged (too few samples, no reference yet, Prometheus unreachable)."""

RETRAINED = "Retrained"
"""The last retrain run: Unknown while its Job runs, True when it reported a candidate, False when
it failed or its report was unusable (spec.retrain)."""

CAPTURE_DEGRADED = "CaptureDegraded"
"""Capture loses records: the store has no ready pod, refuses writes for lack of room, or the
gateways dropped records in the last window (the count is in the message and status.capture);
Unknown when Prometheus cannot say. Absent without spec.gateway.capture."""

AUTOSCALING = "Autoscaling"
"""spec.autoscaling: True when the autoscaler is in place, False when it cannot be (a custom query
that does not parse), Unknown when the query could not be checked; absent without autoscaling."""
CANDIDATE = "Candidate"
"""The last retrained candidate on its road (cache, gate, no worse than serving, approval, canary):
Unknown on the way, True once promoted, False when rejected or abandoned (the reason says which)."""
PINNED_TO_SPEC = "PinnedToSpec"
"""Whether what serves is spec.model: False while a retrained model serves, with the exact
spec.model lines to commit to pin it in git (set with spec.retrain, or while a retrained model serves)."""

CONDITION_TYPES: tuple[str, ...] = (
    AVAILABLE,
    PROGRESSING,
    DEGRADED,
    MODEL_CACHED,
    EVALUATED,
    PROMOTED,
    DRIFTED,
    RETRAINED,
    AUTOSCALING,
    CAPTURE_DEGRADED,
    CANDIDATE,
    PINNED_TO_SPEC,
)
DEPRECATED = "Deprecated"
"""True while the spec uses a deprecated name (which one, and its replacement, in the message);
absent otherwise."""

# --- statuses
TRUE = "True"
FALSE = "False"
UNKNOWN = "Unknown"

# --- reasons: spec and references
INVALID_SPEC = "InvalidSpec"
INVALID_CAPTURE_PATTERN = "InvalidCapturePattern"
"""A spec.gateway.capture.redaction pattern does not compile (CEL cannot check regexes): the
operator applies nothing of that spec until it is fixed."""
INVALID_CAPTURE_SINK = "InvalidCaptureSink"
"""spec.gateway.capture.sink.url is one the gateway's HTTP client cannot send to (a port out of
range, say, which the URL pattern admits): the operator applies nothing of that spec."""
SECRET_NOT_FOUND = "SecretNotFound"
SECRET_KEY_NOT_FOUND = "SecretKeyNotFound"
DEPRECATED_TEMPLATE = "DeprecatedTemplate"
"""An analysis metric uses a tgi-* template name, a deprecated alias of an engine-neutral one."""
VOLUME_NOT_MOUNTED = "VolumeNotMounted"
"""Pods are scheduled but cannot start: a volume (usually a mounted Secret) cannot be mounted."""
MOVING_REVISION = "MovingRevision"
"""spec.model.revision is a branch or tag, not a commit sha: the weights may change under you."""

# --- reasons: scheduling and pods
INSUFFICIENT_GPU = "InsufficientGPU"
UNSCHEDULABLE = "Unschedulable"
IMAGE_PULL_FAILED = "ImagePullFailed"
CRASH_LOOP = "CrashLoopBackOff"
OOM_KILLED = "OOMKilled"
STARTUP_TIMED_OUT = "StartupTimedOut"
PODS_NOT_READY = "PodsNotReady"
JOB_PODS_REFUSED = "JobPodsRefused"
"""A Job (download, evaluation, retrain) makes no pod: the apiserver refuses them (quoted from
the Job's FailedCreate Events, or after a minute without one)."""
JOB_SUSPENDED = "JobSuspended"
"""A Job is suspended (spec.suspend, set by its template or by a queue such as Kueue until it
admits the Job): it makes no pod until it is resumed."""
MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
SCALED_TO_ZERO = "ScaledToZero"

# --- reasons: cache
PVC_NOT_BOUND = "PVCNotBound"
DOWNLOADING = "Downloading"
DOWNLOAD_SUCCEEDED = "DownloadSucceeded"
DOWNLOAD_FAILED = "DownloadFailed"
DOWNLOAD_TIMED_OUT = "DownloadTimedOut"
CACHE_DISABLED = "CacheDisabled"

# --- reasons: rollout
NEW_REVISION = "NewRevision"
ROLLING_UPDATE = "RollingUpdate"
ROLLOUT_COMPLETE = "RolloutComplete"
REPLICAS_STARTING = "ReplicasStarting"
"""The revision is rolled out; pods added by a scale-up, or replacing lost ones, are starting."""
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
RECONCILE_ERROR = "ReconcileError"
CHILD_REFUSED = "ChildRefused"
"""The apiserver refused a child as invalid (422): a spec value our schema admits and Kubernetes
does not; retrying cannot help until the spec changes."""
OBSERVATION_FAILED = "ObservationFailed"
"""A read failed (apiserver, Prometheus): the condition is Unknown, not False."""

# --- reasons: evaluation
EVALUATION_RUNNING = "EvaluationRunning"
EVALUATION_PASSED = "EvaluationPassed"
EVALUATION_FAILED = "EvaluationFailed"
EVALUATION_JOB_FAILED = "EvaluationJobFailed"
EVALUATION_SKIPPED = "EvaluationSkipped"

# --- reasons: canary
CANARY_PROGRESSING = "CanaryProgressing"
CANARY_PAUSED = "CanaryPaused"
ANALYSIS_FAILED = "AnalysisFailed"
ANALYSIS_INCONCLUSIVE = "AnalysisInconclusive"
PROMOTED_REASON = "Promoted"
MANUALLY_PROMOTED = "ManuallyPromoted"
ABORTED = "Aborted"
ROLLED_BACK = "RolledBack"

# --- reasons: monitoring, drift, retrain
MONITORING_CRDS_MISSING = "MonitoringCRDsMissing"
"""The Prometheus Operator CRDs are absent: PodMonitor and PrometheusRule are skipped."""
DRIFT_DETECTED = "DriftDetected"
EVAL_SCORE_DROPPED = "EvalScoreDropped"
"""A scheduled evaluation scored below the serving revision's gate score by more than
spec.drift.quality.maxDrop, for `consecutive` runs in a row."""
SCHEDULED_EVALUATION_FAILED = "ScheduledEvaluationFailed"
"""A scheduled re-evaluation missed a threshold (reported; drift.quality decides whether it is drift)."""
NO_DRIFT = "NoDrift"
BEYOND_RETENTION = "BeyondRetention"
"""A drift window (spec.drift.window, or the Offset reference) reaches further back than
Prometheus keeps samples: Drifted is Unknown, never a verdict from it."""
COLLECTING_REFERENCE = "CollectingReference"
"""The reference window of the serving revision is not complete yet."""
INSUFFICIENT_SAMPLES = "InsufficientSamples"
"""Too few samples for a verdict: a drift window below minSamples (never drift), or an evaluation
dataset too small to show a threshold on a rate's confidence bound (Evaluated=False, never a pass)."""
NO_FEEDBACK_METRIC = "NoFeedbackMetric"
"""Prometheus has no llmops_feedback_total series (the gateway exports it)."""
RETRAIN_RUNNING = "RetrainRunning"
RETRAIN_FAILED = "RetrainFailed"
RETRAIN_SUCCEEDED = "RetrainSucceeded"
RETRAIN_REPORT_INVALID = "RetrainReportInvalid"
"""The retrain Job finished but its termination message does not name a model it produced."""
RETRAIN_AWAITING_APPROVAL = "RetrainAwaitingApproval"
RETRAIN_RATE_LIMITED = "RetrainRateLimited"

# --- reasons: autoscaling
SCALER_CONFIGURED = "ScalerConfigured"
"""The ScaledObject or HorizontalPodAutoscaler is applied; it owns the stable replicas."""
INVALID_QUERY = "InvalidQuery"
"""Prometheus could not parse spec.autoscaling.query: no autoscaler is rendered."""
QUERY_NOT_CHECKED = "QueryNotChecked"
"""Prometheus could not be asked whether spec.autoscaling.query parses (the autoscaler is applied
meanwhile; the check is retried)."""

# --- reasons: capture
CAPTURE_HEALTHY = "CaptureHealthy"
STORE_UNAVAILABLE = "StoreUnavailable"
"""The capture store has no ready pod: gateways queue records, then drop them."""
STORE_FULL = "StoreFull"
"""The capture store refused batches: maxSize reached by the newest day alone, or a full volume."""
RECORDS_DROPPED = "RecordsDropped"
"""The gateways dropped records in the last window (queue full, store or sink too slow or down)."""
NOT_SCRAPED = "NotScraped"
"""Prometheus holds too few samples of the gateways to count drops: the pods are scraped under other
labels than the PodMonitor's, or less often than spec.monitoring.podMonitor.interval."""
RETRAIN_ABANDONED = "RetrainAbandoned"
"""spec.model changed while the retrain Job ran: the Job is deleted, spec wins."""
CANDIDATE_WORSE = "CandidateWorse"
"""The candidate scored worse than the serving revision beyond spec.retrain.noWorseThan."""
CANDIDATE_NOT_SHOWN_NO_WORSE = "CandidateNotShownNoWorse"
"""The paired comparison found a drop beyond spec.retrain.noWorseThan that chance could explain:
not shown to be no worse, so the candidate does not serve."""
CANDIDATE_EVALUATING = "CandidateEvaluating"
"""The candidate is in its cache and evaluation stages."""
CANDIDATE_APPROVED = "CandidateApproved"
CANDIDATE_PROMOTED = "CandidatePromoted"
APPROVAL_UNKNOWN_RUN = "ApprovalUnknownRun"
"""llmops.io/approve-retrain names a run this LLMDeployment never had."""
SPEC_CHANGED = "SpecChanged"
"""spec.model changed while a retrain or its candidate was under way: spec wins."""
RETRAINED_MODEL_SERVING = "RetrainedModelServing"
"""A retrained model serves instead of spec.model; the message has the lines to commit."""
SPEC_MODEL_SERVING = "SpecModelServing"
ON_MODEL_CACHE = "OnModelCache"
"""The target is a model a retrain run wrote to the model cache: nothing to download."""
