"""The evaluation's lean HTTP path: the same requests as huggingface_hub's client, on one aiohttp session.

It is the default; huggingface_hub's AsyncInferenceClient stays an option (`--transport`). Measured
with cProfile against the simulator (`make bench-eval`), about half of its CPU goes to the HTTP
stack it is built on (httpcore2, httpx2, h11, anyio; httpcore2's pool scans every connection on
each request), the rest of its overhead to its own request building and `dataclasses.asdict`
conversions and, without an API key, to re-reading the Hub token file per request. This path
sends the same request fields to the same routes and reads the same response fields back:

- chat:       POST {endpoint}/v1/chat/completions {"model", "messages", "max_tokens", "temperature": 0}
- completion: POST {endpoint}/v1/completions      {"model", "prompt", "max_tokens", "temperature": 0}
- generate:   POST {endpoint}/ {"inputs", "parameters": {"details": true, "max_new_tokens", "do_sample": false,
              "return_full_text": false}} (TGI; chat samples go to the chat route, as with huggingface_hub)

and is tested against the same simulators (TGI and vLLM modes) to give the same answers, token
counts and error handling. aiohttp is already in the operator's image (kopf's HTTP client).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

__all__ = ["LeanHTTPError", "LeanSender"]


class LeanHTTPError(Exception):
    """A non-2xx answer; `status` is the HTTP status (what the retry policy classifies)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body[:500]}")
        self.status = status


class LeanSender:
    """Sends one sample at a time over a shared aiohttp session (open it with `async with`)."""

    def __init__(
        self,
        endpoint: str,
        *,
        api_key: str | None,
        concurrency: int,
        max_new_tokens: int,
        model: str | None,
    ) -> None:
        self.endpoint = endpoint
        self.max_new_tokens = max_new_tokens
        self.model = model
        # Like the default path: a key only when given, never the local Hub token.
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.concurrency = concurrency
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LeanSender:
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        # No session-level timeout: each attempt runs under the caller's asyncio.timeout.
        # trust_env: HTTP(S)_PROXY and NO_PROXY are honoured, as huggingface_hub's httpx does (a
        # cluster behind a proxy; the dev cluster reaches Services through one).
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None), trust_env=True
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        assert self.session is not None, "use LeanSender with `async with`"
        async with self.session.post(self.endpoint + path, data=json.dumps(body), headers=self.headers) as r:
            text = await r.text()
            if r.status >= 400:
                raise LeanHTTPError(r.status, text)
        return json.loads(text)

    def _openai(self, body: dict[str, Any]) -> dict[str, Any]:
        out = {"model": self.model, **body} if self.model is not None else body
        return {**out, "max_tokens": self.max_new_tokens, "temperature": 0.0}

    async def chat(self, messages: Sequence[Mapping[str, str]]) -> tuple[str, int | None]:
        out = await self._post("/v1/chat/completions", self._openai({"messages": list(messages)}))
        choices = out.get("choices") or []
        text = (choices[0].get("message") or {}).get("content") or "" if choices else ""
        return text, (out.get("usage") or {}).get("completion_tokens")

    async def complete(self, prompt: str) -> tuple[str, int | None]:
        out = await self._post("/v1/completions", self._openai({"prompt": prompt}))
        choices = out.get("choices") or [{}]
        return str(choices[0].get("text") or ""), (out.get("usage") or {}).get("completion_tokens")

    async def generate(self, prompt: str) -> tuple[str, int | None]:
        parameters = {
            "details": True,
            "max_new_tokens": self.max_new_tokens,
            "do_sample": False,
            "return_full_text": False,
        }
        out = await self._post("/", {"inputs": prompt, "parameters": parameters})
        first = out[0] if isinstance(out, list) else out
        details = first.get("details") or {}
        return str(first.get("generated_text") or ""), details.get("generated_tokens")
