"""``testkit.get_json`` answers the polled reads with one GET from the test process
(``testkit.direct``) instead of a kubectl process: its answers must be what kubectl prints, or a
test polling it would wait for something kubectl would never have shown, or pass on something
it would not. Compared on objects nothing else changes between the two reads. Also here: the
tests' namespaces, created and deleted by one request each; a kubectl call that fails says why.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llmops_dev.cluster import Cluster, ToolFailed
from llmops_dev.processes import free_port
from testkit import RESTRICTED, create_namespace, delete_namespace, direct, get_json, unique

_CONFIGMAPS = [
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "labels": {"set": s}}, "data": {"k": n}}
    for n, s in (("one", "a"), ("two", "a"), ("three", "b"))
]


def _kubectl(cluster: Cluster, *args: str) -> dict[str, object]:
    res = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 else {}


@pytest.fixture
def configmaps(cluster: Cluster, namespace: str) -> str:
    body = {"apiVersion": "v1", "kind": "List", "items": _CONFIGMAPS}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    return namespace


@pytest.mark.parametrize(
    "shape",
    [
        ("configmap", "one"),
        ("cm", "two", "--show-managed-fields"),
        ("configmaps",),
        ("configmap", "-l", "set=a"),
        ("configmap", "--field-selector", "metadata.name=three"),
        ("configmap", "absent"),
        ("deployments",),
        ("llmd",),
        ("deployments,configmaps,secrets", "-l", "set=a"),
        ("configmaps,poddisruptionbudgets,networkpolicies",),
    ],
)
def test_a_direct_read_is_what_kubectl_prints(
    cluster: Cluster, configmaps: str, shape: tuple[str, ...]
) -> None:
    args = (*shape, "-n", configmaps)
    answer = direct.read(cluster.kubeconfig, args)
    assert answer is not None, f"{args} is a shape direct.read answers"
    assert answer == _kubectl(cluster, *args)
    assert get_json(cluster, *args) == answer


def test_cluster_scoped_reads_and_a_namespace_that_is_not_there(cluster: Cluster, configmaps: str) -> None:
    for args in (
        ("namespace", configmaps),
        ("ns", "no-such-namespace"),
        ("configmaps", "-n", "no-such-namespace"),
    ):
        answer = direct.read(cluster.kubeconfig, args)
        assert answer is not None
        assert answer == _kubectl(cluster, *args), args
    assert direct.read(cluster.kubeconfig, ("namespace", "no-such-namespace")) == {}
    assert direct.read(cluster.kubeconfig, ("configmaps", "-n", "no-such-namespace"))["items"] == []  # type: ignore[index]


def test_shapes_it_does_not_know_are_left_to_kubectl(cluster: Cluster, configmaps: str) -> None:
    for args in (
        ("configmap", "one"),  # no namespace: kubectl takes the kubeconfig's
        ("configmaps,serviceaccounts", "-n", configmaps),
        ("configmaps,namespaces", "-n", configmaps),
        ("configmap", "-A"),
        ("httproute", "-n", configmaps),
        ("configmap", "one", "-l", "set=a", "-n", configmaps),
    ):
        assert direct.read(cluster.kubeconfig, args) is None, args
    listed = get_json(cluster, "configmaps,serviceaccounts", "-n", configmaps)["items"]
    names = {(i["kind"], i["metadata"]["name"]) for i in listed}
    assert {("ConfigMap", "one"), ("ConfigMap", "three"), ("ServiceAccount", "default")} <= names, names


def test_a_failed_kubectl_says_what_kubectl_said(cluster: Cluster, namespace: str) -> None:
    """A test failing on a kubectl call shows kubectl's own words, not only its exit status (a
    clean-clone run on 2026-12-02 failed on `kubectl apply -k` with nothing more to go on)."""
    with pytest.raises(ToolFailed) as failed:
        cluster.kubectl("get", "configmap", "no-such-configmap", "-n", namespace)
    assert failed.value.returncode == 1
    assert 'configmaps "no-such-configmap" not found' in str(failed.value)


def test_an_apiserver_that_does_not_answer_reads_as_nothing(cluster: Cluster, tmp_path: Path) -> None:
    """As kubectl fails, so ``get_json`` says {} (a chaos test polls through apiserver restarts)."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    away = tmp_path / "kubeconfig"
    away.write_text(yaml.safe_dump(config))
    assert direct.read(away, ("configmaps", "-n", "default")) == {}
    assert direct.read(away, ("namespace", "default")) == {}
    assert get_json(Cluster.for_kubeconfig(away), "namespace", "default") == {}


def test_a_namespace_is_created_and_deleted_as_kubectl_did(cluster: Cluster) -> None:
    """Every test's namespace: created enforcing the restricted level, refused with the apiserver's
    reason when it exists, deleted without waiting, and deleting one already gone is no error."""
    name = unique("direct-ns")
    create_namespace(cluster, name)
    try:
        created = get_json(cluster, "namespace", name)
        assert created["metadata"]["labels"] | RESTRICTED == created["metadata"]["labels"]
        assert created["status"]["phase"] == "Active"
        with pytest.raises(RuntimeError, match=f'HTTP 409 AlreadyExists: namespaces "{name}" already exists'):
            create_namespace(cluster, name)
    finally:
        delete_namespace(cluster, name)
    gone = get_json(cluster, "namespace", name)
    assert gone == {} or gone["status"]["phase"] == "Terminating", gone
    delete_namespace(cluster, name)
    delete_namespace(cluster, unique("never-made"))
