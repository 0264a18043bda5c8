"""spec.autoscaling on the real kube-apiserver: min > max refused at admission; a real
HorizontalPodAutoscaler (run by the controller-manager's HPA controller) owns the stable replicas,
another field manager's change survives the operator's passes with 0 writes to the Deployment;
removing autoscaling gives the count back to spec.replicas and drift is corrected again; a custom
query that the real Prometheus cannot parse is a condition naming the field; with KEDA's CRD
installed, a ScaledObject replaces the HPA.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmops.analysis import Value
from llmops.lifecycle.autoscaling import HANDOVER_MANAGER
from llmops.lifecycle.ownership import FIELD_MANAGER
from llmops.prom import PromClient
from llmops_dev.cluster import Cluster
from llmops_dev.prometheus import Prometheus
from testkit import get_json, wait_for
from testkit.operator import OperatorProcess, condition, llmd, sample, wait_condition

REV = "a5" * 20
KEDA_CRD = Path(__file__).resolve().parents[1] / "fixtures" / "keda-scaledobjects-crd.yaml"


def _stable(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return get_json(cluster, "deployment", f"{name}-stable", "-n", namespace, "--show-managed-fields")


def _replicas_managers(dep: dict[str, Any]) -> set[str]:
    """The field managers that own spec.replicas of ``dep``."""
    return {
        m["manager"]
        for m in (dep.get("metadata") or {}).get("managedFields") or []
        if "f:replicas" in ((m.get("fieldsV1") or {}).get("f:spec") or {})
    }


def _set_replicas(cluster: Cluster, namespace: str, name: str, replicas: int) -> dict[str, Any]:
    """Another field manager ("intruder", as a person with kubectl would) sets the replicas."""
    out = cluster.kubectl(
        "patch",
        "deployment",
        f"{name}-stable",
        "-n",
        namespace,
        "--field-manager=intruder",
        "-o",
        "json",
        "-p",
        json.dumps({"spec": {"replicas": replicas}}),
    )
    return dict(json.loads(out.stdout))


def test_min_above_max_is_refused_at_admission(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    bad = sample("refused", REV, autoscaling={"minReplicas": 5, "maxReplicas": 3})
    res = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=bad, check=False)
    assert res.returncode != 0
    assert "spec.autoscaling.minReplicas" in res.stderr
    assert "autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas" in res.stderr


def test_the_autoscaler_owns_replicas_and_spec_takes_them_back_when_it_goes(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    from llmops.kube import Kube, load_client
    from llmops.reconciler import Reconciler

    name = "scaled"
    spec = {"minReplicas": 2, "maxReplicas": 4, "cooldownSeconds": 0}
    cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=sample(name, REV, replicas=1, autoscaling=spec)
    )
    wait_condition(cluster, namespace, name, "Autoscaling", "True", "ScalerConfigured", timeout=60)
    wait_condition(cluster, namespace, name, "Available", "True", timeout=180)

    # A real HPA object, owned by the LLMDeployment, scaling the stable Deployment.
    hpa = get_json(cluster, "hpa", name, "-n", namespace)
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": f"{name}-stable",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    assert hpa["spec"]["metrics"][0]["external"]["metric"]["name"] == "llmops_autoscaling_metric"
    owner = hpa["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("LLMDeployment", name, True)

    # The new Deployment started at spec.replicas clamped to minReplicas, then was handed over:
    # the operator's field manager no longer owns the count, and the count did not drop to 1.
    def handed_over() -> dict[str, Any] | None:
        dep = _stable(cluster, namespace, name)
        managers = _replicas_managers(dep)
        return dep if managers and FIELD_MANAGER not in managers else None

    dep = wait_for("the replicas handed over", handed_over, 60, 0.25)
    assert dep["spec"]["replicas"] == 2
    assert _replicas_managers(dep) <= {HANDOVER_MANAGER, "kube-controller-manager"}
    status = llmd(cluster, namespace, name)["status"]
    assert status["replicasOwner"] == "HorizontalPodAutoscaler"
    assert status["autoscaling"]["scaler"] == "HorizontalPodAutoscaler"

    # Another manager scales stable within the bounds: it survives several operator passes, and
    # those passes write nothing to the Deployment (no apply, no hand-over, no new generation).
    kube = Kube(load_client(str(cluster.kubeconfig)))
    reconciler = Reconciler(kube)
    edited = _set_replicas(cluster, namespace, name, 3)
    generation = edited["metadata"]["generation"]
    wait_for(
        "status to follow the autoscaled count",
        lambda: (llmd(cluster, namespace, name).get("status") or {}).get("replicas") == 3,
        60,
        0.25,
    )
    for _ in range(4):
        reconciler.reconcile(namespace, name)
    assert [w for w in kube.writes if w[1] == "Deployment"] == []
    dep = _stable(cluster, namespace, name)
    assert (dep["spec"]["replicas"], dep["metadata"]["generation"]) == (3, generation)
    assert FIELD_MANAGER not in _replicas_managers(dep)
    assert llmd(cluster, namespace, name)["status"]["ready"].endswith("/3")

    # Below minReplicas, the controller-manager's HPA controller itself scales back up (it keeps
    # the bounds even without a metric to read): a real autoscaler moving the count.
    _set_replicas(cluster, namespace, name, 1)
    dep = wait_for(
        "the HPA controller to restore minReplicas",
        lambda: (d := _stable(cluster, namespace, name))["spec"]["replicas"] == 2 and d,
        90,
        0.5,
    )
    assert "kube-controller-manager" in _replicas_managers(dep)
    assert FIELD_MANAGER not in _replicas_managers(dep)

    # Autoscaling removed: the HPA goes, spec.replicas (1) is applied and owned again, and another
    # manager's change is taken back as for any other field.
    remove = json.dumps([{"op": "remove", "path": "/spec/autoscaling"}])
    cluster.kubectl("patch", "llmdeployment", name, "-n", namespace, "--type=json", "-p", remove)
    wait_for("the HPA deleted", lambda: not get_json(cluster, "hpa", name, "-n", namespace), 60, 0.25)

    def owned_by_spec() -> dict[str, Any] | None:
        dep = _stable(cluster, namespace, name)
        ok = dep["spec"]["replicas"] == 1 and FIELD_MANAGER in _replicas_managers(dep)
        return dep if ok else None

    wait_for("spec.replicas applied again", owned_by_spec, 60, 0.25)
    obj = llmd(cluster, namespace, name)
    assert obj["status"]["replicasOwner"] == "Spec"
    assert "autoscaling" not in obj["status"] and not condition(obj, "Autoscaling")
    _set_replicas(cluster, namespace, name, 3)
    wait_for("the drift from spec corrected", owned_by_spec, 60, 0.25)


def test_a_custom_query_prometheus_cannot_parse_is_a_condition_naming_the_field(
    cluster: Cluster, namespace: str, operator: OperatorProcess, prometheus: Prometheus
) -> None:
    spec = {"minReplicas": 1, "maxReplicas": 2, "query": "sum(rate(tgi_queue_size[1m])", "target": 2}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=sample("badquery", REV, autoscaling=spec))
    obj = wait_condition(cluster, namespace, "badquery", "Autoscaling", "False", "InvalidQuery", timeout=60)
    message = condition(obj, "Autoscaling")["message"]
    assert message.startswith("spec.autoscaling.query does not parse: bad_data:")
    assert "unclosed left parenthesis" in message
    assert obj["status"]["replicasOwner"] == "Nobody"
    assert obj["status"]["autoscaling"]["checkedQuery"] == spec["query"]
    assert not get_json(cluster, "hpa", "badquery", "-n", namespace)

    # Fixed: the new query is checked, parses, and the HPA comes.
    fixed = json.dumps({"spec": {"autoscaling": {"query": "sum(rate(tgi_queue_size[1m]))"}}})
    cluster.kubectl("patch", "llmdeployment", "badquery", "-n", namespace, "--type=merge", "-p", fixed)
    wait_condition(cluster, namespace, "badquery", "Autoscaling", "True", "ScalerConfigured", timeout=60)
    wait_for("the HPA", lambda: get_json(cluster, "hpa", "badquery", "-n", namespace), 30, 0.25)


@pytest.fixture
def keda_crd(cluster: Cluster) -> Iterator[None]:
    """KEDA's ScaledObject CRD (trimmed, no KEDA controller), removed afterwards so that later
    tests in the session get HPAs again."""
    cluster.kubectl("apply", "--server-side", "-f", str(KEDA_CRD))

    def established() -> bool:
        crd = get_json(cluster, "crd", "scaledobjects.keda.sh")
        conds = (crd.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conds)

    wait_for("the ScaledObject CRD Established", established, 60, 0.25)
    try:
        yield
    finally:
        cluster.kubectl("delete", "-f", str(KEDA_CRD), "--wait=true", check=False)


def test_with_kedas_crd_a_scaled_object_is_rendered_instead_of_an_hpa(
    cluster: Cluster, namespace: str, operator: OperatorProcess, prometheus: Prometheus, keda_crd: None
) -> None:
    spec = {"minReplicas": 1, "maxReplicas": 3, "targetQueueDepth": 2}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=sample("keda", REV, autoscaling=spec))
    so = wait_for(
        "the ScaledObject", lambda: get_json(cluster, "scaledobject", "keda", "-n", namespace), 60, 0.25
    )
    assert so["spec"]["scaleTargetRef"]["name"] == "keda-stable"
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (1, 3)
    trigger = so["spec"]["triggers"][0]
    assert (trigger["type"], trigger["metricType"]) == ("prometheus", "AverageValue")
    assert trigger["metadata"]["serverAddress"] == prometheus.url
    assert trigger["metadata"]["threshold"] == "2"
    assert trigger["metadata"]["query"].startswith("sum(tgi_queue_size{")
    assert so["metadata"]["ownerReferences"][0]["kind"] == "LLMDeployment"
    obj = wait_condition(cluster, namespace, "keda", "Autoscaling", "True", "ScalerConfigured", timeout=60)
    assert obj["status"]["replicasOwner"] == "ScaledObject"
    assert not get_json(cluster, "hpa", "keda", "-n", namespace)

    # Removed with spec.autoscaling, as every child no longer wanted.
    remove = json.dumps([{"op": "remove", "path": "/spec/autoscaling"}])
    cluster.kubectl("patch", "llmdeployment", "keda", "-n", namespace, "--type=json", "-p", remove)
    wait_for(
        "the ScaledObject deleted",
        lambda: not get_json(cluster, "scaledobject", "keda", "-n", namespace),
        60,
        0.25,
    )


def test_the_syntax_check_asks_the_real_prometheus_without_evaluating(prometheus: Prometheus) -> None:
    from llmops.analysis import Error

    with PromClient(prometheus.url) as prom:
        assert prom.check_syntax('sum(tgi_queue_size{llmops_track="stable"}) or vector(0)') is None
        # Parses, although evaluating it fails (many-to-many matching): only syntax is checked.
        assert (
            prom.check_syntax('vector(1) + on() (vector(1) or label_replace(vector(1), "a", "b", "", ""))')
            is None
        )
        bad = prom.check_syntax("sum(rate(x[1m])")
        assert isinstance(bad, Error) and bad.kind == "rejected"
        assert (
            bad.message == 'bad_data: invalid parameter "query": 1:16: parse error: unclosed left parenthesis'
        )
    with PromClient("http://127.0.0.1:9", timeout=1, retries=0) as down:
        gone = down.check_syntax("sum(x)")
        assert isinstance(gone, Error) and gone.kind == "unreachable"


def test_a_canary_takes_its_share_of_the_live_count_and_stable_keeps_the_autoscalers(
    cluster: Cluster, namespace: str, operator: OperatorProcess, prometheus: Prometheus
) -> None:
    name, a, b = "scaledcanary", "c1" * 20, "c2" * 20
    rollout = {"steps": [{"setWeight": 50, "pause": {}}], "analysis": {"metrics": []}}
    scaling = {"minReplicas": 1, "maxReplicas": 6}
    body = json.loads(sample(name, a, replicas=2, autoscaling=scaling, rollout=rollout))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    wait_condition(cluster, namespace, name, "Available", "True", timeout=180)
    wait_for(
        "the replicas handed over",
        lambda: FIELD_MANAGER not in _replicas_managers(_stable(cluster, namespace, name)),
        60,
        0.25,
    )
    # The autoscaler (here another manager) gives stable 4 replicas.
    _set_replicas(cluster, namespace, name, 4)
    wait_for("4/4 ready", lambda: llmd(cluster, namespace, name)["status"].get("ready") == "4/4", 180, 0.5)
    # The autoscaler's query selects exactly those pods in the real Prometheus scraping them.
    queue = llmd(cluster, namespace, name)["status"]["autoscaling"]["query"].removesuffix(" or vector(0)")
    assert queue.startswith("sum(tgi_queue_size{")
    with PromClient(prometheus.url) as prom:
        counted = "count" + queue.removeprefix("sum")
        wait_for("4 stable pods in the queue metric", lambda: prom.query(counted) == Value(4.0), 60, 0.5)

    body["spec"]["model"]["revision"] = b
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    canary = wait_for(
        "the canary Deployment",
        lambda: get_json(cluster, "deployment", f"{name}-canary", "-n", namespace),
        120,
        0.5,
    )
    assert canary["spec"]["replicas"] == 2  # 50% of the live 4, on top of them
    wait_for(
        "the canary at its paused step",
        lambda: ((llmd(cluster, namespace, name).get("status") or {}).get("canary") or {}).get("weight")
        == 50,
        60,
        0.5,
    )
    stable = _stable(cluster, namespace, name)
    assert stable["spec"]["replicas"] == 4 and FIELD_MANAGER not in _replicas_managers(stable)

    # Promoted: stable rolls to b with the autoscaler's 4 replicas, and the canary goes.
    cluster.kubectl("annotate", "llmdeployment", name, "-n", namespace, "llmops.io/promote=true")

    def promoted() -> bool:
        st = llmd(cluster, namespace, name).get("status") or {}
        return st.get("servingRevision") == b and st.get("phase") == "Serving" and not st.get("canary")

    wait_for("the promotion", promoted, 240, 0.5)
    wait_for(
        "the canary Deployment gone",
        lambda: not get_json(cluster, "deployment", f"{name}-canary", "-n", namespace),
        60,
        0.5,
    )
    stable = _stable(cluster, namespace, name)
    assert stable["spec"]["replicas"] == 4 and FIELD_MANAGER not in _replicas_managers(stable)


def test_turning_autoscaling_on_keeps_the_live_count_through_the_hand_over(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    name = "enabled"
    body = json.loads(sample(name, REV, replicas=3))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    wait_for(
        "3/3 ready",
        lambda: (llmd(cluster, namespace, name).get("status") or {}).get("ready") == "3/3",
        180,
        0.5,
    )
    before = _stable(cluster, namespace, name)
    assert _replicas_managers(before) == {FIELD_MANAGER}

    body["spec"]["autoscaling"] = {"minReplicas": 1, "maxReplicas": 4}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))

    def handed_over() -> dict[str, Any] | None:
        dep = _stable(cluster, namespace, name)
        return dep if FIELD_MANAGER not in _replicas_managers(dep) else None

    dep = wait_for("the replicas handed over", handed_over, 60, 0.25)
    # Within [1, 4] the HPA has no reason to move the count: had the apply without replicas reset
    # the field, it would read 1 now. One write in all: the apply that released the field also
    # changed the Deployment's annotations (the applied hash), which bumps its generation once.
    assert dep["spec"]["replicas"] == 3
    assert dep["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert _replicas_managers(dep) == {HANDOVER_MANAGER}
    obj = wait_condition(cluster, namespace, name, "Autoscaling", "True", "ScalerConfigured", timeout=60)
    assert (obj["status"]["replicasOwner"], obj["status"]["replicas"]) == ("HorizontalPodAutoscaler", 3)
