"""A small sample of ``make bench-scale`` (issue 10, point 4): LLMDeployments created at once
all converge, and once settled a whole busy-resync period passes without a single write.

Ten LLMDeployments as a new user writes them (one replica, one GPU, no cache) in one kubectl
call; each must get every child the operator's first pass renders, with its controller owner
reference, and a status for its generation. Then resourceVersions are compared across 31 s:
longer than the 30 s after which a busy LLMDeployment (pods waiting for a GPU) is looked at
again, so every object has had at least one pass in the window.
"""

from __future__ import annotations

import time

from llmops_dev.bench.scale import ApiReader, as_list, changed, children_of, llmd_body, unsettled, versions
from llmops_dev.cluster import Cluster
from testkit import wait_for
from testkit.operator import OperatorProcess

COUNT = 10
WINDOW_SECONDS = 31.0


def test_ten_at_once_converge_and_stay_unwritten_at_idle(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    names = [f"m{i:02d}" for i in range(COUNT)]
    expected = {
        n: {(c["kind"], c["metadata"]["name"]) for c in children_of(llmd_body(n, namespace))} for n in names
    }
    assert all(len(kids) == 4 for kids in expected.values())  # Deployment, Service, PDB, NetworkPolicy
    reader = ApiReader(cluster.kubeconfig)
    cluster.kubectl(
        "apply", "--server-side", "-f", "-", input=as_list(llmd_body(n, namespace) for n in names)
    )
    wait_for(
        f"{COUNT} LLMDeployments converged", lambda: not unsettled(reader, namespace, expected), 120, 0.5
    )

    # Settled: pods that got a GPU are serving, the others wait for one; nothing changed for 10 s.
    seen = {"versions": versions(reader, namespace), "since": time.monotonic()}

    def settled() -> bool:
        now = versions(reader, namespace)
        if now != seen["versions"]:
            seen.update(versions=now, since=time.monotonic())
        return time.monotonic() - float(seen["since"]) > 10  # type: ignore[arg-type]

    wait_for("10 s without a change", settled, 120, 1)
    before, started = versions(reader, namespace), time.monotonic()

    def window_over() -> bool:
        assert changed(before, versions(reader, namespace)) == [], "an object was written at idle"
        return time.monotonic() - started > WINDOW_SECONDS

    wait_for("an idle window longer than the busy resync", window_over, WINDOW_SECONDS + 30, 1)
    assert sum(k.startswith("LLMDeployment/") for k in before) == COUNT
