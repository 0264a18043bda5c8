"""The Grafana dashboards' queries and the rendered alert rules, checked by a real Prometheus
(Debian's package), without Kubernetes.

For each engine, LLMDeployment `prod/chat-<engine>` has a stable and a canary pod: a simulator in
that engine's mode behind a gateway, labelled in a file_sd targets file as the PodMonitor labels
the gateway's health port (which serves the gateway's series and the engine's). The operator's
own metrics (`llmops.metrics`, fed with a canary status and drift verdicts) are served from this
process and scraped too. Users send generations to both tracks (the canary fails 10 % of them)
and rate every answer.

- every panel query of both dashboards, variables substituted as Grafana does, returns data;
- every `label_values` variable lists the LLMDeployment;
- `promtool check rules` accepts the rendered PrometheusRule of each engine, and each alert
  expression evaluates without error with every series selector in it matching data.
"""

from __future__ import annotations

import contextlib
import math
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from prometheus_client import start_http_server

from llmops import metrics as operator_metrics
from llmops.api.resource import parse
from llmops.render.monitoring import prometheus_rule
from llmops_dev.gateway_thread import serve_pod
from llmops_dev.packaging.dashboards import (
    DEPLOYMENT,
    NAMESPACE,
    RATE_INTERVAL,
    dashboard,
    expressions,
    variable_matches,
)
from llmops_dev.processes import ClusterError, free_port
from llmops_dev.prometheus import Prometheus, Target, find_promtool, write_targets
from llmops_dev.tgisim import Behaviour, Simulator
from testkit import wait_for

NS = "prod"
ENGINES = ("tgi", "vllm")
TRACKS = ("stable", "canary")
MODEL = "org/model"
KEY = b"k" * 32
WINDOW = "10s"  # what $__rate_interval stands for here: ten 1 s scrapes
RATINGS = ("up", "down", 5, 1, 4)
DRIFT = {"interval": "1m", "window": "10m", "traffic": {"signals": ["inputLength"]}}
ROLLOUT = {
    "steps": [{"setWeight": 25, "pause": {"duration": "1m"}}],
    "analysis": {
        "interval": "1m",
        "metrics": [{"name": "errors", "template": "error-ratio", "thresholdRange": {"max": 0.05}}],
    },
}
# A vector selector in PromQL: a metric name and its matchers (our queries always scope by labels).
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{[^{}]*\})")


def name_of(engine: str) -> str:
    return f"chat-{engine}"


def operator_status() -> dict[str, Any]:
    """What the operator mirrors into its gauges mid-canary: a 25 % step and two drift verdicts."""
    return {
        "phase": "Canary",
        "replicas": 2,
        "readyReplicas": 2,
        "canary": {"state": "Progressing", "weight": 25, "step": 0},
        "drift": {
            "signals": [
                {"signal": "inputLength", "verdict": "NoDrift", "value": 0.05, "threshold": 0.2},
                {"signal": "feedback", "verdict": "Drifted", "value": 0.4, "threshold": 0.3},
            ]
        },
    }


class Users:
    """Ask one gateway for short generations in the engine's API and rate every answer."""

    def __init__(self, engine: str, url: str) -> None:
        self.engine, self.url = engine, url
        self.answered = self.failed = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"users {url}", daemon=True)

    def _ask(self, client: httpx2.Client) -> httpx2.Response:
        if self.engine == "vllm":
            return client.post(
                f"{self.url}/v1/completions", json={"model": MODEL, "prompt": "hi", "max_tokens": 4}
            )
        return client.post(f"{self.url}/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": 4}})

    def _run(self) -> None:
        with httpx2.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    answer = self._ask(client)
                    if answer.status_code >= 400:  # the canary's simulated failures
                        self.failed += 1
                        continue
                    rating = RATINGS[self.answered % len(RATINGS)]
                    request_id = answer.headers["X-LLMOps-Request-ID"]
                    fb = client.post(
                        f"{self.url}/v1/feedback", json={"request_id": request_id, "rating": rating}
                    )
                    assert fb.status_code == 202, fb.text
                    self.answered += 1
                    self._stop.wait(0.02)  # pacing: tens of requests a second, not a busy loop
                except BaseException as exc:
                    self.error = exc
                    return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert self.error is None, f"the users of {self.url} broke: {self.error!r}"


@dataclass
class Fleet:
    prometheus: Prometheus
    http: httpx2.Client
    users: list[Users]

    def query(self, promql: str) -> dict[str, Any]:
        """Prometheus' answer to an instant query (status and data, or errorType and error)."""
        return dict(self.http.get("/api/v1/query", params={"query": promql}).json())


def _serve_operator_metrics(stack: contextlib.ExitStack) -> str:
    """The operator's gauges (this process' default registry) on a free port, with one status per
    LLMDeployment and a rollback counted; removed again at the end."""
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1")
    stack.callback(server.server_close)
    stack.callback(thread.join, 10)
    stack.callback(server.shutdown)
    for engine in ENGINES:
        operator_metrics.observe_status(
            NS, name_of(engine), operator_status(), rolled_back=True, gpus_per_pod=2
        )
        stack.callback(operator_metrics.forget, NS, name_of(engine))
    return f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    state: Path = tmp_path_factory.mktemp("dashboards")
    with contextlib.ExitStack() as stack:
        targets: list[Target] = []
        apis: list[tuple[str, str]] = []
        for engine in ENGINES:
            name = name_of(engine)
            for track in TRACKS:
                behaviour = Behaviour(
                    error_rate=0.1 if track == "canary" else 0.0,
                    error_kind="generation",  # 424 on TGI, 500 on vLLM: server errors on both
                    latency_seconds=0.005,
                    time_per_token_seconds=0.002,
                )
                sim = Simulator(behaviour, model_id=MODEL, revision=f"rev-{track}", engine=engine)
                api, pod = serve_pod(stack, sim, f"{NS}/{name}", track, KEY)
                apis.append((engine, api))
                targets.append(pod)
        # Scraped as a ServiceMonitor would: `namespace` is the operator's own.
        operator = _serve_operator_metrics(stack)
        targets.append(Target(operator, {"namespace": "llmops-system", "pod": "llmops-operator-0"}))
        targets_file = state / "tgi-targets.json"
        write_targets(targets_file, targets)
        prometheus = Prometheus.start(state, targets_file, scrape_interval="1s")
        stack.callback(prometheus.stop)
        users = [Users(engine, api) for engine, api in apis]
        for u in users:
            u.start()
            stack.callback(u.stop)
        http = stack.enter_context(httpx2.Client(base_url=prometheus.url, timeout=10))
        yield Fleet(prometheus, http, users)


def _substituted(promql: str, engine: str) -> str:
    """The query as Grafana sends it for LLMDeployment prod/chat-<engine>."""
    return promql.replace(NAMESPACE, NS).replace(DEPLOYMENT, name_of(engine)).replace(RATE_INTERVAL, WINDOW)


def _values(answer: dict[str, Any]) -> list[float]:
    assert answer.get("status") == "success", answer
    assert answer["data"]["resultType"] == "vector", answer
    return [float(sample["value"][1]) for sample in answer["data"]["result"]]


@pytest.mark.parametrize("engine", ENGINES)
def test_every_dashboard_query_returns_data(fleet: Fleet, engine: str) -> None:
    board = dashboard(engine)
    queries = list(expressions(board))
    assert len(queries) >= 20
    for title, expr in queries:
        promql = _substituted(expr, engine)
        assert "$" not in promql, promql

        def has_data(promql: str = promql) -> bool:
            return any(math.isfinite(v) for v in _values(fleet.query(promql)))

        wait_for(f"{board['title']} / {title}: {promql}", has_data, timeout=60, interval=0.5)
    assert all(u.answered > 0 for u in fleet.users)
    assert sum(u.failed for u in fleet.users) > 0  # the canaries' failures reached the error panels


@pytest.mark.parametrize("engine", ENGINES)
def test_the_variables_list_the_llmdeployment(fleet: Fleet, engine: str) -> None:
    found = {}
    for variable, selector, label in variable_matches(dashboard(engine)):
        series = _substituted(selector, engine)

        def values(series: str = series, label: str = label) -> list[str]:
            answer = fleet.http.get(f"/api/v1/label/{label}/values", params={"match[]": series}).json()
            assert answer["status"] == "success", answer
            return list(answer["data"])

        found[variable] = wait_for(f"{variable}: {series}", values, timeout=30, interval=0.5)
    # Each dashboard's variables find only its own engine's LLMDeployment.
    assert found == {"namespace": [NS], "deployment": [name_of(engine)]}


def _rendered_rule(engine: str, **prometheus_rule_spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": "llmops.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": name_of(engine), "namespace": NS, "uid": "u-1", "generation": 1},
        "spec": {
            "model": {"id": MODEL, "revision": "a" * 40},
            "engine": {"type": engine},
            "replicas": 2,
            "rollout": ROLLOUT,
            "drift": DRIFT,
            "monitoring": {"prometheusRule": prometheus_rule_spec},
        },
    }
    rule = prometheus_rule(parse(body))
    assert rule is not None
    return rule


@pytest.mark.parametrize("engine", ENGINES)
def test_promtool_accepts_the_rendered_rules(engine: str, tmp_path: Path) -> None:
    rules = tmp_path / f"{engine}.rules.yaml"
    rules.write_text(yaml.safe_dump(_rendered_rule(engine)["spec"]))
    promtool = find_promtool()
    res = subprocess.run(
        [str(promtool), "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 7 rules found" in res.stdout, res.stdout


@pytest.mark.parametrize("engine", ENGINES)
def test_every_alert_expression_evaluates_on_data(fleet: Fleet, engine: str) -> None:
    """Each alert evaluates with every selector in it matching data; with thresholds the traffic
    crosses (any error, any latency) the serving alerts fire, the others stay quiet."""
    (group,) = _rendered_rule(engine, errorRatio=0.01, latencyP95Seconds=0.001)["spec"]["groups"]
    alerts = {rule["alert"]: rule["expr"] for rule in group["rules"]}
    assert len(alerts) == 7, sorted(alerts)
    for alert, expr in alerts.items():
        _values(fleet.query(expr))  # parses and evaluates: success, an instant vector (maybe empty)
        selectors = ["".join(m) for m in SELECTOR.findall(expr)]
        assert selectors, expr
        for selector in selectors:
            wait_for(
                f"{alert}: data for {selector}",
                lambda selector=selector: bool(_values(fleet.query(selector))),
                timeout=60,
                interval=0.5,
            )
    expected = {
        "LLMDeploymentErrorRatio",  # the canary fails 10 % of its requests
        "LLMDeploymentLatencyP95",
        "LLMDeploymentDrifted",  # feedback drifted: score 0.4 / 0.3
    }
    firing: set[str] = set()

    def as_expected() -> bool:
        firing.clear()
        firing.update(alert for alert, expr in alerts.items() if _values(fleet.query(expr)))
        return firing == expected

    # A rate needs two samples of a series: the first failure's counter may be one scrape old.
    with contextlib.suppress(AssertionError):
        wait_for("the expected alerts to fire", as_expected, timeout=30, interval=0.5)
    assert firing == expected
    [errors] = _values(fleet.query(alerts["LLMDeploymentErrorRatio"]))
    assert 0.01 < errors < 0.2, errors
    assert _values(fleet.query(alerts["LLMDeploymentDrifted"])) == [pytest.approx(0.4 / 0.3)]


def test_a_missing_promtool_names_the_path_and_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLMOPS_PROMTOOL", str(tmp_path / "promtool"))
    with pytest.raises(ClusterError) as err:
        find_promtool()
    assert f"promtool not found at {tmp_path / 'promtool'}" in str(err.value)
    assert "apt-get install -y --no-install-recommends prometheus" in str(err.value)
