"""Render: each rule for the children of an LLMDeployment, asserted one by one."""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import pytest

import llmops.api as api
from llmops.engines import CONTAINER_NAME
from llmops.render import (
    deployment,
    download_job,
    network_policy,
    pdb,
    pod_monitor,
    prometheus_rule,
    pvc,
    render,
    revision_label,
    service,
)
from llmops.render.names import endpoint

SHA = "0e9e39f249a16976918f6564b8830bc894c89659"
OTHER_SHA = "1111111111111111111111111111111111111111"
UID = "6f1d2c4e-0000-4000-8000-000000000001"
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def body(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {
            "id": "meta-llama/Llama-3.1-8B-Instruct",
            "revision": SHA,
            "tokenSecretRef": {"name": "hf"},
        },
    }
    base.update(spec)
    return {
        "apiVersion": "llmops.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": "chat", "namespace": "models", "uid": UID, "generation": 3},
        "spec": base,
    }


def ld(**spec: Any) -> api.LLMDeployment:
    return api.parse(body(**spec))


def by_kind(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [o["kind"] for o in objs]
    assert len(kinds) == len(set(kinds))
    return {o["kind"]: o for o in objs}


def server(
    obj: api.LLMDeployment, track: Any = "stable", revision: str = SHA, replicas: int = 1
) -> dict[str, Any]:
    return deployment(obj, track=track, revision=revision, replicas=replicas)


def job(obj: api.LLMDeployment, *, revision: str) -> dict[str, Any]:
    out = download_job(obj, revision=revision)
    assert out is not None
    return out


def container(dep: dict[str, Any]) -> dict[str, Any]:
    """The engine's container (the gateway's, when enabled, is the other one)."""
    (c,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == CONTAINER_NAME]
    return c


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names = [e["name"] for e in c["env"]]
    assert len(names) == len(set(names)), f"duplicate env names: {names}"
    return {e["name"]: e for e in c["env"]}


# ------------------------------------------------------------------------------------- names


def test_render_returns_every_child_with_deterministic_names() -> None:
    objs = by_kind(render(body()))
    assert objs["Deployment"]["metadata"]["name"] == "chat-stable"
    for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy", "PodMonitor", "PrometheusRule"):
        assert objs[kind]["metadata"]["name"] == "chat", kind
    assert objs["PersistentVolumeClaim"]["metadata"]["name"] == "chat-model-cache"
    assert re.fullmatch(r"chat-download-[0-9a-f]{8}", objs["Job"]["metadata"]["name"])
    assert render(body()) == render(body())


@pytest.mark.parametrize("track", ["stable", "canary", "staging"])
def test_deployment_name_per_track(track: Any) -> None:
    objs = by_kind(render(body(), track=track, revision=OTHER_SHA, replicas=2))
    assert objs["Deployment"]["metadata"]["name"] == f"chat-{track}"
    assert objs["Deployment"]["spec"]["replicas"] == 2
    assert env_of(container(objs["Deployment"]))["REVISION"]["value"] == OTHER_SHA


def test_download_job_name_follows_model_and_revision() -> None:
    name = job(ld(), revision=SHA)["metadata"]["name"]
    assert job(ld(), revision=SHA)["metadata"]["name"] == name
    assert job(ld(), revision=OTHER_SHA)["metadata"]["name"] != name
    other_model = ld(model={"id": "org/other", "revision": SHA})
    assert job(other_model, revision=SHA)["metadata"]["name"] != name
    long = api.parse({**body(), "metadata": {"name": "a" * 45, "namespace": "n", "uid": UID}})
    assert len(job(long, revision=SHA)["metadata"]["name"]) <= 63


def test_render_does_not_mutate_its_input() -> None:
    b = body()
    before = copy.deepcopy(b)
    objs = render(b)
    objs[2]["spec"]["template"]["spec"]["containers"][0]["env"].clear()
    assert b == before
    assert render(b) != objs


def test_endpoint() -> None:
    assert endpoint("chat", "models", 80) == "http://chat.models.svc.cluster.local:80"


# ------------------------------------------------------------------------ metadata and labels


def test_every_child_has_namespace_owner_and_labels() -> None:
    for obj in render(body(), track="canary"):
        meta = obj["metadata"]
        assert meta["namespace"] == "models", obj["kind"]
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "llmops.io/v1alpha1",
                "kind": "LLMDeployment",
                "name": "chat",
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ], obj["kind"]
        labels = meta["labels"]
        assert labels["app.kubernetes.io/name"] == "llmops-model"
        assert labels["app.kubernetes.io/instance"] == "chat"
        assert labels["app.kubernetes.io/managed-by"] == "llmops-operator"
        assert labels["app.kubernetes.io/part-of"] == "llmops"
        assert labels["app.kubernetes.io/component"] in {"server", "model-cache", "download", "monitoring"}
        assert labels["llmops.io/deployment"] == "chat"
        for value in labels.values():
            assert LABEL_VALUE.match(value) and len(value) <= 63, value


@pytest.mark.parametrize(
    ("revision", "expected"),
    [(SHA, SHA), ("main", "main"), ("v1.0", "v1.0")],
)
def test_revision_label_keeps_valid_values(revision: str, expected: str) -> None:
    assert revision_label(revision) == expected


@pytest.mark.parametrize("revision", ["refs/pr/3", "feature/x_", "a" * 100, "refs/pr/" + "9" * 80, "-x-"])
def test_revision_label_sanitises_refs_without_collisions(revision: str) -> None:
    value = revision_label(revision)
    assert LABEL_VALUE.match(value) and 0 < len(value) <= 63
    assert value != revision_label(revision.replace("/", "-") + "x")
    assert value == revision_label(revision)


def test_revision_label_distinguishes_refs_that_sanitise_alike() -> None:
    assert revision_label("refs/pr/3") != revision_label("refs-pr-3")
    assert revision_label("refs/pr/3") != revision_label("refs_pr/3")


def test_pod_template_labels_per_track() -> None:
    obj = ld()
    for track, serving in (("stable", True), ("canary", True), ("staging", False)):
        dep = server(obj, track=track, revision="refs/pr/7")
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert labels["llmops.io/track"] == track
        assert labels["llmops.io/revision"] == revision_label("refs/pr/7")
        assert labels["app.kubernetes.io/component"] == "server"
        assert (labels.get("llmops.io/serving") == "true") is serving, track
        selector = dep["spec"]["selector"]["matchLabels"]
        assert selector == {
            "llmops.io/deployment": "chat",
            "app.kubernetes.io/component": "server",
            "llmops.io/track": track,
        }
        assert selector.items() <= labels.items()
        assert "llmops.io/revision" not in selector  # a new revision rolls the same Deployment


def test_service_routes_to_stable_and_canary_but_never_staging() -> None:
    obj = ld(service={"type": "LoadBalancer", "port": 8000})
    svc = service(obj)
    selector = svc["spec"]["selector"].items()
    for track, routed in (("stable", True), ("canary", True), ("staging", False)):
        pod = server(obj, track=track)["spec"]["template"]["metadata"]["labels"].items()
        assert (selector <= pod) is routed, track
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    assert (
        job(obj, revision=SHA)["spec"]["template"]["metadata"]["labels"].items()
        >= {"llmops.io/deployment": "chat"}.items()
    )
    assert not selector <= job(obj, revision=SHA)["spec"]["template"]["metadata"]["labels"].items()


# --------------------------------------------------------------------------------- TGI server


def test_tgi_env() -> None:
    obj = ld(
        engine={
            "maxInputTokens": 4000,
            "maxTotalTokens": 8000,
            "maxConcurrentRequests": 64,
            "quantize": "awq",
            "apiKeySecretRef": {"name": "keys", "key": "tgi"},
            "env": [{"name": "CUDA_GRAPHS", "value": "1,2,4"}],
        },
        resources={"gpu": {"count": 4}},
        gateway={"enabled": False},
    )
    env = env_of(container(server(obj)))
    values = {k: v.get("value") for k, v in env.items()}
    assert values["HOSTNAME"] == "0.0.0.0"
    assert values["MODEL_ID"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert values["REVISION"] == SHA
    assert values["NUM_SHARD"] == "4"
    assert values["PORT"] == str(container(server(obj))["ports"][0]["containerPort"])
    assert values["HF_HOME"] == "/data"
    assert values["HUGGINGFACE_HUB_CACHE"].startswith("/data/")
    assert (values["MAX_INPUT_TOKENS"], values["MAX_TOTAL_TOKENS"], values["MAX_CONCURRENT_REQUESTS"]) == (
        "4000",
        "8000",
        "64",
    )
    assert values["QUANTIZE"] == "awq"
    assert "DTYPE" not in env
    assert values["CUDA_GRAPHS"] == "1,2,4"
    assert env["HF_TOKEN"] == {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}},
    }
    assert env["API_KEY"] == {
        "name": "API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "keys", "key": "tgi"}},
    }


def test_secrets_are_never_literals_and_absent_refs_add_nothing() -> None:
    obj = ld(model={"id": "org/public", "revision": SHA})
    env = env_of(container(server(obj)))
    assert "HF_TOKEN" not in env and "API_KEY" not in env
    assert "MAX_INPUT_TOKENS" not in env
    for child in render(body(engine={"apiKeySecretRef": {"name": "k"}})):
        for c in _containers(child):
            for e in c.get("env", []):
                if e["name"] in {"HF_TOKEN", "API_KEY", "HUGGING_FACE_HUB_TOKEN"}:
                    assert "value" not in e and "secretKeyRef" in e["valueFrom"], e


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    template = obj.get("spec", {}).get("template", {})
    return list(template.get("spec", {}).get("containers", []))


def test_server_container_port_and_volumes() -> None:
    dep = server(ld(gateway={"enabled": False}))
    c = container(dep)
    assert c["name"] == "server"
    assert c["image"] == "ghcr.io/huggingface/text-generation-inference:3.3.7"
    (port,) = c["ports"]
    assert port["name"] == "http" and port["protocol"] == "TCP"
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts["/data"]]["persistentVolumeClaim"] == {"claimName": "chat-model-cache"}
    assert volumes[mounts["/dev/shm"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}


def test_cache_disabled_uses_an_empty_dir_and_renders_no_pvc_or_job() -> None:
    obj = ld(cache={"enabled": False, "size": "30Gi"})
    dep = server(obj)
    mounts = {m["mountPath"]: m["name"] for m in container(dep)["volumeMounts"]}
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts["/data"]] == {"name": mounts["/data"], "emptyDir": {"sizeLimit": "30Gi"}}
    assert pvc(obj) is None and download_job(obj, revision=SHA) is None
    kinds = {o["kind"] for o in render(body(cache={"enabled": False}))}
    assert "PersistentVolumeClaim" not in kinds and "Job" not in kinds


def test_download_disabled_keeps_the_pvc() -> None:
    obj = ld(cache={"download": {"enabled": False}})
    assert download_job(obj, revision=SHA) is None
    assert pvc(obj) is not None


@pytest.mark.parametrize("budget", [60, 61, 1800, 3599, 86400])
def test_startup_probe_covers_the_startup_budget(budget: int) -> None:
    c = container(server(ld(engine={"startupTimeoutSeconds": budget}, gateway={"enabled": False})))
    probe = c["startupProbe"]
    assert probe["httpGet"] == {"path": "/health", "port": "http"}
    assert probe["failureThreshold"] * probe["periodSeconds"] >= budget
    assert probe["failureThreshold"] * probe["periodSeconds"] < budget + probe["periodSeconds"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}


def test_default_startup_budget_is_at_least_thirty_minutes() -> None:
    probe = container(server(ld()))["startupProbe"]
    assert probe["failureThreshold"] * probe["periodSeconds"] >= 30 * 60


def test_liveness_is_lenient() -> None:
    c = container(server(ld(gateway={"enabled": False})))
    live, ready = c["livenessProbe"], c["readinessProbe"]
    # A saturated TGI can fail /health for a while (TGI #3241): restart only after minutes.
    assert live["failureThreshold"] * live["periodSeconds"] >= 300
    assert live["timeoutSeconds"] >= ready["timeoutSeconds"]
    assert (
        live["failureThreshold"] * live["periodSeconds"] > ready["failureThreshold"] * ready["periodSeconds"]
    )


def test_termination_grace_and_progress_deadline() -> None:
    dep = server(ld(engine={"startupTimeoutSeconds": 3600}))
    assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 90
    assert dep["spec"]["progressDeadlineSeconds"] > 3600


def test_rolling_update_never_surges_gpus() -> None:
    strategy = server(ld())["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


def test_gpu_resources_and_placement() -> None:
    obj = ld(
        resources={
            "gpu": {"count": 2, "resourceName": "amd.com/gpu", "product": "MI300X"},
            "cpu": 8,
            "memory": "64Gi",
        },
        placement={
            "nodeSelector": {"pool": "gpu"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
            "priorityClassName": "inference",
        },
    )
    dep = server(obj)
    res = container(dep)["resources"]
    assert res["limits"]["amd.com/gpu"] == "2" == res["requests"]["amd.com/gpu"]
    assert res["requests"]["cpu"] == "8" and "cpu" not in res["limits"]
    assert res["requests"]["memory"] == "64Gi" == res["limits"]["memory"]
    pod = dep["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "gpu", "amd.com/gpu.product-name": "MI300X"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["affinity"] == {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}
    assert pod["priorityClassName"] == "inference"
    job_pod = job(obj, revision=SHA)["spec"]["template"]["spec"]
    assert job_pod["nodeSelector"] == pod["nodeSelector"] and job_pod["tolerations"] == pod["tolerations"]
    assert "amd.com/gpu" not in str(job_pod["containers"][0]["resources"])


def test_default_gpu_is_one_nvidia_gpu_without_a_node_selector() -> None:
    pod = server(ld())["spec"]["template"]["spec"]
    assert container(server(ld()))["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert "nodeSelector" not in pod and "tolerations" not in pod and "affinity" not in pod


def test_extra_args_are_passed_verbatim() -> None:
    c = container(server(ld(engine={"extraArgs": ["--cuda-graphs", "1,2"]})))
    assert c["args"] == ["--cuda-graphs", "1,2"]
    assert "args" not in container(server(ld()))


# --------------------------------------------------------------------------------- the others


def test_download_job() -> None:
    obj = ld(cache={"download": {"activeDeadlineSeconds": 900}})
    job = download_job(obj, revision=OTHER_SHA, operator_image="registry.local/op:1.2.3")
    assert job is not None
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["activeDeadlineSeconds"] == 900
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (c,) = pod["containers"]
    assert c["image"] == "registry.local/op:1.2.3"
    assert c["command"] == [
        "llmops",
        "download",
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--revision",
        OTHER_SHA,
        "--progress-port",
        "8090",
    ]
    # The operator reads the download's progress from this port while the revision is Caching.
    assert c["ports"] == [{"name": "progress", "containerPort": 8090, "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"] == {"path": "/progress", "port": "progress"}
    env = env_of(c)
    assert env["HF_HOME"]["value"] == "/data"
    assert env["HF_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "hf", "key": "token"}}
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/data"}
    assert pod["volumes"][0]["persistentVolumeClaim"] == {"claimName": "chat-model-cache"}
    assert job["metadata"]["labels"]["llmops.io/revision"] == OTHER_SHA
    default = download_job(ld(), revision=SHA)
    assert (
        default is not None
        and default["spec"]["template"]["spec"]["containers"][0]["image"] == api.OPERATOR_IMAGE
    )
    custom = download_job(ld(cache={"download": {"image": "mirror/op:0.1.0"}}), revision=SHA)
    assert (
        custom is not None
        and custom["spec"]["template"]["spec"]["containers"][0]["image"] == "mirror/op:0.1.0"
    )


def test_pvc() -> None:
    claim = pvc(ld(cache={"size": "250Gi", "storageClassName": "fast", "accessMode": "ReadWriteMany"}))
    assert claim is not None
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "250Gi"}},
        "storageClassName": "fast",
    }
    default = pvc(ld())
    assert default is not None and "storageClassName" not in default["spec"]


def test_pdb() -> None:
    budget = pdb(ld())
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == service(ld())["spec"]["selector"]
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_network_policy_defaults() -> None:
    policy = network_policy(ld(gateway={"enabled": False}))
    assert policy is not None
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["podSelector"]["matchLabels"] == {
        "llmops.io/deployment": "chat",
        "app.kubernetes.io/component": "server",
    }
    app, scrape = spec["ingress"]
    assert app["ports"] == [{"port": "http", "protocol": "TCP"}] == scrape["ports"]
    # no peers given: the namespace's pods, and our own Job pods (evaluation hits staging pods)
    assert app["from"] == [
        {"podSelector": {}},
        {"podSelector": {"matchLabels": {"llmops.io/deployment": "chat"}}},
    ]
    assert scrape["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]


def test_network_policy_leaves_the_download_pods_reachable_for_their_progress() -> None:
    # The operator (in its own namespace) reads a download's progress from the Job's pod: the
    # policy must not select that pod, or it would admit only the peers listed for the server.
    obj = ld()
    policy, job = network_policy(obj), download_job(obj, revision=SHA)
    assert policy is not None and job is not None
    selector = policy["spec"]["podSelector"]["matchLabels"]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert not all(labels.get(k) == v for k, v in selector.items())


def test_network_policy_peers_monitoring_namespace_and_disabled() -> None:
    obj = ld(
        security={
            "networkPolicy": {
                "from": [
                    {"namespaceSelector": {"matchLabels": {"team": "chat"}}},
                    {
                        "podSelector": {
                            "matchExpressions": [{"key": "app", "operator": "In", "values": ["gateway"]}]
                        }
                    },
                ]
            }
        },
        monitoring={"namespace": "observability"},
    )
    policy = network_policy(obj)
    assert policy is not None
    app, scrape = policy["spec"]["ingress"]
    assert app["from"] == [
        {"namespaceSelector": {"matchLabels": {"team": "chat"}}},
        {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["gateway"]}]}},
        {"podSelector": {"matchLabels": {"llmops.io/deployment": "chat"}}},
    ]
    assert scrape["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "observability"
    }
    assert network_policy(ld(security={"networkPolicy": {"enabled": False}})) is None
    no_mon = network_policy(ld(monitoring={"enabled": False}))
    assert no_mon is not None and len(no_mon["spec"]["ingress"]) == 1


def test_pod_monitor() -> None:
    mon = pod_monitor(
        ld(
            monitoring={"podMonitor": {"interval": "15s", "labels": {"release": "kps"}}},
            gateway={"enabled": False},
        )
    )
    assert mon is not None
    assert mon["apiVersion"] == "monitoring.coreos.com/v1"
    assert mon["metadata"]["labels"]["release"] == "kps"
    assert mon["spec"]["selector"]["matchLabels"] == {
        "llmops.io/deployment": "chat",
        "app.kubernetes.io/component": "server",
    }
    (endpoint_,) = mon["spec"]["podMetricsEndpoints"]
    assert (endpoint_["port"], endpoint_["path"], endpoint_["interval"]) == ("http", "/metrics", "15s")
    targets = {r["targetLabel"]: r["sourceLabels"] for r in endpoint_["relabelings"]}
    assert targets == {
        "llmops_deployment": ["__meta_kubernetes_pod_label_llmops_io_deployment"],
        "llmops_track": ["__meta_kubernetes_pod_label_llmops_io_track"],
        "llmops_revision": ["__meta_kubernetes_pod_label_llmops_io_revision"],
    }


def test_prometheus_rule_alerts() -> None:
    rule = prometheus_rule(
        ld(
            replicas=3,
            monitoring={
                "prometheusRule": {
                    "labels": {"release": "kps"},
                    "errorRatio": 0.02,
                    "latencyP95Seconds": 12.5,
                    "queueSize": 40,
                    "for": "3m",
                }
            },
        )
    )
    assert rule is not None
    assert rule["metadata"]["labels"]["release"] == "kps"
    (group,) = rule["spec"]["groups"]
    alerts = {a["alert"]: a for a in group["rules"]}
    assert set(alerts) == {
        "LLMDeploymentPodsNotReady",
        "LLMDeploymentErrorRatio",
        "LLMDeploymentLatencyP95",
        "LLMDeploymentQueueBacklog",
    }
    serving = 'namespace="models",llmops_deployment="chat",llmops_track=~"stable|canary"'
    for alert in alerts.values():
        assert serving in alert["expr"], alert["alert"]
        assert alert["for"] == "3m"
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["annotations"]["summary"]
    assert alerts["LLMDeploymentPodsNotReady"]["expr"].endswith("< 3")
    assert "tgi_request_failure" in alerts["LLMDeploymentErrorRatio"]["expr"]
    assert alerts["LLMDeploymentErrorRatio"]["expr"].endswith("> 0.02")
    assert "tgi_request_duration_bucket" in alerts["LLMDeploymentLatencyP95"]["expr"]
    assert alerts["LLMDeploymentLatencyP95"]["expr"].endswith("> 12.5")
    assert "tgi_queue_size" in alerts["LLMDeploymentQueueBacklog"]["expr"]
    assert alerts["LLMDeploymentQueueBacklog"]["expr"].endswith("> 40")


def test_monitoring_switches() -> None:
    assert pod_monitor(ld(monitoring={"enabled": False})) is None
    assert prometheus_rule(ld(monitoring={"enabled": False})) is None
    assert prometheus_rule(ld(monitoring={"prometheusRule": {"enabled": False}})) is None
    assert pod_monitor(ld(monitoring={"prometheusRule": {"enabled": False}})) is not None
    # without the Prometheus Operator CRDs the caller asks for no monitoring objects
    kinds = {o["kind"] for o in render(body(), monitoring=False)}
    assert not kinds & {"PodMonitor", "PrometheusRule"}
    scaled_down = prometheus_rule(ld(replicas=0))
    assert scaled_down is not None
    assert "LLMDeploymentPodsNotReady" not in {a["alert"] for a in scaled_down["spec"]["groups"][0]["rules"]}


def test_startup_probe_budget_rounds_up() -> None:
    probe = container(server(ld(engine={"startupTimeoutSeconds": 95})))["startupProbe"]
    assert probe["failureThreshold"] == math.ceil(95 / probe["periodSeconds"])
