"""What the chart renders: least-privilege RBAC, the operator Deployment, peering, monitoring,
and the `helm test` hook, for the values that change them."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops.api.constants import OPERATOR_IMAGE
from llmops_dev.packaging import helm, static

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "llmops-operator"
RELEASE, NAMESPACE = "llmops-operator", "llmops-system"
OWNED = ["create", "get", "list", "watch", "patch", "update", "delete"]


@functools.cache
def _render(values_json: str, api_versions: tuple[str, ...], include_tests: bool) -> str:
    values = json.loads(values_json)
    return helm.template(
        CHART,
        release=RELEASE,
        namespace=NAMESPACE,
        values=values,
        api_versions=api_versions,
        include_tests=include_tests,
    )


def render(
    values: dict[str, Any] | None = None, api_versions: tuple[str, ...] = (), include_tests: bool = False
) -> list[dict[str, Any]]:
    """The chart's objects for ``values`` (renders are cached: several tests share one)."""
    text = _render(json.dumps(values or {}, sort_keys=True), tuple(api_versions), include_tests)
    return [d.obj for d in static.split_render(text)]


def only(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return only(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def grants(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


# What the operator needs in every namespace it watches (the brief of its RBAC).
NAMESPACED = {
    ("llmops.io", "llmdeployments"): {"get", "list", "watch"},
    ("llmops.io", "llmdeployments/status"): {"get", "patch", "update"},
    ("", "secrets"): {"create", "get"},
    ("apps", "deployments"): set(OWNED),
    ("", "services"): set(OWNED),
    ("", "persistentvolumeclaims"): set(OWNED),
    ("batch", "jobs"): set(OWNED),
    ("batch", "cronjobs"): set(OWNED),
    ("policy", "poddisruptionbudgets"): set(OWNED),
    ("networking.k8s.io", "networkpolicies"): set(OWNED),
    ("monitoring.coreos.com", "podmonitors"): set(OWNED),
    ("monitoring.coreos.com", "prometheusrules"): set(OWNED),
    ("autoscaling", "horizontalpodautoscalers"): set(OWNED),
    ("keda.sh", "scaledobjects"): set(OWNED),
    ("gateway.networking.k8s.io", "httproutes"): {"get", "list", "watch", "patch"},
    ("", "configmaps"): {"get", "list", "watch"},
    ("", "pods"): {"get", "list", "watch"},
    ("", "pods/status"): {"patch"},
    ("", "events"): {"create", "patch", "list"},  # list: the FailedCreate Events of a Job without pods
    ("events.k8s.io", "events"): {"create", "patch"},
}
CLUSTER = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
    ("", "namespaces"): {"get", "list", "watch"},
    ("", "nodes"): {"get", "list", "watch"},
}
PEERING_VERBS = {"get", "list", "watch", "patch"}


def test_cluster_wide_rbac_is_exactly_what_the_operator_needs() -> None:
    objs = render()
    role = only(objs, "ClusterRole")
    assert grants(role["rules"]) == {**CLUSTER, **NAMESPACED}
    assert not [o for o in objs if o["kind"] in ("Role", "RoleBinding")]
    binding = only(objs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}]


def test_rbac_never_lists_nor_changes_secrets_nor_uses_wildcards() -> None:
    for values in ({}, {"watchNamespaces": ["a"], "replicaCount": 2}, {"replicaCount": 2}):
        for obj in render(values):
            for rule in obj.get("rules", []) if obj["kind"] in ("ClusterRole", "Role") else []:
                if "secrets" in rule["resources"]:
                    # Only the gateway's signing key is created, and read by name for its capture
                    # token (spec.drift.prompts); nothing lists, watches or changes a Secret.
                    assert rule["resources"] == ["secrets"] and rule["verbs"] == ["create", "get"], rule
                assert "*" not in rule["resources"] + rule["verbs"] + rule["apiGroups"]
                if "llmdeployments" in rule["resources"]:
                    assert not {"create", "update", "patch", "delete", "deletecollection"} & set(
                        rule["verbs"]
                    )


def test_namespaced_mode_has_a_role_per_namespace_and_only_reads_cluster_wide() -> None:
    objs = render({"watchNamespaces": ["team-a", "team-b"]})
    assert grants(only(objs, "ClusterRole")["rules"]) == CLUSTER
    roles = {o["metadata"]["namespace"]: o for o in objs if o["kind"] == "Role"}
    bindings = {o["metadata"]["namespace"]: o for o in objs if o["kind"] == "RoleBinding"}
    assert set(roles) == set(bindings) == {"team-a", "team-b"}
    for ns in roles:
        assert grants(roles[ns]["rules"]) == NAMESPACED
        assert bindings[ns]["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": RELEASE,
        }
        assert bindings[ns]["subjects"] == [
            {"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}
        ]
    args = container(objs)["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args
    assert "--all-namespaces" not in args


def test_peering_rbac_follows_the_scope() -> None:
    cluster = grants(only(render({"replicaCount": 2}), "ClusterRole")["rules"])
    assert cluster[("kopf.dev", "clusterkopfpeerings")] == PEERING_VERBS
    assert ("kopf.dev", "kopfpeerings") not in cluster
    objs = render({"replicaCount": 2, "watchNamespaces": ["team-a"]})
    assert ("kopf.dev", "clusterkopfpeerings") not in grants(only(objs, "ClusterRole")["rules"])
    assert grants(only(objs, "Role")["rules"])[("kopf.dev", "kopfpeerings")] == PEERING_VERBS


def test_rbac_create_false_renders_no_roles() -> None:
    objs = render({"rbac": {"create": False}})
    assert not [o for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")]


def test_default_deployment() -> None:
    objs = render()
    dep = only(objs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = container(objs)
    assert c["image"] == OPERATOR_IMAGE  # the chart's appVersion is the operator's release
    assert c["args"] == [
        "run",
        "--all-namespaces",
        "--liveness-port=8080",
        "--metrics-port=9090",
        "--log-format=json",
        "--standalone",
    ]
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}  # never two standalone operators at once
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"health": 8080, "metrics": 9090}
    assert pod["serviceAccountName"] == only(objs, "ServiceAccount")["metadata"]["name"]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


def test_security_context_meets_the_restricted_pod_security_standard() -> None:
    objs = render()
    pod = only(objs, "Deployment")["spec"]["template"]["spec"]
    c = container(objs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532  # the Dockerfile's USER
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/tmp"}


@pytest.mark.parametrize(
    ("values", "args"),
    [
        ({"healthPort": 8181, "metrics": {"port": 9191}}, ["--liveness-port=8181", "--metrics-port=9191"]),
        ({"logFormat": "plain"}, ["--log-format=plain"]),
        ({"extraArgs": ["--verbose", "--debug"]}, ["--verbose", "--debug"]),
        ({"peering": {"enabled": True}}, ["--peering=llmops-operator"]),
        ({"peering": {"enabled": True, "name": "llmops"}}, ["--peering=llmops"]),
        ({"replicaCount": 3}, ["--peering=llmops-operator"]),
        (
            {"prometheusUrl": "http://prom.monitoring.svc:9090"},
            ["--prometheus-url=http://prom.monitoring.svc:9090"],
        ),
    ],
)
def test_values_reach_the_operators_arguments(values: dict[str, Any], args: list[str]) -> None:
    got = container(render(values))["args"]
    for arg in args:
        assert arg in got
    assert ("--standalone" in got) == ("--peering=" not in " ".join(got))


def test_probes_follow_the_health_port() -> None:
    c = container(render({"healthPort": 8181}))
    assert {p["name"]: p["containerPort"] for p in c["ports"]}["health"] == 8181


def test_image_digest_and_tag() -> None:
    assert container(render({"image": {"tag": "0.2.0"}}))["image"].endswith(":0.2.0")
    digest = "sha256:" + "a" * 64
    assert (
        container(render({"image": {"digest": digest}}))["image"]
        == f"ghcr.io/llmops-io/llmops-operator@{digest}"
    )


def test_replicas_turn_peering_and_rolling_updates_on() -> None:
    objs = render({"replicaCount": 2})
    dep = only(objs, "Deployment")
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_peering_object_is_a_hook_until_its_api_is_served() -> None:
    # First install: the CRD arrives with the release, so the object must wait for it.
    first = only(render({"replicaCount": 2}), "ClusterKopfPeering")
    annotations = first["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert annotations["meta.helm.sh/release-name"] == RELEASE  # so a later upgrade adopts it
    assert annotations["meta.helm.sh/release-namespace"] == NAMESPACE
    assert first["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    # Later: an ordinary resource of the release.
    later = only(
        render({"replicaCount": 2}, api_versions=("kopf.dev/v1/ClusterKopfPeering",)), "ClusterKopfPeering"
    )
    assert "annotations" not in later["metadata"]
    assert later["metadata"]["name"] == "llmops-operator"


def test_namespaced_peering_objects_live_in_each_watched_namespace() -> None:
    objs = render({"peering": {"enabled": True}, "watchNamespaces": ["team-a", "team-b"]})
    peerings = [o for o in objs if o["kind"] == "KopfPeering"]
    assert sorted(o["metadata"]["namespace"] for o in peerings) == ["team-a", "team-b"]
    assert not [o for o in objs if o["kind"] == "ClusterKopfPeering"]


def test_no_peering_objects_without_peering() -> None:
    assert not [o for o in render() if o["kind"] in ("KopfPeering", "ClusterKopfPeering")]


def test_metrics_service_and_service_monitor() -> None:
    objs = render({"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}})
    svc = only(objs, "Service")
    dep = only(objs, "Deployment")
    assert svc["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    sm = only(objs, "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    assert not [o for o in render() if o["kind"] == "ServiceMonitor"]
    assert not [
        o for o in render({"metrics": {"enabled": False}}) if o["kind"] in ("Service", "ServiceMonitor")
    ]


def test_helm_test_hook_checks_the_crd_and_the_rollout() -> None:
    objs = render({"test": {"image": {"repository": "example.com/kubectl", "tag": "v9"}}}, include_tests=True)
    hooks = [o for o in objs if (o["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"]
    job = only(hooks, "Job")
    pod = job["spec"]["template"]["spec"]
    assert [c["image"] for c in pod["initContainers"] + pod["containers"]] == ["example.com/kubectl:v9"] * 2
    assert pod["initContainers"][0]["args"][:2] == ["wait", "--for=condition=Established"]
    assert pod["initContainers"][0]["args"][-1] == "customresourcedefinition/llmdeployments.llmops.io"
    assert pod["containers"][0]["args"][:2] == ["rollout", "status"]
    assert pod["containers"][0]["args"][-1] == f"deployment/{RELEASE}"
    # Its pod must not be selected by the operator's Service or Deployment.
    svc = only(objs, "Service")
    assert not svc["spec"]["selector"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    # Its own, read-only RBAC, created before the Job.
    sa = pod["serviceAccountName"]
    assert {o["kind"] for o in hooks} == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Job",
    }
    for o in hooks:
        if o["kind"] in ("ClusterRole", "Role"):
            assert all(set(r["verbs"]) <= {"get", "list", "watch"} for r in o["rules"])
        if o["kind"] != "Job":
            assert int(o["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0
    assert only(hooks, "ServiceAccount")["metadata"]["name"] == sa
    # Not part of the static manifests.
    assert not [o for o in render() if o["kind"] == "Job"]


def test_every_object_carries_the_standard_labels_and_namespace() -> None:
    for obj in render(
        {"replicaCount": 2, "metrics": {"serviceMonitor": {"enabled": True}}}, include_tests=True
    ):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "llmops"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        cluster_scoped = obj["kind"] in (
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterKopfPeering",
        )
        assert ("namespace" in obj["metadata"]) != cluster_scoped, f"{obj['kind']} {obj['metadata']['name']}"


def test_chart_app_version_is_the_operator_image_tag() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert f"{values['image']['repository']}:{chart['appVersion']}" == OPERATOR_IMAGE
