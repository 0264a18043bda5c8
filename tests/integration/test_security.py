"""Security, checked on the apiserver and on the wire.

One full run of an LLMDeployment that uses both kinds of secret the spec can reference (a Hub
token, TGI's API key) through download, evaluation and serving, in a namespace that enforces
the `restricted` Pod Security level (every test namespace does, see testkit.create_namespace):

- every pod the operator makes is admitted (the apiserver's PodSecurity admission refuses
  anything else, and a privileged pod in the same namespace is refused);
- the Service answers 401 without the key and 200 with it, through the real huggingface_hub
  InferenceClient;
- neither secret value appears in any log (operator, kubelet, pods, control plane), Event or
  the status;
- the field manager `llmops` owns status only, never a field of spec.

And the operator's child watches carry their label selector to the apiserver, one per kind for
every namespace (audit log).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError

from llmops.kube import USER_AGENT
from llmops_dev.cluster import Cluster
from llmops_dev.kubelet.proxy import resolve
from testkit import RESTRICTED, get_json, wait_for
from testkit.datasets import apply_qa
from testkit.operator import OperatorProcess, condition, sample, set_behaviour, wait_condition

REV = "7" * 40
# 20 prompts: exactMatch ≥ 0.8 is judged on its 95% lower bound, which needs at least 16.


def _apply(cluster: Cluster, namespace: str, obj: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))


def _secret(name: str, key: str, value: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {key: value}}


def _secure_run(cluster: Cluster, namespace: str, hf_token: str, api_key: str) -> dict[str, Any]:
    """Serve `secure` with a Hub token and an API key, through its evaluation gate."""
    assert cluster.state_dir is not None
    _apply(cluster, namespace, _secret("hub", "token", hf_token))
    _apply(cluster, namespace, _secret("tgi", "api-key", api_key))
    answers = apply_qa(cluster, namespace, key="q")
    set_behaviour(cluster, REV, dataset=str(answers), accuracy=1.0)
    body = {
        "apiVersion": "llmops.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": "secure"},
        "spec": {
            "model": {"id": "sim-org/tiny-chat", "revision": REV, "tokenSecretRef": {"name": "hub"}},
            "engine": {"apiKeySecretRef": {"name": "tgi"}},
            "resources": {"gpu": {"count": 1}},
            "replicas": 1,
            "cache": {"size": "1Gi"},
            "evaluation": {
                "dataset": {"configMapRef": {"name": "qa", "key": "q"}},
                "thresholds": [{"metric": "exactMatch", "min": 0.8}],
                "maxNewTokens": 16,
            },
        },
    }
    _apply(cluster, namespace, body)
    obj = wait_condition(cluster, namespace, "secure", "Available", "True", timeout=180)
    assert condition(obj, "Evaluated")["reason"] == "EvaluationPassed"
    return obj


def _generate(url: str, api_key: str | None) -> str:
    # No implicit Hub token either: None removes the header (as the evaluation client does).
    headers = {} if api_key else {"authorization": None}
    client = InferenceClient(base_url=url, api_key=api_key, headers=headers)  # type: ignore[arg-type]
    return client.text_generation("hello", max_new_tokens=4)


def _texts(cluster: Cluster, operator: OperatorProcess, namespace: str) -> dict[str, str]:
    """Every log, the Events and the status of the run, by where they come from."""
    assert cluster.state_dir is not None
    out = {"operator log": operator.log.read_text(errors="replace")}
    for folder in ("logs", "pods"):
        for path in sorted((cluster.state_dir / folder).glob("*.log*")):
            out[str(path)] = path.read_text(errors="replace")
    out["events"] = json.dumps(get_json(cluster, "events", "-n", namespace))
    out["status"] = json.dumps(get_json(cluster, "llmd", "secure", "-n", namespace).get("status"))
    return out


def test_a_full_run_keeps_its_secrets_and_enforces_its_api_key(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    hf_token = f"hf_planted{uuid.uuid4().hex}"
    api_key = f"sk-planted{uuid.uuid4().hex}"
    assert cluster.state_dir is not None
    labels = get_json(cluster, "namespace", namespace)["metadata"]["labels"]
    assert labels.items() >= RESTRICTED.items()

    _secure_run(cluster, namespace, hf_token, api_key)

    # Admission: the download and evaluation Jobs' pods and the server pod all ran here.
    components = {
        p["metadata"]["labels"].get("app.kubernetes.io/component")
        for p in get_json(cluster, "pods", "-n", namespace, "-l", "llmops.io/deployment=secure")["items"]
    }
    assert {"download", "evaluation", "server"} <= components, components
    events = get_json(cluster, "events", "-n", namespace)["items"]
    refused = [e["message"] for e in events if e["reason"] == "FailedCreate"]
    assert not refused, refused
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]},
    }
    res = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(privileged), check=False)
    assert res.returncode != 0 and 'violates PodSecurity "restricted' in res.stderr, res.stderr

    # The API key, enforced by the server behind the Service.
    url = wait_for(
        "the Service's endpoint",
        lambda: _resolved(cluster, f"http://secure.{namespace}.svc.cluster.local"),
        30,
    )
    with pytest.raises(HfHubHTTPError) as refused_call:
        _generate(url, None)
    assert refused_call.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as wrong_key:
        _generate(url, "sk-wrong")
    assert wrong_key.value.response.status_code == 401
    assert _generate(url, api_key)

    # No secret value anywhere it could leak to.
    texts = _texts(cluster, operator, namespace)
    assert any(namespace in name for name in texts), "the pods' logs of this run were scanned"
    leaks = [
        (where, secret[:12])
        for where, text in texts.items()
        for secret in (hf_token, api_key)
        if secret in text
    ]
    assert not leaks, leaks

    # The operator's field manager owns status, never spec.
    obj = get_json(cluster, "llmd", "secure", "-n", namespace, "--show-managed-fields")
    ours = [m for m in obj["metadata"]["managedFields"] if m["manager"] == "llmops"]
    assert ours, [m["manager"] for m in obj["metadata"]["managedFields"]]
    for entry in ours:
        assert entry.get("subresource") == "status" and set(entry["fieldsV1"]) == {"f:status"}, entry


def _resolved(cluster: Cluster, url: str) -> str | None:
    assert cluster.state_dir is not None
    try:
        return resolve(cluster.state_dir, url)
    except LookupError:
        return None


def test_child_watches_carry_their_label_selector_to_the_apiserver(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    """The apiserver's audit log (every watch, with its URL) shows what the operator asks for:
    kopf watches the LLMDeployments; the operator, watching every namespace, watches each child
    kind once for all of them (no namespace in the URL), with the label selector, and opens no
    watch of its own for the namespace of a new LLMDeployment."""
    assert cluster.state_dir is not None
    logs = Path(cluster.state_dir) / "logs"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=sample("watched", "e" * 40))
    wait_for(
        "a pass of the new LLMDeployment",
        lambda: get_json(cluster, "llmd", "watched", "-n", namespace).get("status", {}).get("phase"),
        60,
        0.5,
    )
    children = {"pods", "deployments", "jobs", "persistentvolumeclaims", "services"}

    def operator_watches() -> dict[tuple[str, str | None], list[str]] | None:
        seen: dict[tuple[str, str | None], list[str]] = {}
        for audit in sorted(logs.glob("audit*.log")):  # the current log and any rotated one
            for line in audit.read_text().splitlines():
                event = json.loads(line)
                agent = str(event.get("userAgent", ""))
                if event.get("verb") == "watch" and agent.startswith(("kopf/", USER_AGENT)):
                    ref = event["objectRef"]
                    seen.setdefault((ref["resource"], ref.get("namespace")), []).append(event["requestURI"])
        everywhere = {resource for resource, ns in seen if ns is None}
        return seen if children | {"llmdeployments"} <= everywhere else None

    seen = wait_for("the operator's watches in the audit log", operator_watches, 60, 0.5)
    for resource in children:
        for uri in seen[(resource, None)]:
            assert parse_qs(urlsplit(uri).query).get("labelSelector") == ["llmops.io/deployment"], uri
            assert "/namespaces/" not in uri, uri
        assert (resource, namespace) not in seen, seen[(resource, namespace)]
    # The LLMDeployments themselves are all watched: they are the operator's own kind.
    assert all("labelSelector" not in uri for uri in seen[("llmdeployments", None)])
