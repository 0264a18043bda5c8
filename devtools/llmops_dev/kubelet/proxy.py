"""kube-proxy and cluster DNS for the local cluster: a forward HTTP proxy to the simulated pods.

kwok pods have IPs that lead nowhere. The fake kubelet records, for each pod it runs a
simulator for, ``podIP:port → 127.0.0.1:<simulator port>`` in a `PodTable`. This proxy
accepts absolute-form requests (what HTTP clients send with ``HTTP_PROXY`` set) for

    http://<svc>.<ns>.svc.cluster.local:<port>/...   (also <svc>.<ns>.svc and <svc>.<ns>)
    http://<cluster IP>:<port>/...  and  http://<pod IP>:<port>/...

resolves a Service the way kube-proxy does, from its EndpointSlices (maintained by the real
controller-manager from the selector, targetPort and pod readiness), picks a ready endpoint
round-robin and forwards the request, streaming the response unbuffered (SSE passes through
as it is produced). An unknown Service or one without ready endpoints gets a 503 saying so.

It also writes, for code that runs on the host without the proxy:

- ``<state-dir>/endpoints.json``: ``{"proxy": url, "services": {"<svc>.<ns>.svc.cluster.local:<port>":
  [loopback URLs]}, "pods": {"<podIP>:<port>": loopback URL}}``; `resolve` reads it.
- ``<state-dir>/tgi-targets.json``: Prometheus file_sd targets, one per Ready TGI pod (its
  gateway's health port when it has a gateway), labelled
  with namespace, pod, container and every pod label sanitised as Prometheus' Kubernetes
  discovery does (``llmops.io/deployment`` → ``llmops_io_deployment``), plus the short
  ``llmops_<key>`` names for our own ``llmops.io/*`` labels.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp import web

from llmops_dev.kubelet.kube import Informer, KubeClient

__all__ = ["PodEntry", "PodTable", "ServiceProxy", "pod_network_env", "proxy_url", "resolve"]

log = logging.getLogger("llmops.proxy")
Obj = dict[str, Any]

_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)
_SERVICE_NAME = "kubernetes.io/service-name"


@dataclass
class PodEntry:
    """A pod the kubelet runs a simulator for."""

    namespace: str
    name: str
    ip: str
    port: int
    target: str
    """host:port on loopback"""
    ready: bool = False
    tgi: bool = True
    """A scrape target (TGI's /metrics, or the gateway's health port serving gateway + TGI)."""
    container: str = ""
    labels: dict[str, str] = field(default_factory=dict)


class PodTable:
    """Pod IP and port → loopback address, kept by the kubelet, read by the proxy."""

    def __init__(self) -> None:
        self.entries: dict[str, PodEntry] = {}
        self._by_addr: dict[tuple[str, int], PodEntry] = {}
        self.listeners: list[Callable[[], None]] = []

    def set(self, key: str, entry: PodEntry) -> None:
        self.remove(key, notify=False)
        self.entries[key] = entry
        self._by_addr[(entry.ip, entry.port)] = entry
        self._notify()

    def set_ready(self, key: str, ready: bool) -> None:
        entry = self.entries.get(key)
        if entry is not None and entry.ready != ready:
            entry.ready = ready
            self._notify()

    def remove(self, key: str, notify: bool = True) -> None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            self._by_addr.pop((entry.ip, entry.port), None)
            if notify:
                self._notify()

    def remove_pod(self, uid: str) -> None:
        """Forget every entry of a pod (keys are ``<uid>:<port>``)."""
        for key in [k for k in self.entries if k == uid or k.startswith(uid + ":")]:
            self.remove(key)

    def lookup(self, ip: str, port: int) -> PodEntry | None:
        return self._by_addr.get((ip, port))

    def _notify(self) -> None:
        for listener in self.listeners:
            listener()


class _Unavailable(Exception):
    pass


def _service_host(host: str) -> tuple[str, str] | None:
    """(service, namespace) for a cluster DNS name, else None."""
    parts = host.rstrip(".").lower().split(".")
    if len(parts) == 2 or (
        len(parts) in (3, 5) and parts[2] == "svc" and parts[3:] in ([], ["cluster", "local"])
    ):
        return parts[0], parts[1]
    return None


def _sanitise(key: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


class ServiceProxy:
    """The forward proxy and its view of Services and EndpointSlices."""

    def __init__(self, kube: KubeClient, state_dir: Path, table: PodTable) -> None:
        self.state_dir, self.table = state_dir, table
        self.services = Informer(kube, "/api/v1/services", self._changed, name="services")
        self.slices = Informer(
            kube, "/apis/discovery.k8s.io/v1/endpointslices", self._changed, name="endpointslices"
        )
        self.url: str | None = None
        self._rr = itertools.count()
        self._runner: web.ServerRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._write_pending = False
        table.listeners.append(self._changed)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        )
        server = web.Server(self._handle, access_log=None)
        self._runner = web.ServerRunner(server, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self.url

    async def run(self) -> None:
        """Keep Services and EndpointSlices in step (runs until cancelled)."""
        await asyncio.gather(self.services.run(), self.slices.run())

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()

    # -- resolution --------------------------------------------------------------------------

    def _ready_targets(
        self, ns: str, svc_name: str, port: int, slices: Iterable[Obj] | None = None
    ) -> list[str]:
        """The ready backends of one Service port; ``slices`` narrows the EndpointSlices looked
        at (all of them by default) to the Service's own."""
        svc = self.services.cache.get(f"{ns}/{svc_name}")
        if svc is None:
            raise _Unavailable(f'service "{svc_name}" not found in namespace "{ns}"')
        ports = [p for p in svc.get("spec", {}).get("ports") or [] if p.get("port") == port]
        if not ports:
            raise _Unavailable(f"service {ns}/{svc_name} has no port {port}")
        port_name = ports[0].get("name") or ""
        targets: list[str] = []
        for s in self.slices.cache.values() if slices is None else slices:
            meta = s.get("metadata", {})
            if meta.get("namespace") != ns or (meta.get("labels") or {}).get(_SERVICE_NAME) != svc_name:
                continue
            ep_ports = [p.get("port") for p in s.get("ports") or [] if (p.get("name") or "") == port_name]
            if not ep_ports or ep_ports[0] is None:
                continue
            for ep in s.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready") is False:
                    continue
                for addr in ep.get("addresses") or []:
                    entry = self.table.lookup(addr, int(ep_ports[0]))
                    if entry is not None:
                        targets.append(entry.target)
        return sorted(targets)

    def backends(self, host: str, port: int) -> list[str]:
        """Loopback host:port of every ready backend for host:port; raises _Unavailable."""
        try:
            ip = str(ipaddress.ip_address(host))
        except ValueError:
            named = _service_host(host)
            if named is None:
                raise _Unavailable(
                    f"cannot resolve {host}: not a Service name (<service>.<namespace>.svc.cluster.local)"
                ) from None
            svc_name, ns = named
        else:
            entry = self.table.lookup(ip, port)
            if entry is not None:
                return [entry.target]
            for svc in self.services.cache.values():
                if ip in (svc.get("spec", {}).get("clusterIPs") or []):
                    svc_name, ns = svc["metadata"]["name"], svc["metadata"]["namespace"]
                    break
            else:
                raise _Unavailable(
                    f"nothing listens at {ip}:{port} (no Service cluster IP, no simulated pod)"
                )
        targets = self._ready_targets(ns, svc_name, port)
        if not targets:
            raise _Unavailable(f"no ready endpoints for service {ns}/{svc_name} port {port}")
        return targets

    # -- forwarding --------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        raw = request.raw_path
        if not raw.lower().startswith("http://"):
            if request.method == "GET" and raw in ("/healthz", "/"):
                return web.Response(text="llmops service proxy: send absolute-form http:// requests\n")
            status = 405 if request.method == "CONNECT" else 400
            return web.Response(status=status, text="this is an HTTP proxy for http:// cluster URLs only\n")
        url = urlsplit(raw)
        host, port = url.hostname or "", url.port or 80
        try:
            targets = self.backends(host, port)
        except _Unavailable as exc:
            return web.Response(
                status=503, text=f"llmops proxy: {exc}\n", headers={"X-Llmops-Proxy": "unavailable"}
            )
        target = targets[next(self._rr) % len(targets)]
        return await self._forward(request, target, urlunsplit(("", "", url.path or "/", url.query, "")))

    async def _forward(self, request: web.BaseRequest, target: str, path: str) -> web.StreamResponse:
        assert self._client is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read() if request.body_exists else None
        try:
            async with self._client.request(
                request.method, f"http://{target}{path}", headers=headers, data=body, allow_redirects=False
            ) as up:
                resp = web.StreamResponse(status=up.status, reason=up.reason)
                for k, v in up.headers.items():
                    if k.lower() not in _HOP_BY_HOP:
                        resp.headers.add(k, v)
                if up.content_length is not None and "chunked" not in up.headers.get("Transfer-Encoding", ""):
                    resp.content_length = up.content_length
                await resp.prepare(request)
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
        except aiohttp.ClientConnectionError as exc:
            if request.transport is None or request.transport.is_closing():
                raise
            return web.Response(status=502, text=f"llmops proxy: upstream {target}: {exc}\n")

    # -- files for the host ------------------------------------------------------------------

    def _changed(self, *_: Any) -> None:
        if self._write_pending:
            return
        self._write_pending = True
        # Coalesce a burst of watch events into one write.
        asyncio.get_running_loop().call_later(0.2, self._write_files)

    def _write_files(self) -> None:
        self._write_pending = False
        try:
            _write_json(self.state_dir / "endpoints.json", self.endpoints())
            _write_json(self.state_dir / "tgi-targets.json", self.targets())
        except Exception:
            log.exception("writing endpoints.json / tgi-targets.json failed")

    def endpoints(self) -> Obj:
        # The slices by Service first: looking through every slice for every Service made each
        # write O(Services x slices), 1,000,000 checks at 1,000 LLMDeployments, up to five
        # writes a second while they were created (`make bench-scale`: the kubelet's CPU).
        by_service: dict[tuple[str, str], list[Obj]] = {}
        for s in self.slices.cache.values():
            meta = s.get("metadata", {})
            service = (meta.get("labels") or {}).get(_SERVICE_NAME)
            by_service.setdefault((str(meta.get("namespace")), str(service)), []).append(s)
        services: dict[str, list[str]] = {}
        for key, svc in sorted(self.services.cache.items()):
            ns, name = key.split("/", 1)
            for p in svc.get("spec", {}).get("ports") or []:
                try:
                    targets = self._ready_targets(ns, name, int(p["port"]), by_service.get((ns, name), []))
                except _Unavailable:
                    continue
                if targets:
                    services[f"{name}.{ns}.svc.cluster.local:{p['port']}"] = [f"http://{t}" for t in targets]
        pods = {f"{e.ip}:{e.port}": f"http://{e.target}" for e in self.table.entries.values()}
        return {"proxy": self.url, "services": services, "pods": pods}

    def targets(self) -> list[Obj]:
        out = []
        for e in sorted(self.table.entries.values(), key=lambda e: (e.namespace, e.name)):
            if not (e.tgi and e.ready):
                continue
            labels = {"namespace": e.namespace, "pod": e.name, "container": e.container}
            for k, v in e.labels.items():
                labels[_sanitise(k)] = v
                if k.startswith("llmops.io/"):
                    labels["llmops_" + _sanitise(k.split("/", 1)[1])] = v
            out.append({"targets": [e.target], "labels": labels})
        return out


def resolve(state_dir: Path | str, url: str) -> str:
    """The loopback URL behind an in-cluster URL, from ``<state-dir>/endpoints.json``.

    ``http://tgi.team-a.svc.cluster.local/generate`` → ``http://127.0.0.1:41234/generate``.
    Loopback URLs come back unchanged. Raises LookupError when nothing ready serves the URL.
    """
    parts = urlsplit(url)
    host, port = (parts.hostname or "").lower(), parts.port or 80
    if host in ("127.0.0.1", "localhost", "::1"):
        return url
    path = Path(state_dir) / "endpoints.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LookupError(f"{url}: cannot read {path}: {exc}") from exc
    named = _service_host(host)
    if named is not None:
        candidates: list[str] = (
            data.get("services", {}).get(f"{named[0]}.{named[1]}.svc.cluster.local:{port}") or []
        )
    else:
        pod = data.get("pods", {}).get(f"{host}:{port}")
        candidates = [pod] if pod else []
    if not candidates:
        raise LookupError(f"{url}: no ready endpoint in {path}")
    base = urlsplit(candidates[0])
    return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, parts.fragment))


def proxy_url(state_dir: Path | str) -> str:
    """The proxy's URL (for ``HTTP_PROXY``), from the kubelet's ``<state-dir>/kubelet.json``."""
    return str(json.loads((Path(state_dir) / "kubelet.json").read_text())["proxy_url"])


def pod_network_env(state_dir: Path | str) -> dict[str, str]:
    """The environment that lets a process on the host reach pod IPs and Services as one in the
    cluster would (the operator reads a download's progress at its pod IP): requests through
    this proxy, except to the host itself (the apiserver, Prometheus, the fake Hub)."""
    url = proxy_url(state_dir)
    local = "127.0.0.1,localhost"
    return {"HTTP_PROXY": url, "http_proxy": url, "NO_PROXY": local, "no_proxy": local}
