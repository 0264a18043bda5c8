"""The chart's RBAC, asked of the real API server with `kubectl auth can-i --as` the
operator's ServiceAccount: everything the operator needs, and nothing more. In particular it
cannot read Secrets (a missing Secret reaches it as CreateContainerConfigError in Pod status;
it may only create one, the gateway's signing key),
cannot create, update or delete LLMDeployments (spec belongs to git; `patch` stays, because
kopf patches its finalizer and annotations and RBAC cannot tell a metadata patch from a spec
patch), and cannot write anything cluster-scoped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmops_dev.cluster import Cluster
from testkit import create_namespace, delete_namespace, unique

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "llmops-operator"
OWNED = ("create", "get", "list", "watch", "patch", "update", "delete")


@dataclass(frozen=True)
class Install:
    release: str
    namespace: str
    watched: str  # a namespace the operator watches
    other: str  # a namespace it does not (namespaced mode) or just another one (cluster-wide)

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.release}"


def _install(cluster: Cluster, *values: str, namespaced: bool) -> Iterator[Install]:
    ns, watched, other = unique("llmops-rbac"), unique("llmops-watched"), unique("llmops-other")
    release = unique("llmops-operator-rbac")
    for name in (ns, watched, other):
        create_namespace(cluster, name)
    args = ["--set", f"watchNamespaces={{{watched}}}", "--set", "crds.enabled=false"] if namespaced else []
    cluster.helm(
        "install", release, str(CHART), "--namespace", ns, "--take-ownership", "--wait", "--timeout", "120s",
        *args, *values,
    )  # fmt: skip
    try:
        yield Install(release, ns, watched, other)
    finally:
        cluster.helm("uninstall", release, "--namespace", ns, "--ignore-not-found", "--wait", check=False)
        for name in (ns, watched, other):
            delete_namespace(cluster, name)


@pytest.fixture(scope="module")
def cluster_wide(cluster: Cluster) -> Iterator[Install]:
    yield from _install(cluster, "--set", "replicaCount=2", namespaced=False)


@pytest.fixture(scope="module")
def namespaced(cluster: Cluster) -> Iterator[Install]:
    yield from _install(cluster, namespaced=True)


def can_i(
    cluster: Cluster, who: Install, verb: str, resource: str, namespace: str | None, sub: str = ""
) -> bool:
    """`kubectl auth can-i --as` the ServiceAccount.

    For a resource the cluster does not serve (the Prometheus Operator and Gateway API CRDs
    are not installed in the test cluster), kubectl cannot split "podmonitors.monitoring.
    coreos.com" into group and resource and asks about a resource of that whole name; then the
    same question goes to the API behind can-i, a SubjectAccessReview, with the
    ServiceAccount's user and groups spelled out.
    """
    args = ["auth", "can-i", verb, resource, f"--as={who.user}"]
    args += ["--namespace", namespace] if namespace else []
    args += [f"--subresource={sub}"] if sub else []
    res = cluster.kubectl(*args, check=False)
    assert res.stdout.strip() in ("yes", "no"), res.stdout + res.stderr
    if "doesn't have a resource type" not in res.stderr:
        return res.stdout.strip() == "yes"
    plural, _, group = resource.partition(".")
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": who.user,
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{who.namespace}",
                "system:authenticated",
            ],
            "resourceAttributes": {
                "verb": verb,
                "group": group,
                "resource": plural,
                "subresource": sub,
                "namespace": namespace or "",
            },
        },
    }
    out = cluster.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review))
    return bool(json.loads(out.stdout)["status"].get("allowed"))


# (verb, resource, subresource) the operator needs in each namespace it watches.
NEEDED = [
    *[(v, "llmdeployments.llmops.io", "") for v in ("get", "list", "watch")],
    *[(v, "llmdeployments.llmops.io", "status") for v in ("get", "patch", "update")],
    *[
        (v, r, "")
        for r in (
            "deployments.apps",
            "services",
            "persistentvolumeclaims",
            "jobs.batch",
            "cronjobs.batch",
            "poddisruptionbudgets.policy",
            "networkpolicies.networking.k8s.io",
            "podmonitors.monitoring.coreos.com",
            "prometheusrules.monitoring.coreos.com",
            "horizontalpodautoscalers.autoscaling",
            "scaledobjects.keda.sh",
        )
        for v in OWNED
    ],
    *[(v, "httproutes.gateway.networking.k8s.io", "") for v in ("get", "list", "watch", "patch")],
    *[(v, r, "") for r in ("configmaps", "pods") for v in ("get", "list", "watch")],
    ("patch", "pods", "status"),
    ("create", "secrets", ""),  # the gateway's signing key, created once, never changed
    ("get", "secrets", ""),  # read by name for its capture token only (spec.drift.prompts)
    *[(v, r, "") for r in ("events", "events.events.k8s.io") for v in ("create", "patch")],
    ("list", "events", ""),  # the FailedCreate Events of a Job that has made no pod
]
# Cluster-scoped reads: CRD detection (Prometheus Operator, Gateway API), kopf's namespaces, GPU nodes.
NEEDED_CLUSTER = [
    (v, r)
    for r in ("customresourcedefinitions.apiextensions.k8s.io", "namespaces", "nodes")
    for v in ("get", "list", "watch")
]
FORBIDDEN = [
    *[(v, "secrets", "") for v in ("list", "watch", "update", "patch", "delete")],
    *[
        (v, "llmdeployments.llmops.io", "")
        for v in ("create", "update", "patch", "delete", "deletecollection")
    ],
    ("create", "pods", ""),
    ("delete", "pods", ""),
    ("patch", "pods", ""),
    ("update", "pods", "status"),
    ("create", "pods", "exec"),
    ("get", "pods", "log"),
    ("create", "serviceaccounts", "token"),
    ("create", "configmaps", ""),
    ("update", "configmaps", ""),
    ("create", "httproutes.gateway.networking.k8s.io", ""),
    ("delete", "httproutes.gateway.networking.k8s.io", ""),
    ("create", "roles.rbac.authorization.k8s.io", ""),
    ("create", "rolebindings.rbac.authorization.k8s.io", ""),
    ("patch", "deployments.apps", "scale"),
]
FORBIDDEN_CLUSTER = [
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("delete", "nodes"),
    ("patch", "nodes"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("update", "customresourcedefinitions.apiextensions.k8s.io"),
    ("delete", "namespaces"),
    ("create", "namespaces"),
    ("impersonate", "users"),
    ("create", "certificatesigningrequests.certificates.k8s.io"),
]


def _ids(cases: list[tuple[str, ...]]) -> list[str]:
    return [" ".join(x for x in c if x) for c in cases]


@pytest.mark.parametrize(("verb", "resource", "sub"), NEEDED, ids=_ids(NEEDED))
def test_cluster_wide_operator_can_do_what_it_needs(
    cluster: Cluster, cluster_wide: Install, verb: str, resource: str, sub: str
) -> None:
    assert can_i(cluster, cluster_wide, verb, resource, cluster_wide.other, sub)


@pytest.mark.parametrize(("verb", "resource", "sub"), FORBIDDEN, ids=_ids(FORBIDDEN))
def test_cluster_wide_operator_cannot_do_more(
    cluster: Cluster, cluster_wide: Install, verb: str, resource: str, sub: str
) -> None:
    for ns in (cluster_wide.other, cluster_wide.namespace):
        assert not can_i(cluster, cluster_wide, verb, resource, ns, sub), f"{verb} {resource} {sub} in {ns}"


@pytest.mark.parametrize(("verb", "resource"), NEEDED_CLUSTER, ids=_ids(NEEDED_CLUSTER))
def test_cluster_scoped_reads(
    cluster: Cluster, cluster_wide: Install, namespaced: Install, verb: str, resource: str
) -> None:
    assert can_i(cluster, cluster_wide, verb, resource, None)
    assert can_i(cluster, namespaced, verb, resource, None)


@pytest.mark.parametrize(("verb", "resource"), FORBIDDEN_CLUSTER, ids=_ids(FORBIDDEN_CLUSTER))
def test_no_cluster_scoped_writes(
    cluster: Cluster, cluster_wide: Install, namespaced: Install, verb: str, resource: str
) -> None:
    assert not can_i(cluster, cluster_wide, verb, resource, None)
    assert not can_i(cluster, namespaced, verb, resource, None)


def test_peering_rights_come_with_peering(
    cluster: Cluster, cluster_wide: Install, namespaced: Install
) -> None:
    for verb in ("get", "list", "watch", "patch"):
        assert can_i(cluster, cluster_wide, verb, "clusterkopfpeerings.kopf.dev", None)
        assert not can_i(cluster, namespaced, verb, "clusterkopfpeerings.kopf.dev", None)
    assert not can_i(cluster, cluster_wide, "create", "clusterkopfpeerings.kopf.dev", None)
    assert not can_i(cluster, cluster_wide, "delete", "clusterkopfpeerings.kopf.dev", None)


@pytest.mark.parametrize(("verb", "resource", "sub"), NEEDED, ids=_ids(NEEDED))
def test_namespaced_operator_acts_only_where_it_watches(
    cluster: Cluster, namespaced: Install, verb: str, resource: str, sub: str
) -> None:
    assert can_i(cluster, namespaced, verb, resource, namespaced.watched, sub)
    assert not can_i(cluster, namespaced, verb, resource, namespaced.other, sub)


def test_namespaced_operator_cannot_list_across_namespaces(cluster: Cluster, namespaced: Install) -> None:
    res = cluster.kubectl(
        "auth",
        "can-i",
        "list",
        "llmdeployments.llmops.io",
        "--all-namespaces",
        f"--as={namespaced.user}",
        check=False,
    )
    assert res.stdout.strip() == "no"
