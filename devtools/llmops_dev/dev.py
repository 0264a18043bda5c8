"""``make dev``: the operator on the local cluster, taking a model through the whole loop.

1. Starts (or reuses) the local cluster and a Prometheus scraping the simulated server pods.
2. Installs the CRD and applies ``manifests/samples/qwen-gated-canary.yaml`` (or ``--sample``,
   ``make dev SAMPLE=manifests/samples/qwen-vllm-canary.yaml`` for vLLM; with short pauses and
   intervals, so the story takes a couple of minutes), in namespace ``llmops-dev``.
3. Runs the operator and prints every phase change: Caching → Evaluating → Serving.
4. Once it serves, moves ``spec.model.revision`` to a second revision, with traffic flowing:
   Caching → Evaluating → Canary (10%, 50%) → Serving, promoted by Prometheus analysis.
5. Then the retrain loop (a sample with ``spec.evaluation``; ``--no-retrain`` skips it): adds a
   ``spec.retrain`` whose Job (the operator image running a few lines of Python) reports a third
   revision, and asks for a run with the ``llmops.io/retrain`` annotation: Retraining → the
   candidate's Caching → Evaluating (no worse than what serves) → Canary → Serving, with
   status.serving.origin the run.
6. Keeps the operator running until Ctrl-C. ``kubectl get llmd -n llmops-dev -w`` shows the same.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from llmops.api.constants import OPERATOR_IMAGE
from llmops.api.status import Phase
from llmops_dev.cluster.build import repo_root
from llmops_dev.cluster.controlplane import Cluster, default_state_dir
from llmops_dev.kubelet.proxy import pod_network_env
from llmops_dev.loadgen import Traffic
from llmops_dev.processes import ClusterError
from llmops_dev.prometheus import Prometheus

NAMESPACE = "llmops-dev"
SAMPLE = "manifests/samples/qwen-gated-canary.yaml"
SECOND_REVISION = "0123456789abcdef0123456789abcdef01234567"
RETRAINED_REVISION = "fedcba9876543210fedcba9876543210fedcba98"
# The demo's trainer: it "trains" by reporting a revision the simulated Hub serves, in the
# termination message (docs/retrain.md has the contract).
TRAINER = "import sys; open(sys.argv[2], 'w').write(sys.argv[1])"


def _cluster(state_dir: Path) -> Cluster:
    if (state_dir / "state.json").exists():
        existing = Cluster.attach(state_dir)
        if existing.kubectl("get", "--raw", "/readyz", check=False).returncode == 0:
            print(f"reusing the running cluster in {state_dir}", file=sys.stderr)
            return existing
    return Cluster.start(state_dir, log=lambda m: print(f"  {m}", file=sys.stderr))


def _dev_timings(doc: dict[str, Any]) -> dict[str, Any]:
    """The sample with a demo's pace: seconds instead of minutes."""
    rollout = doc["spec"]["rollout"]
    for step in rollout["steps"]:
        step["pause"] = {"duration": "20s"}
    rollout["analysis"]["interval"] = "5s"
    rollout["analysis"]["inconclusiveLimit"] = 6
    return doc


def _behaviours(state_dir: Path, dataset: str, revisions: list[str]) -> None:
    """Both revisions answer the sample's questions correctly (the simulators read these files)."""
    folder = state_dir / "behaviours"
    folder.mkdir(exist_ok=True)
    data = state_dir / "dev-qa.jsonl"
    data.write_text(dataset)
    for rev in revisions:
        (folder / f"{rev}.json").write_text(
            json.dumps({"dataset": str(data), "accuracy": 1.0, "latency_seconds": 0.05})
        )


def _retrain_spec(model: str, image: str) -> dict[str, Any]:
    report = json.dumps({"model": model, "revision": RETRAINED_REVISION})
    container = {
        "name": "train",
        "image": image,
        "command": ["python", "-c", TRAINER, report, "/dev/termination-log"],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    pod = {
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
    }
    return {
        "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": pod}}},
        "approval": "Auto",
        "cooldown": "1m",
        "noWorseThan": [{"metric": "exactMatch", "maxDrop": 0.05}],
    }


def _retrain_loop(cluster: Cluster, name: str, model: str) -> None:
    """spec.retrain, then a run on the annotation: the candidate's road to promotion."""
    patch = {"spec": {"retrain": _retrain_spec(model, OPERATOR_IMAGE)}}
    cluster.kubectl("patch", "llmd", name, "-n", NAMESPACE, "--type=merge", "-p", json.dumps(patch))
    cluster.kubectl("annotate", "llmd", name, "-n", NAMESPACE, "llmops.io/retrain=make-dev", "--overwrite")
    _watch(cluster, name, RETRAINED_REVISION, 600)
    st = _status(cluster, name)
    serving = st.get("serving") or {}
    print(
        f"[make dev] {name}: serving {serving.get('model')}@{serving.get('revision')} from {serving.get('origin')}; "
        f"history: {' → '.join(h['action'] for h in st.get('history') or [])}",
        file=sys.stderr,
    )


def _status(cluster: Cluster, name: str) -> dict[str, Any]:
    res = cluster.kubectl("get", "llmd", name, "-n", NAMESPACE, "-o", "json", check=False)
    return (json.loads(res.stdout).get("status") or {}) if res.returncode == 0 else {}


def _watch(cluster: Cluster, name: str, until: str, deadline: float) -> bool:
    """Print phase/canary changes until servingRevision == ``until`` (or the deadline)."""
    last = None
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        st = _status(cluster, name)
        canary = st.get("canary") or {}
        candidate = st.get("candidate") or {}
        line = (
            st.get("phase"),
            st.get("servingRevision"),
            st.get("ready"),
            canary.get("weight"),
            canary.get("state"),
            candidate.get("state"),
        )
        if line != last and st:
            detail = f"  canary {canary.get('weight')}% {canary.get('state')}" if canary else ""
            if candidate:
                detail += f"  candidate {candidate.get('run')} {candidate.get('state')}"
            print(
                f"[make dev] {name}: {st.get('phase'):<11} ready {st.get('ready')}  serving {st.get('servingRevision')}{detail}"
            )
            last = line
        if st.get("servingRevision") == until and st.get("phase") == Phase.SERVING:
            return True
        time.sleep(1)  # a watch loop for people, not a test
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make dev")
    parser.add_argument("--sample", default=SAMPLE)
    parser.add_argument("--no-second-revision", action="store_true")
    parser.add_argument("--no-retrain", action="store_true")
    args = parser.parse_args(argv)
    repo = repo_root()

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # stop the operator and Prometheus on TERM too
    try:
        cluster = _cluster(default_state_dir())
        assert cluster.state_dir is not None
        prom = Prometheus.start(
            cluster.state_dir, cluster.state_dir / "tgi-targets.json", scrape_interval="2s"
        )
    except ClusterError as exc:
        print(f"make dev: {exc}", file=sys.stderr)
        return 1
    state = cluster.state_dir
    cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        str(repo / "crds" / "llmops.io_llmdeployments.yaml"),
    )
    cluster.kubectl("wait", "--for=condition=Established", "crd/llmdeployments.llmops.io", "--timeout=60s")
    ns = cluster.kubectl("create", "namespace", NAMESPACE, "--dry-run=client", "-o", "yaml").stdout
    cluster.kubectl("apply", "-f", "-", input=ns)

    docs = list(yaml.safe_load_all((repo / args.sample).read_text()))
    llmd = next(d for d in docs if d["kind"] == "LLMDeployment")
    config = next((d for d in docs if d["kind"] == "ConfigMap"), None)
    name, first = llmd["metadata"]["name"], llmd["spec"]["model"]["revision"]
    if config:
        _behaviours(state, next(iter(config["data"].values())), [first, SECOND_REVISION, RETRAINED_REVISION])
    if llmd["spec"].get("rollout"):
        _dev_timings(llmd)
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump_all(docs))

    env = {
        **os.environ,
        **pod_network_env(state),
        "KUBECONFIG": str(cluster.kubeconfig),
        "PATH": f"{cluster.bin_dir}:{os.environ['PATH']}",
    }
    log = state / "logs" / "operator.log"
    llmops = Path(sys.executable).with_name("llmops")
    operator = subprocess.Popen(
        [str(llmops), "run", "--all-namespaces", "--liveness-port", "0", "--prometheus-url", prom.url],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    print(
        f"\nlocal cluster: export KUBECONFIG={cluster.kubeconfig} PATH={cluster.bin_dir}:$PATH\n"
        f"watch:         kubectl get llmd -n {NAMESPACE} -w\n"
        f"details:       kubectl describe llmd {name} -n {NAMESPACE}\n"
        f"operator log:  {log}\nPrometheus:    {prom.url}\nstop: Ctrl-C, then make cluster-down\n",
        file=sys.stderr,
    )
    try:
        if not _watch(cluster, name, first, 600):
            print(
                "[make dev] the first revision did not reach Serving; see the status and the operator log",
                file=sys.stderr,
            )
        elif not args.no_second_revision and llmd["spec"].get("rollout"):
            print(
                f"[make dev] moving {name} to revision {SECOND_REVISION} (with traffic): a canary",
                file=sys.stderr,
            )
            engine = (llmd["spec"].get("engine") or {}).get("type", "tgi")
            with Traffic(state, NAMESPACE, name, rate=10, engine=engine):
                patch = {"spec": {"model": {"revision": SECOND_REVISION}}}
                cluster.kubectl(
                    "patch", "llmd", name, "-n", NAMESPACE, "--type=merge", "-p", json.dumps(patch)
                )
                served = _watch(cluster, name, SECOND_REVISION, 600)
                if served and not args.no_retrain and llmd["spec"].get("evaluation"):
                    print(f"[make dev] retraining {name}: a run on llmops.io/retrain", file=sys.stderr)
                    _retrain_loop(cluster, name, llmd["spec"]["model"]["id"])
        print("[make dev] the operator keeps running; Ctrl-C to stop", file=sys.stderr)
        operator.wait()
    except KeyboardInterrupt:
        pass
    finally:
        operator.send_signal(signal.SIGTERM)
        operator.wait(timeout=30)
        prom.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
