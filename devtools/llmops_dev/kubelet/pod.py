"""One pod on the fake kubelet: its volumes, its containers as local processes, its status.

A TGI or vLLM container becomes a simulator process (in that engine's mode, its arguments mapped
back) on a free loopback port; a container of the
operator image runs its command locally, the gateway (`llmops gateway`) and the capture store
(`llmops capture-store`, its PVC a real folder) included. Every pod has its own "localhost":
each port a container listens on (the simulator's, the gateway's and the store's two) gets a
free host port, and the gateway's `--upstream http://127.0.0.1:8080` is pointed at the host
port behind the pod's 8080. Ports are published at the pod IP (for Services, probes and scrapes)
unless the engine binds loopback only (TGI's HOSTNAME or vLLM's --host 127.0.0.1, as behind
the gateway). Per
container, as the kubelet does:

    image  → ErrImagePull / ImagePullBackOff (with back-off) for an image we cannot run
    env    → CreateContainerConfigError with the kubelet's message while a Secret/ConfigMap/key is missing
    run    → running; started once its startupProbe answers and ready once its readinessProbe
             answers (HTTP GET on a published port; TGI without one: /health), else at once;
             killed when its startupProbe has not answered within its budget
    exit   → terminated {exitCode, reason, message = termination message}; restartPolicy decides:
             restart (CrashLoopBackOff back-off 10s, 20s, ... 5m) or stay terminated

Status goes to the pods/status subresource as a JSON merge patch, written by one task per
pod and only when it changed. Processes run in their own session and are stopped by process
group (TERM, then KILL) when the pod is deleted. ``<state-dir>/pods/<ns>_<pod>.json`` records
their PIDs and simulator ports; logs go to ``<state-dir>/pods/<ns>_<pod>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from llmops_dev.kubelet.kube import ApiError, KubeClient
from llmops_dev.kubelet.proxy import PodEntry, PodTable
from llmops_dev.kubelet.spec import (
    IMAGE_ENTRYPOINT,
    IMAGE_ENV,
    SERVERS,
    VLLM,
    ConfigError,
    Mounts,
    expand,
    http_probe,
    listen_port,
    pull_error,
    referenced_objects,
    resolve_env,
    runtime_for,
)
from llmops_dev.kubelet.status import ContainerModel, build_status, now, terminated, waiting
from llmops_dev.kubelet.volumes import VolumeError, container_mounts, prepare_volumes, refresh_volumes
from llmops_dev.ports import PortRange

__all__ = ["POD_MARKER", "NodeEnv", "PodWorker", "go_duration"]

log = logging.getLogger("llmops.kubelet.pod")
Obj = dict[str, Any]

POD_MARKER = "LLMOPS_FAKE_KUBELET_POD"
"""Set in every process's environment to the pod uid, so a restarted kubelet can find its leftovers."""
_TERMINATION_LOG = "/dev/termination-log"
_LOG_TAIL_LINES, _LOG_TAIL_BYTES = 80, 2048  # the kubelet's FallbackToLogsOnError limits
_LOST = "the container's process was lost when the fake kubelet restarted"
_VOLUME_REFRESH_SECONDS = 2.0
"""How often mounted Secrets and ConfigMaps are compared with the API (the real kubelet: up to
about a minute). One GET per such volume per pod each time: a shared watch would be cheaper."""
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_GATEWAY_PORT_FLAGS = ("--port", "--health-port")
_GATEWAY_POD_LOCAL_URL_FLAGS = ("--upstream",)
"""The gateway's flags whose loopback URL is the pod's own (the engine); other URLs it is given
(the capture sink's) lead out of the pod and are left alone."""
_DOWNLOAD_PORT_FLAGS = ("--progress-port",)
"""`llmops download` answers GET /progress on this port (the operator reads it while Caching)."""
_LOCAL_URL = re.compile(r"\b(?:127\.0\.0\.1|localhost):([0-9]+)\b")
_METRICS_PORT_NAME = "metrics"
"""A gateway port with this name is the pod's scrape target (render.gateway.HEALTH_PORT_NAME)."""


@dataclass
class NodeEnv:
    """What every pod worker shares: the API, the state folder, the fake Hub, the proxy."""

    kube: KubeClient
    state_dir: Path
    hub_url: str
    proxy_url: str
    table: PodTable
    http: aiohttp.ClientSession
    crash_backoff: float = 10.0
    max_backoff: float = 300.0
    retry: float = 2.0
    ports: PortRange = field(default_factory=PortRange)
    """Where the pods' host ports come from: outside the kernel's ephemeral range (llmops_dev.ports)."""

    @property
    def pods_dir(self) -> Path:
        return self.state_dir / "pods"

    @property
    def behaviours_dir(self) -> Path:
        return self.state_dir / "behaviours"


def go_duration(seconds: float) -> str:
    """A duration as Go prints it in kubelet messages: 10s, 1m20s, 5m0s."""
    s = int(seconds)
    return f"{s // 60}m{s % 60}s" if s >= 60 else f"{s}s"


class _StartError(Exception):
    pass


class PodWorker:
    """Runs one pod until it is deleted."""

    def __init__(self, env: NodeEnv, pod: Obj, pod_ip: str, host_ip: str) -> None:
        self.env, self.pod = env, pod
        meta, spec = pod["metadata"], pod["spec"]
        self.ns, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.slug = f"{self.ns}_{self.name}"
        self.dir = env.pods_dir / f"{self.slug}_{self.uid[:8]}"
        self.pod_ip, self.host_ip = pod_ip, host_ip
        self.policy = spec.get("restartPolicy", "Always")
        old = {c["name"]: c for c in (pod.get("status") or {}).get("containerStatuses") or []}
        self.resumed = any("running" in (c.get("state") or {}) for c in old.values())
        self.init = [
            ContainerModel(c["name"], c["image"], init=True) for c in spec.get("initContainers") or []
        ]
        self.main = [ContainerModel(c["name"], c["image"]) for c in spec.get("containers") or []]
        for m in self.main:
            m.restart_count = int(old.get(m.name, {}).get("restartCount", 0))
        self.start_time = (pod.get("status") or {}).get("startTime") or now()
        self.sandbox_ready = False
        self.reason: str | None = None
        self.message: str | None = None
        self.phase: str | None = None
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.sim_ports: dict[str, int] = {}
        self.host_ports: dict[int, int] = {}
        """The pod's own port → the host port behind it (the pod's "localhost")."""
        self.published: dict[int, str] = {}
        """Ports reachable at the pod IP → the container listening there."""
        self._volume_files: dict[str, dict[str, bytes]] = {}
        self._dirty = asyncio.Event()
        self._written: Obj | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._main(), name=f"pod {self.slug}"),
            asyncio.create_task(self._write_loop(), name=f"status {self.slug}"),
        ]

    def update(self, pod: Obj) -> None:
        before = _gate_conditions(self.pod)
        self.pod = pod
        # Someone else (the operator) set a readiness-gate condition: Ready must be recomputed.
        if _gate_conditions(pod) != before:
            self._changed()

    async def stop(self) -> None:
        """Kill the pod's processes, forget its endpoints and folders (the pod is gone)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._kill_all()
        self.env.table.remove_pod(self.uid)
        (self.env.pods_dir / f"{self.slug}.json").unlink(missing_ok=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _changed(self) -> None:
        self._dirty.set()

    def _record(self) -> None:
        """``<state-dir>/pods/<ns>_<pod>.json``: PIDs and simulator ports (tests read it)."""
        data = {
            "uid": self.uid,
            "podIP": self.pod_ip,
            "containers": {
                name: {"pid": p.pid, "port": self.sim_ports.get(name)} for name, p in self.procs.items()
            },
            "ports": {str(k): v for k, v in sorted(self.host_ports.items())},
        }
        path = self.env.pods_dir / f"{self.slug}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, path)

    async def _main(self) -> None:
        self._changed()
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        try:
            async with asyncio.timeout(float(deadline) if deadline else None):
                await self._run_pod()
        except TimeoutError:
            await self._kill_all()
            for m in self.main:
                if m.running or "waiting" in m.state:
                    started = (m.state.get("running") or {}).get("startedAt", self.start_time)
                    m.state, m.ready = terminated(137, started, container_id=m.container_id), False
            self.phase, self.reason = "Failed", "DeadlineExceeded"
            self.message = "Pod was active on the node longer than the specified deadline"
            log.info("%s: active deadline of %ss exceeded", self.slug, deadline)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: the pod worker failed", self.slug)
        finally:
            self._changed()

    async def _run_pod(self) -> None:
        volumes = await self._volumes()
        self._tasks.append(asyncio.create_task(self._refresh_volumes(), name=f"volumes {self.slug}"))
        self.sandbox_ready = True
        self._changed()
        if self.resumed and self.policy == "Never":
            # The processes died with the previous kubelet, and this pod may not restart them.
            for m in self.main:
                m.state = terminated(137, self.start_time, message=_LOST)
            log.info("%s: %s", self.slug, _LOST)
            return
        specs = {c["name"]: c for c in self.pod["spec"].get("containers") or []}
        for model, spec in zip(self.init, self.pod["spec"].get("initContainers") or [], strict=False):
            code = await self._run_container(spec, model, container_mounts(spec, volumes))
            if code != 0:
                return  # restartPolicy Never: the pod failed (phase_of says so)
        await asyncio.gather(
            *(
                self._run_container(specs[m.name], m, container_mounts(specs[m.name], volumes))
                for m in self.main
            )
        )

    async def _volumes(self) -> dict[str, str]:
        while True:
            try:
                return await prepare_volumes(self.env.kube, self.pod, self.dir)
            except (VolumeError, ApiError) as exc:
                log.info("%s: %s", self.slug, exc)
            await asyncio.sleep(self.env.retry)

    async def _refresh_volumes(self) -> None:
        """Keep mounted Secrets and ConfigMaps in step with the API (the gateway's API keys)."""
        while True:
            await asyncio.sleep(_VOLUME_REFRESH_SECONDS)
            try:
                await refresh_volumes(self.env.kube, self.pod, self.dir, self._volume_files)
            except OSError as exc:
                log.warning("%s: refreshing volumes: %s", self.slug, exc)

    def _host_port(self, port: int) -> int:
        """The host port behind the pod's `port` (allocated on first use, stable for the pod)."""
        if port not in self.host_ports:
            self.host_ports[port] = self.env.ports.take()
        return self.host_ports[port]

    def _localize_gateway(self, args: list[str]) -> list[str]:
        """The gateway's flags with the pod's ports replaced by their host ports."""
        out: list[str] = []
        for i, arg in enumerate(args):
            flag = args[i - 1] if i > 0 else ""
            if flag in _GATEWAY_PORT_FLAGS and arg.isdigit():
                arg = str(self._host_port(int(arg)))
            elif flag in _GATEWAY_POD_LOCAL_URL_FLAGS or arg.startswith("--upstream="):
                arg = _LOCAL_URL.sub(lambda m: f"127.0.0.1:{self._host_port(int(m.group(1)))}", arg)
            out.append(arg)
        return [*out, "--host", "127.0.0.1"]

    def _localize_download(self, argv: list[str]) -> list[str]:
        """`llmops download`'s progress port replaced by its host port, on loopback."""
        out = [
            str(self._host_port(int(arg)))
            if i > 0 and argv[i - 1] in _DOWNLOAD_PORT_FLAGS and arg.isdigit()
            else arg
            for i, arg in enumerate(argv)
        ]
        return [*out, "--progress-host", "127.0.0.1"] if any(a in _DOWNLOAD_PORT_FLAGS for a in argv) else out

    def _publish(self, key: str, port: int, container: str, target: int, scrape: bool) -> None:
        self.published[port] = container
        self.env.table.set(
            key,
            PodEntry(
                self.ns,
                self.name,
                self.pod_ip,
                port,
                f"127.0.0.1:{target}",
                ready=self._pod_ready(),
                tgi=scrape,
                container=container,
                labels=dict(self.pod["metadata"].get("labels") or {}),
            ),
        )

    def _unpublish(self, container: str) -> None:
        for port in [p for p, c in self.published.items() if c == container]:
            del self.published[port]
            self.env.table.remove(f"{self.uid}:{port}")

    def _pod_ready(self) -> bool:
        return all(m.ready for m in self.main)

    def _sync_ready(self) -> None:
        ready = self._pod_ready()
        for port in self.published:
            self.env.table.set_ready(f"{self.uid}:{port}", ready)

    # -- one container -----------------------------------------------------------------------

    async def _run_container(self, spec: Obj, model: ContainerModel, mounts: Mounts) -> int:
        """Run (and restart, per policy) one container; returns its final exit code."""
        crashes = 0
        if self.resumed and not model.init:
            model.restart_count += 1
        while True:
            runtime = await self._pull(model)
            env = await self._environment(spec, model)
            started = time.monotonic()
            code = await self._exec(spec, model, runtime, env, mounts)
            restart = code != 0 if model.init or self.policy == "OnFailure" else self.policy == "Always"
            if self.policy == "Never" or not restart:
                return code
            if time.monotonic() - started > 2 * self.env.max_backoff:
                crashes = 0  # it ran long enough: the back-off starts over, as in the kubelet
            model.last_state = model.state
            delay = (
                0.0
                if crashes == 0
                else min(self.env.crash_backoff * 2 ** (crashes - 1), self.env.max_backoff)
            )
            crashes += 1
            if delay:
                model.state = waiting(
                    "CrashLoopBackOff",
                    f"back-off {go_duration(delay)} restarting failed container={model.name} "
                    f"pod={self.name}_{self.ns}({self.uid})",
                )
                self._changed()
                await asyncio.sleep(delay)
            # As in the kubelet, the count goes up when the next instance is created.
            model.restart_count += 1

    def _spec(self, name: str) -> Obj:
        for c in (self.pod["spec"].get("initContainers") or []) + self.pod["spec"].get("containers", []):
            if c["name"] == name:
                return dict(c)
        return {}

    async def _pull(self, model: ContainerModel) -> str:
        backoff = self.env.crash_backoff
        while True:
            image = self._spec(model.name).get("image", model.image)
            model.image = image
            runtime = runtime_for(image)
            if runtime is not None:
                return runtime
            err, back = pull_error(image)
            model.state = waiting("ErrImagePull", err)
            self._changed()
            log.info("%s: cannot pull %s", self.slug, image)
            await asyncio.sleep(1.0)
            model.state = waiting("ImagePullBackOff", back)
            self._changed()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.env.max_backoff)

    async def _environment(self, spec: Obj, model: ContainerModel) -> dict[str, str]:
        while True:
            try:
                objects: dict[tuple[str, str], Obj | None] = {}
                for kind, name in referenced_objects(spec):
                    plural = "secrets" if kind == "Secret" else "configmaps"
                    objects[(kind, name)] = await self.env.kube.get(
                        f"/api/v1/namespaces/{self.ns}/{plural}/{name}"
                    )
                return resolve_env(spec, self.pod, objects, pod_ip=self.pod_ip, host_ip=self.host_ip)
            except ConfigError as exc:
                if model.state.get("waiting", {}).get("message") != exc.message:
                    log.info("%s/%s: CreateContainerConfigError: %s", self.slug, model.name, exc.message)
                model.state = waiting("CreateContainerConfigError", exc.message)
                self._changed()
            except ApiError as exc:
                log.warning("%s: reading the environment's sources: %s", self.slug, exc)
            await asyncio.sleep(self.env.retry)

    def _command(
        self, spec: Obj, runtime: str, env: dict[str, str], mounts: Mounts, termination: Path
    ) -> tuple[list[str], dict[str, str], int | None]:
        """argv, environment and (for a server) the pod port the container listens on."""
        full = {**IMAGE_ENV[runtime], **env}
        command = [expand(str(x), full) for x in spec.get("command") or []]
        args = [expand(str(x), full) for x in spec.get("args") or []]
        term_path = spec.get("terminationMessagePath") or _TERMINATION_LOG
        exact = {term_path: str(termination), _TERMINATION_LOG: str(termination)}

        def rewrite(value: str) -> str:
            if value in exact:
                return exact[value]
            flag, eq, rest = value.partition("=")
            if eq and rest in exact:
                return f"{flag}={exact[rest]}"
            return mounts.rewrite(value)

        home = self.dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        bindir = str(Path(sys.executable).parent)
        proc_env = {k: rewrite(v) for k, v in full.items()}
        if "LORA_ADAPTERS" in proc_env:  # TGI's `id=/data/...` list: the adapters' folders
            proc_env["LORA_ADAPTERS"] = mounts.rewrite_pairs(full["LORA_ADAPTERS"])
        proc_env = {
            "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "HOSTNAME": self.name,
            "LANG": "C.UTF-8",
            **proc_env,
            "LLMOPS_TERMINATION_LOG": str(termination),
            "HTTP_PROXY": self.env.proxy_url,
            "http_proxy": self.env.proxy_url,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            POD_MARKER: self.uid,
        }
        proc_env.setdefault("HF_ENDPOINT", self.env.hub_url)
        # The fake Hub takes uploads over the LFS protocol, not Xet (which hf_xet would choose).
        proc_env.setdefault("HF_HUB_DISABLE_XET", "1")
        if runtime in SERVERS:
            port = listen_port(args, full, runtime)
            sim = self._host_port(port)
            self.sim_ports[spec["name"]] = sim
            # The simulator takes each engine's own arguments (vLLM: `vllm serve MODEL --flags`;
            # TGI: the launcher's flags and env); --port/--host last, so they win.
            engine = ["--engine", "vllm"] if runtime == VLLM else []
            argv = [sys.executable, "-m", "llmops_dev.tgisim", *engine, *map(rewrite, args)]
            argv += [
                "--host",
                "127.0.0.1",
                "--port",
                str(sim),
                "--behaviour-dir",
                str(self.env.behaviours_dir),
            ]
            return argv, proc_env, port
        entry = command or IMAGE_ENTRYPOINT[runtime]
        if _listens(entry, args):
            args = self._localize_gateway(args)
        elif _is_download(entry, args):
            entry, args = [entry[0]], self._localize_download([*entry[1:], *args])
        exe = _executable(entry[0], proc_env["PATH"])
        if exe is None:
            raise _StartError(
                "failed to create containerd task: failed to create shim task: OCI runtime create failed: "
                "runc create failed: unable to start container process: error during container init: "
                f'exec: "{entry[0]}": executable file not found in $PATH: unknown'
            )
        return [*exe, *map(rewrite, entry[1:]), *map(rewrite, args)], proc_env, None

    async def _exec(
        self, spec: Obj, model: ContainerModel, runtime: str, env: dict[str, str], mounts: Mounts
    ) -> int:
        termination = self.dir / f"{model.name}.termination-log"
        termination.parent.mkdir(parents=True, exist_ok=True)
        termination.write_bytes(b"")
        log_path = self.env.pods_dir / (
            f"{self.slug}.log" if model.name == self._first_container() else f"{self.slug}_{model.name}.log"
        )
        started_at = now()
        cid = (
            "containerd://"
            + hashlib.sha256(f"{self.uid}/{model.name}/{model.restart_count}".encode()).hexdigest()
        )
        model.container_id = cid
        try:
            argv, proc_env, port = self._command(spec, runtime, env, mounts, termination)
        except _StartError as exc:
            model.state = terminated(128, started_at, reason="StartError", message=str(exc), container_id=cid)
            self._changed()
            return 128
        offset = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as out:
            out.write(f"--- {started_at} container {model.name} starting: {' '.join(argv)}\n".encode())
            out.flush()
            offset = out.tell()
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                env=proc_env,
                cwd=str(self.dir),
                start_new_session=True,
            )
        self.procs[model.name] = proc
        self._record()
        log.info("%s/%s: started pid %d: %s", self.slug, model.name, proc.pid, " ".join(argv))
        model.state = {"running": {"startedAt": started_at}}
        model.started = http_probe(spec, "startupProbe") is None
        if runtime in SERVERS and port is not None and not _loopback_only(spec, env):
            self._publish(f"{self.uid}:{port}", port, model.name, self.sim_ports[model.name], scrape=True)
        elif _publishes_ports(spec.get("command") or IMAGE_ENTRYPOINT[runtime], spec.get("args") or []):
            for p in spec.get("ports") or []:
                pod_port = int(p["containerPort"])
                scrape = p.get("name") == _METRICS_PORT_NAME
                self._publish(
                    f"{self.uid}:{pod_port}", pod_port, model.name, self._host_port(pod_port), scrape
                )
        readiness = http_probe(spec, "readinessProbe")
        if readiness is None and runtime in SERVERS and port in self.published:
            readiness = ("/health", port, {})  # the simulator's convenience: ready when healthy
        model.ready = model.started and readiness is None
        probe: asyncio.Task[None] | None = None
        if not model.ready:
            probe = asyncio.create_task(self._probe(spec, model, readiness))
        self._sync_ready()
        self._changed()
        try:
            code = await proc.wait()
        finally:
            if probe is not None:
                probe.cancel()
            self._unpublish(model.name)
        self.procs.pop(model.name, None)
        self._record()
        model.ready = model.started = False
        self._sync_ready()
        message = _termination_message(termination, log_path, offset, code, spec)
        model.state = terminated(
            code if code >= 0 else 128 - code, started_at, message=message, container_id=cid
        )
        log.info("%s/%s: pid %d exited with %d", self.slug, model.name, proc.pid, code)
        self._changed()
        return code if code >= 0 else 128 - code

    def _first_container(self) -> str:
        containers = self.pod["spec"].get("containers") or [{}]
        return str(containers[0].get("name", ""))

    async def _probe(
        self, spec: Obj, model: ContainerModel, readiness: tuple[str, int | None, Obj] | None
    ) -> None:
        """The startup and readiness probes (HTTP GET on the pod's published ports). A container
        whose startup probe has not answered once its budget is spent (initialDelaySeconds +
        periodSeconds x failureThreshold) is killed, as the kubelet does ("failed startup probe,
        will be restarted"); the restart policy then decides."""
        startup = http_probe(spec, "startupProbe")
        failures = 0
        give_up = time.monotonic() + (_startup_budget(startup[2]) if startup else 0.0)
        while True:
            if not model.started and startup is not None:
                if await self._check(startup):
                    model.started = True
                    if readiness is None:
                        model.ready = True
                        self._sync_ready()
                    self._changed()
                    continue
                if time.monotonic() >= give_up:
                    log.info("%s/%s: failed startup probe, will be restarted", self.slug, model.name)
                    await self._kill(model.name)
                    return
                await asyncio.sleep(0.5)
                continue
            model.started = True
            if readiness is None:
                return
            ok = await self._check(readiness)
            failures = 0 if ok else failures + 1
            threshold = int(readiness[2].get("failureThreshold", 3))
            if (ok and not model.ready) or (not ok and model.ready and failures >= threshold):
                model.ready = ok
                self._sync_ready()
                log.info("%s/%s: %s", self.slug, model.name, "ready" if ok else "not ready")
                self._changed()
            period = float(readiness[2].get("periodSeconds", 10))
            await asyncio.sleep(min(period, 5.0) if model.ready else 0.5)

    async def _check(self, probe: tuple[str, int | None, Obj]) -> bool:
        path, port, spec = probe
        if port is None or port not in self.published:
            return False  # nothing listens there at the pod IP: connection refused
        try:
            async with self.env.http.get(
                f"http://127.0.0.1:{self.host_ports[port]}{path}",
                timeout=aiohttp.ClientTimeout(total=float(spec.get("timeoutSeconds", 1))),
            ) as resp:
                return 200 <= resp.status < 400
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def _kill(self, container: str) -> None:
        """Stop one container's process (its ``_exec`` records the exit)."""
        if (proc := self.procs.get(container)) is not None:
            await self._stop(proc)

    async def _stop(self, proc: asyncio.subprocess.Process) -> None:
        """TERM to the process group, then KILL after the grace period (at most 5 s here)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        grace = min(float(self.pod["spec"].get("terminationGracePeriodSeconds", 30)), 5.0)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def _kill_all(self) -> None:
        procs = list(self.procs.values())
        await asyncio.gather(*(self._stop(p) for p in procs))
        if procs:
            log.info("%s: stopped pids %s", self.slug, ", ".join(str(p.pid) for p in procs))
        self.procs.clear()

    # -- status ------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        path = f"/api/v1/namespaces/{self.ns}/pods/{self.name}/status"
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            status = build_status(
                self.pod,
                self.init,
                self.main,
                sandbox_ready=self.sandbox_ready,
                pod_ip=self.pod_ip,
                host_ip=self.host_ip,
                start_time=self.start_time,
                phase=self.phase,
                reason=self.reason,
                message=self.message,
            )
            if status == self._written:
                continue
            try:
                self.pod = await self.env.kube.merge_patch(path, {"status": status})
                self._written = status
            except ApiError as exc:
                if exc.status == 404:
                    return
                log.warning("%s: writing status failed: %s", self.slug, exc)
                if 400 <= exc.status < 500 and exc.status not in (409, 429):
                    continue  # refused as written: retrying the same patch cannot help
                await asyncio.sleep(1.0)
                self._dirty.set()


def _startup_budget(probe: Obj) -> float:
    """Seconds a startup probe may fail before the kubelet kills the container."""
    period, failures = float(probe.get("periodSeconds", 10)), int(probe.get("failureThreshold", 3))
    return float(probe.get("initialDelaySeconds", 0)) + period * failures


def _gate_conditions(pod: Obj) -> dict[str, str]:
    """The status of each readiness gate's condition (as a kubelet would read them)."""
    gates = [g.get("conditionType") for g in (pod.get("spec") or {}).get("readinessGates") or []]
    conds = {c.get("type"): c.get("status") for c in (pod.get("status") or {}).get("conditions") or []}
    return {str(g): str(conds.get(g)) for g in gates}


_LISTENING_PROGRAMS = ("gateway", "capture-store")
"""`llmops` programs that listen on the ports they declare (`--port`, `--health-port`; a port
named `metrics` is a scrape target), handled as the gateway is."""
_LISTENING_DEV_MODULES = ("llmops_dev.capture_sender",)
"""`python -m` programs of the dev tools that do the same (a gateway's capture sender, in tests)."""


def _listens(entry: list[Any], args: list[Any]) -> bool:
    """True for `llmops gateway ...`, `llmops capture-store ...` (and the dev tools' capture
    sender): a program of the operator's image that listens on the ports it declares."""
    argv = [str(x) for x in [*entry, *args]]
    if len(argv) >= 3 and os.path.basename(argv[0]).startswith("python") and argv[1] == "-m":
        return argv[2] in _LISTENING_DEV_MODULES
    return len(argv) >= 2 and os.path.basename(argv[0]) == "llmops" and argv[1] in _LISTENING_PROGRAMS


def _is_download(entry: list[Any], args: list[Any]) -> bool:
    """True for `llmops download ...` (the download Job's container)."""
    argv = [str(x) for x in [*entry, *args]]
    return len(argv) >= 2 and os.path.basename(argv[0]) == "llmops" and argv[1] == "download"


def _publishes_ports(entry: list[Any], args: list[Any]) -> bool:
    """The programs whose declared ports are reached at the pod IP: those that listen like the
    gateway (Services, probes, scrapes) and the download (its progress endpoint, by the operator)."""
    return _listens(entry, args) or _is_download(entry, args)


def _loopback_only(spec: Obj, env: dict[str, str]) -> bool:
    """True when the server binds loopback only (TGI: HOSTNAME or --hostname; vLLM: --host), so
    no one outside the pod reaches it."""
    args = [str(a) for a in spec.get("args") or []]
    host = env.get("HOSTNAME", "")
    for i, arg in enumerate(args):
        if arg in ("--hostname", "--host") and i + 1 < len(args):
            host = args[i + 1]
        elif arg.startswith(("--hostname=", "--host=")):
            host = arg.split("=", 1)[1]
    return host in _LOOPBACK_HOSTS


def _executable(name: str, path: str) -> list[str] | None:
    """The host program for a container's command[0]."""
    base = os.path.basename(name)
    if base == "llmops":
        script = Path(sys.executable).parent / "llmops"
        return [str(script)] if script.exists() else [sys.executable, "-m", "llmops.cli"]
    if base in ("python", "python3") or base.startswith("python3."):
        return [sys.executable]
    if "/" in name and os.access(name, os.X_OK):
        return [name]
    found = shutil.which(base, path=path)
    return [found] if found else None


def _termination_message(termination: Path, log_path: Path, offset: int, code: int, spec: Obj) -> str:
    try:
        with termination.open("rb") as f:
            message = f.read(4096).decode(errors="replace")
    except OSError:
        message = ""
    if message or code == 0 or spec.get("terminationMessagePolicy") != "FallbackToLogsOnError":
        return message
    try:
        with log_path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    tail = "\n".join(text.splitlines()[-_LOG_TAIL_LINES:])
    return tail[-_LOG_TAIL_BYTES:]
