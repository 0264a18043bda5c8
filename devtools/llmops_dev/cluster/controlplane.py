"""The local Kubernetes cluster: etcd, kube-apiserver, controller-manager, scheduler, kwok.

Everything listens on loopback on free ports. Start order and readiness:

    etcd (/health) → kube-apiserver (/readyz, RBAC + Node authz, PodSecurity admission)
    → kube-controller-manager and kube-scheduler (/healthz) → kwok → nodes Ready

The fake nodes are two GPU nodes (8 ``nvidia.com/gpu`` each, labelled as H100s) and one
CPU-only node. Each component logs to ``<state>/logs/<component>.log``; ``state.json``
records PIDs and ports so that another process (``make cluster-down``) can stop exactly what
was started. A cluster can also be *external*: any kubeconfig (kind, k3d, a real cluster),
in which case nothing is started or stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmops_dev.cluster.build import binaries
from llmops_dev.cluster.nodes import NODES
from llmops_dev.cluster.pki import Pki, generate_pki
from llmops_dev.ports import PortRange
from llmops_dev.processes import ClusterError, Proc, port_in_use, stop_pid, wait_until

__all__ = ["Cluster", "ClusterError", "ToolFailed", "default_state_dir"]

SERVICE_CIDR = "10.0.0.0/16"
"""Room for 65,534 Services (a /24 held 254, fewer than `make bench-scale SCALE=1000` creates);
the apiserver and the controller-manager get the same range. Its first address, 10.0.0.1, is the
`kubernetes` Service, in the serving certificate's SANs (pki.py)."""
POD_CIDR = "10.244.0.0/16"
_STAGES = Path(__file__).with_name("kwok-stages.yaml")
KUBELET_MODULE = "llmops_dev.kubelet"
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  # Every watch, with its URL (selectors included): how tests see what clients watch.
  - level: Metadata
    verbs: [watch]
  - level: None
"""
"""The apiserver's audit policy: a line per watch in logs/audit.log (a few per client), nothing else."""

COMPONENT_PORTS = ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok")


def default_state_dir() -> Path:
    """Where `make cluster-up` keeps the cluster: ``$LLMOPS_STATE`` or the repo's ``.dev/cluster``."""
    if env := os.environ.get("LLMOPS_STATE"):
        return Path(env)
    repo = Path(os.environ.get("LLMOPS_REPO", Path.cwd()))
    return repo / ".dev" / "cluster"


class ToolFailed(subprocess.CalledProcessError):
    """A kubectl or helm run that failed, its message ending with what the tool printed on
    stderr (CalledProcessError's names only the command and the exit status, so a failed test
    said that kubectl failed, never why)."""

    def __str__(self) -> str:
        said = (self.stderr or "").strip() or (self.stdout or "").strip()
        return f"{super().__str__()}\n{said[-2000:]}" if said else super().__str__()


@dataclass
class Cluster:
    """A running cluster (started here, attached to, or external) and its client tools."""

    kubeconfig: Path
    bin_dir: Path
    state_dir: Path | None = None
    procs: list[Proc] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    external: bool = False

    # ---------------------------------------------------------------- tools
    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; on failure the error carries stderr."""
        return self._run(self.bin_dir / "kubectl", args, input, check, timeout)

    def helm(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self._run(self.bin_dir / "helm", args, None, check, timeout)

    def _run(
        self, tool: Path, args: Sequence[str], input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        if tool.name == "helm" and self.state_dir is not None:
            # Keep helm's caches and repository config out of the user's home.
            for var, sub in (
                ("HELM_CACHE_HOME", "cache"),
                ("HELM_CONFIG_HOME", "config"),
                ("HELM_DATA_HOME", "data"),
            ):
                env[var] = str(self.state_dir / "helm" / sub)
        res = subprocess.run(
            [str(tool), *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and res.returncode != 0:
            raise ToolFailed(res.returncode, res.args, res.stdout, res.stderr)
        return res

    def env(self) -> dict[str, str]:
        """Environment for tools run against this cluster."""
        return {"KUBECONFIG": str(self.kubeconfig), "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '')}"}

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def for_kubeconfig(cls, kubeconfig: Path) -> Cluster:
        """An existing cluster: nothing is started or stopped; tools still come from our build."""
        if not kubeconfig.is_file():
            raise ClusterError(f"kubeconfig {kubeconfig} does not exist")
        return cls(kubeconfig=kubeconfig, bin_dir=binaries(), external=True)

    @classmethod
    def attach(cls, state_dir: Path) -> Cluster:
        """The cluster described by ``state_dir/state.json`` (started by another process)."""
        state = json.loads((state_dir / "state.json").read_text())
        return cls(
            kubeconfig=Path(state["kubeconfig"]),
            bin_dir=Path(state["bin_dir"]),
            state_dir=state_dir,
            ports=state["ports"],
        )

    @classmethod
    def start(
        cls,
        state_dir: Path,
        *,
        deadline_s: float = 90.0,
        log: Any = None,
        ports: dict[str, int] | None = None,
    ) -> Cluster:
        """Start a fresh cluster in ``state_dir`` (wiped first). Stops what it started on failure.

        ``ports`` pins some components' ports (keys as in ``COMPONENT_PORTS``); the rest are free ports.
        """
        say = log or (lambda msg: None)
        bin_dir = binaries(progress=say)
        if (state_dir / "state.json").exists():
            stop_state(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
        (state_dir / "logs").mkdir(parents=True)
        pki = generate_pki(state_dir / "pki")
        cluster = cls(kubeconfig=state_dir / "kubeconfig", bin_dir=bin_dir, state_dir=state_dir)
        try:
            cluster._start_components(pki, deadline_s, say, ports or {})
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _start_components(
        self, pki: Pki, deadline_s: float, say: Callable[[str], None], pinned: dict[str, int]
    ) -> None:
        """etcd, then the apiserver, then the controllers, the nodes and the fake kubelet, each
        waited for before the next (the order in which they depend on each other)."""
        self.ports = _claim_ports(pinned)
        self._write_kubeconfig(pki, self.ports["apiserver"])
        run = _Startup(pki, deadline_s, say, time.monotonic())
        self._start_etcd(run)
        self._start_apiserver(run)
        self._start_controllers(run)
        self._register_nodes(run)
        self._start_kubelet(run)

    def _etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['etcd']}"

    def _start_etcd(self, run: _Startup) -> None:
        assert self.state_dir is not None
        etcd_url, peer_url = self._etcd_url(), f"http://127.0.0.1:{self.ports['etcd-peer']}"
        self._spawn(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=default",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",  # a throwaway test store: durability buys nothing here
                "--quota-backend-bytes=2147483648",
                "--log-level=warn",
            ],
        )
        wait_until(
            "etcd /health", lambda: b'"true"' in _http_get(f"{etcd_url}/health"), run.deadline_s, self.procs
        )
        run.say(f"etcd ready ({run.elapsed()})")

    def _start_apiserver(self, run: _Startup) -> None:
        sd, pki = self.state_dir, run.pki
        assert sd is not None
        (sd / "audit-policy.yaml").write_text(AUDIT_POLICY)
        self._spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers={self._etcd_url()}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports['apiserver']}",
                f"--tls-cert-file={pki.server_crt}",
                f"--tls-private-key-file={pki.server_key}",
                f"--client-ca-file={pki.ca_crt}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction,PodSecurity",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--enable-priority-and-fairness=false",  # one user; saves CPU and memory
                "--profiling=false",
                f"--audit-policy-file={sd / 'audit-policy.yaml'}",
                f"--audit-log-path={sd / 'logs' / 'audit.log'}",
                "--audit-log-maxsize=20",
                "--audit-log-maxbackup=2",
                f"--cert-dir={sd / 'pki'}",
                "--v=1",
            ],
        )
        url = f"https://127.0.0.1:{self.ports['apiserver']}/readyz"
        wait_until(
            "kube-apiserver /readyz", _answers_ok(url, self.ssl_context(pki)), run.deadline_s, self.procs
        )
        run.say(f"kube-apiserver ready ({run.elapsed()})")

    def _start_controllers(self, run: _Startup) -> None:
        """The controller-manager, the scheduler and kwok (the fake nodes' kubelet half)."""
        pki, b = run.pki, self.bin_dir
        common = [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
        ]
        self._spawn(
            "kube-controller-manager",
            [
                str(b / "kube-controller-manager"),
                *common,
                f"--secure-port={self.ports['controller-manager']}",
                f"--root-ca-file={pki.ca_crt}",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--cluster-signing-cert-file={pki.ca_crt}",
                f"--cluster-signing-key-file={pki.ca_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--use-service-account-credentials=false",
                "--kube-api-qps=100",
                "--kube-api-burst=200",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [str(b / "kube-scheduler"), *common, f"--secure-port={self.ports['scheduler']}", "--v=1"],
        )
        self._spawn(
            "kwok",
            [
                str(b / "kwok"),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={_STAGES}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--cidr={POD_CIDR}",
                "--node-ip=127.0.0.1",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{self.ports['kwok']}",
            ],
        )
        self._save_state()
        ctx = self.ssl_context(pki)
        for comp in ("controller-manager", "scheduler"):
            url = f"https://127.0.0.1:{self.ports[comp]}/healthz"
            wait_until(f"kube-{comp} /healthz", _answers_ok(url, ctx), run.deadline_s, self.procs)
        run.say(f"controller-manager and scheduler healthy ({run.elapsed()})")

    def _register_nodes(self, run: _Startup) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(NODES))
        wait_until("3 nodes Ready", self._nodes_ready, run.deadline_s, self.procs, interval_s=0.2)
        # The ServiceAccount admission plugin refuses pods until the controller-manager has
        # created the namespace's "default" ServiceAccount; tests start right after this.
        wait_until("default ServiceAccount", self._default_sa, run.deadline_s, self.procs, interval_s=0.2)
        run.say(f"nodes Ready ({run.elapsed()})")

    def _start_kubelet(self, run: _Startup) -> None:
        """The kubelet half for the operator's own pods: TGI simulators, Job commands, storage,
        the simulated Hub and the Service proxy (see kubelet.py)."""
        sd = self.state_dir
        assert sd is not None
        self._spawn(
            "kubelet",
            [sys.executable, "-m", KUBELET_MODULE, f"--kubeconfig={self.kubeconfig}", f"--state-dir={sd}"],
        )
        kubelet_pid = self.procs[-1].pid

        def kubelet_ready() -> bool:
            return bool(json.loads((sd / "kubelet.json").read_text())["pid"] == kubelet_pid)

        wait_until("fake kubelet", kubelet_ready, run.deadline_s, self.procs)
        run.say(f"fake kubelet ready ({run.elapsed()})")

    def restart(self, component: str, *, deadline_s: float = 90.0) -> float:
        """Kill one component (SIGKILL) and start it again in place: the same command line, so the
        same ports, certificates and etcd data. Returns the seconds until it was healthy again.

        ``component`` is a process name: etcd, kube-apiserver, kube-controller-manager,
        kube-scheduler, kwok or kubelet.
        """
        assert self.state_dir is not None, "only a cluster started here can restart its parts"
        index = next(i for i, p in enumerate(self.procs) if p.name == component)
        old = self.procs[index]
        started = time.monotonic()
        old.popen.kill()
        old.popen.wait(timeout=30)
        self.procs[index] = Proc.start(component, list(old.popen.args), old.log)  # type: ignore[arg-type]
        self._save_state()
        wait_until(f"{component} healthy again", self._healthy(component), deadline_s, self.procs)
        return time.monotonic() - started

    def _healthy(self, component: str) -> Any:
        """A probe for one component's health endpoint (the apiserver's /readyz also needs etcd)."""
        ctx = self.ssl_context()
        urls = {
            "etcd": (f"http://127.0.0.1:{self.ports['etcd']}/health", b'"true"'),
            "kube-apiserver": (f"https://127.0.0.1:{self.ports['apiserver']}/readyz", b"ok"),
            "kube-controller-manager": (
                f"https://127.0.0.1:{self.ports['controller-manager']}/healthz",
                b"ok",
            ),
            "kube-scheduler": (f"https://127.0.0.1:{self.ports['scheduler']}/healthz", b"ok"),
        }
        if component not in urls:
            return lambda: True
        url, body = urls[component]
        if component == "etcd":
            apiserver = urls["kube-apiserver"][0]
            # etcd is back for the cluster once the apiserver, which reconnects to it, is ready too.
            return lambda: body in _http_get(url) and _http_get(apiserver, ctx) == b"ok"
        return lambda: body in _http_get(url, ctx) if url.startswith("https") else body in _http_get(url)

    def _spawn(self, name: str, argv: list[str]) -> None:
        assert self.state_dir is not None
        self.procs.append(Proc.start(name, argv, self.state_dir / "logs" / f"{name}.log"))
        self._save_state()

    def _nodes_ready(self) -> bool:
        res = self.kubectl("get", "nodes", "-o", "json", check=False, timeout=10)
        if res.returncode != 0:
            return False
        items = json.loads(res.stdout)["items"]
        ready = [
            n
            for n in items
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        ]
        return len(ready) >= len(NODES)

    def _default_sa(self) -> bool:
        return self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0

    def stop(self) -> None:
        """Stop every process this cluster started, newest first. Idempotent."""
        if self.external:
            return
        if self.state_dir is not None and (self.state_dir / "state.json").exists():
            stop_state(self.state_dir)
        for p in reversed(self.procs):
            stop_pid(p.pid, _marker(p.name, str(self.bin_dir)))
            if p.popen.poll() is None:
                p.popen.kill()
            p.popen.wait(timeout=10)
        self.procs.clear()

    # -------------------------------------------------------------- helpers
    def ssl_context(self, pki: Pki | None = None) -> ssl.SSLContext:
        assert self.state_dir is not None
        pki_dir = self.state_dir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
        ctx.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
        # controller-manager and scheduler serve self-signed certificates from their own CA.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _write_kubeconfig(self, pki: Pki, port: int) -> None:
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "llmops-dev",
                    "cluster": {
                        "server": f"https://127.0.0.1:{port}",
                        "certificate-authority": str(pki.ca_crt),
                    },
                }
            ],
            "users": [
                {
                    "name": "llmops-admin",
                    "user": {"client-certificate": str(pki.admin_crt), "client-key": str(pki.admin_key)},
                }
            ],
            "contexts": [
                {"name": "llmops-dev", "context": {"cluster": "llmops-dev", "user": "llmops-admin"}}
            ],
            "current-context": "llmops-dev",
        }
        self.kubeconfig.write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def _save_state(self) -> None:
        assert self.state_dir is not None
        state = {
            "kubeconfig": str(self.kubeconfig),
            "bin_dir": str(self.bin_dir),
            "ports": self.ports,
            "pids": {p.name: p.pid for p in self.procs},
        }
        (self.state_dir / "state.json").write_text(json.dumps(state, indent=2))


def stop_state(state_dir: Path) -> list[str]:
    """Stop the processes recorded in ``state_dir/state.json``; returns their names."""
    path = state_dir / "state.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    stopped = []
    for name, pid in reversed(list(state.get("pids", {}).items())):
        stop_pid(int(pid), _marker(name, state["bin_dir"]))
        stopped.append(name)
    path.unlink(missing_ok=True)
    return stopped


def _marker(component: str, bin_dir: str) -> str:
    """What the component's command line contains, to make sure a PID is still ours."""
    return KUBELET_MODULE if component == "kubelet" else bin_dir


def _http_get(url: str, ctx: ssl.SSLContext | None = None) -> bytes:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
            return bytes(resp.read())
    except OSError:
        return b""


@dataclass(frozen=True)
class _Startup:
    """What every step of starting the control plane needs."""

    pki: Pki
    deadline_s: float
    """Seconds each component has to become ready."""
    say: Callable[[str], None]
    """Progress lines for the person waiting."""
    t0: float
    """time.monotonic() at the start, for the progress lines."""

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.t0:.1f}s"


_COMPONENT_PORT_RANGE = PortRange()
"""Below the kernel's ephemeral range (llmops_dev.ports): a port asked of the kernel (bind to 0)
could be handed to an outgoing connection before the component binds it. Two clusters started at
once (one per test worker) met that: kwok failed with 'address already in use', and every test of
that worker with it."""


def _claim_ports(pinned: dict[str, int]) -> dict[str, int]:
    """A port per component: the pinned ones, else free ones; a pinned port in use is an error."""
    ports = {n: pinned.get(n) or _COMPONENT_PORT_RANGE.take() for n in COMPONENT_PORTS}
    for name, port in ports.items():
        if port_in_use(port):
            raise ClusterError(f"{name}: port {port} on 127.0.0.1 is already in use; free it or pick another")
    return ports


def _answers_ok(url: str, ctx: ssl.SSLContext | None) -> Callable[[], bool]:
    """A readiness probe for wait_until: does ``url`` answer "ok"?"""
    return lambda: _http_get(url, ctx) == b"ok"
