"""``make dev``: the operator running against the local cluster, with a sample to watch.

Starts the local cluster (or reuses the one ``make cluster-up`` started), installs the CRD,
creates a namespace with a placeholder Hub token Secret, applies the 8B sample and runs the
operator in the foreground. In another terminal, ``kubectl get llmd -n llmops-dev -w`` tells
the story.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from llmops.devcluster.build import repo_root
from llmops.devcluster.cluster import Cluster, default_state_dir
from llmops.devcluster.processes import ClusterError

NAMESPACE = "llmops-dev"
SAMPLE = "manifests/samples/llama-3.1-8b.yaml"


def _cluster(state_dir: Path) -> Cluster:
    if (state_dir / "state.json").exists():
        existing = Cluster.attach(state_dir)
        if existing.kubectl("get", "--raw", "/readyz", check=False).returncode == 0:
            print(f"reusing the running cluster in {state_dir}", file=sys.stderr)
            return existing
    return Cluster.start(state_dir, log=lambda m: print(f"  {m}", file=sys.stderr))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make dev")
    parser.add_argument("--sample", default=SAMPLE)
    args = parser.parse_args(argv)
    repo = repo_root()
    try:
        cluster = _cluster(default_state_dir())
    except ClusterError as exc:
        print(f"make dev: {exc}", file=sys.stderr)
        return 1
    crd = repo / "crds" / "llmops.io_llmdeployments.yaml"
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    cluster.kubectl("wait", "--for=condition=Established", "crd/llmdeployments.llmops.io", "--timeout=60s")
    ns = cluster.kubectl("create", "namespace", NAMESPACE, "--dry-run=client", "-o", "yaml").stdout
    cluster.kubectl("apply", "-f", "-", input=ns)
    # The sample references a Hub token Secret; the simulated hub accepts any token.
    secret = cluster.kubectl(
        "create",
        "secret",
        "generic",
        "hf-token",
        "-n",
        NAMESPACE,
        "--from-literal=token=hf_dev_placeholder",
        "--dry-run=client",
        "-o",
        "yaml",
    ).stdout
    cluster.kubectl("apply", "-f", "-", input=secret)
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", str(repo / args.sample))
    print(
        f"\nlocal cluster: export KUBECONFIG={cluster.kubeconfig} PATH={cluster.bin_dir}:$PATH\n"
        f"watch the sample:  kubectl get llmd -n {NAMESPACE} -w\n"
        f"details:           kubectl describe llmd -n {NAMESPACE}\n"
        "stop: Ctrl-C (operator), then make cluster-down\n",
        file=sys.stderr,
    )
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "PATH": f"{cluster.bin_dir}:{os.environ['PATH']}",
    }
    llmops = Path(sys.executable).with_name("llmops")
    os.execve(str(llmops), [str(llmops), "run", "--all-namespaces", "--liveness-port", "0"], env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
