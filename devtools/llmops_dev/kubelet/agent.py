"""The fake kubelet: the data-plane half of the local cluster for the operator's own pods.

kwok makes pods on its fake nodes Running without running anything, except pods labelled
``llmops.io/deployment`` (see kwok-stages.yaml): the operator's server pods and Job pods. This
process runs those, as a kubelet would, for every such pod bound to a kwok node:

- a TGI or vLLM container → a simulator process (``llmops_dev.tgisim``, in that engine's mode) on a loopback port;
- an operator-image container → its command, run locally (``llmops ...``);
- any other image → ErrImagePull / ImagePullBackOff, as for an image that does not exist;

and writes their status (see pod.py). In the same process, one event loop:

- the fake storage provisioner (provisioner.py: default StorageClass ``standard``),
- the fake Hugging Face Hub (fakehub.py) that Job processes reach through ``HF_ENDPOINT``,
- the Service proxy (proxy.py) that Job processes reach through ``HTTP_PROXY``.

Run it as ``python -m llmops_dev.kubelet --kubeconfig PATH --state-dir DIR``. When it
is ready it writes ``<state-dir>/kubelet.json`` (pid, hub_url, proxy_url); ``kubelet.pid``
holds its PID while it runs. SIGTERM stops every process it started. State folder layout:

    pods/<ns>_<pod>.log, pods/<ns>_<pod>.json   container logs; PIDs and simulator ports
    behaviours/<revision>.json                  simulator behaviours (tests write them)
    volumes/pvc-<uid>/                          provisioned volumes
    hub.json                                    the fake Hub's controls
    endpoints.json, tgi-targets.json            for code on the host and for Prometheus
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from llmops.api.constants import LABEL_DEPLOYMENT
from llmops_dev.fakehub import FakeHub
from llmops_dev.kubelet.kube import ApiError, Informer, KubeClient
from llmops_dev.kubelet.pod import POD_MARKER, NodeEnv, PodWorker
from llmops_dev.kubelet.provisioner import Provisioner
from llmops_dev.kubelet.proxy import PodTable, ServiceProxy
from llmops_dev.processes import is_ours

__all__ = ["FAKE_NODE_ANNOTATION", "Kubelet", "main", "running_pid"]

log = logging.getLogger("llmops.kubelet")
Obj = dict[str, Any]

FAKE_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
_MODULE = "llmops_dev.kubelet"
# Pod IPs from the top half of the cluster's pod CIDR (10.244.0.0/16); kwok hands out the bottom.
_IP_POOL = ipaddress.ip_network("10.244.128.0/17")


def running_pid(state_dir: Path) -> int | None:
    """The PID of the kubelet running for ``state_dir``, if one is."""
    try:
        pid = int((state_dir / "kubelet.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_ours(pid, _MODULE) else None


class Kubelet:
    """The process: informers, pod workers, hub, proxy, provisioner."""

    def __init__(
        self,
        kubeconfig: str,
        state_dir: Path,
        *,
        hub_port: int = 0,
        proxy_port: int = 0,
        crash_backoff: float = 10.0,
    ) -> None:
        self.kubeconfig, self.state_dir = kubeconfig, state_dir
        self.hub_port, self.proxy_port, self.crash_backoff = hub_port, proxy_port, crash_backoff
        self.workers: dict[str, PodWorker] = {}
        self.ips: dict[str, str] = {}
        self.nodes: dict[str, tuple[bool, str]] = {}
        self.env: NodeEnv | None = None
        self._pending: dict[str, Obj] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- pods --------------------------------------------------------------------------------

    def _on_pod(self, event: str, pod: Obj) -> None:
        meta, spec = pod["metadata"], pod.get("spec", {})
        uid = meta["uid"]
        if event == "DELETED" or meta.get("deletionTimestamp"):
            worker = self.workers.pop(uid, None)
            self._pending.pop(uid, None)
            if worker is not None:
                log.info("pod %s/%s deleted: stopping it", meta["namespace"], meta["name"])
                self._spawn(self._stop_worker(uid, worker))
            return
        if uid in self.workers:
            self.workers[uid].update(pod)
        elif uid in self._pending:
            self._pending[uid] = pod
        elif spec.get("nodeName") and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            self._pending[uid] = pod
            self._spawn(self._admit(uid, spec["nodeName"]))

    async def _admit(self, uid: str, node_name: str) -> None:
        fake, host_ip = await self._node(node_name)
        pod = self._pending.pop(uid, None)
        if pod is None or not fake:
            return
        assert self.env is not None
        worker = PodWorker(self.env, pod, self._allocate_ip(pod), host_ip)
        self.workers[uid] = worker
        log.info("pod %s/%s on %s: starting it (pod IP %s)", worker.ns, worker.name, node_name, worker.pod_ip)
        worker.start()

    async def _stop_worker(self, uid: str, worker: PodWorker) -> None:
        await worker.stop()
        self.ips.pop(uid, None)

    async def _node(self, name: str) -> tuple[bool, str]:
        if name not in self.nodes:
            assert self.env is not None
            node = await self.env.kube.get(f"/api/v1/nodes/{name}") or {}
            key, value = FAKE_NODE_ANNOTATION
            fake = (node.get("metadata", {}).get("annotations") or {}).get(key) == value
            addrs = [
                a["address"]
                for a in node.get("status", {}).get("addresses") or []
                if a["type"] == "InternalIP"
            ]
            self.nodes[name] = (fake, addrs[0] if addrs else "127.0.0.1")
        return self.nodes[name]

    def _allocate_ip(self, pod: Obj) -> str:
        uid = pod["metadata"]["uid"]
        taken = set(self.ips.values())
        current: str | None = (pod.get("status") or {}).get("podIP")
        if current and current not in taken:
            self.ips[uid] = current
            return current
        for host in _IP_POOL.hosts():
            ip = str(host)
            if ip not in taken:
                self.ips[uid] = ip
                return ip
        raise RuntimeError("the fake kubelet's pod IP pool is exhausted")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("task failed: %r", t.exception())

        task.add_done_callback(done)

    # -- process -----------------------------------------------------------------------------

    def _kill_leftovers(self) -> None:
        """Stop processes a previous kubelet for this state folder left behind (by PID, checked)."""
        for record in (self.state_dir / "pods").glob("*.json"):
            try:
                data = json.loads(record.read_text())
            except (OSError, ValueError):
                continue
            for container in data.get("containers", {}).values():
                pid = int(container.get("pid") or 0)
                if pid and _has_marker(pid, data.get("uid", "")):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
                    log.info("killed leftover pid %d of %s", pid, record.stem)
            record.unlink(missing_ok=True)

    async def run(self) -> None:
        for sub in ("pods", "behaviours", "volumes"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self._kill_leftovers()
        (self.state_dir / "kubelet.json").unlink(missing_ok=True)
        (self.state_dir / "kubelet.pid").write_text(str(os.getpid()))
        kube = KubeClient(self.kubeconfig)
        http = aiohttp.ClientSession()
        hub = FakeHub(self.state_dir)
        table = PodTable()
        proxy = ServiceProxy(kube, self.state_dir, table)
        provisioner = Provisioner(kube, self.state_dir)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        background: list[asyncio.Task[Any]] = []
        try:
            hub_url = await hub.start(port=self.hub_port)
            proxy_url = await proxy.start(port=self.proxy_port)
            self.env = NodeEnv(
                kube, self.state_dir, hub_url, proxy_url, table, http, crash_backoff=self.crash_backoff
            )
            await _retry(provisioner.ensure_storage_class, stopping)
            pods = Informer(kube, "/api/v1/pods", self._on_pod, label_selector=LABEL_DEPLOYMENT, name="pods")
            background = [asyncio.create_task(coro) for coro in (pods.run(), proxy.run(), provisioner.run())]
            informers = (pods, proxy.services, proxy.slices, provisioner.claims, provisioner.pvs)
            synced = asyncio.ensure_future(asyncio.gather(*(i.synced.wait() for i in informers)))
            stop = asyncio.create_task(stopping.wait())
            first: list[asyncio.Future[Any]] = [synced, stop]
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            synced.cancel()
            stop.cancel()
            if stopping.is_set():
                return
            ready = {"pid": os.getpid(), "hub_url": hub_url, "cdn_url": hub.cdn_url, "proxy_url": proxy_url}
            (self.state_dir / "kubelet.json").write_text(json.dumps(ready, indent=2))
            log.info("ready: hub %s, proxy %s, state %s", hub_url, proxy_url, self.state_dir)
            await stopping.wait()
            log.info("stopping")
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*(w.stop() for w in self.workers.values()), return_exceptions=True)
            await proxy.stop()
            await hub.stop()
            await http.close()
            await kube.close()
            (self.state_dir / "kubelet.json").unlink(missing_ok=True)
            (self.state_dir / "kubelet.pid").unlink(missing_ok=True)


async def _retry(call: Any, stopping: asyncio.Event) -> None:
    delay = 0.5
    while not stopping.is_set():
        try:
            await call()
            return
        except ApiError as exc:
            log.warning("%s; retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)


def _has_marker(pid: int, uid: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{POD_MARKER}={uid}".encode() in environ.split(b"\0")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {_MODULE}", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--hub-port", type=int, default=0, help="the fake Hub's port (default: a free one)")
    parser.add_argument(
        "--proxy-port", type=int, default=0, help="the Service proxy's port (default: a free one)"
    )
    parser.add_argument(
        "--crash-backoff",
        type=float,
        default=10.0,
        help="first CrashLoopBackOff delay in seconds (kubelet: 10)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state_dir = args.state_dir.resolve()
    other = running_pid(state_dir)
    if other is not None and other != os.getpid():
        print(f"a fake kubelet already runs for {state_dir} (pid {other})", file=sys.stderr)
        return 1
    kubelet = Kubelet(
        args.kubeconfig,
        state_dir,
        hub_port=args.hub_port,
        proxy_port=args.proxy_port,
        crash_backoff=args.crash_backoff,
    )
    asyncio.run(kubelet.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
