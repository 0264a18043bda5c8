"""The operator's informers on a real apiserver and etcd.

- A child deleted by hand comes back at once: its watch event triggers its owner's pass (the
  periodic resync, 300 s, is far beyond the deadline).
- A watch whose resourceVersion etcd has compacted away gets the apiserver's 410 Gone, and the
  informer lists again (what a long network cut or a restarted apiserver leads to).
- Once converged, a pass reads the children without a list: the informers answer.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.request
from typing import Any

from llmops.api.constants import LABEL_DEPLOYMENT
from llmops.informer import Informer
from llmops.kube import Kube, load_client
from llmops.reconciler import Reconciler
from llmops_dev.cluster import Cluster
from testkit import get_json, wait_for
from testkit.operator import OperatorProcess, sample

REV = "f" * 40


def _uid(cluster: Cluster, namespace: str, kind: str, name: str) -> str | None:
    out = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "jsonpath={.metadata.uid}", check=False)
    return out.stdout or None


def test_a_child_deleted_by_hand_is_back_without_waiting_for_the_resync(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=sample("handdel", REV))
    for kind, name in (("service", "handdel"), ("poddisruptionbudget", "handdel")):
        first = wait_for(f"{kind} {name}", lambda k=kind, n=name: _uid(cluster, namespace, k, n), 120, 0.25)
        cluster.kubectl("delete", kind, name, "-n", namespace, "--wait=true")
        again = wait_for(
            f"{kind} {name} made again",
            lambda k=kind, n=name, f=first: (u := _uid(cluster, namespace, k, n)) and u != f and u,
            60,
            0.25,
        )
        assert again != first


def _etcd(cluster: Cluster, call: str, body: dict[str, Any]) -> dict[str, Any]:
    """One call of etcd's JSON gateway (v3 API)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{cluster.ports['etcd']}/v3/{call}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return dict(json.loads(answer.read()))


def _compact_etcd(cluster: Cluster) -> None:
    """Compact etcd's history up to now (the apiserver does it every 5 minutes on its own)."""
    revision = _etcd(cluster, "kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"]
    _etcd(cluster, "kv/compaction", {"revision": revision, "physical": True})


def test_a_watch_from_a_compacted_version_lists_again(cluster: Cluster, namespace: str) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "compacted", "labels": {LABEL_DEPLOYMENT: "owner"}},
        "spec": {"ports": [{"port": 80}]},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(service))
    _compact_etcd(cluster)
    kube = Kube(load_client(str(cluster.kubeconfig)))
    informer = Informer(
        "Service",
        namespace,
        lister=lambda: kube._list_labelled("Service", namespace),
        watcher=lambda version: kube._watch_labelled("Service", namespace, version),
    )
    informer.version = "1"  # where a watch away since the cluster's start would resume from
    thread = threading.Thread(target=informer.run, daemon=True)
    thread.start()
    try:
        wait_for("the informer listed again", lambda: informer.lists == 1, 60, 0.1)
        assert [o["metadata"]["name"] for o in informer.of("owner")] == ["compacted"]
        # And it follows the new watch: a label change moves the Service to another owner.
        cluster.kubectl(
            "label", "service", "compacted", "-n", namespace, f"{LABEL_DEPLOYMENT}=other", "--overwrite"
        )
        wait_for("the change seen", lambda: informer.of("other"), 60, 0.1)
        assert informer.of("owner") == []
        assert informer.lists == 1
    finally:
        informer.stop()


def test_a_converged_pass_lists_nothing(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=sample("nolist", REV))
    wait_for(
        "the status written",
        lambda: get_json(cluster, "llmd", "nolist", "-n", namespace).get("status", {}).get("phase"),
        120,
        0.25,
    )
    kube = Kube(load_client(str(cluster.kubeconfig)), use_informers=True)
    reconciler = Reconciler(kube)
    listed: list[str] = []
    original = kube._list

    def counted(kind: str, ns: str, query: Any) -> Any:
        listed.append(kind)
        return original(kind, ns, query)

    kube._list = counted  # type: ignore[method-assign]
    try:
        reconciler.reconcile(namespace, "nolist")  # the first pass in the namespace starts the informers
        listed.clear()
        reconciler.reconcile(namespace, "nolist")
        assert listed == []
        obs = kube.observe(namespace, "nolist", 0.0)
        assert {k for k, _ in obs.children} >= {"Deployment", "Service", "PersistentVolumeClaim"}
    finally:
        kube.stop()
