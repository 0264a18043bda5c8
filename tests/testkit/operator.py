"""Running the operator as a real process against the test cluster.

The operator runs as ``llmops run`` in a subprocess (as it would in its Pod), so that tests
can kill and restart it. Its log goes to a file; tests wait for log lines or, better, for
status conditions.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmops.api.constants import DEFAULT_TGI_IMAGE, DEFAULT_VLLM_IMAGE
from llmops_dev.cluster import Cluster
from llmops_dev.kubelet.proxy import pod_network_env
from llmops_dev.processes import free_port
from testkit import get_json, wait_for

CRD = Path(__file__).resolve().parents[2] / "crds" / "llmops.io_llmdeployments.yaml"
ENGINES = ("tgi", "vllm")
"""The engines every core scenario runs on (the `engine` fixture of tests/integration)."""
SERVER_IMAGES = {"tgi": DEFAULT_TGI_IMAGE, "vllm": DEFAULT_VLLM_IMAGE}
"""Each engine's default server image."""


def install_crd(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))

    # Polled rather than `kubectl wait`: on a loaded machine that exited 1 within seconds now and
    # then, right after the apply (seen at session start), instead of waiting out its timeout.
    def established() -> bool:
        res = cluster.kubectl(
            "get",
            "crd/llmdeployments.llmops.io",
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Established")].status}',
            check=False,
        )
        return res.returncode == 0 and res.stdout.strip() == "True"

    wait_for("the LLMDeployment CRD to be Established", established, timeout=60)


class OperatorProcess:
    """``llmops run`` against the cluster; restartable."""

    def __init__(
        self,
        cluster: Cluster,
        log_dir: Path,
        env: dict[str, str] | None = None,
        *,
        namespaces: list[str] | None = None,
        peering: str | None = None,
        priority: int | None = None,
    ) -> None:
        self.cluster = cluster
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = log_dir / "operator.log"
        self.env = dict(env or {})
        self.scope = [a for ns in namespaces or [] for a in ("-n", ns)] or ["--all-namespaces"]
        self.scope += ["--peering", peering] if peering else []
        if priority is not None:
            self.env["LLMOPS_PEERING_PRIORITY"] = str(priority)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> None:
        self.port = free_port()
        # The pod network as the operator sees it in a cluster (a download's progress endpoint).
        pods = pod_network_env(self.cluster.state_dir) if self.cluster.state_dir is not None else {}
        env = {**os.environ, **pods, **self.env, "KUBECONFIG": str(self.cluster.kubeconfig)}
        llmops = Path(sys.executable).with_name("llmops")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(llmops), "run", *self.scope, "--liveness-port", str(self.port), "--verbose"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        wait_for("operator liveness endpoint", self._alive, 60)

    def _alive(self) -> bool:
        import urllib.request

        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"operator exited with {self.proc.returncode}; log {self.log}:\n{self.tail()}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop it abruptly (SIGKILL by default, as an OOM kill or node loss would)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def restart(self) -> None:
        self.kill()
        self.start()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_offset(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def log_since(self, offset: int) -> str:
        with self.log.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")


def llmd(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return get_json(cluster, "llmdeployment", name, "-n", namespace)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def wait_condition(
    cluster: Cluster,
    namespace: str,
    name: str,
    type_: str,
    status: str,
    reason: str | None = None,
    timeout: float = 90,
) -> dict[str, Any]:
    """Wait until the LLMDeployment's condition has ``status`` (and ``reason``); return the object."""

    def probe() -> dict[str, Any] | None:
        obj = llmd(cluster, namespace, name)
        cond = condition(obj, type_)
        # Only a condition computed for the current spec counts, not one left from before an edit.
        current = cond.get("observedGeneration") == (obj.get("metadata") or {}).get("generation")
        if current and cond.get("status") == status and (reason is None or cond.get("reason") == reason):
            return obj
        return None

    try:
        return wait_for(
            f"{name}: {type_}={status}" + (f" ({reason})" if reason else ""), probe, timeout, 0.25
        )
    except AssertionError as exc:
        status_now = json.dumps((llmd(cluster, namespace, name).get("status") or {}), indent=1)[:3000]
        raise AssertionError(f"{exc}\nstatus now: {status_now}") from None


def wait_event(
    cluster: Cluster,
    namespace: str,
    name: str,
    reason: str,
    type_: str | None = None,
    contains: str = "",
    timeout: float = 15,
) -> dict[str, Any]:
    """Wait for an Event about ``name`` with ``reason`` (of ``type_``, its message containing
    ``contains``); return it. The operator posts its Events after the status write they go with,
    as Kubernetes' own controllers record theirs after the fact, so a test that has just seen the
    status must still wait for the Event."""

    def probe() -> dict[str, Any] | None:
        items = get_json(
            cluster, "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}"
        ).get("items", [])
        return next(
            (
                e
                for e in items
                if e.get("reason") == reason
                and type_ in (None, e.get("type"))
                and contains in (e.get("message") or "")
            ),
            None,
        )

    return wait_for(f"{name}: an Event {type_ or ''} {reason} {contains!r}", probe, timeout, 0.25)


def deployment_settled(cluster: Cluster, namespace: str, name: str) -> bool:
    """The Deployment has observed its last change and runs exactly its replicas, all updated and
    ready, none terminating: until then the Deployment controller still writes its status, and the
    LLMDeployment's status, which follows it, still moves. (A quiet pass before then says nothing
    about the next one.)"""
    dep = get_json(cluster, "deployment", name, "-n", namespace)
    st = dep.get("status") or {}
    counts = {st.get(k) for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")}
    return (
        st.get("observedGeneration") == dep["metadata"]["generation"]
        and counts == {dep["spec"]["replicas"]}
        and not st.get("terminatingReplicas")
    )


def sample(name: str, revision: str, **spec: Any) -> str:
    """A small LLMDeployment as JSON for ``kubectl apply``."""
    body: dict[str, Any] = {
        "apiVersion": "llmops.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"id": "sim-org/tiny-chat", "revision": revision},
            "resources": {"gpu": {"count": 1}},
            "replicas": 1,
            "cache": {"size": "1Gi"},
        },
    }
    for key, value in spec.items():
        body["spec"][key] = value
    return json.dumps(body)


def on_engine(engine: str) -> dict[str, Any]:
    """The spec fields that select ``engine`` for ``sample``: none for TGI, the default."""
    return {} if engine == "tgi" else {"engine": {"type": engine}}


def children(cluster: Cluster, namespace: str, name: str) -> Iterator[dict[str, Any]]:
    kinds = "deployments,services,persistentvolumeclaims,jobs,poddisruptionbudgets,networkpolicies"
    yield from get_json(cluster, kinds, "-n", namespace, "-l", f"llmops.io/deployment={name}").get(
        "items", []
    )


def configure_hub(cluster: Cluster, **settings: Any) -> None:
    """Merge ``settings`` into the simulated Hub's hub.json (see llmops_dev.fakehub)."""
    assert cluster.state_dir is not None, "the simulated Hub exists only on the local cluster"
    path = cluster.state_dir / "hub.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    for key, value in settings.items():
        if isinstance(value, list):
            current[key] = sorted(set(current.get(key, [])) | set(value))
        elif isinstance(value, dict):
            current[key] = {**current.get(key, {}), **value}
        else:
            current[key] = value
    path.write_text(json.dumps(current))


def set_behaviour(cluster: Cluster, revision: str, **behaviour: Any) -> None:
    """How the TGI simulators of ``revision`` behave (see llmops_dev.tgisim.behaviour)."""
    assert cluster.state_dir is not None, "the TGI simulators exist only on the local cluster"
    folder = cluster.state_dir / "behaviours"
    folder.mkdir(exist_ok=True)
    (folder / f"{revision}.json").write_text(json.dumps(behaviour))
