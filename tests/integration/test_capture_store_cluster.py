"""The capture store for real on the local cluster: the operator renders `<name>-capture`, the
fake kubelet runs `llmops capture-store` with its PVC as a real folder, and the test speaks to
the Service as a gateway and a retrain Job would, through the dev Service proxy.

One LLMDeployment serves the whole scenario (CPU is scarce). Its PVC is bound to a static
PersistentVolume on a 2 MiB tmpfs the test mounts (so "disk full" is a real ENOSPC from a real
file system; mounting needs root, which the integration tier has), in this order:

- records written, read back with their feedback; the store's series in the real Prometheus;
- the store SIGKILLed while batches are in flight: after the restart every acknowledged record
  is readable, and a torn last member is discarded (SIGKILL cannot tear one write(2) in the page
  cache, a power cut can: the test plants the half member such a crash leaves) and cut off
  before the next append; a 40-day-old segment planted before the restart is gone (retention);
- the store down (crash-looping) while a stand-in gateway sender (llmops_dev.capture_sender, a
  pod labelled with the deployment) keeps sending: CaptureDegraded=True StoreUnavailable with the
  drops the real Prometheus scraped from it, and back to CaptureHealthy when the store returns;
- the volume full: 507 naming the disk, every acknowledged record still readable, every segment
  still whole; writes resume once there is room;
- capture removed: the store's children go, the PVC with them.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import gzip
import json
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from llmops.capture_store.segments import complete_length, list_segments
from llmops_dev.cluster import Cluster
from llmops_dev.prometheus import Prometheus
from testkit import get_json, restricted, unique, wait_for
from testkit.network import through_the_cluster
from testkit.operator import OperatorProcess, condition, llmd, sample, wait_condition
from testkit.volumes import static_volume

REV = "c" * 40
NAME = "cap"
STORE = f"{NAME}-capture"
CLASS = "capture-tmpfs"
TMPFS_SIZE = "2m"


def stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def request(rid: str, when: dt.datetime | None = None, prompt: str = "hello") -> dict[str, Any]:
    return {
        "kind": "request",
        "time": stamp(when or dt.datetime.now(dt.UTC)),
        "requestId": rid,
        "deployment": f"x/{NAME}",
        "revision": REV,
        "track": "stable",
        "client": "team-a",
        "route": "/generate",
        "prompt": prompt,
        "response": "an answer",
        "promptTokens": 1,
        "completionTokens": 2,
        "latencyMs": 3.0,
        "finishReason": "length",
    }


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


class StoreClient:
    """The store's Service, as a gateway (POST) and a retrain Job (GET) reach it."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}

    # A client per call: a pooled connection that the store's SIGKILL breaks would otherwise be
    # left for the garbage collector (a ResourceWarning, an error under filterwarnings=error).
    def post(self, records: list[dict[str, Any]]) -> httpx2.Response:
        with httpx2.Client(timeout=30) as http:
            return http.post(f"{self.url}/v1/records", content=jsonl(records), headers=self.headers)

    def get(self, **params: str) -> httpx2.Response:
        with httpx2.Client(timeout=30) as http:
            return http.get(f"{self.url}/v1/records", params=params, headers=self.headers)

    def ids(self, **params: str) -> list[str]:
        r = self.get(**params)
        assert r.status_code == 200, r.text
        return [json.loads(line)["requestId"] for line in r.text.splitlines()]


@contextlib.contextmanager
def tmpfs(path: Path) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0777", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def sender_pod(namespace: str, token_secret: str) -> str:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "sender",
            "namespace": namespace,
            "labels": {"llmops.io/deployment": NAME, "app.kubernetes.io/component": "server"},
        },
        "spec": restricted(
            {
                "containers": [
                    {
                        "name": "sender",
                        "image": "ghcr.io/llmops-io/llmops-operator:0.1.0",
                        "command": ["python", "-m", "llmops_dev.capture_sender"],
                        "args": [
                            "--store",
                            f"http://{STORE}.{namespace}.svc.cluster.local:8080",
                            "--token-file",
                            "/etc/token/capture-token",
                            "--revision",
                            REV,
                            "--rate",
                            "40",
                            "--queue",
                            "50",
                            "--health-port",
                            "9091",
                        ],
                        "ports": [{"name": "metrics", "containerPort": 9091}],
                        "volumeMounts": [{"name": "token", "mountPath": "/etc/token", "readOnly": True}],
                    }
                ],
                "volumes": [{"name": "token", "secret": {"secretName": token_secret}}],
            }
        ),
    }
    return json.dumps(pod)


def store_pid(cluster: Cluster, namespace: str) -> int | None:
    assert cluster.state_dir is not None
    pods = get_json(cluster, "pods", "-n", namespace, "-l", "app.kubernetes.io/component=capture-store")
    for pod in pods.get("items", []):
        record = cluster.state_dir / "pods" / f"{namespace}_{pod['metadata']['name']}.json"
        with contextlib.suppress(OSError, ValueError, KeyError):
            return int(json.loads(record.read_text())["containers"]["capture-store"]["pid"])
    return None


def prom_value(prom: Prometheus, query: str) -> float | None:
    r = httpx2.get(f"{prom.url}/api/v1/query", params={"query": query}, timeout=10)
    result = r.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_capture_store_crash_recovery_outage_full_disk_retention_and_removal(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    prometheus: Prometheus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cluster.state_dir is not None
    assert os.geteuid() == 0, "this test mounts a tmpfs (a real full disk): the integration tier runs as root"
    pv = unique("capture-tmpfs")
    with tmpfs(tmp_path / "volume") as volume:
        cluster.kubectl(
            "apply",
            "-f",
            "-",
            input=static_volume(
                pv, volume, namespace=namespace, claim=STORE, storage_class=CLASS, size="2Mi"
            ),
        )
        try:
            _scenario(cluster, namespace, volume, prometheus, monkeypatch)
        finally:
            cluster.kubectl("delete", "pod", "sender", "-n", namespace, "--wait=false", check=False)
            cluster.kubectl("delete", "llmd", NAME, "-n", namespace, "--wait=false", check=False)
            cluster.kubectl("delete", "pv", pv, "--wait=false", check=False)


def _scenario(
    cluster: Cluster, namespace: str, volume: Path, prometheus: Prometheus, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cluster.state_dir is not None
    capture = {"sampleRate": 1.0, "store": {"size": "2Mi", "storageClassName": CLASS}}
    # The local Prometheus scrapes every second; declaring 5s (checks every 10 s over 40s) lets the
    # drops of the outage below roll off in under a minute instead of the default 2m window's 2.5.
    monitoring = {"podMonitor": {"interval": "5s"}}
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=sample(NAME, REV, gateway={"capture": capture}, monitoring=monitoring),
    )
    healthy = wait_condition(
        cluster, namespace, NAME, "CaptureDegraded", "False", "CaptureHealthy", timeout=240
    )
    assert healthy["status"]["capture"]["window"] == "40s", healthy["status"]["capture"]
    secret = get_json(cluster, "secret", f"{NAME}-gateway", "-n", namespace)
    token = base64.b64decode(secret["data"]["capture-token"]).decode()
    kinds = {
        o["kind"]
        for o in get_json(cluster, "deployments,services,pvc,networkpolicies", "-n", namespace)["items"]
        if o["metadata"]["name"] == STORE
    }
    assert kinds == {"Deployment", "Service", "PersistentVolumeClaim", "NetworkPolicy"}

    through_the_cluster(monkeypatch, cluster)
    store = StoreClient(f"http://{STORE}.{namespace}.svc.cluster.local:8080", token)
    assert httpx2.get(f"{store.url}/v1/records", timeout=30).status_code == 401

    # -- written, joined with feedback, scraped
    first = [request(f"first-{i}") for i in range(5)]
    r = store.post(first)
    assert r.status_code == 200 and r.json() == {"accepted": 5}, r.text
    rated = {**first[0], "kind": "feedback", "rating": "down", "time": stamp(dt.datetime.now(dt.UTC))}
    assert store.post([rated]).status_code == 200
    assert store.ids(feedback="down") == ["first-0"]
    assert [p.name for _, p in list_segments(volume)] == [
        f"{REV}.feedback.jsonl.gz",
        f"{REV}.requests.jsonl.gz",
    ]
    written = f'llmops_capture_store_records_written_total{{namespace="{namespace}",llmops_deployment="{NAME}",kind="request"}}'
    wait_for("Prometheus to scrape the store", lambda: prom_value(prometheus, written) == 5, timeout=60)

    # -- SIGKILL while batches are in flight
    today = dt.datetime.now(dt.UTC).date()
    ancient = volume / (today - dt.timedelta(days=40)).isoformat() / f"{REV}.requests.jsonl.gz"
    ancient.parent.mkdir()
    ancient.write_bytes(
        gzip.compress(jsonl([request("ancient", dt.datetime.now(dt.UTC) - dt.timedelta(days=40))]))
    )
    acked: list[str] = ["first-0", "first-1", "first-2", "first-3", "first-4"]
    stop = threading.Event()

    def sender() -> None:
        while not stop.is_set():
            batch = [request(uuid.uuid4().hex) for _ in range(10)]
            try:
                if store.post(batch).status_code == 200:
                    acked.extend(x["requestId"] for x in batch)
            except httpx2.HTTPError:
                pass

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    before = len(acked)
    wait_for("batches to be acknowledged under load", lambda: len(acked) >= before + 100, timeout=60)
    pid = store_pid(cluster, namespace)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    wait_for("the store to restart", lambda: store_pid(cluster, namespace) not in (None, pid), timeout=60)
    wait_for("the restarted store to answer", lambda: _answers(store), timeout=60)
    segment = volume / today.isoformat() / f"{REV}.requests.jsonl.gz"
    whole = segment.stat().st_size
    torn = gzip.compress(jsonl([request("torn")]))
    with segment.open("ab") as f:
        f.write(torn[: len(torn) // 2])
    stored = store.ids()
    assert set(acked) <= set(stored), f"{len(set(acked) - set(stored))} acknowledged records lost"
    assert "torn" not in stored and "ancient" not in stored
    assert not ancient.exists(), "retention kept a 40-day-old segment across the restart sweep"
    assert store.post([request("after-crash")]).status_code == 200
    assert segment.stat().st_size > whole and complete_length(segment) == segment.stat().st_size
    assert store.ids()[-1] == "after-crash"

    # -- store down while a gateway keeps sending: CaptureDegraded with the drops, then recovered
    cluster.kubectl("apply", "-f", "-", input=sender_pod(namespace, f"{NAME}-gateway"))
    sent = f'llmops_capture_sent_total{{namespace="{namespace}",llmops_deployment="{NAME}"}}'
    wait_for(
        "the sender's records to reach the store", lambda: (prom_value(prometheus, sent) or 0) > 0, timeout=90
    )

    def crash_until_down() -> dict[str, Any] | None:
        # The condition and status.capture from one read: the store may be back by the next one.
        obj = llmd(cluster, namespace, NAME)
        cond = condition(obj, "CaptureDegraded")
        if cond.get("reason") == "StoreUnavailable" and "0 record(s) dropped" not in cond.get("message", ""):
            return obj
        current = store_pid(cluster, namespace)
        if current is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(current, signal.SIGKILL)  # each crash lengthens the kubelet's back-off
        return None

    down_obj = wait_for(
        "CaptureDegraded=True StoreUnavailable with drops", crash_until_down, timeout=180, interval=2
    )
    down = condition(down_obj, "CaptureDegraded")
    assert down["status"] == "True" and "record(s) dropped by the gateways" in down["message"], down
    status = down_obj["status"]["capture"]
    assert status["storeReady"] is False and status["dropped"] > 0, status
    # The sender stops now, so the drops' window starts rolling off while the store waits out its
    # crash-loop back-off (one after the other they took twice as long). The store is back, then
    # the drops of the last window still count until the window has passed them, then capture is
    # healthy again.
    cluster.kubectl("delete", "pod", "sender", "-n", namespace, "--wait=false")
    wait_for(
        "the store to be ready again",
        lambda: llmd(cluster, namespace, NAME)["status"]["capture"]["storeReady"],
        timeout=360,
        interval=1,
    )
    wait_condition(cluster, namespace, NAME, "CaptureDegraded", "False", "CaptureHealthy", timeout=300)

    # -- the volume fills up: 507, acknowledged records intact, every segment whole
    filler = os.urandom(4000).hex()
    full = None
    for i in range(400):
        batch = [request(f"fill-{i}-{j}", prompt=filler) for j in range(5)]
        r = store.post(batch)
        if r.status_code == 507:
            full = r
            break
        assert r.status_code == 200, r.text
        acked.extend(x["requestId"] for x in batch)
    assert full is not None and full.json()["reason"] == "disk", "the 2 MiB volume never filled"
    assert set(acked) <= set(store.ids())
    for _, path in list_segments(volume):
        assert complete_length(path) == path.stat().st_size, f"{path} is not whole"
    subprocess.run(["mount", "-o", "remount,size=4m", str(volume)], check=True)
    assert store.post([request("room-again")]).status_code == 200

    # -- capture removed: the store goes, its PVC with it
    cluster.kubectl(
        "patch",
        "llmd",
        NAME,
        "-n",
        namespace,
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/spec/gateway/capture"}]',
    )

    def store_gone() -> bool:
        left = get_json(cluster, "deployments,services,pvc,networkpolicies", "-n", namespace)["items"]
        obj = llmd(cluster, namespace, NAME)
        return not [o for o in left if o["metadata"]["name"] == STORE] and "capture" not in obj.get(
            "status", {}
        )

    wait_for("the store's children and status.capture to go", store_gone, timeout=90)
    assert condition(llmd(cluster, namespace, NAME), "CaptureDegraded") == {}


def _answers(store: StoreClient) -> bool:
    with contextlib.suppress(httpx2.HTTPError):
        return store.get(revision="none").status_code == 200
    return False
