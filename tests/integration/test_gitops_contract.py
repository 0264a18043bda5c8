"""The GitOps contract with a user's HTTPRoute (Gateway API traffic mode).

The HTTPRoute is the user's, applied from git (here by the field manager "argocd-controller",
server-side, as Argo CD with ServerSideApply=true) in the shape docs/gitops-argocd.md asks for:
the operator's two backendRefs `<name>-stable` (weight 100) and `<name>-canary` (weight 0).
During a canary the operator then changes only their weights, so the ``ignoreDifferences``
entry of that page (the jq expression selecting those two weights, with the sync option
RespectIgnoreDifferences=true) covers every difference it makes, and nothing else of the
route is ever out of sync.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from llmops_dev.cluster import Cluster
from testkit import get_json, wait_for
from testkit.operator import OperatorProcess, llmd, sample, set_behaviour, wait_condition

A, B = "5" * 40, "6" * 40
ROUTE: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "chat-route", "labels": {"team": "ml"}},
    "spec": {
        "parentRefs": [{"name": "public"}],
        "hostnames": ["chat.example.com"],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [
                    {"name": "gwc-stable", "port": 80, "weight": 100},
                    {"name": "gwc-canary", "port": 80, "weight": 0},
                ],
            },
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/other"}}],
                "backendRefs": [{"name": "x", "port": 80}],
            },
        ],
    },
}
ROLLOUT = {
    "steps": [{"setWeight": 25, "pause": {"duration": "10m"}}],
    "analysis": {"interval": "4s", "metrics": []},
    "traffic": {"mode": "gatewayAPI", "httpRouteRef": {"name": "chat-route"}},
}


@pytest.fixture
def gateway_api(cluster: Cluster) -> None:
    """The Gateway API CRDs, from the sigs.k8s.io/gateway-api Go module (see cluster/build.sh)."""
    for crd in sorted((cluster.bin_dir / "crds").glob("gateway.networking.k8s.io_*.yaml")):
        cluster.kubectl("apply", "--server-side", "-f", str(crd))
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/httproutes.gateway.networking.k8s.io", "--timeout=60s"
    )


OURS = ("gwc-stable", "gwc-canary")


def _ignoring_weights(route: dict[str, Any]) -> dict[str, Any]:
    """What Argo CD compares with the jqPathExpression of docs/gitops-argocd.md,
    ``.spec.rules[].backendRefs[] | select(.name == "gwc-stable" or .name == "gwc-canary") | .weight``:
    the route's labels and spec without the weights of the operator's two backendRefs."""
    out = {"labels": (route.get("metadata") or {}).get("labels"), "spec": copy.deepcopy(route["spec"])}
    for rule in out["spec"]["rules"]:
        for ref in rule.get("backendRefs") or []:
            if ref.get("name") in OURS:
                ref.pop("weight", None)
    return out


def test_the_operator_changes_only_the_backend_refs_of_the_users_route(
    cluster: Cluster, namespace: str, operator: OperatorProcess, gateway_api: None
) -> None:
    set_behaviour(cluster, A)
    set_behaviour(cluster, B)
    cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=argocd-controller",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(ROUTE),
    )
    body = json.loads(sample("gwc", A, rollout=ROLLOUT))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    wait_condition(cluster, namespace, "gwc", "Available", "True", timeout=120)
    body["spec"]["model"]["revision"] = B
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))

    def route() -> dict[str, Any]:
        return get_json(cluster, "httproute", "chat-route", "-n", namespace, "--show-managed-fields")

    def weighted() -> dict[str, Any] | None:
        live = route()
        refs = [(r["name"], r.get("weight")) for r in live["spec"]["rules"][0]["backendRefs"]]
        return live if refs == [("gwc-stable", 75), ("gwc-canary", 25)] else None

    live = wait_for("the canary's weights in the route", weighted, 120, 0.25)
    assert live["spec"]["rules"][1]["backendRefs"] == [
        {"name": "x", "port": 80, "group": "", "kind": "Service", "weight": 1}
    ]
    # Every difference from git is one of the operator's two weights ...
    assert _ignoring_weights(live) == _ignoring_weights(ROUTE | {"spec": _defaulted(ROUTE)}), json.dumps(
        [_ignoring_weights(live), _ignoring_weights(ROUTE | {"spec": _defaulted(ROUTE)})]
    )
    # ... and the operator's writes are recorded under its own field manager.
    managers = {m["manager"]: m for m in live["metadata"]["managedFields"]}
    assert managers["llmops"]["operation"] == "Update"
    assert set(managers["llmops"]["fieldsV1"]) == {"f:spec"} and set(
        managers["llmops"]["fieldsV1"]["f:spec"]
    ) == {"f:rules"}
    assert (llmd(cluster, namespace, "gwc").get("status") or {}).get("phase") == "Canary"


def _defaulted(git: dict[str, Any]) -> dict[str, Any]:
    """Git's spec with the defaults the apiserver adds (Argo CD's diff normalises them away
    too): parentRefs' group and kind; backendRefs' group, kind and weight."""
    spec = copy.deepcopy(git["spec"])
    spec["parentRefs"] = [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", **p} for p in spec["parentRefs"]
    ]
    for rule in spec["rules"]:
        rule["backendRefs"] = [
            {"group": "", "kind": "Service", "weight": 1, **r} for r in rule["backendRefs"]
        ]
    return spec
