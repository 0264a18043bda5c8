"""Drift detection against a real Prometheus, without the cluster: one TGI simulator labelled as
the serving (stable) pod of LLMDeployment ``ns/m`` at revision SHA_A in a file_sd targets file, a
real Prometheus scraping it every second, the load generator posting prompts of a chosen length
range straight to it, and the operator's own code for each check:

    drift_request(body, now) → reconciler.measure_drift(prometheus, queries) → plan(body, obs, now)

with the body's status carried from pass to pass, as the operator carries it through the
apiserver. ``now`` is the real clock: Prometheus evaluates the windows at its own now.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.api.resource import parse
from llmops.lifecycle.drift import drift_request, retention_problem
from llmops.lifecycle.observations import Observations
from llmops.lifecycle.plan import Plan, plan
from llmops.reconciler import measure_drift
from llmops_dev.loadgen import Traffic
from llmops_dev.prometheus import Prometheus, tgi_target, write_targets
from llmops_dev.tgisim import Behaviour, Simulator, run_in_thread
from testkit.planning import SHA_A, body, to_serving, with_status

__all__ = ["DriftRig", "drift_rig"]


@dataclass
class DriftRig:
    """The serving pod, its Prometheus and traffic, and the LLMDeployment's state between passes."""

    prometheus: Prometheus
    traffic: Traffic
    body: dict[str, Any]
    children: dict[Any, Any]
    checks: list[Plan] = field(default_factory=list)
    """Every pass that measured, oldest first."""
    query_seconds: list[float] = field(default_factory=list)
    """How long the queries of each of those passes took."""
    retention: float | None = None
    """Prometheus' retention as the operator read it (llmops.prom.RetentionCache), in seconds."""

    def spec(self, **drift: Any) -> None:
        """Change spec.drift (as an edit in git would); the status carries on."""
        self.body["spec"]["drift"] = {**self.body["spec"]["drift"], **drift}

    def check(self, prometheus_url: str | None = None) -> Plan | None:
        """One pass now: the plan if a drift check was due (and so measured), or if the windows
        reach beyond Prometheus' retention (nothing measured), else None."""
        now = dt.datetime.now(dt.UTC)
        ld = parse(self.body)
        wanted = drift_request(self.body, ld, now, self.retention)
        if not wanted and retention_problem(ld, self.retention) is None:
            return None
        started = time.monotonic()
        results = measure_drift(prometheus_url or self.prometheus.url, wanted)
        self.query_seconds.append(time.monotonic() - started)
        obs = Observations(children=self.children, drift=results, prometheus_retention=self.retention)
        p = plan(self.body, obs, now)
        self.body = with_status(p, self.body)
        self.checks.append(p)
        return p

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.body.get("status") or {})

    def drifted(self) -> dict[str, Any]:
        return next(x for x in self.status.get("conditions") or [] if x["type"] == "Drifted")

    def signal(self, name: str = "inputLength") -> dict[str, Any]:
        return next(s for s in self.status["drift"]["signals"] if s["signal"] == name)


@contextlib.contextmanager
def drift_rig(
    state_dir: Path,
    drift: dict[str, Any],
    *,
    rate: float,
    prompt_words: tuple[int, int],
    retention: str = "1d",
) -> Iterator[DriftRig]:
    """A rig serving SHA_A with ``drift`` as spec.drift (PodMonitor interval 1s, as scraped), its
    Prometheus keeping ``retention``."""
    with contextlib.ExitStack() as stack:
        sim = Simulator(Behaviour(), model_id="org/model", revision=SHA_A, max_input_tokens=1024)
        url = stack.enter_context(run_in_thread(sim))
        targets = state_dir / "tgi-targets.json"
        target = tgi_target(
            url.removeprefix("http://"),
            namespace="ns",
            pod="m-stable-0",
            deployment="m",
            track="stable",
            revision=SHA_A,
        )
        write_targets(targets, [target])
        prometheus = Prometheus.start(state_dir, targets, scrape_interval="1s", retention=retention)
        stack.callback(prometheus.stop)
        traffic = Traffic(None, url=url, rate=rate, prompt_words=prompt_words, seed=1)
        stack.enter_context(traffic)
        spec = json.loads(json.dumps(drift))
        served, children = to_serving(body(drift=spec, monitoring={"podMonitor": {"interval": "1s"}}))
        yield DriftRig(prometheus, traffic, served, children)
