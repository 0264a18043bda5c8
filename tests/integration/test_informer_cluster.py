"""The operator's informers on a real apiserver and etcd.

- A child deleted by hand comes back at once: its watch event triggers its owner's pass (the
  periodic resync, 300 s, is far beyond the deadline).
- A watch the apiserver cannot resume (410 Gone: here a restarted apiserver, whose watch cache
  starts at the current resourceVersion) makes the informer list again, and what vanished
  meanwhile counts as deleted.
- Once converged, a pass reads the children without a list: the informers answer (the
  optional kinds, PodMonitor and the like, are listed by each pass).
- A pass reads its LLMDeployment as kopf's watch delivered it: no GET of it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from llmops.api.constants import LABEL_DEPLOYMENT
from llmops.informer import Change, Informer
from llmops.kube import INFORMED_KINDS, ApiError, Kube, load_client
from llmops.reconciler import Reconciler
from llmops_dev.cluster import Cluster
from testkit import get_json, wait_for
from testkit.operator import OperatorProcess, children, sample

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


def test_a_watch_the_apiserver_cannot_resume_lists_again(cluster: Cluster, namespace: str) -> None:
    """A restarted apiserver's watch cache starts at the current resourceVersion: a watch from
    an older one (an informer away since before the restart) gets 410 Gone."""
    service: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kept", "labels": {LABEL_DEPLOYMENT: "owner"}},
        "spec": {"ports": [{"port": 80}]},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(service))
    cluster.restart("kube-apiserver")
    kube = Kube(load_client(str(cluster.kubeconfig)))
    # The informer's first list is from before: a Service since deleted (its DELETED event
    # lost), at the resourceVersion of the cluster's start. Every later list is the apiserver's.
    ghost = {
        "metadata": {**service["metadata"], "namespace": namespace, "name": "ghost", "resourceVersion": "1"}
    }
    lists: list[tuple[list[dict[str, Any]], str]] = [([ghost], "1")]

    def lister() -> tuple[list[dict[str, Any]], str]:
        return lists.pop() if lists else kube._list_labelled("Service", namespace)

    changes: list[Change] = []
    informer = Informer(
        "Service",
        namespace,
        lister=lister,
        watcher=lambda version: kube._watch_labelled("Service", namespace, version),
        on_change=changes.append,
    )
    thread = threading.Thread(target=informer.run, daemon=True)
    thread.start()
    try:
        wait_for("the informer listed again", lambda: informer.lists == 2, 90, 0.1)
        assert [o["metadata"]["name"] for o in informer.of(namespace, "owner")] == ["kept"]
        assert Change("Service", namespace, "owner", deleted=True) in changes  # the ghost
        # And it follows the new watch: a label change moves the Service to another owner.
        cluster.kubectl(
            "label", "service", "kept", "-n", namespace, f"{LABEL_DEPLOYMENT}=other", "--overwrite"
        )
        wait_for("the change seen", lambda: informer.of(namespace, "other"), 60, 0.1)
        assert informer.of(namespace, "owner") == []
        assert informer.lists == 2
    finally:
        informer.stop()


class _CountingKube(Kube):
    """A Kube that records the kinds a pass lists itself (the informers' own lists aside)."""

    def __init__(self, client: Any, use_informers: bool) -> None:
        super().__init__(client, use_informers=use_informers)
        self.listed: list[str] = []

    def _list(
        self, kind: str, namespace: str, query: Sequence[tuple[str, Any]]
    ) -> tuple[list[dict[str, Any]], ApiError | None]:
        self.listed.append(kind)
        return super()._list(kind, namespace, query)


def test_a_converged_pass_lists_nothing(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=sample("nolist", REV))
    wait_for(
        "the status written",
        lambda: get_json(cluster, "llmd", "nolist", "-n", namespace).get("status", {}).get("phase"),
        120,
        0.25,
    )
    kube = _CountingKube(load_client(str(cluster.kubeconfig)), use_informers=True)
    reconciler = Reconciler(kube)
    listed = kube.listed
    try:
        reconciler.reconcile(namespace, "nolist")  # the first pass in the namespace starts the informers
        listed.clear()
        reconciler.reconcile(namespace, "nolist")
        # No informed kind listed. The optional ones (PodMonitor, PrometheusRule) are listed by
        # every pass once their CRDs exist, as they do after test_operator installs them.
        assert [k for k in listed if k in INFORMED_KINDS] == []
        # What the informers answer is what the apiserver has.
        observed = {key for key in kube.observe(namespace, "nolist").children if key[0] in INFORMED_KINDS}
        listed_now = {(o["kind"], o["metadata"]["name"]) for o in children(cluster, namespace, "nolist")}
        assert observed == listed_now
    finally:
        kube.stop()


def test_a_pass_reads_its_llmdeployment_from_the_watch_not_the_apiserver(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    """A pass triggered by a child's change (here the Service's target port, edited by hand, which
    the pass puts back) reads the LLMDeployment kopf's watch delivered: the operator makes no GET
    of it. A child's deletion is the exception: the pass it triggers reads its owner with a GET
    (the copy may have outlived the owner, if kopf's watch missed the owner's deletion)."""
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=sample("watchbody", REV))
    first = wait_for("the Service", lambda: _uid(cluster, namespace, "service", "watchbody"), 120, 0.25)
    # Serving, not merely a status: while Caching, passes write the download's progress, and a
    # status write answered after the Service's deletion is a newer copy than the deletion, which
    # rightly spares the GET this test looks for (see Latest.forget).
    wait_for(
        "serving",
        lambda: (st := get_json(cluster, "llmd", "watchbody", "-n", namespace).get("status", {})).get("phase")
        == "Serving"
        and st.get("ready") == "1/1",
        120,
        0.25,
    )
    # The operator's verbose log has a line per API request it makes (urllib3's).
    get = f"GET /apis/llmops.io/v1alpha1/namespaces/{namespace}/llmdeployments/watchbody "
    offset = operator.log_offset()
    patch = [{"op": "replace", "path": "/spec/ports/0/targetPort", "value": 9000}]
    cluster.kubectl("patch", "service", "watchbody", "-n", namespace, "--type=json", "-p", json.dumps(patch))
    wait_for(
        "the Service's target port put back",
        lambda: get_json(cluster, "service", "watchbody", "-n", namespace)["spec"]["ports"][0]["targetPort"]
        != 9000,
        60,
        0.25,
    )
    assert get not in operator.log_since(offset)
    cluster.kubectl("delete", "service", "watchbody", "-n", namespace, "--wait=true")
    wait_for(
        "the Service made again",
        lambda: (u := _uid(cluster, namespace, "service", "watchbody")) and u != first,
        60,
        0.25,
    )
    # The pass the deletion triggers may come after the Service is made again: a pass queued by
    # the revert above can see the deletion in the informer's cache first and make it from the
    # copy (a clean-clone run saw the GET 300 ms after the 201).
    wait_for(
        "the pass the deletion triggers to GET its owner", lambda: get in operator.log_since(offset), 15, 0.1
    )
