"""A small sample of ``make bench-scale`` (issue 10, point 4): LLMDeployments created at once
all converge, and once settled a pass of every one of them writes nothing.

Ten LLMDeployments as a new user writes them (one replica, one GPU, no cache) in one kubectl
call; each must get every child the operator's first pass renders, with its controller owner
reference, and a status for its generation. Then the operator is restarted, which makes it
pass over every object again (kopf lists them all when it starts): each of those passes must
find nothing to change, and no resourceVersion may move. Waiting for the periodic resync would
take 300 s; the pods that wait for a GPU are no longer looked at more often than that (only
what moves with time is: a canary, a drift check, a download's progress).
"""

from __future__ import annotations

import re
import time

from llmops_dev.bench.scale import (
    ApiReader,
    StatusWatch,
    as_list,
    changed,
    children_of,
    llmd_body,
    unsettled,
    versions,
)
from llmops_dev.cluster import Cluster
from testkit import wait_for
from testkit.operator import OperatorProcess

COUNT = 10


def test_ten_at_once_converge_and_a_pass_of_each_writes_nothing(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    names = [f"m{i:02d}" for i in range(COUNT)]
    expected = {
        n: {(c["kind"], c["metadata"]["name"]) for c in children_of(llmd_body(n, namespace))} for n in names
    }
    assert all(len(kids) == 4 for kids in expected.values())  # Deployment, Service, PDB, NetworkPolicy
    reader = ApiReader(cluster.kubeconfig)
    watch = StatusWatch(reader, namespace, names)  # how the bench waits: a watch, not polling
    cluster.kubectl(
        "apply", "--server-side", "-f", "-", input=as_list(llmd_body(n, namespace) for n in names)
    )
    assert watch.wait(120) is not None, f"no status for {sorted(watch.pending)}: {watch.failure}"
    # The bench counts the time of the last status as converged: each pass applied its children
    # before it wrote its status, so they are all there by then.
    assert unsettled(reader, namespace, expected) == []

    # Settled: pods that got a GPU are serving, the others wait for one; nothing changed for 10 s.
    seen = {"versions": versions(reader, namespace), "since": time.monotonic()}

    def settled() -> bool:
        now = versions(reader, namespace)
        if now != seen["versions"]:
            seen.update(versions=now, since=time.monotonic())
        return time.monotonic() - float(seen["since"]) > 10  # type: ignore[arg-type]

    wait_for("10 s without a change", settled, 120, 1)
    before = versions(reader, namespace)
    offset = operator.log_offset()
    operator.restart()
    quiet = re.compile(rf"{re.escape(namespace)}/(m\d\d): pass: nothing to change")

    def every_one_passed_quietly() -> bool:
        assert changed(before, versions(reader, namespace)) == [], "an object was written by a quiet pass"
        return set(quiet.findall(operator.log_since(offset))) == set(names)

    wait_for("a pass of each that changes nothing", every_one_passed_quietly, 120, 1)
    assert changed(before, versions(reader, namespace)) == []
    assert sum(k.startswith("LLMDeployment/") for k in before) == COUNT
