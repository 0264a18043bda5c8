"""Steady traffic to an in-cluster Service through the local cluster's Service proxy (or straight
to a server's URL).

Canary analysis and drift detection judge real traffic, so `make dev` and the tests need some:
one thread posting small generation requests at a fixed rate, bounded in count, for as long as a
``with`` block lasts: TGI's native `/generate`, or for a vLLM server (which has no native route)
`/v1/completions`. Prompt lengths (in words, which the simulator counts as tokens) are drawn
uniformly from ``prompt_words`` with a seeded generator, so a run is stationary and repeatable;
assigning ``prompt_words`` while it runs shifts the distribution from the next request on (a
drift to detect).

Users can rate the answers too, as they would through the gateway (docs/gateway.md): a share
``feedback`` of the answers that carry a request ID gets a ``POST /v1/feedback``, and a share
``down`` of those ratings is "down", the rest "up". Both shares are exact, not random (every
n-th answer), so a ratio holds in any window; both may be reassigned while it runs.
"""

from __future__ import annotations

import json
import random
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from llmops_dev.kubelet.proxy import proxy_url

__all__ = ["Traffic"]


_ROUTES = {"tgi": "/generate", "vllm": "/v1/completions"}
_REQUEST_ID = "X-LLMOps-Request-ID"


def _request(engine: str, prompt: str, max_new_tokens: int) -> dict[str, Any]:
    if engine == "vllm":
        return {"prompt": prompt, "max_tokens": max_new_tokens}
    return {"inputs": prompt, "parameters": {"max_new_tokens": max_new_tokens}}


class Traffic:
    """Requests to ``http://<service>.<namespace>.svc.cluster.local:<port>`` + the engine's route."""

    def __init__(
        self,
        state_dir: Path | None,
        namespace: str = "",
        service: str = "",
        *,
        port: int = 80,
        rate: float = 20.0,
        limit: int = 100_000,
        engine: str = "tgi",
        url: str | None = None,
        prompt_words: tuple[int, int] = (1, 1),
        max_new_tokens: int = 4,
        seed: int = 0,
        feedback: float = 0.0,
        down: float = 0.0,
    ) -> None:
        """Through the cluster's Service proxy (``state_dir``, ``namespace``, ``service``), or
        straight to ``url`` (a server's base URL) when ``state_dir`` is None."""
        route = _ROUTES[engine]
        if state_dir is None:
            if url is None:
                raise ValueError("give a state_dir (the cluster's Service proxy) or a url")
            self.base = url.rstrip("/")
            self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        else:
            self.base = f"http://{service}.{namespace}.svc.cluster.local:{port}"
            proxies = {"http": proxy_url(state_dir)}
            self.opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))
        self.url = self.base + route
        self.engine = engine
        self.interval = 1.0 / rate
        self.limit = limit
        self.prompt_words = prompt_words
        """Prompt length range in words (inclusive); may be reassigned while running."""
        self.max_new_tokens = max_new_tokens
        self.feedback = feedback
        """Share of the answers rated (0..1); may be reassigned while running."""
        self.down = down
        """Share of the ratings that are "down" (0..1); may be reassigned while running."""
        self.sent = self.failed = 0
        self.rated = self.rated_down = 0
        self._to_rate = self._to_rate_down = 0.0
        self.stop = threading.Event()
        self._rng = random.Random(seed)
        self.thread = threading.Thread(target=self._run, name=f"traffic-{service or url}", daemon=True)

    def _body(self) -> bytes:
        low, high = self.prompt_words
        prompt = " ".join(["ping"] * self._rng.randint(low, high))
        return json.dumps(_request(self.engine, prompt, self.max_new_tokens)).encode()

    def _run(self) -> None:
        while not self.stop.is_set() and self.sent < self.limit:
            req = urllib.request.Request(
                self.url, data=self._body(), headers={"Content-Type": "application/json"}
            )
            try:
                with self.opener.open(req, timeout=10) as resp:
                    resp.read()
                    request_id = resp.headers.get(_REQUEST_ID)
                if request_id:
                    self._rate(request_id)
            except (urllib.error.URLError, OSError):
                self.failed += 1
            self.sent += 1
            # Pacing the load (a fixed request rate), not synchronisation.
            self.stop.wait(self.interval)

    def _rate(self, request_id: str) -> None:
        """Rate this answer if its turn has come (an exact share, carried from answer to answer)."""
        self._to_rate += self.feedback
        if self._to_rate < 1.0:
            return
        self._to_rate -= 1.0
        self._to_rate_down += self.down
        down = self._to_rate_down >= 1.0
        if down:
            self._to_rate_down -= 1.0
        body = json.dumps({"request_id": request_id, "rating": "down" if down else "up"}).encode()
        req = urllib.request.Request(
            self.base + "/v1/feedback", data=body, headers={"Content-Type": "application/json"}
        )
        with self.opener.open(req, timeout=10) as resp:
            resp.read()
        self.rated += 1
        self.rated_down += down

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=15)
