"""The operator serving models on the local cluster (issue 3's scenarios); serving a sample and
rolling it to a new revision run on each engine (the `engine` fixture).

The operator runs as a process (``operator`` fixture); TGI pods are run by the fake kubelet
(a TGI simulator per pod) and the model cache is filled from the simulated Hub.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops_dev.cluster import Cluster
from testkit import create_namespace, delete_namespace, get_json, wait_for
from testkit.operator import (
    SERVER_IMAGES,
    OperatorProcess,
    children,
    condition,
    configure_hub,
    deployment_settled,
    llmd,
    on_engine,
    sample,
    wait_condition,
    wait_event,
)

REV_A = "a" * 40
REV_B = "b" * 40
REPO = Path(__file__).resolve().parents[2]
# Where each engine's server is told its revision (vLLM expands it into --revision).
REVISION_ENV = {"tgi": "REVISION", "vllm": "LLMOPS_REVISION"}


def _apply(cluster: Cluster, namespace: str, manifest: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)


def _serve(cluster: Cluster, namespace: str, name: str, revision: str = REV_A, **spec: object) -> dict:
    _apply(cluster, namespace, sample(name, revision, **spec))
    return wait_condition(cluster, namespace, name, "Available", "True", timeout=120)


def test_sample_is_served_with_every_child_owned(
    cluster: Cluster, namespace: str, operator: OperatorProcess, engine: str
) -> None:
    obj = _serve(cluster, namespace, "chat", **on_engine(engine))
    uid = obj["metadata"]["uid"]
    st = obj["status"]
    assert st["phase"] == "Serving"
    assert st["servingRevision"] == REV_A
    assert st["ready"] == "1/1"
    assert st["endpoint"] == f"http://chat.{namespace}.svc.cluster.local:80"
    assert st["observedGeneration"] == obj["metadata"]["generation"]
    assert condition(obj, "ModelCached")["status"] == "True"
    assert condition(obj, "Progressing")["reason"] == "RolloutComplete"

    kinds = {}
    for child in children(cluster, namespace, "chat"):
        kinds[child["kind"]] = child["metadata"]["name"]
        refs = child["metadata"].get("ownerReferences") or []
        assert [(r["kind"], r["uid"], r.get("controller")) for r in refs] == [("LLMDeployment", uid, True)], (
            child["metadata"]["name"]
        )
    assert kinds.keys() >= {
        "Deployment",
        "Service",
        "PersistentVolumeClaim",
        "Job",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }

    pods = get_json(cluster, "pods", "-n", namespace, "-l", "llmops.io/track=stable")["items"]
    assert len(pods) == 1
    assert pods[0]["spec"]["containers"][0]["image"] == SERVER_IMAGES[engine]
    node = get_json(cluster, "node", pods[0]["spec"]["nodeName"])
    assert "nvidia.com/gpu.product" in node["metadata"]["labels"]

    # The printer columns tell the story at a glance.
    table = cluster.kubectl("get", "llmd", "chat", "-n", namespace).stdout.split("\n")
    header, row = table[0].split(), table[1].split()
    assert header[:6] == ["NAME", "PHASE", "MODEL", "REVISION", "READY", "CANARY"]
    assert row[:5] == ["chat", "Serving", "sim-org/tiny-chat", REV_A, "1/1"]


def test_new_revision_rolls_and_status_follows(
    cluster: Cluster, namespace: str, operator: OperatorProcess, engine: str
) -> None:
    _serve(cluster, namespace, "roll", **on_engine(engine))
    _apply(cluster, namespace, sample("roll", REV_B, **on_engine(engine)))

    def rolled() -> dict | None:
        obj = llmd(cluster, namespace, "roll")
        st = obj.get("status") or {}
        ok = (
            st.get("servingRevision") == REV_B
            and st.get("observedGeneration") == obj["metadata"]["generation"]
        )
        return obj if ok and st.get("phase") == "Serving" else None

    obj = wait_for("revision B serving", rolled, 120)
    assert obj["status"]["desiredRevision"] == REV_B
    dep = get_json(cluster, "deployment", "roll-stable", "-n", namespace)
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env[REVISION_ENV[engine]] == REV_B
    pods = get_json(cluster, "pods", "-n", namespace, "-l", "llmops.io/track=stable")["items"]
    assert {
        p["metadata"]["labels"]["llmops.io/revision"]
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
    } == {REV_B}
    actions = [(h["action"], h.get("revision")) for h in obj["status"]["history"]]
    assert actions[-2:] == [("Deployed", REV_A), ("Deployed", REV_B)]


def test_delete_garbage_collects_everything(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    _serve(cluster, namespace, "gone")
    cluster.kubectl("delete", "llmd", "gone", "-n", namespace, "--wait=true", "--timeout=60s")
    wait_for("children collected", lambda: not list(children(cluster, namespace, "gone")), 90)
    wait_for(
        "pods collected",
        lambda: not get_json(cluster, "pods", "-n", namespace, "-l", "llmops.io/deployment=gone")["items"],
        90,
    )


def test_restart_makes_no_duplicates_and_no_writes(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    _serve(cluster, namespace, "steady")

    def versions() -> dict[str, str]:
        out = {
            f"{c['kind']}/{c['metadata']['name']}": c["metadata"]["resourceVersion"]
            for c in children(cluster, namespace, "steady")
        }
        out["llmd"] = llmd(cluster, namespace, "steady")["metadata"]["resourceVersion"]
        return out

    # Settled: two passes in a row produce the same versions.
    before = wait_for("a settled object", lambda: (v := versions()) == versions() and v, 60)
    offset = operator.log_offset()
    operator.restart()
    wait_for(
        "the restarted operator to reconcile the object",
        lambda: f"{namespace}/steady: pass: nothing to change" in operator.log_since(offset),
        60,
    )
    assert versions() == before
    names = [f"{c['kind']}/{c['metadata']['name']}" for c in children(cluster, namespace, "steady")]
    assert len(names) == len(set(names))


def test_two_namespaces_do_not_interfere(cluster: Cluster, operator: OperatorProcess) -> None:
    # The same name in two namespaces: one cannot start (its Secret is missing), the other serves.
    namespaces = []
    try:
        for ns in ("iso-a", "iso-b"):
            create_namespace(cluster, ns)
            namespaces.append(ns)
        _apply(
            cluster,
            "iso-a",
            sample(
                "twin",
                REV_A,
                model={"id": "sim-org/tiny-chat", "revision": REV_A, "tokenSecretRef": {"name": "missing"}},
            ),
        )
        ok = _serve(cluster, "iso-b", "twin")
        bad = wait_condition(cluster, "iso-a", "twin", "ModelCached", "False", "SecretNotFound")
        assert ok["status"]["phase"] == "Serving"
        assert bad["status"]["phase"] in ("Failed", "Pending")
        assert 'Secret "missing" not found' in condition(bad, "ModelCached")["message"]
        owners_b = {c["metadata"]["ownerReferences"][0]["uid"] for c in children(cluster, "iso-b", "twin")}
        assert owners_b == {ok["metadata"]["uid"]}
    finally:
        for ns in namespaces:
            delete_namespace(cluster, ns)


@pytest.mark.parametrize(
    ("case", "spec", "condition_type", "reason", "words"),
    [
        ("gpus", {"resources": {"gpu": {"count": 9}}}, "Available", "InsufficientGPU", "nvidia.com/gpu"),
        (
            "image",
            {"engine": {"image": "registry.invalid/tgi:1.0.0"}},
            "Available",
            "ImagePullFailed",
            "registry.invalid/tgi:1.0.0",
        ),
        (
            "pvc",
            {"cache": {"size": "1Gi", "storageClassName": "no-such-class"}},
            "ModelCached",
            "PVCNotBound",
            "no-such-class",
        ),
        (
            "repo",
            {"model": {"id": "sim-org/missing", "revision": REV_A}},
            "ModelCached",
            "DownloadFailed",
            "sim-org/missing",
        ),
    ],
)
def test_runtime_failures_become_conditions(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    case: str,
    spec: dict,
    condition_type: str,
    reason: str,
    words: str,
) -> None:
    configure_hub(cluster, missing=["sim-org/missing"])
    _apply(cluster, namespace, sample(f"bad-{case}", REV_A, **spec))
    obj = wait_condition(cluster, namespace, f"bad-{case}", condition_type, "False", reason, timeout=120)
    assert words in condition(obj, condition_type)["message"]
    assert obj["status"]["phase"] in ("Pending", "Failed")
    if obj["status"]["phase"] == "Failed":
        wait_event(cluster, namespace, f"bad-{case}", reason, "Warning")


def test_samples_apply_cleanly(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    for path in sorted((REPO / "manifests" / "samples").glob("*.yaml")):
        cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path))


def test_a_pass_with_nothing_to_change_writes_nothing(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    """One more pass, in-process, with the adapter counting every write: there are none."""
    from llmops.kube import Kube, load_client
    from llmops.reconciler import Reconciler

    _serve(cluster, namespace, "quiet")
    kube = Kube(load_client(str(cluster.kubeconfig)))
    reconciler = Reconciler(kube)

    def settled() -> bool:
        kube.writes.clear()
        reconciler.reconcile(namespace, "quiet")
        return not kube.writes

    # The session operator may still be finishing its own passes; a settled object needs none.
    wait_for(
        "the Deployment settled", lambda: deployment_settled(cluster, namespace, "quiet-stable"), 60, 0.25
    )
    wait_for("a pass without writes", settled, 60, 0.5)
    for _ in range(3):
        reconciler.reconcile(namespace, "quiet")
        assert kube.writes == []


def test_monitoring_children_once_the_prometheus_operator_is_installed(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    obj = _serve(cluster, namespace, "observed")
    assert condition(obj, "MonitoringConfigured")["reason"] == "MonitoringCRDsMissing"
    # The real CRDs, from the prometheus-operator Go module (see cluster/build.sh).
    for crd in ("podmonitors", "prometheusrules"):
        cluster.kubectl(
            "apply",
            "--server-side",
            "-f",
            str(cluster.bin_dir / "crds" / f"monitoring.coreos.com_{crd}.yaml"),
        )
        cluster.kubectl(
            "wait", "--for=condition=Established", f"crd/{crd}.monitoring.coreos.com", "--timeout=60s"
        )
    wait_condition(cluster, namespace, "observed", "MonitoringConfigured", "True", timeout=90)
    monitor = get_json(cluster, "podmonitor", "observed", "-n", namespace)
    rule = get_json(cluster, "prometheusrule", "observed", "-n", namespace)
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"  # the gateway's health port
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"LLMDeploymentPodsNotReady", "LLMDeploymentErrorRatio", "LLMDeploymentLatencyP95"} <= alerts
    for child in (monitor, rule):
        assert child["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]


def test_a_download_that_outlives_its_deadline_is_reported(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    configure_hub(cluster, slow={"sim-org/huge": 600})
    cache = {"size": "1Gi", "download": {"activeDeadlineSeconds": 60}}
    _apply(
        cluster,
        namespace,
        sample("huge", REV_A, model={"id": "sim-org/huge", "revision": REV_A}, cache=cache),
    )
    obj = wait_condition(cluster, namespace, "huge", "ModelCached", "False", "DownloadTimedOut", timeout=150)
    assert "activeDeadlineSeconds" in condition(obj, "ModelCached")["message"]
    assert obj["status"]["phase"] == "Failed"
