"""Two operator replicas with kopf peering (issue 10, point 2): only one acts, and when it is
killed the other takes over; the failover time is measured and printed.

The session operator (every namespace, standalone) is stopped for the test; the replicas here
watch one namespace with a KopfPeering object, as the chart installs them with replicaCount 2.
The LLMDeployment's model trickles out of the simulated Hub for ten minutes, so it stays
Caching and is looked at again every PROGRESS_INTERVAL_SECONDS (to read its download's
progress, a pass no watch event brings): a paused replica that still ran its own schedule would
show up in its log within that.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmops.handlers import PEERING_LIFETIME_SECONDS
from llmops.lifecycle.progress import PROGRESS_INTERVAL_SECONDS
from llmops.peering import CACHE_SECONDS
from llmops_dev.cluster import Cluster
from testkit import unique, wait_for
from testkit.operator import OperatorProcess, configure_hub, llmd, sample

CHART = Path(__file__).resolve().parents[2] / "charts" / "llmops-operator"
PEERING = "llmops"


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


def _peering_crds(cluster: Cluster) -> None:
    """kopf's peering CRDs as the chart renders them with two replicas."""
    crds = cluster.helm(
        "template",
        "llmops",
        str(CHART),
        "--set",
        "replicaCount=2",
        "--show-only",
        "templates/crds/kopf-peering.yaml",
    ).stdout
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=crds)
    cluster.kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev", "--timeout=60s")


def _line(op: OperatorProcess, text: str) -> str | None:
    return next((line for line in op.log_since(0).splitlines() if text in line), None)


def _stamp(line: str) -> dt.datetime:
    """The time of a log line: ``[2026-11-30 06:29:40,233] ...``."""
    return dt.datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").replace(
        tzinfo=dt.UTC
    )  # the machine's clock


def _acts(op: OperatorProcess, offset: int, name: str) -> list[str]:
    """Lines of the reconciler acting on ``name`` (a pass, an apply, a status write) since ``offset``."""
    pattern = re.compile(rf"/{name}: (pass|apply|delete|patch)")
    return [line for line in op.log_since(offset).splitlines() if pattern.search(line)]


def test_two_peered_replicas_one_acts_and_the_other_takes_over(
    cluster: Cluster, own_operators: list[OperatorProcess], tmp_path: Path
) -> None:
    _peering_crds(cluster)
    ns = unique("peering")
    cluster.kubectl("create", "namespace", ns)
    peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}}
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(peering))
    low = OperatorProcess(cluster, tmp_path / "low", namespaces=[ns], peering=PEERING, priority=10)
    high = OperatorProcess(cluster, tmp_path / "high", namespaces=[ns], peering=PEERING, priority=20)
    own_operators += [low, high]

    low.start()
    model = "sim-org/peering-trickle"
    configure_hub(cluster, slow={model: 600})  # still Caching when the test is over
    busy = json.loads(sample("busy", "a" * 40))
    busy["spec"]["model"]["id"] = model
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(busy))
    wait_for("the only replica acting", lambda: _acts(low, 0, "busy"), 60, 0.5)
    # Its download's progress read once: from now on a pass of it is scheduled every interval.
    wait_for(
        "a progress reading", lambda: (llmd(cluster, ns, "busy").get("status") or {}).get("download"), 90, 0.5
    )

    # A replica with a higher priority joins: the first one pauses and acts no more.
    high.start()
    pause_line = wait_for(
        "the first replica paused", lambda: _line(low, "Pausing operations in favour"), 60, 0.5
    )
    paused = time.monotonic()
    # kopf pauses the watches at once; the queue's gate reads the peering object at most every
    # CACHE_SECONDS, and a pass already running finishes: that is how late a paused replica stops.
    stopped_by = _stamp(pause_line) + dt.timedelta(seconds=CACHE_SECONDS + 1)
    wait_for("the new replica acting", lambda: _acts(high, 0, "busy"), 60, 0.5)

    def quiet_for_a_progress_interval() -> bool:
        # The measurement window: the paused replica had a pass of the busy object scheduled
        # within the interval (the next progress reading); it must drop it, not run it.
        late = [line for line in _acts(low, 0, "busy") if _stamp(line) > stopped_by]
        assert late == [], "a paused replica reconciled:\n" + "\n".join(late)
        return time.monotonic() - paused > 2 * PROGRESS_INTERVAL_SECONDS + 3

    wait_for("two progress intervals with the paused replica quiet", quiet_for_a_progress_interval, 90, 1)

    # The active replica dies without a goodbye: the other resumes once its peering entry expires.
    offset = low.log_offset()
    killed = time.monotonic()
    high.kill()
    wait_for("the standby resuming", lambda: "Resuming operations" in low.log_since(offset), 90, 0.2)
    wait_for("the standby acting", lambda: _acts(low, offset, "busy"), 60, 0.2)
    failover = time.monotonic() - killed
    print(f"\npeering failover: {failover:.1f} s from SIGKILL of the active replica to a pass by the standby")
    assert failover < PEERING_LIFETIME_SECONDS + 20  # the peering lifetime, plus a pass on a loaded machine
