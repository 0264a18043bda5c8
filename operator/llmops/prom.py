"""The Prometheus adapter: one instant query → Value, NoData or Error. Never raises for those.

Built on prometheus-api-client's `PrometheusConnect` (its requests session, retry adapter and
`custom_query`), with two things it does not do for us:

- Retries are explicit and bounded: the library's default `Retry(total=3, backoff_factor=1)`
  would hide an outage behind seconds of silent retrying and then surface requests' RetryError.
  Here: `retries` more attempts on connection errors, read timeouts and 502/503/504, no honoring
  of Retry-After, and the last 5xx answer is returned rather than raised, so it can be quoted.
- Prometheus' own error text: `custom_query` folds a non-200 answer into an exception string. A
  response hook on our session raises `_NotOk` with the parsed body first, so a 400 `bad_data`
  parse error is quoted exactly as Prometheus wrote it.

How an answer maps (instant query, `GET /api/v1/query`, with Prometheus' `timeout` parameter so a
runaway query is stopped server-side too):

- one sample (a vector with one series, or a scalar) with a finite value → Value;
- an empty vector, NaN, +Inf or -Inf → NoData (the reason says which). An empty range vector is
  indistinguishable from an empty vector through `custom_query` and also reads as NoData;
- several series, a range vector with data, or a string → Error(rejected): an analysis query
  must aggregate to one number;
- 400 (bad_data) or 422 (execution: e.g. many-to-many matching) → Error(rejected, Prometheus' text);
- connection refused, timeouts, 5xx, anything that is not Prometheus' JSON → Error(unreachable).

`retention()` reads how far back Prometheus keeps samples (`GET /api/v1/status/runtimeinfo`,
`storageRetention`: "15d", "15d or 10GiB", or "10GiB" with no time limit); `RetentionCache`
keeps that per URL for minutes, so the drift stage's check costs no request per pass.

`query_vector(promql, by)` is the same for a query that returns one series per value of a label
(a histogram summed `by (le)`): a `Vector` of label value → number; no series → NoData; a series
without the label, or two with the same value → Error(rejected).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from llmops.analysis.queries import MetricQueries
from llmops.analysis.results import Error, MetricResults, NoData, Result, Value, Vector, VectorResult

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT_SECONDS",
    "PromClient",
    "RetentionCache",
    "interpret",
    "interpret_status",
    "interpret_vector",
    "parse_retention",
]

DEFAULT_TIMEOUT_SECONDS = 5.0
"""Per attempt: the client's connect/read timeout and the `timeout` Prometheus evaluates within."""
DEFAULT_RETRIES = 1
"""Extra attempts after a connection error, read timeout or 502/503/504."""
_RETRY_STATUSES = (502, 503, 504)
_REJECTED_STATUSES = (400, 422)
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


class _NotOk(Exception):
    """Raised by the response hook for a non-200 answer, carrying it out of `custom_query`."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _raise_not_ok(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    if response.status_code != 200:
        body = response.content  # read it all, then give the connection back to the pool
        response.close()
        raise _NotOk(response.status_code, body)


def _prometheus_error(body: bytes) -> tuple[str | None, str | None]:
    """(errorType, error) from Prometheus' JSON error body; (None, None) if it is not one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(data, dict) or not isinstance(data.get("error"), str):
        return None, None
    error_type = data.get("errorType")
    return (error_type if isinstance(error_type, str) else None), data["error"]


def interpret_status(status: int, body: bytes) -> Error:
    """The Error for a non-200 answer: Prometheus' own error text when it gave one."""
    error_type, error = _prometheus_error(body)
    if error is not None and status in _REJECTED_STATUSES:
        return Error(f"{error_type}: {error}" if error_type else error, "rejected")
    if error is not None:
        return Error(f"HTTP {status} ({error_type or 'error'}): {error}", "unreachable")
    return Error(f"HTTP {status} from something that is not Prometheus' API", "unreachable")


def _sample(value: Any) -> Result:
    """A `[timestamp, "value"]` pair → Value, or NoData for NaN/±Inf."""
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], str)):
        return Error(f"unexpected sample {value!r}", "unreachable")
    try:
        number = float(value[1])
    except ValueError:
        return Error(f"the query returned a string ({value[1]!r}), not a number", "rejected")
    if math.isnan(number):
        return NoData("the value is NaN (e.g. a ratio of rates without traffic in the window)")
    if math.isinf(number):
        return NoData(f"the value is {value[1]} (e.g. a quantile beyond the largest histogram bucket)")
    return Value(number)


def interpret(result: Any) -> Result:
    """The Result for `data.result` of a successful instant query (as `custom_query` returns it)."""
    if not isinstance(result, list):
        return Error(f"unexpected result {result!r}", "unreachable")
    if len(result) == 2 and isinstance(result[0], int | float):
        return _sample(result)  # a scalar (or a string: `_sample` refuses it)
    if not result:
        return NoData("the query returned no series")
    if not all(isinstance(series, dict) for series in result):
        return Error(f"unexpected result {result!r}", "unreachable")
    if any("values" in series for series in result):
        return Error("the query returned a range vector; it must return one number", "rejected")
    if len(result) > 1:
        labels = ", ".join(json.dumps(series.get("metric", {}), sort_keys=True) for series in result[:3])
        more = ", ..." if len(result) > 3 else ""
        return Error(
            f"the query returned {len(result)} series ({labels}{more}); it must return one number: "
            "aggregate it (sum, max, histogram_quantile over sum by (le))",
            "rejected",
        )
    return _sample(result[0].get("value"))


def interpret_vector(result: Any, by: str) -> VectorResult:
    """The Vector (label `by` → value) for `data.result` of an instant query; NaN/±Inf samples
    are left out (a bucket without data), and all of them gone reads as NoData."""
    if not isinstance(result, list) or not all(isinstance(series, dict) for series in result):
        return Error(f"unexpected result {result!r}", "unreachable")
    if not result:
        return NoData("the query returned no series")
    values: dict[str, float] = {}
    for series in result:
        key = (series.get("metric") or {}).get(by)
        if key is None or "value" not in series:
            return Error(
                f"the query must return one series per {by!r} (aggregate with `by ({by})`)", "rejected"
            )
        if key in values:
            return Error(
                f"the query returned two series with {by}={key!r}; aggregate with `by ({by})`", "rejected"
            )
        sample = _sample(series["value"])
        if isinstance(sample, Error):
            return sample
        if isinstance(sample, Value):
            values[key] = sample.value
    if not values:
        return NoData("every series is NaN or infinite")
    return Vector(values)


def _unreachable(url: str, exc: requests.RequestException, timeout: float) -> Error:
    """A short, stable message: no object addresses, no URL-encoded query."""
    if isinstance(exc, requests.ConnectTimeout):
        why = f"connection timed out after {timeout:g}s"
    elif isinstance(exc, requests.ReadTimeout) or "Read timed out" in str(exc):
        why = f"no answer within {timeout:g}s"
    elif isinstance(exc, requests.ConnectionError):
        found = _ERRNO.search(str(exc))
        why = found.group(1).strip().lower() if found else "connection failed"
    else:
        why = type(exc).__name__
    return Error(f"cannot query Prometheus at {url}: {why}", "unreachable")


_RETENTION_PART = re.compile(r"([0-9]+)(ms|y|w|d|h|m|s)")
_RETENTION = re.compile(r"([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?")
_RETENTION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 365 * 86400}


def parse_retention(text: str) -> float | None:
    """Seconds of the time limit in runtimeinfo's ``storageRetention`` ("15d", "15d or 10GiB",
    "1h30m"); None when there is none ("10GiB": a size limit only) or it cannot be read."""
    for part in (p.strip() for p in text.split(" or ")):
        if part and _RETENTION.fullmatch(part):
            return float(sum(int(n) * _RETENTION_UNITS[u] for n, u in _RETENTION_PART.findall(part)))
    return None


class PromClient:
    """Instant queries against one Prometheus, through one requests session: give each thread its
    own client (requests does not promise a session is thread-safe). Cheap to create."""

    def __init__(
        self, url: str, timeout: float = DEFAULT_TIMEOUT_SECONDS, *, retries: int = DEFAULT_RETRIES
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            other=0,
            backoff_factor=0.2,
            status_forcelist=_RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
            respect_retry_after_header=False,
        )
        session = requests.Session()
        session.hooks["response"].append(_raise_not_ok)
        self._session = session
        self._prom = PrometheusConnect(url=self.url, retry=retry, session=session, timeout=timeout)

    def _run(self, promql: str) -> tuple[Any, Error | None]:
        """`data.result` of an instant query of `promql` now, or the Error that stood in the way."""
        params = {"timeout": f"{max(1, round(self.timeout * 1000))}ms"}
        try:
            return self._prom.custom_query(promql, params=params), None
        except _NotOk as answer:
            return None, interpret_status(answer.status, answer.body)
        except requests.JSONDecodeError:
            return None, Error(f"unexpected answer from {self.url}: not JSON", "unreachable")
        except requests.RequestException as exc:
            return None, _unreachable(self.url, exc, self.timeout)
        except (KeyError, TypeError, ValueError) as exc:  # 200 but not Prometheus' JSON
            return None, Error(f"unexpected answer from {self.url}: {type(exc).__name__}", "unreachable")

    def query(self, promql: str) -> Result:
        """Evaluate `promql` now: Value, NoData or Error (see the module docstring)."""
        result, error = self._run(promql)
        return error if error is not None else interpret(result)

    def query_vector(self, promql: str, by: str) -> VectorResult:
        """Evaluate `promql` now, one series per value of label `by`: Vector, NoData or Error."""
        result, error = self._run(promql)
        return error if error is not None else interpret_vector(result, by)

    def check_syntax(self, promql: str) -> Error | None:
        """Whether Prometheus can parse ``promql``, without evaluating it: None when it parses,
        Error(rejected) quoting the parse error, Error(unreachable) when it could not tell.

        ``GET /api/v1/format_query`` parses only (Prometheus 2.30 and later, also 3.x; the newer
        ``parse_query`` is absent from Debian's 2.42). A server without it (404: an older
        Prometheus, or a Prometheus-compatible backend) gets an instant query instead, whose
        ``bad_data`` answer is the same parse error."""
        try:
            self._session.get(
                f"{self.url}/api/v1/format_query", params={"query": promql}, timeout=self.timeout
            ).close()
        except _NotOk as answer:
            if answer.status != 404:
                return interpret_status(answer.status, answer.body)
            result = self.query(promql)
            if isinstance(result, Error) and result.kind == "rejected" and "bad_data" not in result.message:
                return None  # it parsed; only evaluating it failed
            return result if isinstance(result, Error) else None
        except requests.RequestException as exc:
            return _unreachable(self.url, exc, self.timeout)
        return None

    def retention(self) -> float | None | Error:
        """How far back Prometheus keeps samples, in seconds (None: no time limit, or a backend
        that does not say: `/api/v1/status/runtimeinfo` is Prometheus' own)."""
        try:
            response = self._session.get(f"{self.url}/api/v1/status/runtimeinfo", timeout=self.timeout)
            data = response.json().get("data") or {}
        except _NotOk as answer:
            return None if answer.status == 404 else interpret_status(answer.status, answer.body)
        except requests.JSONDecodeError:
            return Error(f"unexpected answer from {self.url}: not JSON", "unreachable")
        except requests.RequestException as exc:
            return _unreachable(self.url, exc, self.timeout)
        retention = data.get("storageRetention") if isinstance(data, dict) else None
        return parse_retention(retention) if isinstance(retention, str) else None

    def query_all(self, queries: Iterable[MetricQueries]) -> list[MetricResults]:
        """Run every metric's canary (and stable) query: the observation `measure_all` judges."""
        return [
            MetricResults(q.name, self.query(q.canary), None if q.stable is None else self.query(q.stable))
            for q in queries
        ]

    def close(self) -> None:
        """Release the connection pool."""
        self._prom.close()

    def __enter__(self) -> PromClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RetentionCache:
    """Each Prometheus' retention (PromClient.retention), read at most once per ``ttl`` seconds
    (a failed read once per ``error_ttl``, and then unknown: None), one read at a time. The drift
    stage needs it on every pass of every LLMDeployment with drift; it changes only when
    Prometheus restarts with other flags."""

    def __init__(
        self,
        ttl: float = 600.0,
        error_ttl: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        read: Callable[[str], float | None | Error] | None = None,
    ) -> None:
        self.ttl, self.error_ttl, self._clock = ttl, error_ttl, clock
        self._read = read or _read_retention
        self._lock = threading.Lock()
        self._known: dict[str, tuple[float, float | None]] = {}
        self.reads = 0
        """Reads sent (for tests and the benchmark)."""

    def get(self, url: str) -> float | None:
        """The retention of the Prometheus at ``url`` in seconds, None when unknown or unlimited."""
        with self._lock:
            now = self._clock()
            cached = self._known.get(url)
            if cached is not None and now < cached[0]:
                return cached[1]
            self.reads += 1
            got = self._read(url)
            value = None if isinstance(got, Error) else got
            self._known[url] = (now + (self.error_ttl if isinstance(got, Error) else self.ttl), value)
            return value


def _read_retention(url: str) -> float | None | Error:
    with PromClient(url, retries=0) as prom:
        return prom.retention()
