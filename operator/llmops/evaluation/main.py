"""`llmops eval`: the program an evaluation Job runs to score a model through its server's HTTP API
(TGI or vLLM; by default the OpenAI-compatible chat route both serve, see `client`).

It loads a dataset, sends every sample to the endpoint, scores the outputs, compares the metrics
with the thresholds, prints one JSON line per sample on stdout, writes a small summary JSON to
`--summary-file` (the Job's termination message by default) and exits with 0 (passed), 1 (the
model failed a threshold) or 2 (the evaluation itself broke); see `report` for both formats.

Example::

    llmops eval --endpoint http://mymodel-canary.ns.svc:80 --api-key-env TGI_API_KEY \\
        --dataset /datasets/qa.jsonl --thresholds '[{"metric": "exactMatch", "min": 0.8}]' \\
        --model-revision 0123abcd...

Thresholds that the dataset cannot measure (jsonValid with no `expectJson` sample, say) break the
evaluation before any request is sent: a gate must not pass on a metric it never measured. Rates
are judged on their confidence interval at `--confidence` (default 0.95); see `thresholds`.

With `--baseline-endpoint` (default `$LLMOPS_BASELINE_URL`), the same prompts are also sent to a
second server (the revision that serves, say; same API key and flags) and the summary gains a
`comparison` section: per compared metric the candidate's and the baseline's values, the paired
test over the prompts and a verdict against `--max-drop` (default 0 for every metric). The
compared metrics are the per-prompt ones (sample scores, errorRate, retryRate) that are
thresholded or named in `--max-drop`. The comparison does not change the exit code.

With `--held-out-url` (the capture store), the prompts whose feedback carried a correction are a
second, held-out set (see `heldout`): scored apart, judged on `--held-out-thresholds` with the same
confidence rules, compared with the baseline on the same prompts when there is one, and reported
as the summary's `heldOut` section. Fewer than `--held-out-min` corrections is that set's own
verdict, InsufficientSamples, and the evaluation's too (never a pass); a store that cannot be
read breaks the evaluation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from llmops.analysis.confidence import DEFAULT_CONFIDENCE, compare_paired, judge_comparison
from llmops.api.metric_names import RATE_METRICS, SAMPLE_METRICS
from llmops.evaluation.client import ROUTES, TRANSPORTS, ClientConfig, EndpointUnreachable, normalize_endpoint
from llmops.evaluation.completion import Completion
from llmops.evaluation.dataset import DatasetError, Sample, download_hub_dataset, load_dataset
from llmops.evaluation.heldout import HeldOutSource, HeldOutUnavailable, read_held_out
from llmops.evaluation.metrics import (
    SampleResult,
    aggregate,
    applicable_metrics,
    per_tag,
    prompt_outcomes,
    rate_counts,
    score_sample,
)
from llmops.evaluation.report import (
    EXIT_BROKEN,
    EXIT_FAILED,
    VERDICT_FAILED,
    VERDICT_PASSED,
    broken_summary,
    held_out_section,
    render_summary,
    result_summary,
    sample_line,
)
from llmops.evaluation.thresholds import Threshold, ThresholdError, judge, parse_thresholds
from llmops.evaluation.workers import default_workers, run_sharded

__all__ = [
    "BASELINE_URL_ENV",
    "DEFAULT_SUMMARY_FILE",
    "ConfigError",
    "NothingCompleted",
    "build_parser",
    "main",
]

DEFAULT_SUMMARY_FILE = "/dev/termination-log"
SAMPLES_PER_WORKER = 500
BASELINE_URL_ENV = "LLMOPS_BASELINE_URL"
# Compared prompt by prompt: the sample scores and the per-prompt error and retry outcomes.
_PAIRED_METRICS = (*SAMPLE_METRICS, "errorRate", "retryRate")

# What a dataset needs for a metric to be measurable, for the error message when it is not.
_NEEDS = {
    "exactMatch": "a sample with 'reference' or 'references'",
    "contains": "a sample with 'reference' or 'references'",
    "tokenF1": "a sample with 'reference' or 'references'",
    "rougeL": "a sample with 'reference' or 'references'",
    "regexMatch": "a sample with 'pattern'",
    "jsonValid": "a sample with 'expectJson': true",
    "biasGap": "a counterfactual pair whose samples the bias metric can score",
}
_SHA = re.compile(r"[0-9a-f]{40}")


class ConfigError(ValueError):
    """The flags or environment are wrong; the message says which."""


class NothingCompleted(RuntimeError):
    """Every request failed: there is nothing to score, so nothing can be said about the model."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would print usage and exit; we want a Broken verdict with the message instead.
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags of `llmops eval`."""
    p = _Parser(
        prog="llmops eval",
        description="Score a model served by TGI or vLLM against a dataset and thresholds.",
    )
    p.add_argument("--endpoint", required=True, help="server base URL, e.g. http://svc.ns:80 (no /v1)")
    p.add_argument(
        "--api-key-env", metavar="NAME", help="read the server's API key from this environment variable"
    )
    p.add_argument(
        "--route",
        choices=ROUTES,
        default="chat",
        help="chat: /v1/chat/completions (default; TGI and vLLM); completion: /v1/completions with raw "
        "prompts; generate: TGI's native route",
    )
    p.add_argument(
        "--served-model",
        metavar="NAME",
        help="model name sent on the OpenAI-compatible routes (default: --model; vLLM requires its served name)",
    )
    p.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="aiohttp",
        help="aiohttp (default), or huggingface_hub's AsyncInferenceClient: the same requests for "
        "about six times the client CPU (see llmops.evaluation.lean)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes to split the dataset across (default: one per 500 samples, up to the CPUs this "
        "process may use, from the cgroup CPU limit or its CPU affinity)",
    )
    src = p.add_argument_group("dataset (one source)")
    src.add_argument("--dataset", metavar="PATH", help="a JSON Lines file")
    src.add_argument("--dataset-configmap-dir", metavar="DIR", help="where the dataset ConfigMap is mounted")
    src.add_argument("--dataset-key", metavar="KEY", help="the ConfigMap key holding the dataset")
    src.add_argument("--hub-dataset", metavar="REPO", help="a Hub dataset repository id")
    src.add_argument("--hub-revision", metavar="SHA", help="the pinned revision of --hub-dataset")
    src.add_argument("--hub-filename", metavar="F", help="the JSON Lines file inside --hub-dataset")
    p.add_argument("--thresholds", metavar="JSON", help='e.g. \'[{"metric": "exactMatch", "min": 0.8}]\'')
    p.add_argument("--thresholds-file", metavar="PATH", help="the same JSON, from a file")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request attempt (default 60)")
    p.add_argument(
        "--max-new-tokens", type=int, default=256, help="generation limit per sample (default 256)"
    )
    p.add_argument("--retries", type=int, default=3, help="retries on 429/503/transport errors (default 3)")
    p.add_argument(
        "--backoff-base", type=float, default=0.5, help="first retry backoff in seconds (default 0.5)"
    )
    p.add_argument(
        "--bias-metric", default="tokenF1", choices=SAMPLE_METRICS, help="per-sample score for biasGap"
    )
    p.add_argument(
        "--summary-file",
        # The container's termination message path, which a (fake) kubelet may relocate.
        default=os.environ.get("LLMOPS_TERMINATION_LOG", DEFAULT_SUMMARY_FILE),
        help=f"default $LLMOPS_TERMINATION_LOG or {DEFAULT_SUMMARY_FILE}",
    )
    p.add_argument(
        "--max-samples",
        type=int,
        default=None,
        help="score only the first N samples (a smoke evaluation, e.g. of a canary before it gets traffic)",
    )
    p.add_argument(
        "--confidence",
        type=float,
        default=DEFAULT_CONFIDENCE,
        help="confidence level of the rates' intervals and of the comparison's tests (default 0.95)",
    )
    p.add_argument(
        "--judge",
        choices=("bound", "value"),
        default="bound",
        help="bound (default): rates on the bound of their interval; value: every threshold on its "
        "value, for a smoke check of a few samples of a revision whose gate already showed its bounds",
    )
    p.add_argument(
        "--baseline-endpoint",
        metavar="URL",
        default=os.environ.get(BASELINE_URL_ENV) or None,
        help=f"also score this server on the same prompts and compare (default ${BASELINE_URL_ENV})",
    )
    p.add_argument(
        "--max-drop",
        metavar="JSON",
        help="per-metric tolerance of the comparison, e.g. '{\"exactMatch\": 0.01}' (default 0)",
    )
    held = p.add_argument_group("held-out set of feedback corrections (the capture store)")
    held.add_argument("--held-out-url", metavar="URL", help="the capture store's base URL")
    held.add_argument(
        "--held-out-token-env", metavar="NAME", help="read the store's bearer token from this variable"
    )
    held.add_argument("--held-out-fraction", type=float, default=0.2, help="the split's held-out share")
    held.add_argument(
        "--held-out-window", type=float, default=7 * 86400, help="seconds back to read corrections from"
    )
    held.add_argument("--held-out-max", type=int, default=500, help="the newest corrections scored, at most")
    held.add_argument(
        "--held-out-min", type=int, default=30, help="fewer corrections: InsufficientSamples, never a pass"
    )
    held.add_argument("--held-out-thresholds", metavar="JSON", help="bounds on the held-out set's metrics")
    p.add_argument("--model", help="model id, echoed in the summary")
    p.add_argument("--model-revision", help="model revision, echoed in the summary")
    return p


def _positive(args: argparse.Namespace) -> None:
    for flag in ("concurrency", "max_new_tokens", "workers"):
        if getattr(args, flag) is None:
            continue
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be at least 1")
    if args.retries < 0:
        raise ConfigError("--retries must not be negative")
    if args.timeout <= 0 or args.backoff_base < 0:
        raise ConfigError("--timeout must be positive and --backoff-base not negative")
    if not 0.5 <= args.confidence < 1:
        raise ConfigError(f"--confidence must be in [0.5, 1), got {args.confidence}")


def _load_samples(args: argparse.Namespace) -> list[Sample]:
    configmap = args.dataset_configmap_dir is not None or args.dataset_key is not None
    hub = any(x is not None for x in (args.hub_dataset, args.hub_revision, args.hub_filename))
    if sum((args.dataset is not None, configmap, hub)) != 1:
        raise ConfigError(
            "give exactly one dataset source: --dataset PATH, --dataset-configmap-dir DIR --dataset-key KEY, "
            "or --hub-dataset REPO --hub-revision SHA --hub-filename F"
        )
    if args.dataset is not None:
        return load_dataset(args.dataset)
    if configmap:
        if args.dataset_configmap_dir is None or args.dataset_key is None:
            raise ConfigError("--dataset-configmap-dir and --dataset-key go together")
        return load_dataset(Path(args.dataset_configmap_dir) / args.dataset_key)
    if None in (args.hub_dataset, args.hub_revision, args.hub_filename):
        raise ConfigError("--hub-dataset needs --hub-revision and --hub-filename")
    if not _SHA.fullmatch(args.hub_revision):
        print(
            f"warning: --hub-revision {args.hub_revision!r} is not a commit SHA; the dataset can change",
            file=sys.stderr,
        )
    path = download_hub_dataset(
        args.hub_dataset,
        args.hub_revision,
        args.hub_filename,
        endpoint=os.environ.get("HF_ENDPOINT") or None,
        cache_dir=_hub_cache_dir(),
    )
    return load_dataset(path)


def _hub_cache_dir() -> str | None:
    # huggingface_hub reads HF_HOME and HF_HUB_CACHE once, at import; reading them here instead
    # keeps main() honest when it runs in-process (the CLI, tests) after the environment changed.
    if cache := os.environ.get("HF_HUB_CACHE"):
        return cache
    if home := os.environ.get("HF_HOME"):
        return str(Path(home) / "hub")
    return None


def _load_thresholds(args: argparse.Namespace) -> list[Threshold]:
    if args.thresholds is not None and args.thresholds_file is not None:
        raise ConfigError("give --thresholds or --thresholds-file, not both")
    if args.thresholds_file is not None:
        try:
            return parse_thresholds(Path(args.thresholds_file).read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot read --thresholds-file: {e}") from None
    return parse_thresholds(args.thresholds) if args.thresholds is not None else []


def _api_key(args: argparse.Namespace) -> str | None:
    if args.api_key_env is None:
        return None
    key = os.environ.get(args.api_key_env)
    if not key:
        raise ConfigError(f"environment variable {args.api_key_env} (from --api-key-env) is not set or empty")
    return key


def _held_out_source(args: argparse.Namespace) -> HeldOutSource | None:
    if args.held_out_url is None:
        return None
    if not 0 < args.held_out_fraction < 1:
        raise ConfigError(f"--held-out-fraction must be in (0, 1), got {args.held_out_fraction}")
    if args.held_out_window <= 0 or args.held_out_max < 1 or args.held_out_min < 1:
        raise ConfigError("--held-out-window must be positive, --held-out-max and --held-out-min at least 1")
    token = os.environ.get(args.held_out_token_env or "", "")
    if not token:
        raise ConfigError("--held-out-url needs --held-out-token-env naming a variable that holds the token")
    return HeldOutSource(
        url=args.held_out_url,
        token=token,
        fraction=args.held_out_fraction,
        window_seconds=args.held_out_window,
        max_records=args.held_out_max,
        min_records=args.held_out_min,
    )


def _evaluate(args: argparse.Namespace) -> dict[str, Any]:
    _positive(args)
    try:
        endpoint = normalize_endpoint(args.endpoint)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    thresholds = _load_thresholds(args)
    samples = _load_samples(args)
    if args.max_samples is not None:
        if args.max_samples < 1:
            raise ConfigError("--max-samples must be at least 1")
        samples = samples[: args.max_samples]
    measurable = applicable_metrics(samples, args.bias_metric)
    missing = [t.metric for t in thresholds if t.metric not in measurable]
    if missing:
        raise ConfigError(
            "the dataset cannot measure the thresholded metric(s): "
            + "; ".join(f"{m} needs {_NEEDS.get(m, 'samples')}" for m in missing)
        )
    config = ClientConfig(
        endpoint=endpoint,
        api_key=_api_key(args),
        concurrency=args.concurrency,
        timeout=args.timeout,
        retries=args.retries,
        max_new_tokens=args.max_new_tokens,
        backoff_base=args.backoff_base,
        route=args.route,
        model=args.served_model or args.model,
        transport=args.transport,
    )
    if args.route == "completion" and any(s.messages is not None for s in samples):
        first = next(s for s in samples if s.messages is not None)
        raise ConfigError(
            f"--route completion sends raw prompts, but sample {first.id!r} (line {first.line}) has "
            "messages; use --route chat"
        )
    # Automatic: one process per SAMPLES_PER_WORKER samples, up to the CPUs this process may use
    # (a process costs a second or so to start, which a small dataset would not win back).
    auto = min(default_workers(), max(1, len(samples) // SAMPLES_PER_WORKER))
    workers = args.workers if args.workers is not None else auto
    max_drop = _max_drop(args)
    baseline = _baseline_config(args, config)
    held_source = _held_out_source(args)
    held_thresholds = parse_thresholds(args.held_out_thresholds) if args.held_out_thresholds else []
    started = time.monotonic()
    done, retries = _run(samples, config, workers, target=None)
    completed = sum(1 for r in done if r.completion.ok)
    if completed == 0:
        last = done[-1].completion.error if done else "no result"
        raise NothingCompleted(f"no sample completed ({len(done)} failed) at {endpoint}; last error: {last}")
    values = aggregate(done, args.bias_metric)
    counted = rate_counts(done)
    comparison = None
    if baseline is not None:
        base_done, _ = _run(samples, baseline, workers, target="baseline")
        if not any(r.completion.ok for r in base_done):
            raise NothingCompleted(f"no sample completed at the baseline {baseline.endpoint}")
        compared = {t.metric for t in thresholds} | set(max_drop)
        comparison = _comparison(done, base_done, compared, max_drop, args.confidence, baseline.endpoint)
    summary = result_summary(
        values=values,
        verdicts=judge(thresholds, values, counted if args.judge == "bound" else None, args.confidence),
        counts={
            "samples": len(done),
            "completed": completed,
            "errors": len(done) - completed,
            "retried": sum(1 for r in done if r.completion.attempts > 1),
            "retries": retries,
        },
        tags=per_tag(done),
        model=args.model,
        revision=args.model_revision,
        rate_counts=counted,
        confidence=args.confidence,
        comparison=comparison,
    )
    if held_source is not None:
        held = _held_out(args, held_source, held_thresholds, config, baseline, max_drop, workers)
        summary = _with_held_out(summary, held)
    summary["durationSeconds"] = round(time.monotonic() - started, 3)
    return summary


def _held_out(
    args: argparse.Namespace,
    source: HeldOutSource,
    thresholds: list[Threshold],
    config: ClientConfig,
    baseline: ClientConfig | None,
    max_drop: dict[str, float],
    workers: int,
) -> dict[str, Any]:
    """The held-out set's section: its corrections scored, judged and compared like the dataset."""
    read = read_held_out(source, now=dt.datetime.now(dt.UTC), route=args.route)
    samples = read.samples
    if not samples:
        return held_out_section(
            records=0, skipped=read.skipped, min_records=source.min_records, values={}, verdicts=[],
            counts={}, rate_counts={}, comparison=None,
        )  # fmt: skip
    done, _ = _run(samples, config, workers, target="heldout")
    counted = rate_counts(done)
    values = aggregate(done, args.bias_metric)
    comparison = None
    if baseline is not None:
        base_done, _ = _run(samples, baseline, workers, target="heldout-baseline")
        compared = {t.metric for t in thresholds} | set(max_drop)
        comparison = _comparison(done, base_done, compared, max_drop, args.confidence, baseline.endpoint)
    completed = sum(1 for r in done if r.completion.ok)
    return held_out_section(
        records=len(samples),
        skipped=read.skipped,
        min_records=source.min_records,
        values=values,
        verdicts=judge(thresholds, values, counted if args.judge == "bound" else None, args.confidence),
        counts={"samples": len(done), "completed": completed, "errors": len(done) - completed},
        rate_counts=counted,
        comparison=comparison,
    )


def _with_held_out(summary: dict[str, Any], held: dict[str, Any]) -> dict[str, Any]:
    """The summary with the held-out section, its verdict folded in: a failed or unshown held-out
    set fails the evaluation, as a threshold of the dataset would."""
    summary["heldOut"] = held
    verdict = held["verdict"]
    if verdict == VERDICT_PASSED:
        return summary
    if summary["verdict"] == VERDICT_PASSED or verdict == VERDICT_FAILED:
        summary["verdict"], summary["exitCode"] = verdict, EXIT_FAILED
    summary["message"] = f"{summary['message']}; held-out corrections: {held['message']}"[:1024]
    return summary


def _run(
    samples: list[Sample], config: ClientConfig, workers: int, *, target: str | None
) -> tuple[list[SampleResult], int]:
    """Send every sample to one server, printing each result line; the results and the retries."""
    results: list[SampleResult | None] = [None] * len(samples)
    out = sys.stdout

    def on_result(index: int, completion: Completion) -> None:
        result = score_sample(samples[index], completion)
        results[index] = result
        out.write(sample_line(result, target=target) + "\n")

    # run_sharded runs its own event loop(s) (asyncio.Runner with a loop factory leaves the caller's
    # current loop alone), so main() can be called in-process by the CLI or by tests.
    _, retries = run_sharded(samples, config, workers, on_result)
    out.flush()
    return [r for r in results if r is not None], retries


def _max_drop(args: argparse.Namespace) -> dict[str, float]:
    if args.max_drop is None:
        return {}
    try:
        data = json.loads(args.max_drop)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--max-drop is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError('--max-drop must be a JSON object, e.g. {"exactMatch": 0.01}')
    for metric, value in data.items():
        if metric not in _PAIRED_METRICS:
            raise ConfigError(
                f"--max-drop: {metric!r} is not a per-prompt metric ({', '.join(_PAIRED_METRICS)})"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ConfigError(f"--max-drop: {metric} must be a number in [0, 1], got {value!r}")
    if args.baseline_endpoint is None:
        raise ConfigError(f"--max-drop needs --baseline-endpoint (or ${BASELINE_URL_ENV})")
    return {k: float(v) for k, v in data.items()}


def _baseline_config(args: argparse.Namespace, config: ClientConfig) -> ClientConfig | None:
    """The candidate's client settings (route, key, limits) pointed at the baseline server."""
    if args.baseline_endpoint is None:
        return None
    try:
        return replace(config, endpoint=normalize_endpoint(args.baseline_endpoint))
    except ValueError as e:
        raise ConfigError(f"--baseline-endpoint: {e}") from None


def _comparison(
    candidate: list[SampleResult],
    baseline: list[SampleResult],
    metrics: set[str],
    max_drop: dict[str, float],
    confidence: float,
    endpoint: str,
) -> dict[str, Any]:
    """The report's comparison: each metric prompt by prompt, with its test and verdict."""
    # Both lists are in sample order: the same prompt at the same index.
    both = [(prompt_outcomes(c), prompt_outcomes(b)) for c, b in zip(candidate, baseline, strict=True)]
    out: dict[str, Any] = {}
    for metric in (m for m in _PAIRED_METRICS if m in metrics):
        pairs = [
            (mine[metric], theirs[metric]) for mine, theirs in both if metric in mine and metric in theirs
        ]
        if not pairs:
            continue
        entry = compare_paired(metric, pairs, binary=metric in RATE_METRICS).as_dict()
        tolerance = max_drop.get(metric, 0.0)
        entry["maxDrop"] = tolerance
        entry["verdict"] = judge_comparison(metric, entry, tolerance, confidence).verdict
        out[metric] = entry
    return {"baseline": endpoint, "metrics": out}


def _write_summary(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as e:
        # Outside a pod /dev/termination-log does not exist; the summary still goes to stderr.
        print(f"warning: cannot write the summary to {path}: {e}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run an evaluation; returns the exit code (EXIT_PASSED, EXIT_FAILED, EXIT_BROKEN or EXIT_INVALID)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except ConfigError as e:
        # No summary file is known yet; the message goes to stderr (the Job's log). EXIT_BROKEN, not
        # EXIT_INVALID: the flags are the operator's own rendering, so this is a version mismatch
        # or a bug, and a Job failed at once without a summary would read as a verdict.
        print(f"llmops eval: {e}", file=sys.stderr)
        return EXIT_BROKEN
    except SystemExit as e:  # --help
        return int(e.code or 0)
    try:
        summary = _evaluate(args)
    except (ConfigError, DatasetError, ThresholdError) as e:
        # What it was given is wrong: a retry would read the same (unless the Hub or a file was away).
        retryable = isinstance(e, DatasetError) and e.retryable
        summary = broken_summary(str(e), model=args.model, revision=args.model_revision, retryable=retryable)
    except (EndpointUnreachable, NothingCompleted, HeldOutUnavailable) as e:
        summary = broken_summary(str(e), model=args.model, revision=args.model_revision)
    except (
        Exception
    ) as e:  # the Job must still say Broken, with a reason, rather than die with a traceback only
        traceback.print_exc(file=sys.stderr)
        summary = broken_summary(
            f"internal error: {type(e).__name__}: {e}", model=args.model, revision=args.model_revision
        )
    text = render_summary(summary)
    _write_summary(args.summary_file, text)
    print(text, file=sys.stderr)
    return int(summary["exitCode"])


if __name__ == "__main__":
    sys.exit(main())
