"""`helm install` / `helm test` / `helm upgrade` / `helm uninstall` of the chart on the local
cluster, and the failures a user meets: bad values, a second install in one namespace.

The operator pods "run" on kwok nodes (kwok marks them Running and Ready without starting a
process) and the `helm test` Job "completes" the same way, so these tests prove what the API
server and Helm do with the chart, not the operator's behaviour. The LLMDeployment CRD is
cluster-scoped and shared by the whole test session; it is kept (resource policy) by every
release, so each install passes --take-ownership to adopt it from whoever installed it last.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from llmops_dev.cluster import Cluster
from testkit import get_json, unique, wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "llmops-operator"
CRD = "llmdeployments.llmops.io"
SAMPLE = REPO / "manifests" / "samples" / "llama-3.1-8b.yaml"


def install(
    cluster: Cluster, release: str, namespace: str, *args: str, chart: Path = CHART, check: bool = True
):
    return cluster.helm(
        "install", release, str(chart), "--namespace", namespace,
        "--take-ownership", "--wait", "--timeout", "120s", *args, check=check,
    )  # fmt: skip


def upgrade(cluster: Cluster, release: str, namespace: str, *args: str, chart: Path = CHART):
    return cluster.helm(
        "upgrade", release, str(chart), "--namespace", namespace, "--wait", "--timeout", "120s", *args
    )


@pytest.fixture
def releases(cluster: Cluster) -> Iterator[list[tuple[str, str]]]:
    """(release, namespace) pairs to uninstall after the test, whatever happened."""
    made: list[tuple[str, str]] = []
    yield made
    for release, namespace in made:
        cluster.helm(
            "uninstall", release, "--namespace", namespace, "--ignore-not-found", "--wait", check=False
        )


def _established(cluster: Cluster, name: str) -> bool:
    conditions = get_json(cluster, "crd", name).get("status", {}).get("conditions", [])
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def test_helm_lint_strict(cluster: Cluster) -> None:
    res = cluster.helm("lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in res.stdout


def test_install_test_upgrade_uninstall(
    cluster: Cluster, namespace: str, releases: list[tuple[str, str]], tmp_path: Path
) -> None:
    release = unique("llmops-operator-life")
    releases.append((release, namespace))
    # The operator pod must be admitted under the restricted Pod Security Standard.
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")

    notes = install(cluster, release, namespace).stdout
    assert f"helm test {release} -n {namespace}" in notes
    wait_for("the CRD to be Established", lambda: _established(cluster, CRD))
    dep = get_json(cluster, "deployment", release, "-n", namespace)
    assert dep["status"]["readyReplicas"] == 1  # helm --wait: the pod was admitted and is Ready
    assert dep["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["run", "--all-namespaces"]

    # helm test: the Job waits for the CRD and the rollout (kwok completes it; see the docstring).
    res = cluster.helm("test", release, "--namespace", namespace, "--timeout", "120s")
    assert "Phase:          Succeeded" in res.stdout

    # A user's model, created before the upgrade and the uninstall.
    cluster.kubectl("apply", "--namespace", namespace, "-f", str(SAMPLE))
    model = yaml.safe_load(SAMPLE.read_text())["metadata"]["name"]

    # A new chart version whose CRD changed: `helm upgrade` applies it (CRDs are in templates/).
    changed = tmp_path / "llmops-operator"
    shutil.copytree(CHART, changed)
    template = next((changed / "templates" / "crds").glob("llmops.io_*.yaml"))
    text = template.read_text()
    assert "description: Where it is in its life" in text
    template.write_text(text.replace("description: Where it is in its life", "description: Lifecycle phase"))
    chart_yaml = changed / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text().replace("version: 0.1.0", "version: 0.1.1"))
    upgrade(cluster, release, namespace, chart=changed)
    crd = get_json(cluster, "crd", CRD)
    columns = {c["name"]: c for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns["Phase"]["description"] == "Lifecycle phase"
    assert crd["metadata"]["labels"]["helm.sh/chart"] == "llmops-operator-0.1.1"
    assert get_json(cluster, "llmd", model, "-n", namespace), "the upgrade lost the LLMDeployment"

    # Back to this chart (the CRD is shared with the rest of the session).
    upgrade(cluster, release, namespace)
    columns = {
        c["name"]: c for c in get_json(cluster, "crd", CRD)["spec"]["versions"][0]["additionalPrinterColumns"]
    }
    assert columns["Phase"]["description"] == "Where it is in its life"

    res = cluster.helm("uninstall", release, "--namespace", namespace, "--wait")
    assert CRD in res.stdout  # "These resources were kept due to the resource policy"
    assert _established(cluster, CRD)
    assert get_json(cluster, "llmd", model, "-n", namespace), "uninstall deleted the user's LLMDeployment"
    assert not get_json(cluster, "deployment", release, "-n", namespace)
    assert not get_json(cluster, "clusterrole", release)


def test_second_install_in_the_same_namespace_fails_clearly(
    cluster: Cluster, namespace: str, releases: list[tuple[str, str]]
) -> None:
    first, second = unique("llmops-operator-a"), unique("llmops-operator-b")
    releases.extend([(first, namespace), (second, namespace)])
    install(cluster, first, namespace)
    res = install(cluster, second, namespace, check=False)
    assert res.returncode != 0
    assert (
        f'llmops-operator is already installed in namespace "{namespace}" by release "{first}"' in res.stderr
    ), res.stderr
    assert f"helm upgrade {first}" in res.stderr
    # Nothing of the second release reached the cluster.
    assert not get_json(cluster, "clusterrole", second)
    assert get_json(cluster, "deployment", first, "-n", namespace)["status"]["readyReplicas"] == 1


def test_bad_values_are_refused_before_anything_is_installed(
    cluster: Cluster, namespace: str, releases: list[tuple[str, str]]
) -> None:
    release = unique("llmops-operator-bad")
    releases.append((release, namespace))
    for setting, message in [
        ("replicaCount=two", "at '/replicaCount': got string, want integer"),
        ("watchNamespace=a", "at '': additional properties 'watchNamespace' not allowed"),
    ]:
        res = install(cluster, release, namespace, "--set", setting, check=False)
        assert res.returncode != 0
        assert "values don't meet the specifications of the schema(s)" in res.stderr
        assert message in res.stderr
    assert not get_json(cluster, "deployment", release, "-n", namespace)
    listed = json.loads(cluster.helm("list", "--namespace", namespace, "--all", "-o", "json").stdout)
    assert release not in [r["name"] for r in listed]


def test_peering_object_is_created_once_and_adopted_by_the_next_upgrade(
    cluster: Cluster, namespace: str, releases: list[tuple[str, str]]
) -> None:
    release = unique("llmops-operator-ha")
    releases.append((release, namespace))
    install(cluster, release, namespace, "--set", "replicaCount=2")
    for name in ("clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"):
        wait_for(f"{name} Established", lambda name=name: _established(cluster, name))
    peering = get_json(cluster, "clusterkopfpeering", release)
    assert peering, "the post-install hook did not create the peering object"
    dep = get_json(cluster, "deployment", release, "-n", namespace)
    assert dep["status"]["readyReplicas"] == 2
    assert f"--peering={release}" in dep["spec"]["template"]["spec"]["containers"][0]["args"]

    upgrade(cluster, release, namespace, "--set", "replicaCount=2")
    adopted = get_json(cluster, "clusterkopfpeering", release)
    assert adopted["metadata"]["uid"] == peering["metadata"]["uid"], (
        "the upgrade recreated the peering object"
    )
    manifest = cluster.helm("get", "manifest", release, "--namespace", namespace).stdout
    assert "kind: ClusterKopfPeering" in manifest

    cluster.helm("uninstall", release, "--namespace", namespace, "--wait")
    assert not get_json(cluster, "clusterkopfpeering", release)
