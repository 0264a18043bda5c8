"""Capture for real on the local cluster: the operator renders spec.gateway.capture into the
gateway's flags, the fake kubelet runs `llmops gateway` in front of a TGI simulator, and the
records arrive as CloudEvents at a user endpoint: a small aiohttp server on the test's side
(llmops_dev.capture_sink), the way a Knative broker or a collector would receive them.

Then a redaction pattern that does not compile: the operator names it in the conditions and
applies nothing of that spec (the server Deployment keeps its template), until it is fixed.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from huggingface_hub import InferenceClient

from llmops_dev.capture_sink import CaptureSink, run_sink_in_thread
from llmops_dev.cluster import Cluster
from llmops_dev.prometheus import Prometheus
from testkit import get_json, wait_for
from testkit.network import through_the_cluster
from testkit.operator import OperatorProcess, sample, set_behaviour, wait_condition

REV = "c" * 40
PROMPT = "My card is 4111 1111 1111 1111 and my account ACC-123456."
ANSWER = "Noted. We will write to ana@example.org or call +44 20 7946 0958."
ID_HEADER = "X-LLMOps-Request-ID"


def _capture(sink_url: str, regex: str) -> dict[str, Any]:
    return {
        "capture": {
            "sampleRate": 1.0,
            "redaction": {"patterns": [{"name": "ACCOUNT", "regex": regex}]},
            "sink": {"url": f"{sink_url}/events"},
        }
    }


def _server_template(cluster: Cluster, namespace: str) -> dict[str, Any]:
    dep = get_json(cluster, "deployment", "capt-stable", "-n", namespace)
    return dict(dep["spec"]["template"])


def _prom_value(prom: Prometheus, query: str) -> float | None:
    r = httpx2.get(f"{prom.url}/api/v1/query", params={"query": query}, timeout=10)
    r.raise_for_status()
    result = r.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_capture_sends_redacted_cloudevents_and_a_broken_pattern_applies_nothing(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    prometheus: Prometheus,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cluster.state_dir is not None
    sink = CaptureSink()
    with run_sink_in_thread(sink) as sink_url:
        set_behaviour(cluster, REV, answers={PROMPT: ANSWER}, time_per_token_seconds=0.02)
        gateway = _capture(sink_url, r"ACC-\d{6}")
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=sample("capt", REV, gateway=gateway))
        wait_condition(cluster, namespace, "capt", "Available", "True", timeout=180)

        through_the_cluster(monkeypatch, cluster)
        url = f"http://capt.{namespace}.svc.cluster.local"

        # -- a plain generation, a streamed chat through the real huggingface_hub client, feedback
        answer = httpx2.post(
            f"{url}/generate", json={"inputs": PROMPT, "parameters": {"max_new_tokens": 40}}, timeout=30
        )
        assert answer.status_code == 200 and answer.json()["generated_text"] == ANSWER
        rid = answer.headers[ID_HEADER]
        client = InferenceClient(base_url=url)
        streamed = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in client.chat_completion(
                [{"role": "user", "content": PROMPT}], max_tokens=40, stream=True
            )
        )
        assert streamed == ANSWER  # the stream reaches the client whole while it is captured
        feedback = httpx2.post(
            f"{url}/v1/feedback",
            json={"request_id": rid, "rating": "down", "comment": "reach me at bob@example.com"},
            timeout=30,
        )
        assert feedback.status_code == 202

        wait_for("three CloudEvents at the user's endpoint", lambda: len(sink.events) >= 3, timeout=30)
        by_type: dict[str, list[Any]] = {}
        for event in sink.events:
            by_type.setdefault(event.attributes["type"], []).append(event)
        plain, chat = sorted(by_type["io.llmops.capture.request"], key=lambda e: e.data["route"])
        (rated,) = by_type["io.llmops.capture.feedback"]
        assert plain.attributes["specversion"] == "1.0"
        assert plain.attributes["source"] == f"/llmops/{namespace}/capt/{REV}"
        assert plain.attributes["id"] == rid and rated.attributes["subject"] == rid
        assert plain.data["prompt"] == "My card is [CARD] and my account [ACCOUNT]."
        assert plain.data["response"] == "Noted. We will write to [EMAIL] or call [PHONE]."
        assert plain.data["track"] == "stable" and plain.data["revision"] == REV
        assert plain.data["completionTokens"] and plain.data["latencyMs"] > 0
        assert chat.data["route"] == "/v1/chat/completions"
        assert chat.data["messages"] == [
            {"role": "user", "content": "My card is [CARD] and my account [ACCOUNT]."}
        ]
        assert chat.data["response"] == plain.data["response"] and chat.data["finishReason"] == "stop"
        assert rated.data["rating"] == "down" and rated.data["comment"] == "reach me at [EMAIL]"
        everything = json.dumps([e.data for e in sink.events])
        for planted in ("4111", "ACC-123456", "ana@example.org", "7946", "bob@example.com"):
            assert planted not in everything

        # -- the real Prometheus counts what the gateway delivered, by the deployment's label
        sel = f'namespace="{namespace}",llmops_deployment="capt"'
        query = f"sum(llmops_capture_records_total{{{sel}}})"
        # A scrape can fall between two deliveries: wait for the count of all three, not the first.
        delivered = wait_for(
            "three records counted in Prometheus",
            lambda: v if (v := _prom_value(prometheus, query)) is not None and v >= 3 else None,
            timeout=60,
        )
        assert delivered == len(sink.events)

        # -- a pattern that does not compile: named in the conditions, nothing applied
        template = _server_template(cluster, namespace)
        broken = _capture(sink_url, r"ACC-(\d{6}")
        cluster.kubectl(
            "apply", "-n", namespace, "-f", "-", input=sample("capt", REV, gateway=broken, replicas=2)
        )
        obj = wait_condition(
            cluster, namespace, "capt", "Progressing", "False", reason="InvalidCapturePattern", timeout=60
        )
        message = next(c for c in obj["status"]["conditions"] if c["type"] == "Progressing")["message"]
        assert "patterns[0] (ACCOUNT)" in message and r"ACC-(\d{6}" in message
        assert _server_template(cluster, namespace) == template
        assert get_json(cluster, "deployment", "capt-stable", "-n", namespace)["spec"]["replicas"] == 1
        # Inference goes on with what runs.
        assert httpx2.post(f"{url}/generate", json={"inputs": "hi"}, timeout=30).status_code == 200

        # -- fixed in git: applied
        cluster.kubectl(
            "apply", "-n", namespace, "-f", "-", input=sample("capt", REV, gateway=gateway, replicas=2)
        )
        wait_for(
            "the fixed spec to be applied",
            lambda: get_json(cluster, "deployment", "capt-stable", "-n", namespace)["spec"]["replicas"] == 2,
            timeout=60,
        )
