"""Chaos, a small sample of ``make chaos`` (issue 10, point 2).

The operator is SIGKILLed at chosen moments of one round (serve A through its evaluation gate,
then canary B to promotion) and the kube-apiserver is restarted in place during the canary;
the invariants are checked after every blow (see testkit.chaos) and the end state is compared
with a reference round run at the same time by a second operator that is never killed (it
shares the control plane, so it sees the apiserver restart too).

The session operator watches every namespace, so it is stopped for these tests and started
again afterwards; each test runs its own operators, one per namespace.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmops_dev.cluster import Cluster
from llmops_dev.prometheus import Prometheus
from testkit import unique
from testkit.chaos import (
    REV_B,
    Blow,
    JobLedger,
    Killer,
    canary_weight_above,
    child_violations,
    phase_is,
    prepare,
    run_round,
)
from testkit.operator import OperatorProcess


@pytest.fixture
def own_operators(cluster: Cluster, operator: OperatorProcess) -> Iterator[list[OperatorProcess]]:
    """The session operator stopped while the test runs its own; started again afterwards."""
    operator.kill()
    mine: list[OperatorProcess] = []
    try:
        yield mine
    finally:
        for op in mine:
            op.kill()
        operator.start()


def _namespace(cluster: Cluster, prefix: str) -> str:
    name = unique(prefix)
    cluster.kubectl("create", "namespace", name)
    return name


def test_operator_killed_through_gate_and_canary_ends_like_an_uninterrupted_run(
    cluster: Cluster,
    prometheus: Prometheus,
    own_operators: list[OperatorProcess],
    tmp_path: Path,
) -> None:
    ref_ns, chaos_ns = _namespace(cluster, "chaos-ref"), _namespace(cluster, "chaos")
    env = {"LLMOPS_PROMETHEUS_URL": prometheus.url}
    ref_op = OperatorProcess(cluster, tmp_path / "ref", env, namespaces=[ref_ns])
    chaos_op = OperatorProcess(cluster, tmp_path / "chaos", env, namespaces=[chaos_ns])
    own_operators += [ref_op, chaos_op]
    for ns in (ref_ns, chaos_ns):
        prepare(cluster, ns)
    ref_op.start()
    chaos_op.start()

    reference: dict[str, Any] = {}

    def reference_round() -> None:
        try:
            reference.update(run_round(cluster, ref_ns, "round"))
        except BaseException as exc:  # reported below
            reference["error"] = exc

    schedule = [
        Blow("operator", (0.5, 3.0), label="kill while A is cached or evaluated"),
        Blow("operator", (0.0, 2.0), phase_is(cluster, chaos_ns, "round", revision=REV_B, phase="Evaluating"),
             "kill while B is evaluated"),
        Blow("kube-apiserver", (0.0, 1.0), canary_weight_above(cluster, chaos_ns, "round", 0),
             "kube-apiserver restart during the canary"),
        Blow("operator", (0.0, 1.0), label="kill right after"),
    ]  # fmt: skip
    ref_thread = threading.Thread(target=reference_round, name="reference-round")
    with JobLedger(cluster.kubeconfig, chaos_ns) as ledger:
        killer = Killer(cluster, chaos_op, [chaos_ns], schedule, ledger, seed=10)
        ref_thread.start()
        with killer.running():
            end = run_round(cluster, chaos_ns, "round")
        ref_thread.join(timeout=300)

    assert not killer.errors, killer.errors
    assert [what for what, _ in killer.done] == [b.label for b in schedule]
    assert killer.violations == []
    assert ledger.violations() == []
    assert ledger.count() >= 4  # download and evaluation of A and B, and B's smoke evaluation
    assert child_violations(cluster, chaos_ns) == []
    assert "error" not in reference, reference.get("error")
    assert end == reference
    assert end["servingRevision"] == REV_B and end["lastPromotedRevision"] == REV_B
