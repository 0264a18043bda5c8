"""A small asyncio client for the fake kubelet: REST calls and list-then-watch informers.

The kubeconfig is read with the official ``kubernetes`` client's loader (client certificates,
tokens, CA data); requests go through aiohttp so that watches, status writes, simulators and
proxies share one event loop and no thread blocks on a socket. Objects stay plain dicts.

An ``Informer`` keeps a cache of one kind (optionally label-selected) in step with the
apiserver the way client-go's reflector does: list, watch from the list's resourceVersion
with bookmarks, re-list after a 410 or a broken stream (reporting objects that vanished in
between as deleted), and back off on errors. Its handler is a plain function called on every
change; an exception in it is logged and never stops the watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp
import kubernetes

__all__ = ["ApiError", "Informer", "KubeClient", "key_of"]

log = logging.getLogger("llmops.kubelet.kube")

Obj = dict[str, Any]
_WATCH_SECONDS = 290


class ApiError(Exception):
    """An API call failed: ``status`` is the HTTP status (0 when the apiserver was unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


def key_of(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


class KubeClient:
    """Authenticated JSON calls to the apiserver named by a kubeconfig."""

    def __init__(self, kubeconfig: str) -> None:
        cfg = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        self.base = str(cfg.host).rstrip("/")
        ctx = (
            ssl.create_default_context(cafile=cfg.ssl_ca_cert)
            if cfg.ssl_ca_cert
            else ssl.create_default_context()
        )
        if not cfg.verify_ssl:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
        self._ssl = ctx
        self._headers = {"Accept": "application/json", "User-Agent": "llmops-fake-kubelet"}
        token = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
        if token:
            prefix = (cfg.api_key_prefix or {}).get("authorization", "")
            self._headers["Authorization"] = f"{prefix} {token}".strip() if prefix else token
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=20), headers=self._headers
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        time_limit: float = 30,
    ) -> Any:
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else None
        try:
            async with self.session.request(
                method,
                self.base + path,
                params=params,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=time_limit),
            ) as resp:
                text = await resp.text()
                if resp.status >= 300:
                    raise ApiError(resp.status, _status_message(text) or resp.reason or "")
                return json.loads(text) if text else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(0, f"{method} {path}: {type(exc).__name__}: {exc}") from exc

    async def _object(self, method: str, path: str, **kwargs: Any) -> Obj:
        """`request` for the calls whose answer is a Kubernetes object."""
        data = await self.request(method, path, **kwargs)
        if not isinstance(data, dict):
            raise ApiError(0, f"{method} {path}: the answer is not a JSON object")
        return data

    async def get(self, path: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return await self._object("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, path: str, body: Obj) -> Obj:
        return await self._object("POST", path, body=body)

    async def merge_patch(self, path: str, body: Obj) -> Obj:
        return await self._object("PATCH", path, body=body, content_type="application/merge-patch+json")

    async def delete(self, path: str) -> None:
        with contextlib.suppress(ApiError):
            await self.request("DELETE", path)

    async def stream(self, path: str, params: dict[str, str]) -> Any:
        """A streaming watch response (the caller reads its lines and closes it)."""
        resp = await self.session.get(
            self.base + path,
            params={
                **params,
                "watch": "1",
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(_WATCH_SECONDS),
            },
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=_WATCH_SECONDS + 30),
        )
        if resp.status >= 300:
            text = await resp.text()
            resp.release()
            raise ApiError(resp.status, _status_message(text) or resp.reason or "")
        return resp


def _status_message(text: str) -> str:
    try:
        return str(json.loads(text).get("message", text))
    except (ValueError, AttributeError):
        return text[:500]


class _Gone(Exception):
    """The watch's resourceVersion is too old: list again."""


class Informer:
    """A cache of one kind, kept in step by list-then-watch; ``handler(event, obj)`` sees changes.

    ``event`` is ADDED, MODIFIED or DELETED; for DELETED ``obj`` is the last known state.
    """

    def __init__(
        self,
        kube: KubeClient,
        path: str,
        handler: Callable[[str, Obj], None],
        *,
        label_selector: str | None = None,
        name: str | None = None,
    ) -> None:
        self.kube, self.path, self.handler = kube, path, handler
        self.params = {"labelSelector": label_selector} if label_selector else {}
        self.name = name or path
        self.cache: dict[str, Obj] = {}
        self.synced = asyncio.Event()

    def _emit(self, event: str, obj: Obj) -> None:
        try:
            self.handler(event, obj)
        except Exception:
            log.exception("%s: handling %s %s failed", self.name, event, key_of(obj))

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                rv = await self._list()
                backoff = 0.5
                while True:
                    rv = await self._watch(rv)
            except _Gone:
                log.info("%s: watch expired, listing again", self.name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s: %s; retrying in %.1fs", self.name, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 15.0)

    async def _list(self) -> str:
        listing = await self.kube.request("GET", self.path, params=self.params or None, time_limit=60)
        items = {key_of(o): o for o in listing.get("items", [])}
        for key in list(self.cache):
            if key not in items:
                self._emit("DELETED", self.cache.pop(key))
        for key, obj in items.items():
            old = self.cache.get(key)
            self.cache[key] = obj
            if old is None:
                self._emit("ADDED", obj)
            elif old["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._emit("MODIFIED", obj)
        self.synced.set()
        return str(listing["metadata"]["resourceVersion"])

    async def _watch(self, rv: str) -> str:
        resp = await self.kube.stream(self.path, {**self.params, "resourceVersion": rv})
        try:
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone()
                    raise ApiError(int(obj.get("code") or 0), str(obj.get("message")))
                rv = obj.get("metadata", {}).get("resourceVersion", rv)
                if kind == "BOOKMARK":
                    continue
                key = key_of(obj)
                if kind == "DELETED":
                    self.cache.pop(key, None)
                else:
                    self.cache[key] = obj
                self._emit(str(kind), obj)
        finally:
            resp.release()
        return rv
