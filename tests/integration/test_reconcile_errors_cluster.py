"""A pass that fails is visible in status, retried with backoff, and harms no other object.

The apiserver itself refuses a child (a ResourceQuota allows no Service in the namespace):
the LLMDeployment says which child and why in Progressing=Unknown/ReconcileError and a
Warning Event, another LLMDeployment gets its children meanwhile (and is served), and lifting
the quota lets the retries through.
"""

from __future__ import annotations

import json

from llmops_dev.cluster import Cluster
from testkit import create_namespace, delete_namespace, get_json, unique, wait_for
from testkit.operator import OperatorProcess, condition, llmd, sample, wait_condition, wait_event

REV = "c" * 40
NO_SERVICES = {
    "apiVersion": "v1",
    "kind": "ResourceQuota",
    "metadata": {"name": "no-services"},
    "spec": {"hard": {"services": "0"}},
}


def test_a_child_refused_by_the_apiserver_is_a_condition_and_others_keep_working(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    blocked = unique("refused")
    create_namespace(cluster, blocked)
    try:
        cluster.kubectl("apply", "-n", blocked, "-f", "-", input=json.dumps(NO_SERVICES))
        cluster.kubectl("apply", "-n", blocked, "-f", "-", input=sample("chat", REV))
        obj = wait_condition(cluster, blocked, "chat", "Progressing", "Unknown", "ReconcileError", timeout=90)
        message = condition(obj, "Progressing")["message"]
        assert "apply Service chat" in message and "exceeded quota" in message, message
        assert "retried with a growing backoff" in message

        wait_event(cluster, blocked, "chat", "ReconcileError", "Warning")

        # Another LLMDeployment gets its children and its status while this one keeps failing.
        # (Waiting here for it to be served as well took 20 s on a busy cluster, by which time the
        # retries were 30 s apart: the quota is lifted as soon as the operator has shown it works.)
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=sample("fine", REV))
        wait_for(
            "the other LLMDeployment's Service and status",
            lambda: get_json(cluster, "service", "fine", "-n", namespace)
            and llmd(cluster, namespace, "fine").get("status", {}).get("phase"),
            timeout=60,
        )
        still = wait_condition(
            cluster, blocked, "chat", "Progressing", "Unknown", "ReconcileError", timeout=5
        )
        assert "exceeded quota" in condition(still, "Progressing")["message"]

        # The retries go on (bounded backoff): once the quota is lifted the object is served.
        cluster.kubectl("delete", "resourcequota", "no-services", "-n", blocked)
        served = wait_condition(cluster, blocked, "chat", "Available", "True", timeout=150)
        assert condition(served, "Progressing")["reason"] != "ReconcileError"
        wait_condition(cluster, namespace, "fine", "Available", "True", timeout=120)
    finally:
        delete_namespace(cluster, blocked)


def test_a_spec_the_crd_admits_but_whose_child_the_apiserver_refuses_names_the_spec_field(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    """spec.placement.affinity is kept verbatim (a core/v1 Affinity may grow), so the CRD admits
    an affinity that the Deployment's validation refuses: the condition says ChildRefused and names
    the spec field to fix, and fixing it serves the model."""
    body = json.loads(sample("aff", REV))
    body["spec"]["placement"] = {
        "affinity": {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}
        }
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    obj = wait_condition(cluster, namespace, "aff", "Progressing", "Unknown", "ChildRefused", timeout=90)
    message = condition(obj, "Progressing")["message"]
    assert "nodeSelectorTerms" in message and "fix spec.placement.affinity" in message, message
    del body["spec"]["placement"]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    served = wait_condition(cluster, namespace, "aff", "Available", "True", timeout=150)
    assert condition(served, "Progressing")["reason"] != "ChildRefused"
