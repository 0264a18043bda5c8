"""Sending the dataset to the model: huggingface_hub's AsyncInferenceClient against the server's base URL.

Routes (`ClientConfig.route`):

- `chat` (default, both engines): every sample through `chat_completion`, i.e. the OpenAI-compatible
  `POST /v1/chat/completions` that TGI and vLLM both serve; a `prompt` sample is sent as one user
  message. The request names `ClientConfig.model` (vLLM refuses a model other than its served name;
  huggingface_hub would otherwise send "dummy").
- `completion` (both engines): a `prompt` sample raw (no chat template) to `POST /v1/completions`,
  which huggingface_hub has no method for, so it is one httpx request on huggingface_hub's own httpx;
  `messages` samples are refused before the run.
- `generate` (TGI only): a `prompt` through `text_generation(details=True)` (TGI's `POST /`), a
  `messages` sample through `chat_completion`, as before routes existed.

Decoding is greedy (`do_sample=False`; `temperature=0`, which both servers map to greedy) so that
runs are repeatable.

Transports (`ClientConfig.transport`): `aiohttp` (the default of `spec.evaluation.client` and
`llmops eval`), the lean path of `lean.py` that sends the same requests for a fraction of the CPU
(see its docstring and `make bench-eval`), or `huggingface_hub`; both are tested against the same
simulators.
- `concurrency` workers pull samples from one queue, so at most that many requests are in flight.
- Each attempt has a deadline of `timeout` seconds, end to end (httpx's own timeout is per phase).
- 429 (TGI overloaded), 503 (no ready backend behind a Service) and transport failures (refused
  connection, timeout) are retried up to `retries` times with exponential backoff and full jitter:
  sleep uniform(0, min(backoff_max, backoff_base * 2**attempt)). Other errors (422 validation,
  424 generation, 500) are final for that sample.
- If a sample fails at the transport level before any sample has succeeded, the endpoint is taken
  to be unreachable: `EndpointUnreachable` (naming the URL) stops the run instead of grinding through
  the whole dataset. Once the endpoint has answered, later failures only count against errorRate.

The API key is passed explicitly. Without one, the `authorization` header is removed too: otherwise
huggingface_hub would send the local Hub token (`HF_TOKEN`) to the model server.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from huggingface_hub import AsyncInferenceClient, ChatCompletionOutputUsage
from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError, OverloadedError
from huggingface_hub.utils import httpx

from llmops.evaluation.completion import Completion
from llmops.evaluation.dataset import Sample
from llmops.evaluation.lean import LeanHTTPError, LeanSender

__all__ = [
    "ROUTES",
    "TRANSPORTS",
    "ClientConfig",
    "EndpointUnreachable",
    "normalize_endpoint",
    "run_requests",
]

_RETRY_STATUSES = frozenset({429, 503})
ROUTES: tuple[str, ...] = ("chat", "completion", "generate")
TRANSPORTS: tuple[str, ...] = ("huggingface_hub", "aiohttp")


class EndpointUnreachable(Exception):
    """No request reached the model server; the message names the URL."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How to talk to the model server."""

    endpoint: str
    api_key: str | None = None
    concurrency: int = 8
    timeout: float = 60.0
    retries: int = 3
    max_new_tokens: int = 256
    backoff_base: float = 0.5
    backoff_max: float = 10.0
    route: str = "chat"
    model: str | None = None
    """Model name sent on the OpenAI-compatible routes (the server's served model name)."""
    transport: str = "aiohttp"


def normalize_endpoint(url: str) -> str:
    """The TGI base URL: http(s), no trailing slash, no `/v1` (text_generation posts to the URL itself)."""
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"endpoint {url!r} must be an http:// or https:// URL")
    url = url.rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    return url


@dataclass(frozen=True, slots=True)
class _Failure:
    retryable: bool
    transport: bool
    message: str


def _status(error: BaseException) -> int | None:
    if isinstance(error, LeanHTTPError):
        return error.status
    # TGI's typed errors (OverloadedError, GenerationError, ...) are raised `from` the HfHubHTTPError
    # that carries the response, so the status code may sit one link down the cause chain.
    for e in (error, error.__cause__):
        response = getattr(e, "response", None)
        if response is not None:
            return int(response.status_code)
    return None


def _classify(error: Exception, timeout: float) -> _Failure:
    # Order matters: InferenceTimeoutError and every HTTP error class derive from httpx's HTTPError.
    if isinstance(error, InferenceTimeoutError | httpx.TimeoutException | TimeoutError):
        return _Failure(True, True, f"timed out after {timeout:g}s")
    if isinstance(error, httpx.TransportError | aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        return _Failure(True, True, f"{type(error).__name__}: {error}")
    status = _status(error)
    if isinstance(error, OverloadedError) or status in _RETRY_STATUSES:
        return _Failure(True, False, f"HTTP {status or 429}: {error}")
    if status is not None or isinstance(error, HfHubHTTPError | aiohttp.ClientError):
        return _Failure(False, False, f"HTTP {status}: {error}")
    return _Failure(False, False, f"{type(error).__name__}: {error}")


class _CompletionError(httpx.HTTPStatusError):
    """A non-2xx answer of /v1/completions (carries the response, as huggingface_hub's errors do)."""


async def _complete(http: httpx.AsyncClient, config: ClientConfig, prompt: str) -> tuple[str, int | None]:
    body = {"prompt": prompt, "max_tokens": config.max_new_tokens, "temperature": 0.0}
    if config.model is not None:
        body["model"] = config.model
    response = await http.post(f"{config.endpoint}/v1/completions", json=body)
    if response.status_code >= 400:
        raise _CompletionError(
            f"{response.status_code}: {response.text[:500]}", request=response.request, response=response
        )
    out = response.json()
    choices = out.get("choices") or [{}]
    usage = out.get("usage") or {}
    return str(choices[0].get("text") or ""), usage.get("completion_tokens")


async def _chat(
    client: AsyncInferenceClient, messages: list[dict[str, str]], config: ClientConfig
) -> tuple[str, int | None]:
    chat = await client.chat_completion(
        messages, model=config.model, max_tokens=config.max_new_tokens, temperature=0.0
    )
    text = (chat.choices[0].message.content or "") if chat.choices else ""
    # Declared required, but huggingface_hub fills a field the server left out with None.
    usage: ChatCompletionOutputUsage | None = chat.usage
    return text, usage.completion_tokens if usage is not None else None


async def _lean(sender: LeanSender, sample: Sample, route: str) -> tuple[str, int | None]:
    """The lean path: the same route choice as `_generate`, on aiohttp."""
    if route == "completion":
        assert sample.prompt is not None  # messages samples are refused before the run
        return await sender.complete(sample.prompt)
    if route == "generate" and sample.prompt is not None:
        return await sender.generate(sample.prompt)
    return await sender.chat(sample.messages or ({"role": "user", "content": sample.prompt or ""},))


async def _generate(
    client: AsyncInferenceClient, http: httpx.AsyncClient, sample: Sample, config: ClientConfig
) -> tuple[str, int | None]:
    max_new_tokens = config.max_new_tokens
    if config.route == "chat":
        messages = list(sample.messages or ({"role": "user", "content": sample.prompt or ""},))
        return await _chat(client, messages, config)
    if config.route == "completion":
        assert sample.prompt is not None  # messages samples are refused before the run
        return await _complete(http, config, sample.prompt)
    if sample.prompt is not None:
        out = await client.text_generation(
            sample.prompt,
            details=True,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            # POST / defaults return_full_text to true for text-generation models (TGI's compat route
            # follows the model's pipeline tag), which would prepend the prompt to every answer.
            return_full_text=False,
        )
        tokens = out.details.generated_tokens if out.details is not None else None
        return out.generated_text, tokens
    assert sample.messages is not None  # the dataset guarantees one of prompt and messages
    return await _chat(client, list(sample.messages), config)


class _Run:
    """State shared by the workers of one run."""

    def __init__(
        self, send: Callable[[Sample], Awaitable[tuple[str, int | None]]], config: ClientConfig
    ) -> None:
        self.send = send
        self.config = config
        self.any_success = False
        self.retries = 0

    async def one(self, sample: Sample) -> Completion:
        config = self.config
        attempt = 0
        while True:
            attempt += 1
            start = time.perf_counter()
            try:
                async with asyncio.timeout(config.timeout):
                    text, tokens = await self.send(sample)
            except Exception as e:  # every failure is classified; none may kill the run
                failure = _classify(e, config.timeout)
            else:
                self.any_success = True
                return Completion(text, time.perf_counter() - start, tokens, attempt)
            if failure.retryable and attempt <= config.retries:
                self.retries += 1
                delay = random.uniform(0, min(config.backoff_max, config.backoff_base * 2 ** (attempt - 1)))
                await asyncio.sleep(delay)
                continue
            if failure.transport and not self.any_success:
                raise EndpointUnreachable(
                    f"endpoint {config.endpoint} unreachable after {attempt} attempt(s): {failure.message}"
                )
            return Completion(None, attempts=attempt, error=failure.message)


async def run_requests(
    samples: Sequence[Sample],
    config: ClientConfig,
    on_result: Callable[[int, Completion], None] | None = None,
) -> tuple[list[Completion], int]:
    """Send every sample; returns the completions (in sample order) and the number of retries.

    `on_result(index, completion)` is called as each sample finishes (for streaming output).
    Raises EndpointUnreachable as described in the module docstring.
    """
    if config.concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if config.route not in ROUTES:
        raise ValueError(f"route must be one of {', '.join(ROUTES)}, got {config.route!r}")
    if config.route == "completion" and any(s.messages is not None for s in samples):
        first = next(s for s in samples if s.messages is not None)
        raise ValueError(
            f"route completion sends raw prompts, but sample {first.id!r} (line {first.line}) has messages; "
            "use route chat"
        )
    if config.transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, got {config.transport!r}")
    results: list[Completion | None] = [None] * len(samples)
    pending = iter(range(len(samples)))
    async with _sender(config) as send:
        run = _Run(send, config)

        async def worker() -> None:
            # A shared iterator is the queue: asyncio switches tasks only at awaits, so `next` is atomic.
            for index in pending:
                completion = await run.one(samples[index])
                results[index] = completion
                if on_result is not None:
                    on_result(index, completion)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(config.concurrency, len(samples))):
                    group.create_task(worker())
        except ExceptionGroup as group_error:
            # Surface the first real error (an unreachable endpoint, or a bug in on_result), not the group.
            cause: BaseException = group_error.exceptions[0]
            for e in group_error.exceptions:
                if isinstance(e, EndpointUnreachable):
                    cause = e
                    break
            raise cause from None
    return [r for r in results if r is not None], run.retries


@asynccontextmanager
async def _sender(
    config: ClientConfig,
) -> AsyncIterator[Callable[[Sample], Awaitable[tuple[str, int | None]]]]:
    """The function that sends one sample over `config.transport`, with its connections open."""
    if config.transport == "aiohttp":
        lean = LeanSender(
            config.endpoint,
            api_key=config.api_key,
            concurrency=config.concurrency,
            max_new_tokens=config.max_new_tokens,
            model=config.model,
        )
        async with lean:
            yield lambda sample: _lean(lean, sample, config.route)
        return
    headers = {} if config.api_key else {"authorization": None}
    client = AsyncInferenceClient(
        base_url=config.endpoint,
        api_key=config.api_key,
        timeout=config.timeout,
        headers=headers,  # type: ignore[arg-type]  # None removes the header (see module docstring)
    )
    auth = {"authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    http = httpx.AsyncClient(
        headers=auth, timeout=config.timeout, limits=httpx.Limits(max_connections=config.concurrency)
    )
    async with client, http:
        yield lambda sample: _generate(client, http, sample, config)
