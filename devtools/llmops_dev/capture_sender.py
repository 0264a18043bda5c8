"""A stand-in for a gateway's capture sender: synthetic records into a capture store, as a gateway
sends them, with the gateway's drop counter.

    python -m llmops_dev.capture_sender --store http://m-capture.ns.svc:8080 \\
        --token-file /etc/llmops/capture/capture-token --deployment ns/m --revision R --rate 50

It makes `--rate` request records a second into a bounded queue (`--queue`); a sender POSTs them
to `{store}/v1/records` in batches of up to `--batch` (JSONL, bearer token), keeps a refused or
failed batch at the head of the queue and tries again after a short pause, and counts every
record that finds the queue full in `llmops_capture_dropped_total` (on `--health-port`'s
/metrics, beside `llmops_capture_sent_total`). Tests run it as a pod labelled with the
LLMDeployment, so the real Prometheus scrapes its drops the way it scrapes a gateway's.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import logging
import uuid
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, generate_latest

__all__ = ["main"]

log = logging.getLogger("llmops.capture_sender")
_RETRY_SECONDS = 0.5


class Sender:
    """The queue, the producer, the sender and the metrics."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.token = Path(args.token_file).read_text().strip()
        self.queue: collections.deque[bytes] = collections.deque()
        self.registry = CollectorRegistry()
        self.dropped = Counter(
            "llmops_capture_dropped",
            "Records dropped: the queue was full.",
            ["reason"],
            registry=self.registry,
        )
        self.dropped.labels("queue_full")
        self.sent = Counter("llmops_capture_sent", "Records the store acknowledged.", registry=self.registry)

    def record(self) -> bytes:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return json.dumps(
            {
                "kind": "request",
                "time": now,
                "requestId": uuid.uuid4().hex,
                "deployment": self.args.deployment,
                "revision": self.args.revision,
                "track": "stable",
                "client": "capture-sender",
                "route": "/generate",
                "prompt": "synthetic prompt",
                "response": "synthetic answer",
                "promptTokens": 2,
                "completionTokens": 2,
                "latencyMs": 1.0,
                "finishReason": "length",
            }
        ).encode()

    async def produce(self) -> None:
        while True:
            if len(self.queue) >= self.args.queue:
                self.dropped.labels("queue_full").inc()
            else:
                self.queue.append(self.record())
            await asyncio.sleep(1.0 / self.args.rate)

    async def send(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/x-ndjson"}
        # trust_env: in a pod of the fake kubelet, Service names resolve through its HTTP proxy.
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10), trust_env=True) as session:
            while True:
                batch = [self.queue[i] for i in range(min(self.args.batch, len(self.queue)))]
                if not batch:
                    await asyncio.sleep(0.05)
                    continue
                try:
                    async with session.post(
                        f"{self.args.store}/v1/records", data=b"\n".join(batch) + b"\n", headers=headers
                    ) as r:
                        ok = r.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if ok:
                    for _ in batch:
                        self.queue.popleft()
                    self.sent.inc(len(batch))
                else:
                    await asyncio.sleep(_RETRY_SECONDS)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), content_type="text/plain")


async def _run(args: argparse.Namespace) -> None:
    sender = Sender(args)
    app = web.Application()
    app.router.add_get("/metrics", sender.metrics)
    app.router.add_get("/healthz", sender.metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.health_port).start()
    log.info("sending to %s at %s records/s (queue %d)", args.store, args.rate, args.queue)
    await asyncio.gather(sender.produce(), sender.send())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m llmops_dev.capture_sender", description=__doc__)
    p.add_argument("--store", required=True, help="the capture store's base URL")
    p.add_argument("--token-file", required=True)
    p.add_argument("--deployment", default="ns/name")
    p.add_argument("--revision", default="r")
    p.add_argument("--rate", type=float, default=50.0, help="records per second")
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--queue", type=int, default=100)
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=0, help="unused (the kubelet's port flags)")
    p.add_argument("--health-port", type=int, default=9091, help="/metrics")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_run(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
