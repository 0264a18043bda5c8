"""The gateway for real on the local cluster: the operator renders it into the server pod, the
fake kubelet runs `llmops gateway` in front of a TGI simulator bound to loopback, and the test
talks to the Service through the dev Service proxy with the real huggingface_hub client.

One LLMDeployment serves the whole scenario (CPU is scarce): API keys (none, wrong, added,
revoked), request IDs, feedback (valid and bad), streaming against direct, the real Prometheus
scraping the gateway's and the engine's series from the gateway's health port, and finally a
search for the planted key values in every log, event, status and metric of the run.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from huggingface_hub import InferenceClient

from llmops_dev.cluster import Cluster
from llmops_dev.prometheus import Prometheus
from testkit import get_json, wait_for
from testkit.network import through_the_cluster
from testkit.operator import OperatorProcess, sample, set_behaviour, wait_condition

REV = "9" * 40
ID_HEADER = "X-LLMOps-Request-ID"


def _secret(namespace: str, keys: dict[str, str]) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "clients", "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in keys.items()},
        }
    )


def _first_token_seconds(client: InferenceClient, prompt: str) -> tuple[float, list[str]]:
    started = time.monotonic()
    first = None
    tokens = []
    for tok in client.text_generation(prompt, stream=True, max_new_tokens=12):
        if first is None:
            first = time.monotonic() - started
        tokens.append(tok)
    assert first is not None
    return first, tokens


def _prom_series(prom: Prometheus, query: str) -> list[dict[str, Any]]:
    r = httpx2.get(f"{prom.url}/api/v1/query", params={"query": query}, timeout=10)
    r.raise_for_status()
    return list(r.json()["data"]["result"])


def test_gateway_keys_ids_feedback_streaming_and_metrics_through_the_service(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    prometheus: Prometheus,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cluster.state_dir is not None
    alice, bob = f"planted-alice-{secrets.token_hex(12)}", f"planted-bob-{secrets.token_hex(12)}"
    cluster.kubectl("apply", "-f", "-", input=_secret(namespace, {"alice": alice}))
    set_behaviour(cluster, REV, time_per_token_seconds=0.05, latency_seconds=0.1)
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=sample("gw", REV, gateway={"auth": {"apiKeysSecretRef": {"name": "clients"}}}),
    )
    wait_condition(cluster, namespace, "gw", "Available", "True", timeout=180)
    pod = get_json(cluster, "pods", "-n", namespace, "-l", "llmops.io/track=stable")["items"][0]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["server", "gateway"]

    through_the_cluster(monkeypatch, cluster)
    url = f"http://gw.{namespace}.svc.cluster.local"

    def status(key: str | None) -> int:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx2.post(f"{url}/generate", json={"inputs": "hi"}, headers=headers, timeout=30).status_code

    # -- keys: none, wrong, valid; one added and one revoked take effect within seconds
    wait_for("the gateway to serve through the Service", lambda: status(alice) == 200, timeout=30)
    assert status(None) == 401
    assert status("wrong-" + alice) == 401
    assert status(bob) == 401
    cluster.kubectl("apply", "-f", "-", input=_secret(namespace, {"alice": alice, "bob": bob}))
    wait_for("bob's new key to work", lambda: status(bob) == 200, timeout=15)
    cluster.kubectl("apply", "-f", "-", input=_secret(namespace, {"bob": bob}))
    wait_for("alice's revoked key to be refused", lambda: status(alice) == 401, timeout=15)

    # -- the real huggingface_hub client, and a signed ID on every answer
    client = InferenceClient(base_url=url, api_key=bob)
    assert client.text_generation("hello", max_new_tokens=4).startswith("hello")
    answer = httpx2.post(
        f"{url}/generate",
        json={"inputs": "hello", "parameters": {"max_new_tokens": 4}},
        headers={"Authorization": f"Bearer {bob}", "X-Request-ID": "trace-7"},
        timeout=30,
    )
    rid = answer.headers[ID_HEADER]
    assert answer.json()["llmops_request_id"] == rid and answer.headers["X-Request-ID"] == "trace-7"

    # -- streaming: the same tokens as the engine itself, and the first token as early
    record = json.loads(
        (cluster.state_dir / "pods" / f"{namespace}_{pod['metadata']['name']}.json").read_text()
    )
    direct = InferenceClient(base_url=f"http://127.0.0.1:{record['containers']['server']['port']}")
    direct_first, direct_tokens = _first_token_seconds(direct, "stream please")
    via_first, via_tokens = _first_token_seconds(client, "stream please")
    assert via_tokens == direct_tokens
    # Two extra local hops (Service proxy, gateway) on a shared 2-core machine: well under 0.5 s.
    assert via_first < direct_first + 0.5, (via_first, direct_first)

    # -- feedback: counted by the answer's revision and track; bad input refused naming the field
    def feedback(body: Any, key: str | None = bob) -> httpx2.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        if isinstance(body, bytes):
            return httpx2.post(f"{url}/v1/feedback", content=body, headers=headers, timeout=30)
        return httpx2.post(f"{url}/v1/feedback", json=body, headers=headers, timeout=30)

    ok = feedback({"request_id": rid, "rating": "down", "correction": "better", "tags": ["facts"]})
    assert ok.status_code == 202 and ok.json()["revision"] == REV and ok.json()["track"] == "stable"
    assert feedback({"request_id": rid, "rating": "down"}, key=None).status_code == 401
    bad = feedback(b"{oops")
    assert bad.status_code == 400 and bad.json()["error_type"] == "validation"
    unknown = feedback({"request_id": rid, "rating": "up", "stars": 5})
    assert unknown.status_code == 400 and unknown.json()["field"] == "stars"
    assert feedback({"request_id": rid, "rating": 9}).json()["field"] == "rating"
    forged = rid[:-2] + ("AA" if not rid.endswith("AA") else "BB")
    assert feedback({"request_id": forged, "rating": "down"}).json()["field"] == "request_id"
    assert feedback({"request_id": rid, "rating": "up", "comment": "x" * 100_000}).status_code == 413

    # -- the real Prometheus scrapes gateway and engine series from the gateway's health port
    sel = f'namespace="{namespace}",llmops_deployment="gw"'
    fb = wait_for(
        "llmops_feedback_total in Prometheus",
        lambda: _prom_series(prometheus, f'llmops_feedback_total{{{sel},rating="down"}}'),
        timeout=30,
    )
    assert fb[0]["metric"]["revision"] == REV and fb[0]["metric"]["track"] == "stable"
    assert wait_for(
        "TGI's series with the canary queries' labels",
        lambda: _prom_series(prometheus, f'tgi_request_success{{{sel},llmops_track="stable"}}'),
        timeout=30,
    )
    clients = {
        s["metric"]["client"] for s in _prom_series(prometheus, f"llmops_gateway_requests_total{{{sel}}}")
    }
    assert {"alice", "bob", "unauthenticated"} <= clients

    # -- the planted key values appear nowhere: logs, events, status, metrics
    places: dict[str, str] = {
        "operator log": Path(operator.log).read_text(errors="replace"),
        "events": cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout,
        "status": json.dumps(get_json(cluster, "llmd", "gw", "-n", namespace)),
        "pods": json.dumps(get_json(cluster, "pods", "-n", namespace)),
        "metrics": json.dumps(_prom_series(prometheus, f"{{{sel}}}")),
    }
    for log in (cluster.state_dir / "pods").glob(f"{namespace}_*.log"):
        places[log.name] = log.read_text(errors="replace")
    kubelet_log = cluster.state_dir / "logs" / "kubelet.log"
    if kubelet_log.exists():
        places["kubelet log"] = kubelet_log.read_text(errors="replace")
    assert any(name.endswith("_gateway.log") for name in places), sorted(places)
    for where, text in places.items():
        assert alice not in text and bob not in text, f"a planted API key appears in the {where}"


def test_a_missing_api_keys_secret_is_a_condition_naming_it_until_it_exists(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=sample("nokeys", REV, gateway={"auth": {"apiKeysSecretRef": {"name": "clients"}}}),
    )
    obj = wait_condition(
        cluster, namespace, "nokeys", "Available", "False", reason="VolumeNotMounted", timeout=120
    )
    message = next(c for c in obj["status"]["conditions"] if c["type"] == "Available")["message"]
    assert '"clients"' in message
    pod = get_json(cluster, "pods", "-n", namespace, "-l", "llmops.io/track=stable")["items"][0]
    assert all(s.get("restartCount", 0) == 0 for s in pod["status"].get("containerStatuses") or [])
    cluster.kubectl("apply", "-f", "-", input=_secret(namespace, {"alice": secrets.token_hex(16)}))
    wait_condition(cluster, namespace, "nokeys", "Available", "True", timeout=120)
