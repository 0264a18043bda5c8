"""Run an `llmops.gateway.Gateway` on its own event loop in a thread (unit tests, benchmarks).

The counterpart of `llmops_dev.tgisim.run_in_thread`: the test or benchmark stays synchronous
(httpx, the real huggingface_hub client) while the gateway serves from a daemon thread.
`serve_pod` puts the two together as a server pod does: a simulator behind a gateway, with the
Prometheus target a PodMonitor would make of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator

from llmops.gateway import Gateway, GatewayConfig, RequestIdSigner
from llmops_dev.prometheus import Target, tgi_target
from llmops_dev.tgisim import Simulator, run_in_thread

__all__ = ["run_gateway_in_thread", "serve_pod"]


@contextlib.contextmanager
def run_gateway_in_thread(
    gateway: Gateway,
    host: str = "127.0.0.1",
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
) -> Iterator[tuple[str, str]]:
    """Serve `gateway` on free ports of `host`; yields (API URL, health URL). `loop_factory`:
    uvloop.new_event_loop runs it on the loop `llmops gateway` runs on."""
    loop = loop_factory()
    thread = threading.Thread(target=loop.run_forever, name="gateway", daemon=True)
    thread.start()
    try:
        urls = asyncio.run_coroutine_threadsafe(gateway.start(host, 0, 0), loop).result(timeout=30)
        try:
            yield urls
        finally:
            asyncio.run_coroutine_threadsafe(gateway.stop(), loop).result(timeout=30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def serve_pod(
    stack: contextlib.ExitStack, sim: Simulator, deployment: str, track: str, signing_key: bytes
) -> tuple[str, Target]:
    """`sim` behind a gateway for `deployment` ("namespace/name") on `track`, both in threads that
    `stack` stops; returns the gateway's API URL and its health port as a Prometheus target,
    labelled as the PodMonitor labels a server pod (pod `<name>-<track>-0`, the sim's revision)."""
    namespace, _, name = deployment.partition("/")
    upstream = stack.enter_context(run_in_thread(sim))
    config = GatewayConfig(upstream=upstream, deployment=deployment, revision=sim.revision, track=track)
    gateway = Gateway(config, RequestIdSigner(signing_key, deployment), None)
    api, health = stack.enter_context(run_gateway_in_thread(gateway))
    target = tgi_target(
        health.removeprefix("http://"),
        namespace=namespace,
        pod=f"{name}-{track}-0",
        deployment=name,
        track=track,
        revision=sim.revision,
    )
    return api, target
