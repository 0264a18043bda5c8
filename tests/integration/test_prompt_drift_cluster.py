"""Prompt-content drift in the cluster: the fake kubelet runs `llmops capture-store` for real,
the test posts captured prompts to it through the Service as a gateway would, and the operator
process asks the store for the term histograms (GET /v1/terms) of the reference and current
windows. Prompts about one topic stay NoDrift check after check; prompts about another topic
turn `prompts` Drifted, with the numbers in status and the Drifted condition.

The session operator is stopped for the test: this one runs with HTTP_PROXY set to the dev
Service proxy, which is how a process on the host reaches `<name>-capture.<ns>.svc`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from llmops_dev.cluster import Cluster
from llmops_dev.kubelet.proxy import proxy_url
from llmops_dev.prometheus import Prometheus
from testkit import get_json, unique, wait_for
from testkit.network import through_the_cluster
from testkit.operator import OperatorProcess, condition, llmd, sample, wait_condition, wait_event
from testkit.volumes import static_volume

REV = "d" * 40
NAME = "promptdrift"
STORE = f"{NAME}-capture"
CLASS = "prompt-drift-hostpath"
CHECKS = 5
"""Checks in a row the stationary prompts must pass as NoDrift."""
TAX = [
    "tax",
    "refund",
    "deadline",
    "form",
    "income",
    "return",
    "deduction",
    "audit",
    "bracket",
    "filing",
    "payroll",
    "invoice",
]
SPORT = [
    "football",
    "match",
    "goal",
    "score",
    "league",
    "team",
    "coach",
    "player",
    "season",
    "referee",
    "stadium",
    "transfer",
]
DRIFT = {
    "interval": "3s",
    "window": "10s",
    "traffic": {"signals": []},
    "prompts": {"psi": 0.2, "minSamples": 100, "buckets": 256, "bins": 20},
}


@pytest.fixture
def proxied_operator(
    cluster: Cluster, namespace: str, operator: OperatorProcess, prometheus: Prometheus, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The session operator stopped; one watching `namespace` that reaches Services through the
    dev proxy runs instead; the session operator is started again afterwards."""
    assert cluster.state_dir is not None
    operator.kill()
    env = {
        "LLMOPS_PROMETHEUS_URL": prometheus.url,
        "HTTP_PROXY": proxy_url(cluster.state_dir),
        "NO_PROXY": "127.0.0.1,localhost",
    }
    mine = OperatorProcess(cluster, tmp_path / "operator", env, namespaces=[namespace])
    try:
        mine.start()
        yield mine
    finally:
        mine.kill()
        operator.start()


class Prompts:
    """Captured prompts posted to the store from a thread, about `topic` (switchable)."""

    def __init__(self, url: str, token: str, topic: list[str]) -> None:
        self.url, self.topic = url, topic
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
        self.sent = 0
        self.rng = random.Random(7)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def record(self) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        words = self.rng.choices(self.topic, k=self.rng.randint(3, 6))
        return {
            "kind": "request",
            "time": now,
            "requestId": uuid.uuid4().hex,
            "revision": REV,
            "track": "stable",
            "route": "/v1/chat/completions",
            "messages": [{"role": "user", "content": " ".join(words)}],
        }

    def _run(self) -> None:
        with httpx2.Client(timeout=30) as http:
            while not self._stop.is_set():
                batch = [self.record() for _ in range(20)]
                body = b"".join(json.dumps(r).encode() + b"\n" for r in batch)
                try:
                    if (
                        http.post(f"{self.url}/v1/records", content=body, headers=self.headers).status_code
                        == 200
                    ):
                        self.sent += len(batch)
                except httpx2.HTTPError:
                    pass
                # About 40 prompts a second: paced by waiting on the stop flag, not a sleep.
                self._stop.wait(0.5)

    def __enter__(self) -> Prompts:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def prompts_signal(obj: dict[str, Any]) -> dict[str, Any] | None:
    signals = ((obj.get("status") or {}).get("drift") or {}).get("signals") or []
    return next((s for s in signals if s["signal"] == "prompts"), None)


def test_prompts_about_another_topic_turn_prompts_drifted(
    cluster: Cluster,
    namespace: str,
    proxied_operator: OperatorProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cluster.state_dir is not None
    pv = unique("prompt-drift")
    volume = tmp_path / "volume"
    volume.mkdir(mode=0o777)
    volume.chmod(0o777)
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=static_volume(pv, volume, namespace=namespace, claim=STORE, storage_class=CLASS, size="64Mi"),
    )
    try:
        _scenario(cluster, namespace, monkeypatch)
    finally:
        cluster.kubectl("delete", "llmd", NAME, "-n", namespace, "--wait=false", check=False)
        cluster.kubectl("delete", "pv", pv, "--wait=false", check=False)


def _scenario(cluster: Cluster, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cluster.state_dir is not None
    capture = {"sampleRate": 1.0, "store": {"size": "64Mi", "storageClassName": CLASS}}
    body = sample(
        NAME,
        REV,
        gateway={"capture": capture},
        drift=DRIFT,
        monitoring={"podMonitor": {"interval": "1s"}},
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=body)
    wait_condition(cluster, namespace, NAME, "CaptureDegraded", "False", "CaptureHealthy", timeout=240)
    secret = get_json(cluster, "secret", f"{NAME}-gateway", "-n", namespace)
    token = base64.b64decode(secret["data"]["capture-token"]).decode()
    through_the_cluster(monkeypatch, cluster)
    url = f"http://{STORE}.{namespace}.svc.cluster.local:8080"

    with Prompts(url, token, TAX) as prompts:
        calm = wait_condition(cluster, namespace, NAME, "Drifted", "False", "NoDrift", timeout=180)
        reference = calm["status"]["drift"]["promptsReference"]
        assert reference["revision"] == REV and reference["prompts"] >= 100, reference

        # Stationary: the same topic stays NoDrift, check after check (false positives: 0).
        seen: dict[str, dict[str, Any]] = {}

        def checks_pass() -> bool:
            obj = llmd(cluster, namespace, NAME)
            signal = prompts_signal(obj)
            if signal is not None:
                seen[obj["status"]["drift"]["lastCheckTime"]] = signal
            return len(seen) >= CHECKS

        wait_for(f"{CHECKS} checks of stationary prompts", checks_pass, timeout=90, interval=0.5)
        verdicts = {t: (s["verdict"], s.get("value")) for t, s in seen.items()}
        assert all(v == "NoDrift" for v, _ in verdicts.values()), verdicts

        # Another topic: drifted within a few checks.
        prompts.topic = SPORT
        obj = wait_condition(cluster, namespace, NAME, "Drifted", "True", "DriftDetected", timeout=90)
    assert prompts.sent > 0
    signal = prompts_signal(obj)
    assert signal is not None and signal["verdict"] == "Drifted", signal
    assert signal["value"] >= 0.2 and signal["threshold"] == 0.2 and signal["samples"] >= 100, signal
    assert signal["reference"] == {"start": reference["start"], "end": reference["end"]}
    assert signal["current"]["end"] > reference["end"]
    drifted = condition(obj, "Drifted")
    assert drifted["message"].startswith("prompts: PSI "), drifted
    wait_event(cluster, namespace, NAME, "DriftDetected", "Warning")
