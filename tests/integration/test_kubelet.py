"""The fake kubelet on the local cluster: TGI pods as simulators, Job pods as local processes,
kubelet-like failures, the storage provisioner, the fake Hub and the Service proxy.

The kubelet runs once per session (started here unless one already runs for the cluster's
state folder, e.g. when the cluster starts it itself).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops.api.conditions import STARTUP_TIMED_OUT
from llmops.api.constants import (
    DEFAULT_TGI_IMAGE,
    LABEL_DEPLOYMENT,
    LABEL_REVISION,
    LABEL_TRACK,
    OPERATOR_IMAGE,
)
from llmops.lifecycle.diagnose import diagnose_pods
from llmops_dev.cluster import Cluster
from llmops_dev.fakehub import commit_for
from llmops_dev.kubelet import running_pid
from llmops_dev.kubelet.proxy import resolve
from llmops_dev.processes import stop_pid, tail
from testkit import get_json, restricted, unique, wait_for

Obj = dict[str, Any]
_MODULE = "llmops_dev.kubelet"


@dataclass
class Kubelet:
    state_dir: Path
    hub_url: str
    proxy_url: str

    def record(self, ns: str, pod: str) -> Obj | None:
        """The kubelet's record of a pod's processes (pids, simulator ports)."""
        try:
            return json.loads((self.state_dir / "pods" / f"{ns}_{pod}.json").read_text())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    def hub(self, section: str, key: str, value: Any = True) -> None:
        """Add a repo to a hub.json section (shared by the session: use unique repo names)."""
        path = self.state_dir / "hub.json"
        config = json.loads(path.read_text()) if path.exists() else {}
        if value is True:
            config.setdefault(section, [])
            config[section].append(key)
        else:
            config.setdefault(section, {})[key] = value
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config))
        os.replace(tmp, path)

    def behaviour(self, revision: str, **fields: Any) -> None:
        path = self.state_dir / "behaviours" / f"{revision}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(fields))
        os.replace(tmp, path)


@pytest.fixture(scope="session")
def kubelet(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubelet]:
    state = cluster.state_dir or tmp_path_factory.mktemp("kubelet-state")
    log = state / "logs" / "kubelet.log"
    started: subprocess.Popen[bytes] | None = None
    if running_pid(state) is None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            started = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    _MODULE,
                    "--kubeconfig",
                    str(cluster.kubeconfig),
                    "--state-dir",
                    str(state),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def ready() -> Obj | None:
        if started is not None and started.poll() is not None:
            raise AssertionError(f"the fake kubelet exited with {started.returncode}:\n{tail(log)}")
        try:
            info: Obj = json.loads((state / "kubelet.json").read_text())
        except (OSError, ValueError):
            return None
        return info if info["pid"] == running_pid(state) else None

    info = wait_for("the fake kubelet to be ready", ready, timeout=60)
    try:
        yield Kubelet(state, info["hub_url"], info["proxy_url"])
    finally:
        if started is not None:
            stop_pid(started.pid, _MODULE)
            started.wait(timeout=10)


# -- helpers ----------------------------------------------------------------------------------


def apply(cluster: Cluster, ns: str, *objs: Obj) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(objs))


def pods(cluster: Cluster, ns: str, selector: str) -> list[Obj]:
    return list(get_json(cluster, "pods", "-n", ns, "-l", selector).get("items", []))


def one_pod(cluster: Cluster, ns: str, selector: str) -> Obj | None:
    items = pods(cluster, ns, selector)
    return items[0] if items else None


def container_state(pod: Obj | None) -> Obj:
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or [{}]
    return statuses[0].get("state") or {}


def condition(pod: Obj | None, type_: str) -> str | None:
    for c in ((pod or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return str(c["status"])
    return None


def job(name: str, container: Obj, *, volumes: list[Obj] | None = None, **spec: Any) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            **spec,
            "template": {
                "metadata": {"labels": {LABEL_DEPLOYMENT: "demo", "job": name}},
                "spec": restricted(
                    {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": OPERATOR_IMAGE, **container}],
                        "volumes": volumes or [],
                    }
                ),
            },
        },
    }


def pvc(name: str, storage_class: str | None = None) -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def secret(name: str, **data: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def tgi(name: str, revision: str, *, image: str = DEFAULT_TGI_IMAGE) -> list[Obj]:
    """A TGI Deployment as the operator renders one (the parts the kubelet reads) and its Service."""
    labels = {"app": name, LABEL_DEPLOYMENT: name, LABEL_TRACK: "stable", LABEL_REVISION: revision[:12]}
    container = {
        "name": "tgi",
        "image": image,
        "args": ["--model-id", "org/llm", "--revision", revision],
        "env": [
            {"name": "HOSTNAME", "value": "0.0.0.0"},
            {"name": "PORT", "value": "8080"},
            {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": f"{name}-key", "key": "key"}}},
        ],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 2},
        "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
    }
    return [
        secret(f"{name}-key", key="s3cret"),
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": restricted(
                        {
                            "containers": [container],
                            "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}],
                        }
                    ),
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {
                "selector": {"app": name},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    ]


def via_proxy(
    kubelet: Kubelet, url: str, body: Obj | None = None, key: str | None = "s3cret"
) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": kubelet.proxy_url}))
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None, headers=headers)
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


# -- TGI pods ---------------------------------------------------------------------------------


def test_tgi_pod_is_ready_only_once_its_simulator_is_healthy_and_serves_through_its_service(
    cluster: Cluster, namespace: str, kubelet: Kubelet
) -> None:
    revision = unique("rev")
    kubelet.behaviour(revision, healthy=False)
    apply(cluster, namespace, *tgi("llm", revision))
    url = f"http://llm.{namespace}.svc.cluster.local/generate"

    # Running, its simulator answers /health with 503: not Ready, and the Service has no endpoint.
    pod = wait_for(
        "a running TGI pod",
        lambda: (p := one_pod(cluster, namespace, "app=llm")) and "running" in container_state(p) and p,
    )
    name = pod["metadata"]["name"]
    record = wait_for("the simulator's port", lambda: kubelet.record(namespace, name))
    port = record["containers"]["tgi"]["port"]
    health = f"http://127.0.0.1:{port}/health"
    wait_for("the simulator to answer 503", lambda: _status(health) == 503)
    assert condition(one_pod(cluster, namespace, "app=llm"), "Ready") == "False"
    status, text = via_proxy(kubelet, url, {"inputs": "hi"})
    assert (status, text) == (503, f"llmops proxy: no ready endpoints for service {namespace}/llm port 80\n")

    kubelet.behaviour(revision, healthy=True)
    wait_for(
        "the pod to be Ready", lambda: condition(one_pod(cluster, namespace, "app=llm"), "Ready") == "True"
    )
    status, text = wait_for(
        "/generate through the Service",
        lambda: (r := via_proxy(kubelet, url, {"inputs": "hi", "parameters": {"max_new_tokens": 4}}))[0]
        == 200
        and r,
    )
    assert "generated_text" in json.loads(text)
    # The API key from the Secret reached the simulator: without it TGI answers 401.
    assert via_proxy(kubelet, url, {"inputs": "hi"}, key=None)[0] == 401

    pod = one_pod(cluster, namespace, "app=llm")
    assert pod is not None
    assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"].startswith("10.244.")
    assert pod["status"]["containerStatuses"][0]["ready"] is True
    # Host-side helpers: endpoints.json for resolve(), file_sd targets for Prometheus.
    loopback = wait_for("endpoints.json", lambda: _try_resolve(kubelet, url))
    assert loopback == f"http://127.0.0.1:{port}/generate"

    # The targets file is written after endpoints.json (a moment later, in its own write).
    def targets_of_mine() -> list[dict[str, Any]]:
        targets = json.loads((kubelet.state_dir / "tgi-targets.json").read_text())
        return [t for t in targets if t["labels"]["namespace"] == namespace]

    mine = wait_for("the pod in tgi-targets.json", targets_of_mine)
    assert mine == [
        {
            "targets": [f"127.0.0.1:{port}"],
            "labels": {
                "namespace": namespace,
                "pod": name,
                "container": "tgi",
                "app": "llm",
                "pod_template_hash": pod["metadata"]["labels"]["pod-template-hash"],
                "llmops_io_deployment": "llm",
                "llmops_io_track": "stable",
                "llmops_io_revision": revision[:12],
                "llmops_deployment": "llm",
                "llmops_track": "stable",
                "llmops_revision": revision[:12],
            },
        }
    ]


def test_streamed_answers_pass_the_proxy_unbuffered(
    cluster: Cluster, namespace: str, kubelet: Kubelet
) -> None:
    revision = unique("rev")
    kubelet.behaviour(revision, time_per_token_seconds=0.3)
    apply(cluster, namespace, *tgi("llm", revision))
    wait_for(
        "the pod to be Ready",
        lambda: condition(one_pod(cluster, namespace, "app=llm"), "Ready") == "True",
        60,
    )
    wait_for(
        "an endpoint", lambda: via_proxy(kubelet, f"http://llm.{namespace}.svc:80/health", key=None)[0] == 200
    )

    host, port = kubelet.proxy_url.removeprefix("http://").split(":")
    body = json.dumps({"inputs": "hi", "parameters": {"max_new_tokens": 8}}).encode()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            f"POST http://llm.{namespace}.svc.cluster.local/generate_stream HTTP/1.1\r\n"
            f"Host: llm.{namespace}.svc.cluster.local\r\nAuthorization: Bearer s3cret\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        started = time.monotonic()
        received = b""
        first_event_at = None
        while chunk := s.recv(65536):
            received += chunk
            if first_event_at is None and b"data:" in received:
                first_event_at = time.monotonic() - started
        total = time.monotonic() - started
    assert b"HTTP/1.1 200" in received.split(b"\r\n", 1)[0]
    assert received.count(b"data:") == 8
    # Eight tokens 0.3 s apart take about 2.1 s; the first event must not wait for the last.
    assert first_event_at is not None and total - first_event_at > 1.5, (first_event_at, total)


def test_a_job_reaches_a_service_by_its_cluster_name_with_huggingface_hub(
    cluster: Cluster, namespace: str, kubelet: Kubelet
) -> None:
    revision = unique("rev")
    apply(cluster, namespace, *tgi("llm", revision))
    wait_for(
        "the pod to be Ready",
        lambda: condition(one_pod(cluster, namespace, "app=llm"), "Ready") == "True",
        60,
    )
    script = (
        "import os, sys\n"
        "from huggingface_hub import InferenceClient\n"
        f"client = InferenceClient(base_url='http://llm.{namespace}.svc.cluster.local', api_key=os.environ['KEY'])\n"
        "open(sys.argv[1], 'w').write(client.text_generation('hello', max_new_tokens=4))\n"
    )
    env = [{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "llm-key", "key": "key"}}}]
    apply(
        cluster,
        namespace,
        job("client", {"command": ["python", "-c", script, "/dev/termination-log"], "env": env}),
    )
    pod = wait_for(
        "the client Job's pod to finish",
        lambda: (p := one_pod(cluster, namespace, "job=client"))
        and p["status"].get("phase") in ("Succeeded", "Failed")
        and p,
        60,
    )
    state = container_state(pod)["terminated"]
    assert (pod["status"]["phase"], state["exitCode"]) == ("Succeeded", 0), state
    # InferenceClient posts to TGI's compat route "/", which returns the full text by default.
    assert state["message"] == "helloThis is a simulated"


def test_a_crashed_simulator_is_restarted_then_backs_off(
    cluster: Cluster, namespace: str, kubelet: Kubelet
) -> None:
    apply(cluster, namespace, *tgi("llm", unique("rev")))
    pod = wait_for(
        "a Ready pod",
        lambda: (p := one_pod(cluster, namespace, "app=llm")) and condition(p, "Ready") == "True" and p,
        60,
    )
    name = pod["metadata"]["name"]

    def kill_simulator() -> int:
        record = wait_for(
            "a running simulator", lambda: (r := kubelet.record(namespace, name)) and r["containers"] and r
        )
        pid = int(record["containers"]["tgi"]["pid"])
        os.kill(pid, 9)
        return pid

    kill_simulator()
    pod = wait_for(
        "the first restart",
        lambda: (p := one_pod(cluster, namespace, "app=llm"))
        and p["status"]["containerStatuses"][0]["restartCount"] == 1
        and "running" in container_state(p)
        and p,
    )
    last = pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (137, "Error")

    kill_simulator()
    waiting_state = wait_for(
        "CrashLoopBackOff",
        lambda: container_state(one_pod(cluster, namespace, "app=llm")).get("waiting", {}).get("reason")
        == "CrashLoopBackOff"
        and container_state(one_pod(cluster, namespace, "app=llm"))["waiting"],
    )
    assert waiting_state["message"].startswith(
        f"back-off 10s restarting failed container=tgi pod={name}_{namespace}("
    )
    pod = one_pod(cluster, namespace, "app=llm")
    assert condition(pod, "Ready") == "False" and pod["status"]["phase"] == "Running"


def test_a_server_not_started_within_its_startup_probe_is_killed_and_read_as_a_startup_timeout(
    cluster: Cluster, namespace: str, kubelet: Kubelet
) -> None:
    """The startup probe's budget spent (here 3 s: 3 failures 1 s apart) without an answer, the
    container is killed and restarted, as by the kubelet; the status left behind is what the
    operator reads as StartupTimedOut, not as a crash."""
    revision = unique("rev")
    kubelet.behaviour(revision, startup_delay_seconds=3600)
    objs = tgi("llm", revision)
    container = objs[1]["spec"]["template"]["spec"]["containers"][0]
    container["startupProbe"] = {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": 1,
        "failureThreshold": 3,
    }
    apply(cluster, namespace, *objs)
    pod = wait_for(
        "the first restart",
        lambda: (p := one_pod(cluster, namespace, "app=llm"))
        and (p["status"].get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 1
        and p,
        60,
    )
    status = pod["status"]["containerStatuses"][0]
    assert status["started"] is False and condition(pod, "Ready") == "False"
    problem = diagnose_pods([pod], now=dt.datetime.now(dt.UTC))
    assert problem is not None and problem.reason == STARTUP_TIMED_OUT, problem
    assert "within 3s" in problem.message


def test_deleting_a_pod_stops_its_process(cluster: Cluster, namespace: str, kubelet: Kubelet) -> None:
    apply(cluster, namespace, *tgi("llm", unique("rev")))
    pod = wait_for(
        "a Ready pod",
        lambda: (p := one_pod(cluster, namespace, "app=llm")) and condition(p, "Ready") == "True" and p,
        60,
    )
    name = pod["metadata"]["name"]
    pid = int(kubelet.record(namespace, name)["containers"]["tgi"]["pid"])  # type: ignore[index]
    assert _alive(pid)
    cluster.kubectl("delete", "pod", "-n", namespace, name, "--wait=false")
    wait_for(f"pid {pid} to end", lambda: not _alive(pid), 30)
    # The kubelet forgets the pod's record after its processes have been reaped, a moment after
    # the PID is gone: wait for that too rather than read it at once.
    wait_for("the pod's record to be removed", lambda: kubelet.record(namespace, name) is None, 10)


# -- Job pods ---------------------------------------------------------------------------------


def test_download_job_fills_the_cache_volume_and_reports_in_its_termination_message(
    cluster: Cluster, namespace: str, kubelet: Kubelet
) -> None:
    repo = f"org/{unique('llm')}"
    apply(
        cluster,
        namespace,
        pvc("model-cache"),
        job(
            "download",
            {
                "command": ["llmops"],
                "args": [
                    "download",
                    "--model",
                    repo,
                    "--revision",
                    "main",
                    "--cache-dir",
                    "/data/hub",
                    "--timeout",
                    "60",
                ],
                "volumeMounts": [{"name": "cache", "mountPath": "/data"}],
            },
            volumes=[{"name": "cache", "persistentVolumeClaim": {"claimName": "model-cache"}}],
            activeDeadlineSeconds=120,
        ),
    )
    wait_for(
        "the Job to complete",
        lambda: any(
            c["type"] == "Complete" and c["status"] == "True"
            for c in get_json(cluster, "job", "-n", namespace, "download")
            .get("status", {})
            .get("conditions", [])
        ),
        90,
    )
    pod = one_pod(cluster, namespace, "job=download")
    terminated = container_state(pod)["terminated"]
    sha = commit_for(repo, "main")
    assert (pod["status"]["phase"], terminated["exitCode"], terminated["reason"]) == (
        "Succeeded",
        0,
        "Completed",
    )  # type: ignore[index]
    assert json.loads(terminated["message"])["revision"] == sha
    assert condition(pod, "Ready") == "False"
    # The files are on the claim's volume, in huggingface_hub's cache layout.
    claim = get_json(cluster, "pvc", "-n", namespace, "model-cache")
    pv = get_json(cluster, "pv", claim["spec"]["volumeName"])
    snapshot = (
        Path(pv["spec"]["hostPath"]["path"])
        / "hub"
        / f"models--{repo.replace('/', '--')}"
        / "snapshots"
        / sha
    )
    assert sorted(p.name for p in snapshot.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]


@pytest.mark.parametrize(
    ("section", "value", "flags", "exit_code", "reason"),
    [
        ("missing", True, [], 1, "RepositoryNotFound"),
        ("slow", 30, ["--timeout", "2"], 2, "Timeout"),
    ],
)
def test_a_failed_download_job_reports_why_in_its_exit_code_and_termination_message(
    cluster: Cluster,
    namespace: str,
    kubelet: Kubelet,
    section: str,
    value: Any,
    flags: list[str],
    exit_code: int,
    reason: str,
) -> None:
    repo = f"org/{unique(section)}"
    kubelet.hub(section, repo, value)
    apply(
        cluster,
        namespace,
        job("download", {"command": ["llmops"], "args": ["download", "--model", repo, *flags]}),
    )
    pod = wait_for(
        "the pod to fail",
        lambda: (p := one_pod(cluster, namespace, "job=download"))
        and p["status"].get("phase") == "Failed"
        and p,
        60,
    )
    terminated = container_state(pod)["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (exit_code, "Error")
    assert json.loads(terminated["message"])["reason"] == reason


def test_a_missing_secret_is_a_create_container_config_error_until_it_exists(
    cluster: Cluster, namespace: str, kubelet: Kubelet
) -> None:
    env = [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}]
    script = "import os, sys; open(sys.argv[1], 'w').write(os.environ['HF_TOKEN'])"
    apply(
        cluster,
        namespace,
        job("needs-secret", {"command": ["python", "-c", script, "/dev/termination-log"], "env": env}),
    )

    def waiting_message() -> str | None:
        w = container_state(one_pod(cluster, namespace, "job=needs-secret")).get("waiting", {})
        return w.get("message") if w.get("reason") == "CreateContainerConfigError" else None

    assert wait_for("CreateContainerConfigError", waiting_message) == 'secret "hf" not found'
    assert one_pod(cluster, namespace, "job=needs-secret")["status"]["phase"] == "Pending"  # type: ignore[index]
    apply(cluster, namespace, secret("hf", other="x"))
    assert wait_for("the missing key", lambda: (m := waiting_message()) and "key" in m and m) == (
        f"couldn't find key token in Secret {namespace}/hf"
    )
    apply(cluster, namespace, secret("hf", token="hf_abc"))
    pod = wait_for(
        "the pod to succeed once the key exists",
        lambda: (p := one_pod(cluster, namespace, "job=needs-secret"))
        and p["status"].get("phase") == "Succeeded"
        and p,
        30,
    )
    assert container_state(pod)["terminated"]["message"] == "hf_abc"


def test_an_image_that_does_not_exist_backs_off(cluster: Cluster, namespace: str, kubelet: Kubelet) -> None:
    image = "ghcr.io/llmops-io/no-such-image:0.0.1"
    apply(cluster, namespace, job("bad-image", {"image": image}))
    waiting_state = wait_for(
        "ImagePullBackOff",
        lambda: (w := container_state(one_pod(cluster, namespace, "job=bad-image")).get("waiting", {})).get(
            "reason"
        )
        == "ImagePullBackOff"
        and w,
    )
    assert waiting_state["message"] == f'Back-off pulling image "{image}"'
    assert one_pod(cluster, namespace, "job=bad-image")["status"]["phase"] == "Pending"  # type: ignore[index]


def test_a_job_past_its_deadline_is_stopped(cluster: Cluster, namespace: str, kubelet: Kubelet) -> None:
    apply(
        cluster,
        namespace,
        job(
            "sleeper", {"command": ["python", "-c", "import time; time.sleep(600)"]}, activeDeadlineSeconds=3
        ),
    )
    pod = wait_for(
        "a running pod",
        lambda: (p := one_pod(cluster, namespace, "job=sleeper")) and "running" in container_state(p) and p,
    )
    record = wait_for("its process", lambda: kubelet.record(namespace, pod["metadata"]["name"]))
    pid = int(record["containers"]["main"]["pid"])
    wait_for(
        "the Job to fail with DeadlineExceeded",
        lambda: any(
            c.get("reason") == "DeadlineExceeded"
            for c in get_json(cluster, "job", "-n", namespace, "sleeper")
            .get("status", {})
            .get("conditions", [])
        ),
        60,
    )
    wait_for(f"pid {pid} to end", lambda: not _alive(pid), 30)


# -- storage ----------------------------------------------------------------------------------


def test_a_claim_of_the_default_class_binds_to_a_host_folder_and_is_reclaimed(
    cluster: Cluster, namespace: str, kubelet: Kubelet
) -> None:
    apply(cluster, namespace, pvc("data"))
    claim = wait_for(
        "the claim to bind",
        lambda: (c := get_json(cluster, "pvc", "-n", namespace, "data"))
        and c["status"].get("phase") == "Bound"
        and c,
    )
    assert claim["spec"]["storageClassName"] == "standard"
    pv = get_json(cluster, "pv", claim["spec"]["volumeName"])
    folder = Path(pv["spec"]["hostPath"]["path"])
    assert folder.is_dir() and folder.parent == kubelet.state_dir / "volumes"
    cluster.kubectl("delete", "pvc", "-n", namespace, "data")
    wait_for("the volume to be deleted", lambda: not get_json(cluster, "pv", claim["spec"]["volumeName"]), 30)
    wait_for("its folder to be removed", lambda: not folder.exists())


def test_a_claim_of_an_unknown_class_stays_pending(
    cluster: Cluster, namespace: str, kubelet: Kubelet
) -> None:
    apply(cluster, namespace, pvc("data", storage_class="no-such-class"))

    def provisioning_failed() -> bool:
        events = get_json(cluster, "events", "-n", namespace, "--field-selector", "involvedObject.name=data")
        return any(e.get("reason") == "ProvisioningFailed" for e in events.get("items", []))

    wait_for("the PV controller to give up on the claim", provisioning_failed, 30)
    claim = get_json(cluster, "pvc", "-n", namespace, "data")
    assert claim["status"]["phase"] == "Pending" and not claim["spec"].get("volumeName")


# -- small helpers ----------------------------------------------------------------------------


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _try_resolve(kubelet: Kubelet, url: str) -> str | None:
    try:
        return resolve(kubelet.state_dir, url)
    except LookupError:
        return None


def _alive(pid: int) -> bool:
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
