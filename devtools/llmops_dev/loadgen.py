"""Steady traffic to an in-cluster Service through the local cluster's Service proxy.

Canary analysis judges real traffic, so `make dev` and the tests need some: one thread posting
small generation requests at a fixed rate, bounded in count, for as long as a ``with`` block lasts:
TGI's native `/generate`, or for a vLLM server (which has no native route) `/v1/completions`.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

from llmops_dev.kubelet.proxy import proxy_url

__all__ = ["Traffic"]


_REQUESTS = {
    "tgi": ("/generate", {"inputs": "ping", "parameters": {"max_new_tokens": 4}}),
    "vllm": ("/v1/completions", {"prompt": "ping", "max_tokens": 4}),
}


class Traffic:
    """Requests to ``http://<service>.<namespace>.svc.cluster.local:<port>`` + the engine's route."""

    def __init__(
        self,
        state_dir: Path,
        namespace: str,
        service: str,
        *,
        port: int = 80,
        rate: float = 20.0,
        limit: int = 100_000,
        engine: str = "tgi",
    ) -> None:
        path, body = _REQUESTS[engine]
        self.url = f"http://{service}.{namespace}.svc.cluster.local:{port}{path}"
        self.body = json.dumps(body).encode()
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy_url(state_dir)}))
        self.interval = 1.0 / rate
        self.limit = limit
        self.sent = self.failed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"traffic-{service}", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set() and self.sent < self.limit:
            req = urllib.request.Request(
                self.url, data=self.body, headers={"Content-Type": "application/json"}
            )
            try:
                with self.opener.open(req, timeout=10) as resp:
                    resp.read()
            except (urllib.error.URLError, OSError):
                self.failed += 1
            self.sent += 1
            # Pacing the load (a fixed request rate), not synchronisation.
            self.stop.wait(self.interval)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=15)
