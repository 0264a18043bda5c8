"""The adapter against a real Prometheus (Debian's package): every answer shape Prometheus gives an
instant query maps to Value, NoData or Error, Prometheus' own error text is quoted, and a stopped
Prometheus is Error(unreachable) → Inconclusive → never promoted. Also: the launcher's failure
message names the log. No Kubernetes cluster needed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmops.analysis import Decision, Error, NoData, Outcome, Value, judge, measure
from llmops.api.delivery import AnalysisMetric
from llmops.prom import PromClient
from llmops_dev.processes import ClusterError
from llmops_dev.prometheus import Prometheus


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    state = tmp_path_factory.mktemp("prom-adapter")
    prom = Prometheus.start(state, state / "tgi-targets.json")
    yield prom
    prom.stop()


@pytest.fixture(scope="module")
def client(prometheus: Prometheus) -> Iterator[PromClient]:
    with PromClient(prometheus.url) as client:
        yield client


NAN = NoData("the value is NaN (e.g. a ratio of rates without traffic in the window)")
SERIES_2 = (
    'the query returned 2 series ({}, {"track": "b"}); it must return one number: '
    "aggregate it (sum, max, histogram_quantile over sum by (le))"
)


@pytest.mark.parametrize(
    ("promql", "expected"),
    [
        ("vector(0.05)", Value(0.05)),
        ("scalar(vector(3))", Value(3.0)),
        ("2 * 21", Value(42.0)),
        ("sum(rate(tgi_request_success[10s]))", NoData("the query returned no series")),
        ("vector(0) / 0", NAN),
        ("(sum(rate(nothing[10s])) or vector(0)) / (sum(rate(nothing[10s])) or vector(0))", NAN),
        ("vector(1) / 0", NoData("the value is +Inf (e.g. a quantile beyond the largest histogram bucket)")),
        ('vector(1) or label_replace(vector(2), "track", "b", "", "")', Error(SERIES_2, "rejected")),
        ('"text"', Error("the query returned a string ('text'), not a number", "rejected")),
        (
            "sum(rate(tgi_request_success[10s])",
            Error(
                'bad_data: invalid parameter "query": 1:35: parse error: unclosed left parenthesis',
                "rejected",
            ),
        ),
        (
            'vector(1) + on() (vector(1) or label_replace(vector(1), "a", "b", "", ""))',
            Error(
                "execution: found duplicate series for the match group {} on the right hand-side of the "
                'operation: [{a="b"}, {}];many-to-many matching not allowed: matching labels must be unique '
                "on one side",
                "rejected",
            ),
        ),
    ],
)
def test_answers_of_a_real_prometheus(client: PromClient, promql: str, expected: object) -> None:
    assert client.query(promql) == expected


def test_a_rejected_custom_query_is_an_error_quoting_prometheus(client: PromClient) -> None:
    metric = AnalysisMetric(name="custom", query="sum(rate(x[1m])", threshold_range={"max": 1})
    check = measure(metric, client.query("sum(rate(x[1m])"), None)
    assert check.verdict is Outcome.ERROR
    assert check.message == (
        'Prometheus rejected the canary query: bad_data: invalid parameter "query": 1:16: '
        "parse error: unclosed left parenthesis"
    )


def test_prometheus_stopped_is_unreachable_and_never_promoted(tmp_path: Path) -> None:
    prom = Prometheus.start(tmp_path, tmp_path / "tgi-targets.json")
    client = PromClient(prom.url, timeout=2)
    assert client.query("vector(0.01)") == Value(0.01)
    prom.stop()  # the client's pooled connection to it is now dead too
    assert not (tmp_path / "prometheus" / "prometheus.json").exists()

    with client:
        result = client.query("vector(0.01)")
    assert result == Error(f"cannot query Prometheus at {prom.url}: connection refused", "unreachable")
    metric = AnalysisMetric(name="error-ratio", template="error-ratio", threshold_range={"max": 0.05})
    check = measure(metric, result, None)
    assert check.verdict is Outcome.INCONCLUSIVE
    assert (
        check.message == f"Prometheus unreachable: cannot query Prometheus at {prom.url}: connection refused"
    )
    assert judge([check], 0, 0, 2, 1).decision is Decision.CONTINUE
    assert judge([check], 0, 1, 2, 1).decision is Decision.PAUSE


def test_a_failed_start_names_the_log(tmp_path: Path) -> None:
    with pytest.raises(ClusterError) as err:
        Prometheus.start(tmp_path, tmp_path / "tgi-targets.json", scrape_interval="soon", deadline_s=10)
    log = tmp_path / "prometheus" / "prometheus.log"
    assert f"(log: {log})" in str(err.value)
    # The tail of the log is in the message too: Prometheus' own complaint about the config.
    assert re.search(r"not a valid duration string.*soon", str(err.value)), str(err.value)
    assert not (tmp_path / "prometheus" / "prometheus.json").exists()


def test_a_second_start_in_the_same_state_dir_replaces_the_first(tmp_path: Path) -> None:
    first = Prometheus.start(tmp_path, tmp_path / "tgi-targets.json")
    second = Prometheus.start(tmp_path, tmp_path / "tgi-targets.json")
    try:
        assert first.proc.popen.wait(timeout=15) is not None  # stopped by PID, from the record
        assert PromClient(second.url).query("vector(1)") == Value(1.0)
    finally:
        second.stop()
