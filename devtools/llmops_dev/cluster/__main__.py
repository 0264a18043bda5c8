"""``python -m llmops_dev.cluster up|down|status``: the local cluster from the command line."""

from __future__ import annotations

import argparse
import sys
import time

from llmops_dev.cluster.controlplane import Cluster, default_state_dir, stop_state
from llmops_dev.processes import ClusterError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmops_dev.cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--state-dir", type=str, default=None, help="default: $LLMOPS_STATE or .dev/cluster")
    args = parser.parse_args(argv)
    from pathlib import Path

    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir()

    def say(msg: str) -> None:
        print(f"  {msg}", file=sys.stderr, flush=True)

    if args.command == "up":
        t0 = time.monotonic()
        try:
            cluster = Cluster.start(state_dir, log=say)
        except ClusterError as exc:
            print(f"cluster-up failed: {exc}", file=sys.stderr)
            return 1
        print(f"local cluster ready in {time.monotonic() - t0:.1f}s")
        print(f"  kubeconfig: {cluster.kubeconfig}")
        print(f"  logs:       {state_dir / 'logs'}")
        print("use it with:")
        print(f"  export KUBECONFIG={cluster.kubeconfig} PATH={cluster.bin_dir}:$PATH")
        print("  kubectl get nodes")
        print("stop it with: make cluster-down")
        return 0
    if args.command == "down":
        from llmops_dev.prometheus import stop_recorded

        stop_recorded(state_dir)  # the Prometheus `make dev` starts, if any
        stopped = stop_state(state_dir)
        print(f"stopped: {', '.join(stopped)}" if stopped else f"no cluster recorded in {state_dir}")
        return 0
    try:
        cluster = Cluster.attach(state_dir)
    except OSError:
        print(f"no cluster recorded in {state_dir}")
        return 1
    res = cluster.kubectl("get", "nodes", check=False)
    print(res.stdout or res.stderr)
    return res.returncode


if __name__ == "__main__":
    sys.exit(main())
