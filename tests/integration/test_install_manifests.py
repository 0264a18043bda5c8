"""`kubectl apply -k manifests/base` and `kubectl apply -f manifests/install.yaml` on the local
cluster.

Both are applied through a throwaway kustomization that moves them into the test's namespace
and suffixes the names of their cluster-scoped RBAC, so they cannot collide with a Helm
release or another test in the shared cluster; the CRD itself is the shared one (applied
server-side with the same content). The base is applied for real and must come up; then
`kubectl diff` of install.yaml against what the base created must find nothing, so the two
install paths are the same objects.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from llmops_dev.cluster import Cluster
from testkit import create_namespace, delete_namespace, get_json, unique, wait_for

REPO = Path(__file__).resolve().parents[2]


def _kustomization(tmp: Path, resource: str, namespace: str, suffix: str) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    body = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [resource],
        "namespace": namespace,
        "nameSuffix": suffix,  # kustomize leaves CRD and Namespace names alone
    }
    # As JSON (YAML too): PyYAML leaves a suffix such as "-12e456" unquoted, which kubectl reads
    # as a number ("cannot unmarshal number into ... nameSuffix"), one run in a few thousand.
    (tmp / "kustomization.yaml").write_text(json.dumps(body))
    return tmp


@pytest.fixture
def suffix(cluster: Cluster) -> Iterator[str]:
    value = "-" + unique("t").split("-")[1]
    yield value
    for kind in ("clusterrolebinding", "clusterrole"):
        cluster.kubectl("delete", kind, f"llmops-operator{value}", "--ignore-not-found", check=False)


def test_kubectl_apply_base_then_install_yaml_agrees(
    cluster: Cluster, namespace: str, suffix: str, tmp_path: Path
) -> None:
    base_rel = os.path.relpath(REPO / "manifests" / "base", tmp_path / "base")
    base = _kustomization(tmp_path / "base", base_rel, namespace, suffix)
    res = cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(base))
    for created in (
        "customresourcedefinition.apiextensions.k8s.io/llmdeployments.llmops.io",
        "deployment.apps/llmops-operator",
    ):
        assert created in res.stdout, res.stdout

    # The Namespace object of the base (renamed to the test's) enforces the restricted Pod
    # Security Standard, so a Ready pod proves the operator's pod meets it.
    labels = get_json(cluster, "namespace", namespace)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    name = f"llmops-operator{suffix}"
    wait_for(
        "the operator Deployment to become available",
        lambda: get_json(cluster, "deployment", name, "-n", namespace)
        .get("status", {})
        .get("availableReplicas")
        == 1,
    )
    binding = get_json(cluster, "clusterrolebinding", name)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]

    install_dir = tmp_path / "install"
    install_dir.mkdir()
    shutil.copy(REPO / "manifests" / "install.yaml", install_dir / "install.yaml")
    install = _kustomization(install_dir, "install.yaml", namespace, suffix)
    dry = cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-k", str(install)
    )
    assert "(server dry run)" in dry.stdout
    diff = cluster.kubectl("diff", "--server-side", "--force-conflicts", "-k", str(install), check=False)
    assert diff.returncode == 0, (
        f"install.yaml differs from what the base created:\n{diff.stdout}{diff.stderr}"
    )


def test_kubectl_apply_install_yaml_dry_run_as_published(cluster: Cluster) -> None:
    """The file exactly as users get it (namespace llmops-system), validated by the API server."""
    text = (REPO / "manifests" / "install.yaml").read_text()
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert docs[0]["kind"] == "Namespace" and docs[0]["metadata"]["name"] == "llmops-system"
    # A server dry run creates nothing, so the namespaced objects need their namespace to exist.
    created = not get_json(cluster, "namespace", "llmops-system")
    if created:
        create_namespace(cluster, "llmops-system")
    try:
        res = cluster.kubectl(
            "apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-", input=text
        )
    finally:
        if created:
            delete_namespace(cluster, "llmops-system")
    applied = {line.split()[0] for line in res.stdout.splitlines() if line.endswith("(server dry run)")}
    for doc in docs:
        group = doc["apiVersion"].rpartition("/")[0]
        kind = doc["kind"].lower() + (f".{group}" if group else "")
        assert f"{kind}/{doc['metadata']['name']}" in applied, f"{kind}/{doc['metadata']['name']} not applied"
