"""Canary rollouts end to end (issue 5), judged by a real Prometheus scraping the TGI simulators.

Each test serves revision A, then moves the spec to revision B while traffic flows through the
Service; the simulators of each revision behave as the test says (errors, latency). Intervals
are seconds so that a whole canary takes well under a minute. The core paths, promotion of a
healthy canary and rollback of a failing one, run on each engine (the `engine` fixture); the
edge cases run on TGI, the engine-neutral code being the same.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from llmops_dev.cluster import Cluster
from llmops_dev.loadgen import Traffic as _Traffic
from testkit import get_json, wait_for
from testkit.nodes import dedicated_gpu_node, placement_on
from testkit.operator import (
    SERVER_IMAGES,
    OperatorProcess,
    condition,
    llmd,
    on_engine,
    sample,
    set_behaviour,
    wait_condition,
    wait_event,
)

ERRORS = {"name": "errors", "template": "error-ratio", "thresholdRange": {"max": 0.02}}
ROLLOUT: dict[str, Any] = {
    "steps": [{"setWeight": 25, "pause": {"duration": "4s"}}, {"setWeight": 50, "pause": {"duration": "4s"}}],
    "analysis": {"interval": "4s", "failureLimit": 2, "inconclusiveLimit": 4, "metrics": [ERRORS]},
    "progressDeadlineSeconds": 120,
}


def traffic(cluster: Cluster, namespace: str, service: str, engine: str = "tgi") -> _Traffic:
    assert cluster.state_dir is not None
    return _Traffic(cluster.state_dir, namespace, service, engine=engine)


def rev(tag: str) -> str:
    return hashlib.sha1(tag.encode()).hexdigest()


def _canary(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return (llmd(cluster, namespace, name).get("status") or {}).get("canary") or {}


def _serve_then_update(
    cluster: Cluster, namespace: str, name: str, a: str, b: str, rollout: dict[str, Any], **spec: Any
) -> None:
    """Serve ``a`` (4 replicas), then ask for ``b``."""
    body = json.loads(sample(name, a, rollout=rollout, **spec))
    body["spec"]["replicas"] = 4
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    wait_condition(cluster, namespace, name, "Available", "True", timeout=120)
    wait_for("4 ready", lambda: llmd(cluster, namespace, name)["status"].get("ready") == "4/4", 120)
    body["spec"]["model"]["revision"] = b
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))


def _stable_revision(cluster: Cluster, namespace: str, name: str) -> str:
    dep = get_json(cluster, "deployment", f"{name}-stable", "-n", namespace)
    return str(dep["metadata"]["annotations"]["llmops.io/model-revision"])


def test_healthy_canary_walks_every_step_and_is_promoted(
    cluster: Cluster, namespace: str, operator: OperatorProcess, engine: str
) -> None:
    """On each engine: the fake kubelet runs the simulator in that engine's mode, the real
    Prometheus scrapes that engine's metric names, and the engine-neutral templates resolve to them."""
    a, b = rev(f"healthy-a-{engine}"), rev(f"healthy-b-{engine}")
    set_behaviour(cluster, a)
    set_behaviour(cluster, b)
    p95 = {"name": "p95", "template": "latency-p95", "compareToStable": {"maxRatio": 50}}
    rollout = {**ROLLOUT, "analysis": {**ROLLOUT["analysis"], "metrics": [ERRORS, p95]}}
    seen_weights: set[int] = set()
    degraded: list[str] = []
    checks: list[dict[str, Any]] = []

    def promoted() -> bool:
        obj = llmd(cluster, namespace, "healthy")
        st = obj.get("status") or {}
        if st.get("canary"):
            seen_weights.add(int(st["canary"].get("weight") or 0))
            checks.extend(st["canary"].get("checks") or [])
            # Stable gives pods to the canary on purpose: a healthy canary is never Degraded
            # (Argo CD's health check would say Degraded).
            if condition(obj, "Degraded").get("status") == "True":
                degraded.append(condition(obj, "Degraded")["message"])
        return st.get("servingRevision") == b and st.get("phase") == "Serving"

    with traffic(cluster, namespace, "healthy", engine=engine) as load:
        _serve_then_update(cluster, namespace, "healthy", a, b, rollout, **on_engine(engine))
        wait_for("revision B promoted", promoted, 180, 0.2)
    obj = llmd(cluster, namespace, "healthy")
    actions = [h["action"] for h in obj["status"]["history"]]
    for expected in ("CanaryStarted", "CanaryStep", "Promoting", "Promoted"):
        assert expected in actions, actions
    assert seen_weights >= {25, 50}
    assert not degraded, degraded
    assert condition(obj, "Promoted")["status"] == "True"
    assert _stable_revision(cluster, namespace, "healthy") == b
    stable = get_json(cluster, "deployment", "healthy-stable", "-n", namespace)
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == SERVER_IMAGES[engine]
    # Prometheus answered the engine's PromQL with numbers on both tracks (not "no data")
    measured = [c for c in checks if c["name"] == "p95" and c["verdict"] == "Pass"]
    assert measured and all(c.get("value") is not None and c.get("stableValue") is not None for c in measured)
    assert any(c["name"] == "errors" and c.get("value") == 0 for c in checks), checks
    assert load.sent > 0 and load.failed < load.sent
    assert not [c for c in obj["status"]["conditions"] if c["type"] == "Deprecated"]
    wait_for(
        "canary removed", lambda: not get_json(cluster, "deployment", "healthy-canary", "-n", namespace), 60
    )


def test_canary_with_five_percent_errors_is_rolled_back_within_the_failure_limit(
    cluster: Cluster, namespace: str, operator: OperatorProcess, engine: str
) -> None:
    a, b = rev(f"errors-a-{engine}"), rev(f"errors-b-{engine}")
    set_behaviour(cluster, a)
    # 429 on TGI; vLLM queues instead of refusing, so the same failure is a 500 there
    set_behaviour(cluster, b, error_rate=0.05, error_kind="overloaded")
    slow_steps = {**ROLLOUT, "steps": [{"setWeight": 50, "pause": {"duration": "10m"}}]}
    with traffic(cluster, namespace, "errs", engine=engine):
        _serve_then_update(cluster, namespace, "errs", a, b, slow_steps, **on_engine(engine))
        obj = wait_condition(cluster, namespace, "errs", "Promoted", "False", "RolledBack", timeout=180)
    st = obj["status"]
    assert st["phase"] == "RolledBack"
    assert st["canary"]["failedChecks"] == 2
    msg = condition(obj, "Promoted")["message"]
    assert "errors" in msg and "0.02" in msg
    assert _stable_revision(cluster, namespace, "errs") == a
    assert st["servingRevision"] == a
    wait_for(
        "canary removed", lambda: not get_json(cluster, "deployment", "errs-canary", "-n", namespace), 60
    )
    wait_event(cluster, namespace, "errs", "RolledBack", "Warning")


def test_latency_regression_against_stable_is_rolled_back(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    a, b = rev("latency-a"), rev("latency-b")
    set_behaviour(cluster, a, latency_seconds=0.02)
    set_behaviour(cluster, b, latency_seconds=0.3)
    p95 = {"name": "p95", "template": "latency-p95", "compareToStable": {"maxRatio": 1.5}}
    rollout = {
        **ROLLOUT,
        "steps": [{"setWeight": 50, "pause": {"duration": "10m"}}],
        "analysis": {**ROLLOUT["analysis"], "metrics": [p95]},
    }
    with traffic(cluster, namespace, "lat"):
        _serve_then_update(cluster, namespace, "lat", a, b, rollout)
        obj = wait_condition(cluster, namespace, "lat", "Promoted", "False", "RolledBack", timeout=180)
    msg = condition(obj, "Promoted")["message"]
    assert "p95" in msg and "stable" in msg
    checks = {c["name"]: c for c in obj["status"]["canary"]["checks"]}
    assert checks["p95"]["value"] > 1.5 * checks["p95"]["stableValue"]
    assert _stable_revision(cluster, namespace, "lat") == a


def test_prometheus_down_pauses_and_never_promotes(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    a, b = rev("promdown-a"), rev("promdown-b")
    set_behaviour(cluster, a)
    set_behaviour(cluster, b)
    rollout = {**ROLLOUT, "analysis": {**ROLLOUT["analysis"], "inconclusiveLimit": 1}}
    monitoring = {"prometheus": {"url": "http://127.0.0.1:9"}}  # nothing listens there
    _serve_then_update(cluster, namespace, "blind", a, b, rollout, monitoring=monitoring)
    obj = wait_condition(cluster, namespace, "blind", "Progressing", "False", "CanaryPaused", timeout=180)
    can = obj["status"]["canary"]
    assert can["state"] == "Paused"
    assert "unreachable" in can["message"].lower() or "127.0.0.1:9" in can["message"]
    assert obj["status"]["phase"] == "Canary"
    # Well past every pause: still at the first step, still serving A.
    wait_for(
        "more inconclusive checks",
        lambda: _canary(cluster, namespace, "blind").get("inconclusiveChecks", 0) >= 3,
        60,
    )
    can = _canary(cluster, namespace, "blind")
    assert can["step"] == 0 and can["state"] == "Paused"
    assert llmd(cluster, namespace, "blind")["status"]["servingRevision"] == a


def test_operator_killed_mid_canary_resumes_at_the_same_step(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    a, b = rev("resume-a"), rev("resume-b")
    set_behaviour(cluster, a)
    set_behaviour(cluster, b)
    # The second step pauses until promoted by hand.
    rollout = {
        **ROLLOUT,
        "steps": [{"setWeight": 25, "pause": {"duration": "4s"}}, {"setWeight": 50, "pause": {}}],
    }
    with traffic(cluster, namespace, "resume"):
        _serve_then_update(cluster, namespace, "resume", a, b, rollout)
        wait_for("step 2", lambda: _canary(cluster, namespace, "resume").get("step") == 1, 180, 0.2)
        before = _canary(cluster, namespace, "resume")
        offset = operator.log_offset()
        operator.restart()
        wait_for(
            "a pass by the new operator",
            lambda: f"{namespace}/resume: pass" in operator.log_since(offset)
            or "resume" in operator.log_since(offset),
            60,
        )
        after = _canary(cluster, namespace, "resume")
        assert after["step"] == before["step"] == 1
        assert after["stepStartTime"] == before["stepStartTime"]
        assert after["startTime"] == before["startTime"]
        cluster.kubectl("annotate", "llmd", "resume", "-n", namespace, f"llmops.io/promote={b}")
        wait_for(
            "promoted by annotation",
            lambda: llmd(cluster, namespace, "resume")["status"].get("servingRevision") == b,
            180,
        )
    actions = [h["action"] for h in llmd(cluster, namespace, "resume")["status"]["history"]]
    assert actions.count("CanaryStarted") == 1


def test_abort_annotation_rolls_back(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    a, b = rev("abort-a"), rev("abort-b")
    set_behaviour(cluster, a)
    set_behaviour(cluster, b)
    _serve_then_update(
        cluster, namespace, "abort", a, b, {**ROLLOUT, "steps": [{"setWeight": 25, "pause": {}}]}
    )
    wait_for(
        "canary running", lambda: _canary(cluster, namespace, "abort").get("state") == "Progressing", 120
    )
    cluster.kubectl("annotate", "llmd", "abort", "-n", namespace, "llmops.io/abort=true")
    obj = wait_condition(cluster, namespace, "abort", "Promoted", "False", "RolledBack", timeout=60)
    assert "aborted" in condition(obj, "Promoted")["message"]
    assert obj["status"]["phase"] == "RolledBack"
    assert _stable_revision(cluster, namespace, "abort") == a


@pytest.fixture(scope="module")
def gateway_api(cluster: Cluster) -> None:
    """The Gateway API CRDs, from the sigs.k8s.io/gateway-api Go module (see cluster/build.sh)."""
    for crd in sorted((cluster.bin_dir / "crds").glob("gateway.networking.k8s.io_*.yaml")):
        cluster.kubectl("apply", "--server-side", "-f", str(crd))
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/httproutes.gateway.networking.k8s.io", "--timeout=60s"
    )


def test_gateway_api_mode_writes_the_route_weights_at_each_step(
    cluster: Cluster, namespace: str, operator: OperatorProcess, gateway_api: None
) -> None:
    a, b = rev("gw-a"), rev("gw-b")
    set_behaviour(cluster, a)
    set_behaviour(cluster, b)
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "chat"},
        "spec": {
            "parentRefs": [{"name": "public"}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": "gw", "port": 80}],
                }
            ],
        },
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(route))
    rollout = {
        **ROLLOUT,
        "analysis": {"interval": "4s", "metrics": []},
        "traffic": {"mode": "gatewayAPI", "httpRouteRef": {"name": "chat"}},
    }

    def weights() -> list[tuple[str, int]]:
        r = get_json(cluster, "httproute", "chat", "-n", namespace)
        return [(x["name"], x.get("weight", 1)) for x in r["spec"]["rules"][0]["backendRefs"]]

    _serve_then_update(cluster, namespace, "gw", a, b, rollout)
    wait_for("25% to the canary", lambda: weights() == [("gw-stable", 75), ("gw-canary", 25)], 120, 0.2)
    wait_for("50% to the canary", lambda: weights() == [("gw-stable", 50), ("gw-canary", 50)], 120, 0.2)
    assert (
        get_json(cluster, "deployment", "gw-stable", "-n", namespace)["spec"]["replicas"] == 4
    )  # capacity kept
    wait_for("promoted", lambda: llmd(cluster, namespace, "gw")["status"].get("servingRevision") == b, 120)
    wait_for("all traffic to stable", lambda: weights() == [("gw-stable", 100), ("gw-canary", 0)], 60)
    r = get_json(cluster, "httproute", "chat", "-n", namespace)
    assert (
        r["spec"]["rules"][0]["matches"] == route["spec"]["rules"][0]["matches"]
    )  # the user's part untouched


def test_smoke_evaluation_opens_the_canary_to_traffic_only_after_it_passed(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    a, b = rev("smoke-a"), rev("smoke-b")
    # 16 prompts: enough for the gate to show exactMatch >= 0.75 at 95% (12 needed); the smoke
    # check sends 2 of them and judges their values.
    qa = [{"prompt": f"Say word{i}.", "reference": f"word{i}"} for i in range(16)]
    assert cluster.state_dir is not None
    answers = cluster.state_dir / "smoke-qa.jsonl"
    answers.write_text("".join(json.dumps(x) + "\n" for x in qa))
    for r in (a, b):
        set_behaviour(cluster, r, dataset=str(answers), accuracy=1.0)
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "qa"},
        "data": {"qa.jsonl": answers.read_text()},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(cm))
    evaluation = {
        "dataset": {"configMapRef": {"name": "qa", "key": "qa.jsonl"}},
        "thresholds": [{"metric": "exactMatch", "min": 0.75}],
        "maxNewTokens": 8,
    }
    rollout = {**ROLLOUT, "smokeEvaluation": {"samples": 2}}
    with traffic(cluster, namespace, "smoky"):
        _serve_then_update(cluster, namespace, "smoky", a, b, rollout, evaluation=evaluation)
        wait_for(
            "promoted",
            lambda: llmd(cluster, namespace, "smoky")["status"].get("servingRevision") == b,
            240,
            0.2,
        )
    actions = [h["action"] for h in llmd(cluster, namespace, "smoky")["status"]["history"]]
    assert actions.count("SmokeEvaluationPassed") == 1, actions
    assert actions.index("SmokeEvaluationPassed") < actions.index("CanaryStep"), actions
    jobs = get_json(cluster, "jobs", "-n", namespace, "-l", "app.kubernetes.io/component=evaluation")["items"]
    smoke = [j for j in jobs if j["metadata"]["name"].startswith("smoky-smoke-")]
    assert len(smoke) == 1
    args = smoke[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--max-samples") + 1] == "2"


def test_a_query_prometheus_rejects_pauses_the_canary_quoting_prometheus(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    a, b = rev("badquery-a"), rev("badquery-b")
    set_behaviour(cluster, a)
    set_behaviour(cluster, b)
    broken = {
        "name": "custom",
        "query": 'sum(rate(tgi_request_success{namespace="{{ namespace }}"}[1m])',
        "thresholdRange": {"min": 0},
    }
    rollout = {**ROLLOUT, "analysis": {**ROLLOUT["analysis"], "metrics": [broken]}}
    _serve_then_update(cluster, namespace, "badq", a, b, rollout)
    obj = wait_condition(cluster, namespace, "badq", "Progressing", "False", "CanaryPaused", timeout=120)
    message = obj["status"]["canary"]["message"]
    assert "parse error" in message, message
    assert condition(obj, "Progressing")["message"] == message
    assert obj["status"]["canary"]["step"] == 0


def test_a_canary_on_exactly_as_many_gpus_as_replicas_is_promoted(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    """Replicas mode keeps GPU demand flat during the canary (stable gives the canary its pods),
    and promotion must too: two replicas on a node with two GPUs, the canary at 50% holds one.
    Stable asking for both replicas of the new revision at once while the canary kept its pod
    needed a third GPU: the new pod waited for ever and the old one could not go (maxSurge 0,
    maxUnavailable 1), so the canary stayed Promoting. Stable takes the canary's pods over one
    at a time instead, and the revision is promoted with every pod the node's."""
    a, b = rev("twogpus-a"), rev("twogpus-b")
    set_behaviour(cluster, a)
    set_behaviour(cluster, b)
    rollout = {
        "steps": [{"setWeight": 50, "pause": {"duration": "2s"}}],
        "analysis": {"metrics": []},
        "progressDeadlineSeconds": 120,
    }
    body = json.loads(sample("twogpus", a, replicas=2, rollout=rollout))
    messages: list[str] = []
    degraded: list[str] = []

    def promoted() -> bool:
        obj = llmd(cluster, namespace, "twogpus")
        st = obj.get("status") or {}
        if st.get("canary", {}).get("state") == "Promoting":
            messages.append(condition(obj, "Promoted").get("message", ""))
        if condition(obj, "Degraded").get("status") == "True":
            degraded.append(condition(obj, "Degraded")["message"])
        return st.get("servingRevision") == b and st.get("phase") == "Serving" and not st.get("canary")

    with dedicated_gpu_node(cluster, f"gpu-{namespace}", gpus=2) as node:
        body["spec"]["placement"] = placement_on(node)
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
        wait_for(
            "2/2 ready",
            lambda: (llmd(cluster, namespace, "twogpus").get("status") or {}).get("ready") == "2/2",
            150,
        )
        body["spec"]["model"]["revision"] = b
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
        wait_for("revision B promoted on two GPUs", promoted, 240, 0.3)
        obj = llmd(cluster, namespace, "twogpus")
        assert condition(obj, "Promoted")["status"] == "True", condition(obj, "Promoted")
        assert _stable_revision(cluster, namespace, "twogpus") == b
        assert obj["status"]["ready"] == "2/2"
    assert messages, "the promotion was never observed"
    # The new stable pod did wait for the GPU the canary held (the message saying so lasts one
    # pass, too short to poll for; the scheduler's Event stays), and got it.
    events = get_json(cluster, "events", "-n", namespace, "--field-selector", "reason=FailedScheduling")
    waited = [e for e in events["items"] if e["involvedObject"]["name"].startswith("twogpus-stable-")]
    assert waited and "Insufficient nvidia.com/gpu" in waited[0]["message"], events["items"]
    assert not degraded, degraded
