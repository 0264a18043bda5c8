"""``make dev``: the operator on the local cluster, taking a model through the whole loop.

1. Starts (or reuses) the local cluster and a Prometheus scraping the simulated server pods.
2. Installs the CRD and applies ``manifests/samples/qwen-gated-canary.yaml`` (or ``--sample``,
   ``make dev SAMPLE=manifests/samples/qwen-vllm-canary.yaml`` for vLLM; with short pauses and
   intervals, so the story takes a couple of minutes), in namespace ``llmops-dev``.
3. Runs the operator and prints every phase change: Caching → Evaluating → Serving.
4. Once it serves, moves ``spec.model.revision`` to a second revision, with traffic flowing:
   Caching → Evaluating → Canary (10%, 50%) → Serving, promoted by Prometheus analysis.
5. Then the closed loop (a sample with ``spec.evaluation`` and ``spec.drift``; ``--no-retrain``
   skips it): adds a ``spec.retrain`` whose Job runs the sample trainer
   (``manifests/samples/trainer/publish_revision.py``, shipped in a ConfigMap with a Hub write
   token in a Secret), waits for the drift reference of what serves, and changes the users:
   longer prompts, and more of their ratings "down" (through the gateway's /v1/feedback). Drifted=True → the operator starts the retrain Job on its own → the trainer publishes
   a new revision to the simulated Hub with huggingface_hub's upload API and reports it → the
   candidate's Caching → Evaluating (no worse than what serves) → Canary → Serving, with
   status.serving.origin the run and the lineage in status.history.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from llmops.api.status import Phase
from llmops_dev.cluster.build import repo_root
from llmops_dev.cluster.controlplane import Cluster, default_state_dir
from llmops_dev.kubelet.proxy import pod_network_env
from llmops_dev.loadgen import Traffic
from llmops_dev.processes import ClusterError
from llmops_dev.prometheus import Prometheus
from llmops_dev.trainer import publish_retrain_spec, trainer_objects

NAMESPACE = "llmops-dev"
SAMPLE = "manifests/samples/qwen-gated-canary.yaml"
SECOND_REVISION = "0123456789abcdef0123456789abcdef01234567"
RETRAINED_REVISION = "fedcba9876543210fedcba9876543210fedcba98"
"""The sha the simulated Hub gives the trainer's first push (hub.json ``pushes``)."""
SHIFTED_PROMPT_WORDS = (300, 500)
"""The traffic after the shift: prompts of 300-500 words where there was one."""
RATED, DOWN, SHIFTED_DOWN = 0.5, 0.05, 0.5
"""Users rate half the answers through the gateway: 1 rating in 20 "down", then half of them."""


def _cluster(state_dir: Path) -> Cluster:
    if (state_dir / "state.json").exists():
        existing = Cluster.attach(state_dir)
        if existing.kubectl("get", "--raw", "/readyz", check=False).returncode == 0:
            print(f"reusing the running cluster in {state_dir}", file=sys.stderr)
            return existing
    return Cluster.start(state_dir, log=lambda m: print(f"  {m}", file=sys.stderr))


def _dev_timings(doc: dict[str, Any]) -> dict[str, Any]:
    """The sample with a demo's pace: seconds instead of minutes."""
    spec = doc["spec"]
    rollout = spec.get("rollout")
    if rollout:
        for step in rollout["steps"]:
            step["pause"] = {"duration": "20s"}
        rollout["analysis"]["interval"] = "5s"
        rollout["analysis"]["inconclusiveLimit"] = 6
    drift = spec.get("drift")
    if drift:
        # Checks every 5 s over 20 s windows, scraped every 2 s (the dev Prometheus' pace), of
        # prompt lengths only: the demo's steady traffic is one-word prompts, so 60 requests show
        # any shift with no false alarm; real traffic needs a few hundred (docs/drift.md).
        drift.update(interval="5s", window="20s")
        drift.setdefault("traffic", {}).update(signals=["inputLength"], minSamples=60)
        # And the users' ratings (the gateway's llmops_feedback_total): drifted above 20 % "down".
        drift["feedback"] = {"maxNegativeRatio": 0.2, "minSamples": 20}
        spec.setdefault("monitoring", {}).setdefault("podMonitor", {})["interval"] = "2s"
    return doc


def _behaviours(state_dir: Path, dataset: str, revisions: list[str]) -> None:
    """Every revision answers the sample's questions correctly (the simulators read these files;
    default.json for any other, such as a push to the simulated Hub)."""
    folder = state_dir / "behaviours"
    folder.mkdir(exist_ok=True)
    data = state_dir / "dev-qa.jsonl"
    data.write_text(dataset)
    behaviour = json.dumps({"dataset": str(data), "accuracy": 1.0, "latency_seconds": 0.05})
    for rev in [*revisions, "default"]:
        (folder / f"{rev}.json").write_text(behaviour)


def _tuned_repo(model: str) -> str:
    """Where the trainer publishes: a repository of the dev organisation, created by its push."""
    return f"llmops-dev/{model.rsplit('/', 1)[-1].lower()}-tuned"


def _hub_expects_push(state_dir: Path, repo: str) -> None:
    """The tuned repository does not exist until the trainer creates it; its first push gets
    RETRAINED_REVISION (a fixed sha, so the transcript reads the same run after run)."""
    path = state_dir / "hub.json"
    hub = json.loads(path.read_text()) if path.exists() else {}
    hub["missing"] = sorted({*hub.get("missing", []), repo})
    hub["pushes"] = {**hub.get("pushes", {}), repo: [RETRAINED_REVISION]}
    path.write_text(json.dumps(hub))


def _say(message: str) -> None:
    print(f"[make dev] {message}", file=sys.stderr)


def _condition(st: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((x for x in st.get("conditions") or [] if x.get("type") == type_), {})


def _retrain_loop(cluster: Cluster, name: str, model: str, traffic: Traffic) -> None:
    """spec.retrain, then a shift in the traffic: drift → retrain Job → candidate → promoted."""
    assert cluster.state_dir is not None
    repo = _tuned_repo(model)
    _hub_expects_push(cluster.state_dir, repo)
    objects = {"apiVersion": "v1", "kind": "List", "items": trainer_objects(name, "hf_dev_write_token")}
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(objects))
    patch = {"spec": {"retrain": publish_retrain_spec(name, repo, cooldown="10m")}}
    cluster.kubectl("patch", "llmd", name, "-n", NAMESPACE, "--type=merge", "-p", json.dumps(patch))
    _say(
        f"{name}: spec.retrain runs manifests/samples/trainer/publish_revision.py, publishing to {repo}; "
        "waiting for the drift reference of what serves"
    )
    if not _wait_status(cluster, name, _reference_frozen, 300):
        _say("no drift reference was frozen; see status.drift and the operator log")
        return
    drifted = _condition(_status(cluster, name), "Drifted")
    _say(f"{name}: Drifted={drifted.get('status')} ({drifted.get('reason')}): {drifted.get('message')}")
    low, high = SHIFTED_PROMPT_WORDS
    _say(
        f"the users change: prompts of {low}-{high} words instead of 1, and they rate "
        f"{SHIFTED_DOWN:.0%} of the answers down instead of {DOWN:.0%}"
    )
    traffic.prompt_words = SHIFTED_PROMPT_WORDS
    traffic.down = SHIFTED_DOWN

    def pleased(st: dict[str, Any]) -> None:
        # The retrained model answers what the users now ask: from its canary on, they rate it
        # as they rated the model before the shift (else its own feedback would drift at once).
        if (st.get("candidate") or {}).get("state") == "Rolling" and traffic.down != DOWN:
            traffic.down = DOWN
            _say(f"the retrained model pleases the users: {DOWN:.0%} of the answers rated down again")

    if not _watch(cluster, name, _retrained_serves, 900, pleased):
        _say("the retrained candidate did not serve; see the status and the operator log")
        return
    st = _status(cluster, name)
    serving = st.get("serving") or {}
    _say(f"{name}: serving {serving.get('model')}@{serving.get('revision')} from {serving.get('origin')}")
    _say(f"{name}: lineage in status.history:")
    history = st.get("history") or []
    actions = [h["action"] for h in history]
    start = actions.index("DriftDetected") if "DriftDetected" in actions else 0
    for entry in history[start:]:
        print(f"    {entry['action']:<22} {entry.get('message', '')[:150]}", file=sys.stderr)


def _status(cluster: Cluster, name: str) -> dict[str, Any]:
    res = cluster.kubectl("get", "llmd", name, "-n", NAMESPACE, "-o", "json", check=False)
    return (json.loads(res.stdout).get("status") or {}) if res.returncode == 0 else {}


def _reference_frozen(st: dict[str, Any]) -> bool:
    """A verdict on what serves: its reference window is behind it (status.drift.reference is
    there from the start of the window, while it is being collected)."""
    reference = (st.get("drift") or {}).get("reference") or {}
    verdict = _condition(st, "Drifted").get("reason")
    return reference.get("revision") == st.get("servingRevision") and verdict == "NoDrift"


def _retrained_serves(st: dict[str, Any]) -> bool:
    return (st.get("candidate") or {}).get("state") == "Promoted" and st.get("phase") == Phase.SERVING


def _serves(revision: str) -> Callable[[dict[str, Any]], bool]:
    return lambda st: st.get("servingRevision") == revision and st.get("phase") == Phase.SERVING


def _wait_status(
    cluster: Cluster, name: str, done: Callable[[dict[str, Any]], bool], deadline: float
) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if done(_status(cluster, name)):
            return True
        time.sleep(1)  # a wait for people, not a test
    return False


def _watch(
    cluster: Cluster,
    name: str,
    done: Callable[[dict[str, Any]], bool],
    deadline: float,
    seen: Callable[[dict[str, Any]], None] | None = None,
) -> bool:
    """Print phase, canary, drift, retrain and candidate changes until ``done(status)`` (or the
    deadline); ``seen`` is shown every status read."""
    last = None
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        st = _status(cluster, name)
        canary = st.get("canary") or {}
        candidate = st.get("candidate") or {}
        retrain = st.get("retrain") or {}
        # Drift is news until a run starts; after that, the run and its candidate are.
        drifted = (
            _condition(st, "Drifted").get("status") if st.get("drift") and not retrain.get("job") else None
        )
        line = (
            st.get("phase"),
            st.get("servingRevision"),
            canary.get("weight"),
            canary.get("state"),
            candidate.get("state"),
            drifted,
            retrain.get("state"),
        )
        if line != last and st:
            detail = f"  canary {canary.get('weight')}% {canary.get('state')}" if canary else ""
            if drifted == "True":
                detail += "  Drifted"
            if retrain.get("job"):
                detail += f"  retrain {retrain.get('job')} {retrain.get('state')}"
            if candidate:
                detail += f"  candidate {candidate.get('state')}"
            print(
                f"[make dev] {name}: {st.get('phase'):<11} ready {st.get('ready')}  serving {st.get('servingRevision')}{detail}"
            )
            last = line
        if seen is not None:
            seen(st)
        if done(st):
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
        if not _watch(cluster, name, _serves(first), 600):
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
            users = Traffic(state, NAMESPACE, name, rate=20, engine=engine, feedback=RATED, down=DOWN)
            with users as traffic:
                patch = {"spec": {"model": {"revision": SECOND_REVISION}}}
                cluster.kubectl(
                    "patch", "llmd", name, "-n", NAMESPACE, "--type=merge", "-p", json.dumps(patch)
                )
                served = _watch(cluster, name, _serves(SECOND_REVISION), 600)
                spec = llmd["spec"]
                if served and not args.no_retrain and spec.get("evaluation") and spec.get("drift"):
                    _say(f"closing the loop on {name}: drift → retrain → gate → canary → promoted")
                    _retrain_loop(cluster, name, spec["model"]["id"], traffic)
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
