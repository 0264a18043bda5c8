"""``make bench-canary``: how long a failing canary takes to be rolled back.

On the local cluster, with a real Prometheus and the operator as a process: a canary that has
been passing its analysis starts failing (its simulators begin answering 10% of requests with
429), and the clock runs until the operator has decided the rollback (status.canary.state ==
RolledBack). The bound from issue 5: interval x failureLimit + one interval. Prints figures.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from llmops_dev.cluster import Cluster
from llmops_dev.loadgen import Traffic
from llmops_dev.prometheus import Prometheus
from testkit import create_namespace, delete_namespace, unique, wait_for
from testkit.operator import OperatorProcess, install_crd, llmd, sample, set_behaviour, wait_condition

INTERVAL, FAILURE_LIMIT, RUNS = 4, 2, 3


def one_run(cluster: Cluster, run: int) -> float:
    ns = unique(f"bench-canary-{run}")
    create_namespace(cluster, ns)
    a, b = f"{run:x}" * 40, f"{run + 8:x}" * 40
    set_behaviour(cluster, a)
    set_behaviour(cluster, b)
    rollout = {
        "steps": [{"setWeight": 50, "pause": {"duration": "10m"}}],
        "analysis": {
            "interval": f"{INTERVAL}s",
            "failureLimit": FAILURE_LIMIT,
            "inconclusiveLimit": 10,
            "metrics": [{"name": "errors", "template": "tgi-error-ratio", "thresholdRange": {"max": 0.02}}],
        },
    }
    body = json.loads(sample("bench", a, rollout=rollout))
    body["spec"]["replicas"] = 2
    try:
        cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(body))
        wait_condition(cluster, ns, "bench", "Available", "True", timeout=120)
        assert cluster.state_dir is not None
        with Traffic(cluster.state_dir, ns, "bench", rate=40):
            body["spec"]["model"]["revision"] = b
            cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(body))
            wait_for(
                "a passing measurement of the canary",
                lambda: (llmd(cluster, ns, "bench").get("status") or {})
                .get("canary", {})
                .get("stepChecks", 0)
                >= 1,
                120,
                0.2,
            )
            t0 = time.monotonic()
            set_behaviour(cluster, b, error_rate=0.1, error_kind="overloaded")
            wait_for(
                "the rollback decision",
                lambda: (llmd(cluster, ns, "bench").get("status") or {}).get("canary", {}).get("state")
                == "RolledBack",
                120,
                0.05,
            )
            return time.monotonic() - t0
    finally:
        delete_namespace(cluster, ns)


def main() -> int:
    bound = INTERVAL * FAILURE_LIMIT + INTERVAL
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster.start(Path(tmp) / "cluster")
        assert cluster.state_dir is not None
        prom = Prometheus.start(
            cluster.state_dir, cluster.state_dir / "tgi-targets.json", scrape_interval="1s"
        )
        op = OperatorProcess(cluster, Path(tmp), env={"LLMOPS_PROMETHEUS_URL": prom.url})
        try:
            install_crd(cluster)
            op.start()
            times = []
            for run in range(RUNS):
                t = one_run(cluster, run)
                times.append(t)
                print(f"run {run + 1}: canary failing → rollback decided in {t:.1f} s", flush=True)
        finally:
            op.kill()
            prom.stop()
            cluster.stop()
    print(
        f"detection time over {RUNS} runs: median {statistics.median(times):.1f} s, max {max(times):.1f} s; "
        f"bound interval x failureLimit + interval = {INTERVAL} x {FAILURE_LIMIT} + {INTERVAL} = {bound} s: "
        + ("met" if max(times) <= bound else "NOT met")
    )
    return 0 if max(times) <= bound else 1


if __name__ == "__main__":
    sys.exit(main())
