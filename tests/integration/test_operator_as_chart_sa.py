"""The chart's RBAC is sufficient: the operator, running with the chart's ServiceAccount token,
takes an LLMDeployment through the main scenario (serve, then roll to a new revision).

The chart is installed with replicaCount=0 (ServiceAccount and RBAC only); the operator runs on
the host with a kubeconfig that holds a token of that ServiceAccount, so every request it makes,
kopf's watches included, is authorised as the chart's RBAC says. The session's admin operator is
stopped meanwhile, so that only the ServiceAccount's operator acts.

The same token is refused any write to an LLMDeployment except its status: spec belongs to git.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from llmops_dev.cluster import Cluster
from testkit import create_namespace, delete_namespace, unique, wait_for
from testkit.operator import OperatorProcess, install_crd, llmd, sample, wait_condition

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "llmops-operator"
REV_A, REV_B = "1" * 40, "2" * 40


@pytest.fixture
def chart_sa_kubeconfig(cluster: Cluster, tmp_path: Path) -> Iterator[Path]:
    ns, release = unique("llmops-sa"), "llmops-sa"
    create_namespace(cluster, ns)
    cluster.helm(
        "install", release, str(CHART), "--namespace", ns, "--take-ownership",
        "--set", "replicaCount=0", "--set", f"fullnameOverride={release}", "--wait", "--timeout", "120s",
    )  # fmt: skip
    try:
        token = cluster.kubectl("create", "token", release, "-n", ns, "--duration=1h").stdout.strip()
        admin = yaml.safe_load(cluster.kubeconfig.read_text())
        cfg = {
            **admin,
            "users": [{"name": "chart-sa", "user": {"token": token}}],
            "contexts": [
                {"name": "chart-sa", "context": {"cluster": admin["clusters"][0]["name"], "user": "chart-sa"}}
            ],
            "current-context": "chart-sa",
        }
        path = tmp_path / "chart-sa.kubeconfig"
        path.write_text(yaml.safe_dump(cfg))
        yield path
    finally:
        cluster.helm("uninstall", release, "--namespace", ns, "--wait", check=False)
        delete_namespace(cluster, ns)


def test_operator_with_the_charts_rbac_runs_the_main_scenario(
    cluster: Cluster, namespace: str, operator: OperatorProcess, chart_sa_kubeconfig: Path, tmp_path: Path
) -> None:
    as_sa = Cluster(kubeconfig=chart_sa_kubeconfig, bin_dir=cluster.bin_dir, external=True)
    operator.kill()
    restricted = OperatorProcess(as_sa, tmp_path)
    try:
        restricted.start()
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=sample("rbac", REV_A))
        wait_condition(cluster, namespace, "rbac", "Available", "True", timeout=120)
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=sample("rbac", REV_B))
        wait_for(
            "revision B serving",
            lambda: (llmd(cluster, namespace, "rbac").get("status") or {}).get("servingRevision") == REV_B,
            120,
        )
        # RBAC denials read 'is forbidden: User "system:serviceaccount:..." cannot ...' (other 403s,
        # such as writes into a namespace being deleted by an earlier test, are not about RBAC).
        denials = [
            line
            for line in restricted.log.read_text(errors="replace").splitlines()
            if "cannot" in line and 'User "system:serviceaccount' in line
        ]
        assert not denials, "\n".join(denials[:5])
        events = cluster.kubectl("get", "events", "-n", namespace, "-o", "name").stdout
        assert "rbac." in events  # it could post Events too
    finally:
        restricted.kill()
        operator.start()


def test_the_charts_service_account_may_write_status_but_never_spec(
    cluster: Cluster, namespace: str, chart_sa_kubeconfig: Path
) -> None:
    install_crd(cluster)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=sample("gitops", REV_A))
    as_sa = Cluster(kubeconfig=chart_sa_kubeconfig, bin_dir=cluster.bin_dir, external=True)
    spec_patch = json.dumps({"spec": {"replicas": 3}})
    denied = as_sa.kubectl(
        "patch", "llmd", "gitops", "-n", namespace, "--type=merge", "-p", spec_patch, check=False
    )
    assert denied.returncode != 0 and "forbidden" in denied.stderr, denied.stderr
    label_patch = json.dumps({"metadata": {"labels": {"x": "y"}}})
    denied = as_sa.kubectl(
        "patch", "llmd", "gitops", "-n", namespace, "--type=merge", "-p", label_patch, check=False
    )
    assert denied.returncode != 0 and "forbidden" in denied.stderr, denied.stderr
    status_patch = json.dumps({"status": {"phase": "Pending"}})
    as_sa.kubectl(
        "patch", "llmd", "gitops", "-n", namespace, "--subresource=status", "--type=merge", "-p", status_patch
    )
    assert llmd(cluster, namespace, "gitops")["spec"]["replicas"] == 1
