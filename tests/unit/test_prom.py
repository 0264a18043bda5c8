"""The Prometheus adapter on the wire: the exact request it sends, its bounded retries and timeout,
and how every answer shape maps to Value / NoData / Error.

A stub HTTP server stands in for Prometheus only to pin the request and to produce what a real
Prometheus will not do on demand (a 503 that then recovers, a server that never answers, a proxy's
HTML page). What the real Prometheus answers is covered by tests/integration/test_prometheus_adapter.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from llmops.analysis import Error, MetricQueries, MetricResults, NoData, Result, Value
from llmops.analysis.results import Vector
from llmops.prom import PromClient, interpret, interpret_status, interpret_vector
from llmops_dev.processes import free_port

T = 1700000000.5
PROMQL = 'sum(rate(tgi_request_failure{err!="validation",namespace="prod"}[1m])) or vector(0)'


@dataclass
class Stub:
    """Answers queued responses (status, body) in order; records every request."""

    answers: list[tuple[int, bytes]]
    requests: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)
    url: str = ""


def ok(result: Any, result_type: str = "vector") -> tuple[int, bytes]:
    return 200, json.dumps(
        {"status": "success", "data": {"resultType": result_type, "result": result}}
    ).encode()


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = Stub(answers=[])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            state.requests.append((self.command, parts.path, parse_qs(parts.query, keep_blank_values=True)))
            status, body = state.answers.pop(0) if state.answers else (500, b"no answer queued")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def test_the_exact_request(stub: Stub) -> None:
    stub.answers = [ok([{"metric": {}, "value": [1700000000.1, "0.0125"]}])]
    with PromClient(stub.url + "/", timeout=2.5) as prom:
        assert prom.query(PROMQL) == Value(0.0125)
    # One GET of the instant-query API: the PromQL verbatim, and Prometheus' own evaluation timeout.
    assert stub.requests == [("GET", "/api/v1/query", {"query": [PROMQL], "timeout": ["2500ms"]})]


def test_query_all_runs_the_stable_query_only_when_compared(stub: Stub) -> None:
    stub.answers = [ok([T, "1"], "scalar"), ok([T, "2"], "scalar"), ok([], "vector")]
    got = PromClient(stub.url).query_all(
        [MetricQueries("a", "canary_a", None), MetricQueries("b", "canary_b", "stable_b")]
    )
    assert got == [
        MetricResults("a", Value(1.0), None),
        MetricResults("b", Value(2.0), NoData("the query returned no series")),
    ]
    assert [params["query"] for _, _, params in stub.requests] == [["canary_a"], ["canary_b"], ["stable_b"]]


def test_a_503_is_retried_once_then_the_answer_counts(stub: Stub) -> None:
    busy = json.dumps({"status": "error", "errorType": "unavailable", "error": "too many queries"}).encode()
    stub.answers = [(503, busy), ok([], "vector")]
    assert PromClient(stub.url).query(PROMQL) == NoData("the query returned no series")
    assert len(stub.requests) == 2


def test_retries_are_bounded_and_the_last_error_is_quoted(stub: Stub) -> None:
    busy = json.dumps(
        {"status": "error", "errorType": "timeout", "error": "query timed out in query execution"}
    )
    stub.answers = [(503, busy.encode())] * 5
    got = PromClient(stub.url, retries=2).query(PROMQL)
    assert got == Error("HTTP 503 (timeout): query timed out in query execution", "unreachable")
    assert len(stub.requests) == 3  # the first attempt and two retries, no more


def test_a_rejected_query_is_not_retried(stub: Stub) -> None:
    stub.answers = [
        (
            400,
            b'{"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"}',
        )
    ]
    got = PromClient(stub.url, retries=3).query("sum(")
    assert got == Error("bad_data: 1:5: parse error: unclosed left parenthesis", "rejected")
    assert len(stub.requests) == 1


def test_a_silent_server_times_out_within_the_bound() -> None:
    """A server that accepts the connection and never answers: Error(unreachable) after timeout x attempts."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        got = PromClient(url, timeout=0.3, retries=1).query(PROMQL)
        elapsed = time.monotonic() - started
    assert got == Error(f"cannot query Prometheus at {url}: no answer within 0.3s", "unreachable")
    assert 0.5 < elapsed < 3


def test_nothing_listening_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert PromClient(url).query(PROMQL) == Error(
        f"cannot query Prometheus at {url}: connection refused", "unreachable"
    )


def test_something_that_is_not_prometheus(stub: Stub) -> None:
    stub.answers = [(200, b"<html>login</html>"), (404, b"404 page not found")]
    prom = PromClient(stub.url)
    assert prom.query(PROMQL) == Error(f"unexpected answer from {stub.url}: not JSON", "unreachable")
    assert prom.query(PROMQL) == Error("HTTP 404 from something that is not Prometheus' API", "unreachable")


# -- answer shapes (pure) -------------------------------------------------------------------------

SHAPES: list[tuple[str, Any, Result]] = [
    ("one series", [{"metric": {}, "value": [T, "0.05"]}], Value(0.05)),
    ("one labelled series", [{"metric": {"pod": "a"}, "value": [T, "3"]}], Value(3.0)),
    ("scalar", [T, "2.5"], Value(2.5)),
    ("empty vector", [], NoData("the query returned no series")),
    ("NaN", [{"metric": {}, "value": [T, "NaN"]}],
     NoData("the value is NaN (e.g. a ratio of rates without traffic in the window)")),
    ("scalar NaN", [T, "NaN"], NoData("the value is NaN (e.g. a ratio of rates without traffic in the window)")),
    ("+Inf", [{"metric": {}, "value": [T, "+Inf"]}],
     NoData("the value is +Inf (e.g. a quantile beyond the largest histogram bucket)")),
    ("-Inf", [{"metric": {}, "value": [T, "-Inf"]}],
     NoData("the value is -Inf (e.g. a quantile beyond the largest histogram bucket)")),
    ("string", [T, "hello"], Error("the query returned a string ('hello'), not a number", "rejected")),
    ("range vector", [{"metric": {}, "values": [[T, "1"], [T + 1, "2"]]}],
     Error("the query returned a range vector; it must return one number", "rejected")),
    ("two series", [{"metric": {"pod": "a"}, "value": [T, "1"]}, {"metric": {"pod": "b"}, "value": [T, "2"]}],
     Error('the query returned 2 series ({"pod": "a"}, {"pod": "b"}); it must return one number: '
           "aggregate it (sum, max, histogram_quantile over sum by (le))", "rejected")),
    ("five series", [{"metric": {"i": str(i)}, "value": [T, "1"]} for i in range(5)],
     Error('the query returned 5 series ({"i": "0"}, {"i": "1"}, {"i": "2"}, ...); it must return one number: '
           "aggregate it (sum, max, histogram_quantile over sum by (le))", "rejected")),
    ("not a list", {"oops": 1}, Error("unexpected result {'oops': 1}", "unreachable")),
    ("not series", ["a", "b", "c"], Error("unexpected result ['a', 'b', 'c']", "unreachable")),
    ("series without a value", [{"metric": {}}], Error("unexpected sample None", "unreachable")),
]  # fmt: skip


@pytest.mark.parametrize(("result", "expected"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_interpret(result: Any, expected: Result) -> None:
    assert interpret(result) == expected


STATUSES: list[tuple[str, int, bytes, Error]] = [
    ("400 bad_data", 400, b'{"status":"error","errorType":"bad_data","error":"invalid parameter \\"query\\": 1:5: parse error"}',
     Error('bad_data: invalid parameter "query": 1:5: parse error', "rejected")),
    ("422 execution", 422, b'{"status":"error","errorType":"execution","error":"many-to-many matching not allowed"}',
     Error("execution: many-to-many matching not allowed", "rejected")),
    ("400 without errorType", 400, b'{"status":"error","error":"bad"}', Error("bad", "rejected")),
    ("503 timeout", 503, b'{"status":"error","errorType":"timeout","error":"query timed out"}',
     Error("HTTP 503 (timeout): query timed out", "unreachable")),
    ("500 internal", 500, b'{"status":"error","error":"storage"}', Error("HTTP 500 (error): storage", "unreachable")),
    ("400 from a proxy", 400, b"<html>bad request</html>",
     Error("HTTP 400 from something that is not Prometheus' API", "unreachable")),
    ("JSON that is not an error", 502, b'["x"]', Error("HTTP 502 from something that is not Prometheus' API", "unreachable")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "expected"), [s[1:] for s in STATUSES], ids=[s[0] for s in STATUSES]
)
def test_interpret_status(status: int, body: bytes, expected: Error) -> None:
    assert interpret_status(status, body) == expected


# ------------------------------------------------------------------------------ vectors by label


def bucket(le: str, value: str) -> dict[str, Any]:
    return {"metric": {"le": le}, "value": [T, value]}


def test_a_histogram_by_le_is_a_vector(stub: Stub) -> None:
    stub.answers.append(ok([bucket("10", "3"), bucket("+Inf", "4.5"), bucket("20", "NaN")]))
    with PromClient(stub.url) as prom:
        got = prom.query_vector("sum by (le) (increase(x_bucket[1h]))", "le")
    assert got == Vector({"10": 3.0, "+Inf": 4.5})  # NaN: a bucket without data, left out
    [(_, path, params)] = stub.requests
    assert path == "/api/v1/query" and params["query"] == ["sum by (le) (increase(x_bucket[1h]))"]


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ([], NoData("the query returned no series")),
        ([bucket("10", "NaN")], NoData("every series is NaN or infinite")),
        (
            [{"metric": {}, "value": [T, "1"]}],
            Error("the query must return one series per 'le' (aggregate with `by (le)`)", "rejected"),
        ),
        (
            [bucket("10", "1"), bucket("10", "2")],
            Error("the query returned two series with le='10'; aggregate with `by (le)`", "rejected"),
        ),
        ("nonsense", Error("unexpected result 'nonsense'", "unreachable")),
    ],
)
def test_vector_shapes(result: Any, expected: Any) -> None:
    assert interpret_vector(result, "le") == expected


def test_an_unreachable_prometheus_is_an_error_for_vectors_too() -> None:
    with PromClient(f"http://127.0.0.1:{free_port()}", timeout=0.5, retries=0) as prom:
        got = prom.query_vector("sum by (le) (x)", "le")
    assert isinstance(got, Error) and got.kind == "unreachable"
    assert "connection refused" in got.message
