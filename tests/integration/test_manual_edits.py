"""Manual edits of children are taken back on the next pass, and a quiet pass still writes nothing.

Another field manager (a person with kubectl, another controller) changes fields the operator
applied: the replicas and an env var of the stable Deployment, the port of the Service. The
apiserver moves those fields to the other manager; the next pass sees that ``llmops`` no longer
owns them and re-applies the child, which takes them back.

(Renumbering the Service port itself is not covered: the port is the key of its list item, so
the edit makes a new item owned by the other manager, which server-side apply never removes;
the re-apply is then refused, "Duplicate value", and reported as a ReconcileError.)
"""

from __future__ import annotations

import json
from typing import Any

from llmops_dev.cluster import Cluster
from testkit import get_json, wait_for
from testkit.operator import OperatorProcess, deployment_settled, sample, wait_condition

REV = "d" * 40


def _env(dep: dict[str, Any]) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def _state(cluster: Cluster, namespace: str) -> tuple[int, str | None, list[tuple[int, Any]]]:
    dep = get_json(cluster, "deployment", "edited-stable", "-n", namespace)
    svc = get_json(cluster, "service", "edited", "-n", namespace)
    ports = [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]]
    return dep["spec"]["replicas"], _env(dep)["MODEL_ID"], ports


def _patch(cluster: Cluster, namespace: str, kind: str, name: str, *args: str) -> dict[str, Any]:
    """A patch by the field manager "intruder"; the object as it is right after."""
    out = cluster.kubectl(
        "patch", kind, name, "-n", namespace, "--field-manager=intruder", "-o", "json", *args
    )
    return dict(json.loads(out.stdout))


def test_edits_by_another_manager_are_reverted_and_a_quiet_pass_writes_nothing(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    from llmops.kube import Kube, load_client
    from llmops.reconciler import Reconciler

    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=sample("edited", REV))
    wait_condition(cluster, namespace, "edited", "Available", "True", timeout=120)
    desired = _state(cluster, namespace)
    assert desired == (1, "sim-org/tiny-chat", [(80, "http")])
    kube = Kube(load_client(str(cluster.kubeconfig)))
    reconciler = Reconciler(kube)

    # The Service's target port, changed by another manager, is back after the next pass (run
    # here as the periodic resync would run it: no watch event follows a Service edit).
    patch = [{"op": "replace", "path": "/spec/ports/0/targetPort", "value": 9000}]
    edited = _patch(cluster, namespace, "service", "edited", "--type=json", "-p", json.dumps(patch))
    assert edited["spec"]["ports"][0]["targetPort"] == 9000
    reconciler.reconcile(namespace, "edited")
    assert _state(cluster, namespace) == desired

    # Replicas and an env var of the Deployment: its watch event brings the operator's next pass.
    dep = get_json(cluster, "deployment", "edited-stable", "-n", namespace)
    container = dep["spec"]["template"]["spec"]["containers"][0]["name"]
    env = [{"name": "MODEL_ID", "value": "x/y"}]
    tamper = {
        "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": container, "env": env}]}}}
    }
    edited = _patch(cluster, namespace, "deployment", "edited-stable", "-p", json.dumps(tamper))
    assert (edited["spec"]["replicas"], _env(edited)["MODEL_ID"]) == (3, "x/y")
    wait_for("the edits reverted", lambda: _state(cluster, namespace) == desired, 60, 0.25)
    for kind, name in (("deployment", "edited-stable"), ("service", "edited")):
        obj = get_json(cluster, kind, name, "-n", namespace, "--show-managed-fields")
        taken = json.dumps(
            [m["fieldsV1"] for m in obj["metadata"]["managedFields"] if m["manager"] == "intruder"]
        )
        assert "f:targetPort" not in taken and "f:replicas" not in taken and "f:value" not in taken, taken

    # The revert is itself a change the Deployment controller acts on (the edited template briefly
    # had a ReplicaSet of its own): the status moves until the Deployment has settled.
    wait_for(
        "the Deployment settled", lambda: deployment_settled(cluster, namespace, "edited-stable"), 60, 0.25
    )
    statuses: list[Any] = []
    patch_status = kube.patch_status

    def recorded(ns: str, name: str, status: Any) -> None:
        statuses.append(status)
        patch_status(ns, name, status)

    kube.patch_status = recorded  # type: ignore[method-assign]

    def quiet() -> bool:
        kube.writes.clear()
        statuses.clear()
        reconciler.reconcile(namespace, "edited")
        return not kube.writes

    # Once the settled Deployment is in the status, a pass has nothing to write, and stays so.
    wait_for("a pass without writes", quiet, 90, 0.5)
    for _ in range(3):
        reconciler.reconcile(namespace, "edited")
        assert (kube.writes, statuses) == ([], [])
