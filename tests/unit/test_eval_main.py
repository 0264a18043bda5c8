"""`llmops eval` end to end: main() against the TGI simulator, its exit codes, summary and stdout."""

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmops.evaluation.main import main
from llmops.evaluation.report import EXIT_BROKEN, EXIT_FAILED, EXIT_INVALID, EXIT_PASSED, SUMMARY_LIMIT
from llmops.evaluation.workers import default_workers
from llmops_dev.fakehub import serve_in_thread
from llmops_dev.tgisim import Behaviour, Simulator, run_in_thread

# 40 prompts: enough for the 95% lower bound of a perfect exactMatch to reach 0.9 (35 needed).
QUESTIONS = {f"What is item {i}?": f"item {i} is a thing" for i in range(40)}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "qa.jsonl"
    lines = [
        {"id": f"q{i}", "prompt": p, "reference": r, "tags": ["even" if i % 2 == 0 else "odd"]}
        for i, (p, r) in enumerate(QUESTIONS.items())
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


@contextlib.contextmanager
def _serve(accuracy: float, **behaviour: Any) -> Iterator[str]:
    sim = Simulator(
        Behaviour(answers=QUESTIONS, accuracy=accuracy, latency_seconds=0.001, **behaviour),
        api_key="secret",
        shutdown_timeout=0.1,
    )
    with run_in_thread(sim) as url:
        yield url


@pytest.fixture
def perfect() -> Iterator[str]:
    with _serve(1.0) as url:
        yield url


@pytest.fixture
def poor() -> Iterator[str]:
    with _serve(0.3) as url:
        yield url


def _run(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any], list]:
    summary_file = tmp_path / "termination-log"
    code = main([*argv, "--summary-file", str(summary_file)])
    text = summary_file.read_bytes()
    assert len(text) < SUMMARY_LIMIT
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return code, json.loads(text), lines


def _args(url: str, dataset: Path, *extra: str) -> list[str]:
    return [
        "--endpoint",
        url,
        "--api-key-env",
        "TGI_KEY",
        "--dataset",
        str(dataset),
        "--backoff-base",
        "0.001",
        *extra,
    ]


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TGI_KEY", "secret")


def test_accurate_model_passes(
    perfect: str, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    thresholds = '[{"metric": "exactMatch", "min": 0.8}, {"metric": "errorRate", "max": 0}]'
    code, summary, lines = _run(
        _args(perfect, dataset, "--thresholds", thresholds, "--model", "org/m", "--model-revision", "abc123"),
        tmp_path,
        capsys,
    )
    assert code == EXIT_PASSED
    assert summary["verdict"] == "Passed" and summary["exitCode"] == 0
    # A rate is judged on its interval: 40 of 40 right shows exactMatch >= 0.8 at 95%.
    assert summary["metrics"]["exactMatch"] == {
        "value": 1.0, "n": 40, "min": 0.8, "passed": True, "verdict": "Passed", "lower": 0.9124, "upper": 1.0,
    }  # fmt: skip
    # max 0 ("no prompt failed") is judged on the count: no interval can show a rate of 0.
    assert summary["metrics"]["errorRate"]["passed"] is True
    assert summary["confidence"] == 0.95
    assert summary["counts"] == {"samples": 40, "completed": 40, "errors": 0, "retried": 0, "retries": 0}
    assert (summary["model"], summary["modelRevision"]) == ("org/m", "abc123")
    assert summary["tags"]["even"]["n"] == 20
    assert sorted(line["id"] for line in lines) == sorted(f"q{i}" for i in range(40))
    assert all(line["scores"]["exactMatch"] == 1.0 and line["error"] is None for line in lines)


def test_inaccurate_model_fails_its_threshold(
    poor: str, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    thresholds = '[{"metric": "exactMatch", "min": 0.8}, {"metric": "latencyP95", "max": 10}]'
    code, summary, lines = _run(_args(poor, dataset, "--thresholds", thresholds), tmp_path, capsys)
    assert code == EXIT_FAILED
    assert summary["verdict"] == "Failed"
    # The simulator answers exactly round(0.3 * 40) = 12 known prompts right.
    exact = summary["metrics"]["exactMatch"]
    assert (exact["value"], exact["n"], exact["passed"], exact["verdict"]) == (0.3, 40, False, "Failed")
    assert exact["upper"] < 0.8  # the failure itself is shown at 95%
    assert summary["metrics"]["latencyP95"]["passed"] is True
    assert summary["message"] == "failed: exactMatch 0.30 (95% lower bound 0.18 at n=40) cannot show ≥ 0.8"
    assert sum(line["scores"]["exactMatch"] for line in lines) == 12


def test_thresholds_from_a_file_and_configmap_source(
    perfect: str, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text('[{"metric": "tokenF1", "min": 0.99}]')
    argv = ["--endpoint", perfect, "--api-key-env", "TGI_KEY", "--thresholds-file", str(thresholds)]
    argv += ["--dataset-configmap-dir", str(dataset.parent), "--dataset-key", dataset.name]
    code, summary, _ = _run(argv, tmp_path, capsys)
    assert code == EXIT_PASSED and summary["metrics"]["tokenF1"]["value"] == 1.0


def test_malformed_dataset_is_broken_and_not_worth_a_retry(
    perfect: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "dataset.jsonl"
    bad.write_text('{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": "c", oops}\n')
    code, summary, lines = _run(_args(perfect, bad), tmp_path, capsys)
    assert code == EXIT_INVALID  # the Job's pod failure policy fails it at once
    assert summary["verdict"] == "Broken"
    assert summary["message"].startswith("dataset.jsonl:3: invalid JSON: ")
    assert lines == []  # nothing was sent


def test_an_unreadable_dataset_file_is_worth_a_retry(
    perfect: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A ConfigMap key that is not mounted (yet): another pod may read it.
    code, summary, _ = _run(_args(perfect, tmp_path / "absent.jsonl"), tmp_path, capsys)
    assert (code, summary["verdict"]) == (EXIT_BROKEN, "Broken")
    assert "absent.jsonl: cannot read the dataset" in summary["message"]


def test_unreachable_endpoint_is_broken(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    code, summary, _ = _run(_args(url, dataset, "--retries", "1"), tmp_path, capsys)
    assert code == EXIT_BROKEN
    assert summary["message"].startswith(f"endpoint {url} unreachable after 2 attempt(s)")


def test_every_request_failing_is_broken(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with _serve(1.0, error_rate=1.0, error_kind="generation") as url:
        code, summary, lines = _run(_args(url, dataset), tmp_path, capsys)
    assert code == EXIT_BROKEN
    assert summary["message"].startswith("no sample completed (40 failed)")
    assert len(lines) == 40 and all(line["error"].startswith("HTTP 424") for line in lines)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--thresholds", '[{"metric": "jsonValid", "min": 1}]'], "the dataset cannot measure"),
        (
            ["--thresholds", '[{"metric": "accuracy", "min": 1}]'],
            "thresholds[0].metric 'accuracy' is not one of",
        ),
        (["--api-key-env", "NO_SUCH_VARIABLE"], "environment variable NO_SUCH_VARIABLE (from --api-key-env)"),
        (["--concurrency", "0"], "--concurrency must be at least 1"),
        (["--hub-dataset", "org/x"], "give exactly one dataset source"),
    ],
)
def test_configuration_errors_are_broken_before_any_request(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    # No server at all: a configuration error must be reported before anything is sent, and a
    # retry would read the same configuration.
    code, summary, lines = _run(_args("http://127.0.0.1:9", dataset, *extra), tmp_path, capsys)
    assert (code, summary["verdict"], lines) == (EXIT_INVALID, "Broken", [])
    assert message in summary["message"]


def test_a_usage_error_exits_2_without_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-such-flag"]) == EXIT_BROKEN
    assert "the following arguments are required: --endpoint" in capsys.readouterr().err


def test_hub_dataset_through_the_fake_hub(
    perfect: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real huggingface_hub download path, against the project's fake Hub (HF_ENDPOINT).
    sha = "fedcba9876543210fedcba9876543210fedcba98"
    lines = "".join(json.dumps({"prompt": p, "reference": r}) + "\n" for p, r in QUESTIONS.items())
    state = tmp_path / "hub"
    state.mkdir()
    (state / "hub.json").write_text(json.dumps({"files": {"datasets/org/evalset": {"data/qa.jsonl": lines}}}))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with serve_in_thread(state) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        hub_args = ["--hub-dataset", "org/evalset", "--hub-revision", sha, "--hub-filename", "data/qa.jsonl"]
        argv = ["--endpoint", perfect, "--api-key-env", "TGI_KEY", *hub_args]
        code, summary, lines_out = _run(
            [*argv, "--thresholds", '[{"metric": "exactMatch", "min": 1}]'], tmp_path, capsys
        )
        assert code == EXIT_PASSED and len(lines_out) == len(QUESTIONS)
        assert list(
            (tmp_path / "hf-home" / "hub").glob(f"datasets--org--evalset/snapshots/{sha}/data/qa.jsonl")
        )

        missing = [*argv[:-1], "data/missing.jsonl"]  # the same flags, another file
        code, summary, _ = _run(missing, tmp_path, capsys)
        assert code == EXIT_INVALID  # the Hub says it is not there: asking again gets the same
        assert summary["message"].startswith(
            f"cannot download 'data/missing.jsonl' from dataset 'org/evalset' at revision '{sha}'"
        )
    # The Hub away (its port closed now): worth a retry.
    code, summary, _ = _run(missing, tmp_path, capsys)
    assert (code, summary["verdict"]) == (EXIT_BROKEN, "Broken")
    assert summary["message"].startswith("cannot download 'data/missing.jsonl'")


def test_max_samples_scores_only_the_first_samples(tmp_path: Path) -> None:
    """A smoke evaluation: --max-samples N sends N requests and counts N samples."""
    lines = [json.dumps({"prompt": f"q{i}", "reference": f"a{i}"}) for i in range(10)]
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(lines) + "\n")
    summary = tmp_path / "summary.json"
    sim = Simulator(Behaviour(answers={f"q{i}": f"a{i}" for i in range(10)}))
    with run_in_thread(sim) as url:
        code = main(
            ["--endpoint", url, "--dataset", str(data), "--max-samples", "3", "--summary-file", str(summary),
             "--thresholds", '[{"metric": "exactMatch", "min": 1.0}]']
        )  # fmt: skip
    assert code == 0
    assert json.loads(summary.read_text())["counts"]["samples"] == 3


def test_workers_split_the_dataset_and_keep_every_sample(
    perfect: str, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    thresholds = '[{"metric": "exactMatch", "min": 0.9}]'
    one = _run(_args(perfect, dataset, "--thresholds", thresholds, "--workers", "1"), tmp_path, capsys)
    two = _run(_args(perfect, dataset, "--thresholds", thresholds, "--workers", "2"), tmp_path, capsys)
    assert one[0] == two[0] == EXIT_PASSED
    assert one[1]["counts"] == two[1]["counts"]
    assert one[1]["metrics"]["exactMatch"] == two[1]["metrics"]["exactMatch"]
    assert sorted(line["id"] for line in two[2]) == sorted(line["id"] for line in one[2])


def test_chat_route_is_the_default_and_completion_refuses_chat_samples(
    perfect: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chat = tmp_path / "chat.jsonl"
    rows = [
        {"id": f"c{i}", "messages": [{"role": "user", "content": p}], "reference": r}
        for i, (p, r) in enumerate(QUESTIONS.items())
    ]
    chat.write_text("\n".join(json.dumps(x) for x in rows))
    thresholds = '[{"metric": "exactMatch", "min": 0.9}]'
    code, summary, _ = _run(_args(perfect, chat, "--thresholds", thresholds), tmp_path, capsys)
    assert code == EXIT_PASSED, summary
    code, summary, _ = _run(_args(perfect, chat, "--route", "completion"), tmp_path, capsys)
    assert code == EXIT_INVALID
    assert "--route completion sends raw prompts, but sample 'c0' (line 1) has messages" in summary["message"]


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("150000 100000\n", 1), ("max 100000\n", None), ("800000 100000", None), (None, None)],
)
def test_default_workers_follow_the_cgroup_cpu_limit(
    tmp_path: Path, cpu_max: str | None, expected: int | None
) -> None:
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max)
    allowed = len(os.sched_getaffinity(0))
    assert default_workers(path) == (
        expected if expected is not None else min(allowed, 8 if cpu_max and "800000" in cpu_max else allowed)
    )


# ------------------------------------------------------------------ verdicts with confidence


def _six(tmp_path: Path) -> Path:
    path = tmp_path / "six.jsonl"
    rows = [
        {"id": f"s{i}", "prompt": p, "reference": r} for i, (p, r) in enumerate(list(QUESTIONS.items())[:6])
    ]
    path.write_text("\n".join(json.dumps(x) for x in rows) + "\n")
    return path


def test_six_prompts_cannot_show_one_percent_errors_from_a_server_failing_15_percent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The user report: a server that fails 15% of its requests passed errorRate <= 0.01 on six
    prompts. Now: too few samples to show it, never a pass, with the numbers and what is needed."""
    with _serve(1.0, error_rate=0.15) as url:
        thresholds = '[{"metric": "errorRate", "max": 0.01}, {"metric": "exactMatch", "min": 0.5}]'
        code, summary, _ = _run(_args(url, _six(tmp_path), "--thresholds", thresholds), tmp_path, capsys)
    assert (code, summary["verdict"]) == (EXIT_FAILED, "InsufficientSamples")
    errors = summary["metrics"]["errorRate"]
    assert (errors["verdict"], errors["n"], errors["required"], errors["passed"]) == (
        "InsufficientSamples", 6, 381, False,
    )  # fmt: skip
    assert errors["upper"] >= 0.39
    assert "errorRate" in summary["message"] and "needs ≥ 381 prompts" in summary["message"]
    assert summary["metrics"]["exactMatch"]["verdict"] == "Passed"  # 6/6: lower bound 0.61 >= 0.5


def test_a_request_that_succeeds_on_retry_still_counts_as_an_error(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Half the requests answer 429: every prompt is answered in the end (retries), but errorRate
    is the server's, from the first requests, and the retries are a metric of their own."""
    with _serve(1.0, error_rate=0.5) as url:
        code, summary, lines = _run(
            _args(url, dataset, "--retries", "5", "--concurrency", "1"), tmp_path, capsys
        )
    assert code == EXIT_PASSED  # no thresholds
    counts = summary["counts"]
    assert counts["errors"] == 0 and counts["completed"] == 40
    retried = sum(1 for line in lines if line["attempts"] > 1)
    assert counts["retried"] == retried > 0 and counts["retries"] >= retried
    assert summary["metrics"]["errorRate"] == {"value": retried / 40, "n": 40}
    assert summary["metrics"]["retryRate"] == {"value": retried / 40, "n": 40}
    # The simulator fails every other request it receives, retries included: at concurrency 1 a
    # retry takes the succeeding slot, so nearly every first request lands on a failing one.
    assert retried / 40 >= 0.5


def test_judge_value_is_the_smoke_checks_reading(
    perfect: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    thresholds = '[{"metric": "errorRate", "max": 0.01}]'
    code, summary, _ = _run(
        _args(perfect, _six(tmp_path), "--thresholds", thresholds, "--judge", "value"), tmp_path, capsys
    )
    assert code == EXIT_PASSED and summary["metrics"]["errorRate"]["verdict"] == "Passed"


def test_a_baseline_is_compared_prompt_by_prompt(
    poor: str, perfect: str, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The candidate (30% right) against the baseline (all right) on the same 40 prompts: 28 lost,
    none won, exact McNemar p = 2^-28, Worse beyond maxDrop 0.01; the exit code stays the thresholds'."""
    thresholds = '[{"metric": "errorRate", "max": 0}]'
    argv = _args(poor, dataset, "--thresholds", thresholds, "--baseline-endpoint", perfect)
    code, summary, lines = _run([*argv, "--max-drop", '{"exactMatch": 0.01}'], tmp_path, capsys)
    assert code == EXIT_PASSED
    comparison = summary["comparison"]
    assert comparison["baseline"] == perfect
    exact = comparison["metrics"]["exactMatch"]
    assert exact == {
        "candidate": 0.3, "baseline": 1.0, "delta": -0.7, "n": 40, "wins": 0, "losses": 28,
        "test": "mcnemar", "pValue": float(f"{2**-28:.6g}"), "maxDrop": 0.01, "verdict": "Worse",
    }  # fmt: skip
    assert comparison["metrics"]["errorRate"]["verdict"] == "NotWorse"  # thresholded: compared at maxDrop 0
    assert sum(1 for line in lines if line.get("target") == "baseline") == 40


def test_the_same_server_as_baseline_is_not_worse(
    perfect: str,
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLMOPS_BASELINE_URL", perfect)  # the Job's way of naming the baseline
    code, summary, _ = _run(
        _args(perfect, dataset, "--thresholds", '[{"metric": "exactMatch", "min": 0.9}]'), tmp_path, capsys
    )
    assert code == EXIT_PASSED
    exact = summary["comparison"]["metrics"]["exactMatch"]
    assert (exact["delta"], exact["wins"], exact["losses"], exact["pValue"], exact["verdict"]) == (
        0.0, 0, 0, 1.0, "NotWorse",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--max-drop", '{"exactMatch": 0.01}'], "--max-drop needs --baseline-endpoint"),
        (["--baseline-endpoint", "http://b:1", "--max-drop", '{"latencyP95": 1}'], "not a per-prompt metric"),
        (
            ["--baseline-endpoint", "http://b:1", "--max-drop", '{"exactMatch": 2}'],
            "must be a number in [0, 1]",
        ),
        (["--baseline-endpoint", "ftp://b"], "--baseline-endpoint: endpoint 'ftp://b' must be"),
        (["--confidence", "1"], "--confidence must be in [0.5, 1)"),
    ],
)
def test_comparison_and_confidence_errors_are_broken_before_any_request(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code, summary, lines = _run(_args("http://127.0.0.1:9", dataset, *extra), tmp_path, capsys)
    assert (code, summary["verdict"], lines) == (EXIT_INVALID, "Broken", [])
    assert message in summary["message"]
