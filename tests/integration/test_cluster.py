"""The local cluster behaves like Kubernetes where it matters to the operator.

Scheduling of GPU pods, Jobs, garbage collection, RBAC, CRD structural schemas and CEL,
Pod Security admission, and version reporting, all against the real components.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from llmops_dev.cluster import Cluster
from llmops_dev.cluster.nodes import GPU_PRODUCT
from testkit import get_json, restricted, unique, wait_for


def _deployment(name: str, gpus: int) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": restricted(
                        {
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "registry.example/app:1.0.0",
                                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                                }
                            ]
                        }
                    ),
                },
            },
        }
    )


def _pods(cluster: Cluster, namespace: str, selector: str) -> list[dict]:
    return get_json(cluster, "pods", "-n", namespace, "-l", selector).get("items", [])


def _ready(pod: dict) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", [])
    )


def test_gpu_pod_is_scheduled_on_a_gpu_node_and_becomes_ready(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_deployment("one-gpu", 1))
    pod = wait_for(
        "a Ready pod", lambda: next((p for p in _pods(cluster, namespace, "app=one-gpu") if _ready(p)), None)
    )
    node = get_json(cluster, "node", pod["spec"]["nodeName"])
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == GPU_PRODUCT
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    assert pod["status"]["phase"] == "Running"


def test_pod_asking_more_gpus_than_any_node_has_stays_unschedulable(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_deployment("nine-gpus", 9))

    def unschedulable() -> dict | None:
        for p in _pods(cluster, namespace, "app=nine-gpus"):
            for c in p.get("status", {}).get("conditions", []):
                if (
                    c["type"] == "PodScheduled"
                    and c["status"] == "False"
                    and c.get("reason") == "Unschedulable"
                ):
                    return c
        return None

    cond = wait_for("PodScheduled=False/Unschedulable", unschedulable)
    assert "nvidia.com/gpu" in cond["message"]
    pod = _pods(cluster, namespace, "app=nine-gpus")[0]
    assert pod["status"]["phase"] == "Pending"
    assert "nodeName" not in pod["spec"]


def test_cpu_only_pod_lands_on_the_cpu_node(cluster: Cluster, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "cpu-only", "labels": {"app": "cpu-only"}},
        "spec": restricted(
            {
                # Keep it off GPU nodes, as a platform team would for CPU workloads.
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {"key": "nvidia.com/gpu.product", "operator": "DoesNotExist"}
                                    ]
                                }
                            ]
                        }
                    }
                },
                "containers": [{"name": "main", "image": "registry.example/app:1.0.0"}],
            }
        ),
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))
    p = wait_for(
        "the pod Ready",
        lambda: next((p for p in _pods(cluster, namespace, "app=cpu-only") if _ready(p)), None),
    )
    assert p["spec"]["nodeName"] == "cpu-node-0"


def test_job_completes(cluster: Cluster, namespace: str) -> None:
    spec = restricted(
        {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "registry.example/app:1.0.0", "command": ["true"]}],
        }
    )
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "hello"},
        "spec": {"template": {"spec": spec}},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(job))
    job = wait_for(
        "Job Complete",
        lambda: (j := get_json(cluster, "job", "hello", "-n", namespace))
        and any(
            c["type"] == "Complete" and c["status"] == "True"
            for c in j.get("status", {}).get("conditions", [])
        )
        and j,
    )
    assert job["status"]["succeeded"] == 1


def test_deleting_an_owner_garbage_collects_its_dependents(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "configmap", "owner", "-n", namespace)
    uid = get_json(cluster, "configmap", "owner", "-n", namespace)["metadata"]["uid"]
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}],
        },
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(child))
    # A Deployment's ReplicaSet and Pods are dependents too: the whole chain goes.
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_deployment("gc", 1))
    wait_for("the gc pod", lambda: _pods(cluster, namespace, "app=gc"))

    cluster.kubectl("delete", "configmap", "owner", "-n", namespace, "--wait=false")
    cluster.kubectl("delete", "deployment", "gc", "-n", namespace, "--wait=false")
    wait_for(
        "child ConfigMap collected", lambda: not get_json(cluster, "configmap", "child", "-n", namespace), 60
    )
    wait_for(
        "ReplicaSets collected",
        lambda: not get_json(cluster, "rs", "-n", namespace, "-l", "app=gc")["items"],
        60,
    )
    wait_for("pods collected", lambda: not _pods(cluster, namespace, "app=gc"), 60)


def test_rbac_is_enforced(cluster: Cluster, namespace: str) -> None:
    sa = f"system:serviceaccount:{namespace}:reader"
    cluster.kubectl("create", "serviceaccount", "reader", "-n", namespace)

    denied = cluster.kubectl("get", "pods", "-n", namespace, f"--as={sa}", check=False)
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr and "cannot list resource" in denied.stderr

    cluster.kubectl("create", "role", "pod-reader", "-n", namespace, "--verb=get,list", "--resource=pods")
    cluster.kubectl(
        "create",
        "rolebinding",
        "reader",
        "-n",
        namespace,
        "--role=pod-reader",
        f"--serviceaccount={namespace}:reader",
    )

    def can(verb: str, resource: str, ns: str = namespace) -> str:
        return cluster.kubectl(
            "auth", "can-i", verb, resource, "-n", ns, f"--as={sa}", check=False
        ).stdout.strip()

    wait_for("the binding to take effect", lambda: can("list", "pods") == "yes")
    assert can("get", "pods") == "yes"
    assert can("delete", "pods") == "no"
    assert can("get", "secrets") == "no"
    assert can("list", "pods", "default") == "no"
    cluster.kubectl("get", "pods", "-n", namespace, f"--as={sa}")


_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.test.llmops.io
spec:
  group: test.llmops.io
  scope: Namespaced
  names: {{plural: {plural}, singular: {singular}, kind: {kind}, listKind: {kind}List}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
{schema}
"""


def _crd(kind: str, schema: str) -> str:
    plural = kind.lower() + "s"
    return _CRD.format(
        plural=plural, singular=kind.lower(), kind=kind, schema=textwrap.indent(schema, " " * 8)
    )


def test_non_structural_crd_is_rejected(cluster: Cluster) -> None:
    # A property without a type is not structural; apiextensions/v1 refuses it.
    schema = "type: object\nproperties:\n  spec:\n    properties:\n      size: {}\n"
    res = cluster.kubectl("apply", "-f", "-", input=_crd(unique("Bad").replace("-", ""), schema), check=False)
    assert res.returncode != 0
    assert "openAPIV3Schema.properties[spec].type: Required value: must not be empty" in res.stderr


def test_cel_rule_violation_is_rejected_with_its_message(cluster: Cluster, namespace: str) -> None:
    kind = "Sized" + unique("x").split("-")[1]
    schema = textwrap.dedent(
        """\
        type: object
        properties:
          spec:
            type: object
            properties:
              min: {type: integer}
              max: {type: integer}
            x-kubernetes-validations:
            - rule: self.min <= self.max
              message: spec.min must not exceed spec.max
        """
    )
    cluster.kubectl("apply", "-f", "-", input=_crd(kind, schema))
    plural = f"{kind.lower()}s.test.llmops.io"
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{plural}", "--timeout=30s")
    try:
        obj = (
            f"apiVersion: test.llmops.io/v1\nkind: {kind}\nmetadata: {{name: x}}\nspec: {{min: 5, max: 1}}\n"
        )
        res = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=obj, check=False)
        assert res.returncode != 0
        assert "spec.min must not exceed spec.max" in res.stderr
        ok = obj.replace("min: 5", "min: 1").replace("max: 1}", "max: 5}")
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=ok)
    finally:
        cluster.kubectl("delete", "crd", plural, "--wait=false", check=False)


def test_privileged_pod_is_refused_in_a_restricted_namespace(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "priv"},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "registry.example/app:1.0.0",
                    "securityContext": {"privileged": True},
                }
            ]
        },
    }
    res = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod), check=False)
    assert res.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in res.stderr
    assert "privileged" in res.stderr


@pytest.mark.parametrize("tool", ["kubectl", "helm"])
def test_client_tools_report_versions(cluster: Cluster, tool: str) -> None:
    if tool == "kubectl":
        out = json.loads(cluster.kubectl("version", "-o", "json").stdout)
        assert out["serverVersion"]["gitVersion"].startswith("v1.36.")
        assert out["clientVersion"]["gitVersion"] == out["serverVersion"]["gitVersion"]
    else:
        out = cluster.helm("version", "--short").stdout
        assert out.startswith("v3.")
