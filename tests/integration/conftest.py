"""Fixtures for the integration tier: one local cluster per test session (per worker).

The cluster is started once (a few seconds with warm build caches) and shared; each test
gets its own namespace. ``make test`` runs the tier in two pytest-xdist workers, each with its
own cluster, Prometheus and operator (the tests wait on timers far more than they compute, so two
sessions fill two cores better than one); a test file stays on one worker (its module fixtures).
Set ``LLMOPS_TEST_KUBECONFIG`` to run the same tests against an existing cluster (kind, k3d, a
real one) instead, in one process: nothing is started or stopped then.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from llmops_dev.cluster import Cluster
from llmops_dev.prometheus import Prometheus
from testkit import create_namespace, delete_namespace, unique
from testkit.diagnosis import namespace_report
from testkit.operator import ENGINES, OperatorProcess, install_crd

_HARNESS_TLS_LEAK = "ignore:unclosed <ssl.SSLSocket:ResourceWarning"
"""A TLS socket to the apiserver that this process left for the garbage collector (a kubernetes
client of the harness, cut off by an apiserver restart, say) raises its ResourceWarning in
whichever test the collector happens to run in: a clean-clone run failed a manifests test on
one, at a yaml parse. The operator under test runs in its own process, so in this tier such a
socket is the harness's, never the product's; the unit tier, where product code runs in this
process, keeps ResourceWarning an error."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.filterwarnings(_HARNESS_TLS_LEAK))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report also says what its namespace looked like (testkit.diagnosis): CI
    keeps only the test output, and a timeout alone rarely tells why."""
    report = yield
    funcargs = getattr(item, "funcargs", {})
    namespace, cluster = funcargs.get("namespace"), funcargs.get("cluster")
    if report.failed and report.when == "call" and isinstance(namespace, str) and cluster is not None:
        operator = funcargs.get("operator")
        log = operator.log if isinstance(operator, OperatorProcess) else None
        try:
            report.sections.append(
                ("cluster state at the failure", namespace_report(cluster, namespace, log))
            )
        except Exception as exc:  # the report must never hide the failure it explains
            report.sections.append(("cluster state at the failure", f"unavailable: {exc!r}"))
    return report


def cluster_dir(repo: Path, worker_id: str) -> Path:
    """Where a session's local cluster lives: one per pytest-xdist worker, so that workers share
    nothing (nodes, CRDs, the operator, Prometheus, a restarted apiserver); ``master`` is a run
    without workers."""
    return repo / ".dev" / ("test-cluster" if worker_id == "master" else f"test-cluster-{worker_id}")


@pytest.fixture(scope="session")
def cluster(worker_id: str) -> Iterator[Cluster]:
    external = os.environ.get("LLMOPS_TEST_KUBECONFIG")
    if external:
        if worker_id != "master":
            pytest.fail(
                "LLMOPS_TEST_KUBECONFIG runs the integration tier in one process (-n 0): each worker "
                "starts its own operator, and two would act on one cluster's objects",
                pytrace=False,
            )
        yield Cluster.for_kubeconfig(Path(external))
        return
    repo = Path(os.environ.get("LLMOPS_REPO", Path(__file__).resolve().parents[2]))
    c = Cluster.start(cluster_dir(repo, worker_id))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    base = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = unique(base or "t")
    create_namespace(cluster, name)
    yield name
    delete_namespace(cluster, name)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The engine a scenario runs on: a test that takes this fixture runs once per engine, the
    fake kubelet running the simulator in that engine's mode (spec: testkit.operator.on_engine)."""
    return str(request.param)


@pytest.fixture(scope="session")
def prometheus(cluster: Cluster) -> Iterator[Prometheus]:
    """A real Prometheus scraping every TGI simulator the fake kubelet runs (1 s interval)."""
    assert cluster.state_dir is not None, "the simulated data plane exists only on the local cluster"
    prom = Prometheus.start(cluster.state_dir, cluster.state_dir / "tgi-targets.json", scrape_interval="1s")
    try:
        yield prom
    finally:
        prom.stop()


@pytest.fixture(scope="session")
def operator(
    cluster: Cluster, prometheus: Prometheus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The CRD installed and ``llmops run`` watching every namespace, for the whole session."""
    install_crd(cluster)
    op = OperatorProcess(
        cluster, tmp_path_factory.mktemp("operator"), env={"LLMOPS_PROMETHEUS_URL": prometheus.url}
    )
    op.start()
    try:
        yield op
    finally:
        op.kill()
