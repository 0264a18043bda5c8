"""The contracts between the Job programs and the operator, and the status timestamp format."""

from __future__ import annotations

import datetime as dt
from typing import Any

from llmops import contracts
from llmops.api.resource import LLMDeployment, parse
from llmops.download import EXIT_PERMANENT
from llmops.evaluation.report import EXIT_FAILED, EXIT_INVALID, broken_summary
from llmops.render.cache import download_job
from llmops.render.evaluation import evaluation_job
from testkit.canary_sim import EVALUATION
from testkit.planning import body


def _llmd() -> LLMDeployment:
    return parse(body(evaluation=EVALUATION))


def _fail_fast_codes(job: dict[str, Any] | None) -> list[int]:
    assert job is not None
    rules = job["spec"]["podFailurePolicy"]["rules"]
    return [code for rule in rules if "onExitCodes" in rule for code in rule["onExitCodes"]["values"]]


def test_the_evaluation_job_fails_fast_on_the_programs_failed_and_invalid_codes() -> None:
    ld = _llmd()
    job = evaluation_job(ld, revision=ld.spec.model.revision, endpoint="http://m-staging:80")
    assert _fail_fast_codes(job) == [EXIT_FAILED, EXIT_INVALID]
    assert [EXIT_FAILED, EXIT_INVALID] == [contracts.EVAL_EXIT_FAILED, contracts.EVAL_EXIT_INVALID]
    # A broken evaluation that a retry may fix is retried (backoffLimit); one given bad input is not.
    assert broken_summary("endpoint away")["exitCode"] == contracts.EVAL_EXIT_BROKEN
    assert contracts.EVAL_EXIT_BROKEN not in _fail_fast_codes(job)
    assert broken_summary("bad line", retryable=False)["exitCode"] == EXIT_INVALID


def test_the_download_job_fails_fast_on_the_programs_permanent_code() -> None:
    ld = _llmd()
    assert _fail_fast_codes(download_job(ld, revision=ld.spec.model.revision)) == [EXIT_PERMANENT]


def test_timestamps_round_trip_at_second_precision_in_utc() -> None:
    cest = dt.timezone(dt.timedelta(hours=2))
    when = dt.datetime(2026, 11, 28, 12, 0, 5, 999999, tzinfo=cest)
    text = contracts.format_timestamp(when)
    assert text == "2026-11-28T10:00:05Z"
    assert contracts.parse_timestamp(text) == when.replace(microsecond=0)
    assert contracts.parse_timestamp(text).tzinfo is dt.UTC
    # A status field not written yet reads as None; a written one as what was written.
    assert contracts.parse_status_timestamp(None) is None
    assert contracts.parse_status_timestamp("") is None
    assert contracts.parse_status_timestamp(text) == when.replace(microsecond=0)
