"""``make chaos``: the operator SIGKILLed N times (50 by default) through whole rounds of
serve → evaluation gate → canary → promote → retrain loop (a retrain Job started by the annotation,
its candidate's gate, canary and promotion, a second retrain refused by the daily cap), plus the
kube-apiserver, etcd and Prometheus restarted in place, on a fresh local cluster with a real
Prometheus.

A reference round runs first, uninterrupted; then rounds run one after another (each a new
LLMDeployment, deleted once its end state is read) while the kill schedule plays, until every
blow has landed. Every invariant of testkit.chaos is checked after every blow; every round's
end state must equal the reference's. Prints a summary with figures; exits 1 on any violation.

    PYTHONPATH=tests python tests/bench/chaos.py [--kills 50] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmops_dev.cluster import Cluster
from llmops_dev.prometheus import Prometheus
from testkit import wait_for
from testkit.chaos import (
    Blow,
    JobLedger,
    Killer,
    child_violations,
    newest_stage_starts,
    prepare,
    run_round,
)
from testkit.operator import OperatorProcess, install_crd

TRAINING = 12.0
"""Seconds each round's retrain Job "trains": long enough for several kills to land mid-retrain."""
COMPONENTS = {10: "kube-apiserver", 25: "etcd", 40: "prometheus"}
"""After which operator kill each component is restarted (scaled down for fewer kills)."""


MID_RETRAIN = (8, 25, 42)
"""Which operator kills wait for a retrain Job to run (about one a round), then land within 3 s;
the others land at random gaps, wherever the round is (a retrain Job is a few percent of it)."""


def schedule(kills: int, mid_retrain: Callable[[], bool]) -> list[Blow]:
    out: list[Blow] = []
    at = {max(1, round(k * kills / 50)): c for k, c in COMPONENTS.items()}
    pinned = {max(1, round(k * kills / 50)) for k in MID_RETRAIN}
    for i in range(1, kills + 1):
        if i in pinned:
            out.append(Blow("operator", (0.0, 3.0), mid_retrain, label=f"operator kill {i} (mid-retrain)"))
        else:
            out.append(Blow("operator", (1.0, 6.0), label=f"operator kill {i}"))
        if i in at:
            out.append(Blow(at[i], (0.5, 3.0), label=f"{at[i]} restart"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; {args.kills} kills",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        cluster = Cluster.start(Path(tmp) / "cluster")
        assert cluster.state_dir is not None
        prom = Prometheus.start(
            cluster.state_dir, cluster.state_dir / "tgi-targets.json", scrape_interval="1s"
        )
        op = OperatorProcess(cluster, Path(tmp) / "operator", env={"LLMOPS_PROMETHEUS_URL": prom.url})
        try:
            install_crd(cluster)
            op.start()
            for ns in ("reference", "chaos"):
                cluster.kubectl("create", "namespace", ns)
                prepare(cluster, ns)
            t0 = time.monotonic()
            reference = run_round(cluster, "reference", "round", retrain=True, training_seconds=TRAINING)
            took = time.monotonic() - t0
            print(
                f"reference round (uninterrupted): {took:.0f} s; end state {reference['phase']}, "
                f"{len(reference['children'])} children",
                flush=True,
            )
            return _chaos(cluster, op, prom, reference, args)
        finally:
            op.kill()
            prom.stop()
            cluster.stop()


def _chaos(
    cluster: Cluster,
    op: OperatorProcess,
    prom: Prometheus,
    reference: dict[str, Any],
    args: argparse.Namespace,
) -> int:
    blows = schedule(args.kills, newest_stage_starts(cluster, "chaos", "retrain Job running"))
    mismatches: list[str] = []
    rounds: list[float] = []
    loops: list[float] = []
    t0 = time.monotonic()
    with JobLedger(cluster.kubeconfig, "chaos") as ledger:
        killer = Killer(cluster, op, ["chaos"], blows, ledger, prometheus=prom, seed=args.seed)
        with killer.running():
            while not killer.finished():
                name = f"round-{len(rounds) + 1}"
                took: dict[str, float] = {}
                started = time.monotonic()
                end = run_round(
                    cluster, "chaos", name, timeout=600, retrain=True, training_seconds=TRAINING, took=took
                )
                loops.append(took["retrain loop"])
                rounds.append(time.monotonic() - started)
                if end != reference:
                    mismatches.append(f"{name}: {end} != {reference}")
                print(
                    f"{name}: {rounds[-1]:.0f} s, {len(killer.done)}/{len(blows)} blows so far, "
                    f"end state {'as the reference' if end == reference else 'DIFFERENT'}",
                    flush=True,
                )
                cluster.kubectl("delete", "llmd", name, "-n", "chaos", "--wait=false")
        cluster.kubectl("delete", "llmd", "--all", "-n", "chaos", "--wait=false")
        wait_for(
            "children of deleted rounds collected", lambda: not child_violations(cluster, "chaos"), 120, 1
        )
        wait_for(
            "no child left",
            lambda: not cluster.kubectl("get", "deployments,jobs", "-n", "chaos", "-o", "name").stdout,
            180,
            1,
        )
    kills = [t for what, t in killer.done if what.startswith("operator kill")]
    violations = killer.violations + ledger.violations() + [repr(e) for e in killer.errors] + mismatches
    print("--- chaos summary ---")
    print(f"operator kills: {len(kills)} (SIGKILL, invariants checked while it was down, then restarted)")
    if kills:
        print(
            f"  kill → checked → restarted and healthy: median {statistics.median(kills):.1f} s, max {max(kills):.1f} s"
        )
    print("  where the round was at each kill:")
    for stage, n in sorted(Counter(killer.stages).items(), key=lambda kv: -kv[1]):
        print(f"    {n:3d}  {stage}")
    for what, t in killer.done:
        if not what.startswith("operator kill"):
            print(f"  {what}: back in {t:.1f} s")
    print(
        f"rounds: {len(rounds)} (serve A → gate → canary B → promoted → retrain → C gated, canaried, "
        f"promoted), median {statistics.median(rounds):.0f} s under chaos (the retrain loop "
        f"{statistics.median(loops):.0f} s); every end state as the uninterrupted reference: {not mismatches}"
    )
    retrains = ledger.retrain_jobs()
    print(
        f"Jobs created in the chaos namespace: {ledger.count()}; second Jobs for a revision: "
        f"{len(ledger.violations())}; retrain Jobs: {sum(len(j) for j in retrains.values())} for "
        f"{len(retrains)} rounds (one run each; the second asked for refused by maxRetrainsPerDay)"
    )
    print(
        f"invariant checks: {len(killer.done)} blows, each checking children and Jobs, retrain bookkeeping compared "
        f"with the previous check {killer.bookkeeping_checks} times, {len(rounds)} end states"
    )
    print(
        f"invariant violations: {len(violations)}; total {time.monotonic() - t0:.0f} s; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    for v in violations[:20]:
        print(f"  {v}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
