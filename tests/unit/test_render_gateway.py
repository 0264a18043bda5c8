"""Render with the gateway: the pod's two containers, probes through the gateway, the Service,
PodMonitor and NetworkPolicy on the gateway's ports, the signing-key Secret, the evaluation's
key, and the feedback-negative-ratio query."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest

import llmops.api as api
from llmops.analysis.queries import FEEDBACK_NEGATIVE_RATIO, queries
from llmops.api import conditions as c
from llmops.contracts import format_timestamp
from llmops.engines import CONTAINER_NAME, get_engine
from llmops.gateway.capture import CaptureConfig
from llmops.gateway.feedback import NEGATIVE_RATINGS
from llmops.gateway.main import _capture, _parser
from llmops.lifecycle.diagnose import MOUNT_GRACE_SECONDS, diagnose_pods
from llmops.render import deployment, network_policy, pod_monitor, service
from llmops.render.capture import capture_url
from llmops.render.evaluation import API_KEY_ENV, evaluation_job
from llmops.render.gateway import GATEWAY_CONTAINER, signing_secret

SHA = "0e9e39f249a16976918f6564b8830bc894c89659"
SCHEDULED = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)


def ld(**spec: Any) -> api.LLMDeployment:
    return api.parse(
        {
            "apiVersion": "llmops.io/v1alpha1",
            "kind": "LLMDeployment",
            "metadata": {"name": "chat", "namespace": "models", "uid": "u-1", "generation": 1},
            "spec": {"model": {"id": "org/model", "revision": SHA}, **spec},
        }
    )


def containers(obj: api.LLMDeployment, track: Any = "canary") -> dict[str, dict[str, Any]]:
    dep = deployment(obj, track=track, revision=SHA, replicas=1, operator_image="op/image:1.2.3")
    return {c["name"]: c for c in dep["spec"]["template"]["spec"]["containers"]}


def arg(c: dict[str, Any], flag: str) -> str:
    return str(c["args"][c["args"].index(flag) + 1])


def test_the_gateway_takes_the_services_port_and_the_engine_listens_on_localhost() -> None:
    obj = ld()
    cs = containers(obj)
    gw, engine = cs[GATEWAY_CONTAINER], cs[CONTAINER_NAME]
    assert gw["image"] == "op/image:1.2.3" and gw["command"] == ["llmops"] and gw["args"][0] == "gateway"
    assert {p["name"]: p["containerPort"] for p in gw["ports"]} == {"http": 8088, "metrics": 9091}
    assert "ports" not in engine
    env = {e["name"]: e.get("value") for e in engine["env"]}
    assert env["HOSTNAME"] == "127.0.0.1"
    assert arg(gw, "--upstream") == f"http://127.0.0.1:{env['PORT']}"
    assert (arg(gw, "--deployment"), arg(gw, "--revision"), arg(gw, "--track")) == (
        "models/chat",
        SHA,
        "canary",
    )
    (port,) = service(obj)["spec"]["ports"]
    assert port["targetPort"] == "http"  # the gateway's port name
    assert "--api-keys-dir" not in gw["args"]


def test_probes_still_tell_a_loading_engine_from_a_broken_one_through_the_gateway() -> None:
    cs = containers(ld(engine={"startupTimeoutSeconds": 3600}))
    gw, engine = cs[GATEWAY_CONTAINER], cs[CONTAINER_NAME]
    # The engine keeps its long startup budget and lenient liveness, asked via the gateway.
    startup, live = engine["startupProbe"], engine["livenessProbe"]
    assert startup["httpGet"] == live["httpGet"] == {"path": "/health", "port": 9091}
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 3600
    assert live["failureThreshold"] * live["periodSeconds"] >= 300
    assert "readinessProbe" not in engine
    assert gw["readinessProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
    assert gw["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def test_api_keys_secret_is_mounted_and_no_key_value_is_rendered() -> None:
    obj = ld(
        gateway={"auth": {"apiKeysSecretRef": {"name": "clients"}}},
        engine={"apiKeySecretRef": {"name": "tgi"}},
    )
    dep = deployment(obj, track="stable", revision=SHA, replicas=1)
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["gateway-api-keys"]["secret"]["secretName"] == "clients"
    assert volumes["gateway-signing"]["secret"]["secretName"] == "chat-gateway"
    gw = containers(obj)[GATEWAY_CONTAINER]
    assert arg(gw, "--api-keys-dir") == "/etc/llmops/gateway/api-keys"
    (engine_key,) = gw["env"]
    assert engine_key["valueFrom"]["secretKeyRef"] == {"name": "tgi", "key": "api-key"}
    assert all(m.get("readOnly") for m in gw["volumeMounts"])


def test_gateway_disabled_is_the_direct_path() -> None:
    obj = ld(gateway={"enabled": False})
    cs = containers(obj)
    assert list(cs) == [CONTAINER_NAME]
    assert cs[CONTAINER_NAME]["ports"][0]["name"] == "http"
    assert {e["name"]: e.get("value") for e in cs[CONTAINER_NAME]["env"]}["HOSTNAME"] == "0.0.0.0"
    mon = pod_monitor(obj)
    assert mon is not None and mon["spec"]["podMetricsEndpoints"][0]["port"] == "http"


def test_scrapes_go_to_the_gateways_health_port() -> None:
    obj = ld()
    mon = pod_monitor(obj)
    assert mon is not None
    (endpoint,) = mon["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    policy = network_policy(obj)
    assert policy is not None
    app, scrape = policy["spec"]["ingress"]
    assert app["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert scrape["ports"] == [{"port": "metrics", "protocol": "TCP"}]


def test_signing_secret_holds_the_given_keys_and_is_owned() -> None:
    secret = signing_secret(ld(), signing_key=b"s" * 32, internal_api_key=b"internal", capture_token=b"cap")
    assert secret["metadata"]["name"] == "chat-gateway"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert base64.b64decode(secret["data"]["signing-key"]) == b"s" * 32
    assert base64.b64decode(secret["data"]["internal-api-key"]) == b"internal"
    assert base64.b64decode(secret["data"]["capture-token"]) == b"cap"


@pytest.mark.parametrize(
    ("spec", "source"),
    [
        (
            {"gateway": {"auth": {"apiKeysSecretRef": {"name": "clients"}}}},
            {"name": "chat-gateway", "key": "internal-api-key"},
        ),
        ({"engine": {"apiKeySecretRef": {"name": "tgi"}}}, {"name": "tgi", "key": "api-key"}),
        (
            {"engine": {"apiKeySecretRef": {"name": "tgi"}}, "gateway": {"enabled": False}},
            {"name": "tgi", "key": "api-key"},
        ),
    ],
)
def test_the_evaluation_authenticates_as_the_operators_own_client(
    spec: dict[str, Any], source: dict[str, str] | None
) -> None:
    evaluation = {
        "dataset": {"configMapRef": {"name": "ds", "key": "data.jsonl"}},
        "thresholds": [{"metric": "exactMatch", "min": 0.5}],
    }
    job = evaluation_job(ld(evaluation=evaluation, **spec), revision=SHA, endpoint="http://x")
    (c,) = job["spec"]["template"]["spec"]["containers"]
    keys = [e["valueFrom"]["secretKeyRef"] for e in c.get("env", []) if e["name"] == API_KEY_ENV]
    assert keys == ([source] if source else [])


def test_feedback_negative_ratio_counts_ratings_of_the_tracks_answers() -> None:
    analysis = api.AnalysisSpec.model_validate(
        {
            "metrics": [
                {
                    "name": "feedback",
                    "template": FEEDBACK_NEGATIVE_RATIO,
                    "thresholdRange": {"max": 0.2},
                    "compareToStable": {"maxRatio": 2},
                }
            ]
        }
    )
    (q,) = queries(analysis, get_engine("tgi"), "models", "chat", "1m")
    sel = 'namespace="models",llmops_deployment="chat",track="canary"'
    assert q.canary == (
        f'(sum(rate(llmops_feedback_total{{{sel},rating=~"down|1|2"}}[1m])) or vector(0))'
        f" / sum(rate(llmops_feedback_total{{{sel}}}[1m]))"
    )
    assert q.stable is not None and 'track="stable"' in q.stable
    # The query's idea of negative is the gateway's.
    assert set(["down", "1", "2"]) == set(NEGATIVE_RATINGS)


def _waiting_pod(sandbox: str, reason: str = "ContainerCreating") -> dict[str, Any]:
    """A gateway pod scheduled at SCHEDULED whose sandbox is ``sandbox`` and whose containers wait
    for ``reason``."""
    dep = deployment(
        ld(gateway={"auth": {"apiKeysSecretRef": {"name": "clients"}}}),
        track="stable",
        revision=SHA,
        replicas=1,
    )
    spec = dep["spec"]["template"]["spec"]
    return {
        "metadata": {"name": "chat-stable-x"},
        "spec": spec,
        "status": {
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": format_timestamp(SCHEDULED)},
                {"type": "PodReadyToStartContainers", "status": sandbox},
            ],
            "containerStatuses": [
                {"name": c["name"], "state": {"waiting": {"reason": reason}}} for c in spec["containers"]
            ],
        },
    }


def test_a_pod_that_cannot_mount_its_secrets_is_a_condition_naming_them() -> None:
    late = SCHEDULED + dt.timedelta(seconds=MOUNT_GRACE_SECONDS)
    problem = diagnose_pods([_waiting_pod("False")], now=late)
    assert problem is not None and problem.reason == c.VOLUME_NOT_MOUNTED and not problem.permanent
    assert '"clients"' in problem.message and '"chat-gateway"' in problem.message
    # Within the grace every pod waits so while the kubelet mounts its volumes.
    assert diagnose_pods([_waiting_pod("False")], now=late - dt.timedelta(seconds=1)) is None
    # A started sandbox (pulling images) or a container past creation is something else.
    assert diagnose_pods([_waiting_pod("True")], now=late) is None
    crashing = diagnose_pods([_waiting_pod("False", reason="CrashLoopBackOff")], now=late)
    assert crashing is not None and crashing.reason == c.CRASH_LOOP


def test_capture_is_rendered_as_gateway_flags_the_gateway_parses_back() -> None:
    capture = {
        "sampleRate": 0.25,
        "keep": "Prompts",
        "redaction": {
            "builtins": ["email", "card"],
            "patterns": [{"name": "ACCOUNT", "regex": r"ACC-\d{6}"}],
        },
        "queueSize": 500,
    }
    gw = containers(ld(gateway={"capture": capture}))[GATEWAY_CONTAINER]
    assert arg(gw, "--capture-url") == "http://chat-capture.models.svc:8080" == capture_url(ld())
    assert arg(gw, "--capture-token-file") == "/etc/llmops/gateway/signing/capture-token"
    assert "--capture-sink-url" not in gw["args"]
    parsed = _capture(_parser().parse_args(gw["args"][1:]))
    assert parsed is not None
    assert parsed == CaptureConfig(
        sample_rate=0.25,
        keep="Prompts",
        builtins=("email", "card"),
        patterns=(("ACCOUNT", r"ACC-\d{6}"),),
        queue_size=500,
        store_url="http://chat-capture.models.svc:8080",
        token=parsed.token,  # the file exists only in the pod
    )
    sink = containers(ld(gateway={"capture": {"sink": {"url": "https://collector.example/e"}}}))[
        GATEWAY_CONTAINER
    ]
    assert arg(sink, "--capture-sink-url") == "https://collector.example/e"
    assert "--capture-url" not in sink["args"] and "--capture-token-file" not in sink["args"]
    assert arg(sink, "--capture-redact") == "email,phone,card,ip,iban"
    none = containers(ld(gateway={"capture": {"redaction": {"builtins": []}}}))[GATEWAY_CONTAINER]
    assert arg(none, "--capture-redact") == ""
    assert not [a for a in containers(ld())[GATEWAY_CONTAINER]["args"] if a.startswith("--capture")]
