"""``kubectl get ... -o json`` answered by one GET from this process, for the reads tests poll.

Tests wait for conditions by polling reads every 0.1-0.5 s. A kubectl process costs about
0.15 s of CPU per read (measured on the 2-core CI machine), so a test polling with kubectl kept
a third of a core busy while it waited for the operator and the cluster it was polling, which
then answered later. One GET from this process costs a few milliseconds. Measured on
``test_canary_rollout.py`` (2026-12-02, same machine, one run each): 324 CPU seconds with
kubectl, 232-237 with these reads; 267 s of wall time, 253-259 s.

Only the shapes the tests use are answered here: kinds from ``_KINDS`` (one, or several with
commas and no name), an optional name, and ``-n``, ``-l``, ``--field-selector``,
``--show-managed-fields`` (one GET per kind). ``read`` returns ``None`` for any other argument
list, and the caller runs kubectl. The answer is what kubectl prints: the object without
``metadata.managedFields`` (kubectl hides them unless asked), or a ``List`` whose items carry
their ``apiVersion`` and ``kind``; an empty dict when kubectl would fail (not found, the
apiserver unreachable).

Each test's namespace is also created and deleted here (``create_namespace``,
``delete_namespace``), one request each instead of a kubectl process each.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import urllib.parse
from pathlib import Path
from typing import Any, NamedTuple

import urllib3
from kubernetes.client.exceptions import ApiException

from llmops.kube import load_client

__all__ = ["create_namespace", "delete_namespace", "read"]


class _Kind(NamedTuple):
    group_version: str  # "v1" for the core group
    plural: str
    kind: str
    namespaced: bool = True

    def path(self, namespace: str | None, name: str | None) -> str:
        root = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        scope = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        return f"{root}{scope}/{self.plural}" + (f"/{name}" if name else "")


_KIND_LIST = (
    (
        ("llmd", "llmds", "llmdeployment", "llmdeployments"),
        _Kind("llmops.io/v1alpha1", "llmdeployments", "LLMDeployment"),
    ),
    (("deploy", "deployment", "deployments"), _Kind("apps/v1", "deployments", "Deployment")),
    (("rs", "replicaset", "replicasets"), _Kind("apps/v1", "replicasets", "ReplicaSet")),
    (("po", "pod", "pods"), _Kind("v1", "pods", "Pod")),
    (("svc", "service", "services"), _Kind("v1", "services", "Service")),
    (("secret", "secrets"), _Kind("v1", "secrets", "Secret")),
    (("cm", "configmap", "configmaps"), _Kind("v1", "configmaps", "ConfigMap")),
    (
        ("pvc", "persistentvolumeclaim", "persistentvolumeclaims"),
        _Kind("v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    ),
    (("ev", "event", "events"), _Kind("v1", "events", "Event")),
    (("job", "jobs"), _Kind("batch/v1", "jobs", "Job")),
    (
        ("pdb", "poddisruptionbudget", "poddisruptionbudgets"),
        _Kind("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    ),
    (
        ("netpol", "networkpolicy", "networkpolicies"),
        _Kind("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy"),
    ),
    (("cronjob", "cronjobs"), _Kind("batch/v1", "cronjobs", "CronJob")),
    (
        ("hpa", "horizontalpodautoscaler", "horizontalpodautoscalers"),
        _Kind("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    ),
    (
        ("pv", "persistentvolume", "persistentvolumes"),
        _Kind("v1", "persistentvolumes", "PersistentVolume", False),
    ),
    (("no", "node", "nodes"), _Kind("v1", "nodes", "Node", False)),
    (("ns", "namespace", "namespaces"), _Kind("v1", "namespaces", "Namespace", False)),
)
_KINDS = {alias: kind for aliases, kind in _KIND_LIST for alias in aliases}
_QUERY = {"-l": "labelSelector", "--field-selector": "fieldSelector"}

_clients: dict[tuple[str, float], Any] = {}
_clients_lock = threading.Lock()


class _Request(NamedTuple):
    kinds: tuple[_Kind, ...]  # "deployments,services": one List of both, in that order
    name: str | None
    namespace: str | None
    query: dict[str, str]
    managed_fields: bool


def read(kubeconfig: Path, args: tuple[str, ...]) -> dict[str, Any] | None:
    """What ``kubectl get *args -o json`` prints, parsed; ``None`` when ``args`` is a shape this
    module does not answer (the caller runs kubectl then)."""
    request = _parse(args)
    if request is None:
        return None
    query = "?" + urllib.parse.urlencode(request.query) if request.query else ""
    items = []
    for kind in request.kinds:
        try:
            answer = _get(kubeconfig, kind.path(request.namespace, request.name) + query)
        except (urllib3.exceptions.HTTPError, ApiException, OSError):
            # kubectl fails the same way when the apiserver is away (refused, reset mid-TLS:
            # the Kubernetes client raises ApiException for an SSLError)
            return {}
        if answer is None:
            return {}
        if request.name:
            return _shown(answer, request.managed_fields)
        typed = (
            {"apiVersion": kind.group_version, "kind": kind.kind, **item} for item in answer["items"] or []
        )
        items += [_shown(item, request.managed_fields) for item in typed]
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def _parse(args: tuple[str, ...]) -> _Request | None:
    words = args[0].split(",") if args else []
    if not words or not all(word in _KINDS for word in words):
        return None
    kinds, name, namespace = tuple(_KINDS[word] for word in words), None, None
    query: dict[str, str] = {}
    managed_fields = False
    rest = list(args[1:])
    while rest:
        arg = rest.pop(0)
        if arg in ("-n", "--namespace") and rest:
            namespace = rest.pop(0)
        elif arg in _QUERY and rest:
            query[_QUERY[arg]] = rest.pop(0)
        elif arg == "--show-managed-fields":
            managed_fields = True
        elif not arg.startswith("-") and name is None:
            name = arg
        else:
            return None
    scopes = {kind.namespaced for kind in kinds}
    if len(scopes) > 1 or (scopes == {True} and namespace is None):
        return None  # a mix of scopes, or the kubeconfig's current namespace: let kubectl say
    if name and (query or len(kinds) > 1):
        return None
    return _Request(kinds, name, namespace, query, managed_fields)


def create_namespace(kubeconfig: Path, body: dict[str, Any]) -> None:
    """``kubectl create`` of the Namespace ``body``, as one POST (every integration test makes one;
    the two kubectl processes of its creation and deletion took 0.3 s of each test's wall time,
    measured over 71 tests). Raises RuntimeError with the apiserver's answer when it refuses."""
    status, raw = _call(kubeconfig, "POST", _KINDS["ns"].path(None, None), body)
    if status != 201:
        raise RuntimeError(f"creating namespace {body['metadata']['name']}: {_refusal(status, raw)}")


def delete_namespace(kubeconfig: Path, name: str) -> None:
    """``kubectl delete namespace NAME --wait=false``, forgiving as the tests called it (check=False):
    a namespace already gone, or an apiserver away, is left to the cluster's own cleanup."""
    with contextlib.suppress(urllib3.exceptions.HTTPError, ApiException, OSError):
        _call(kubeconfig, "DELETE", _KINDS["ns"].path(None, name), {"propagationPolicy": "Background"})


def _refusal(status: int, raw: bytes) -> str:
    """The apiserver's reason and message from the Status it answered with, as kubectl prints them."""
    try:
        answer = json.loads(raw)
        return f"HTTP {status} {answer['reason']}: {answer['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}: {raw[:500]!r}"


def _get(kubeconfig: Path, path: str) -> dict[str, Any] | None:
    status, raw = _call(kubeconfig, "GET", path)
    if status == 200:
        return dict(json.loads(raw))
    if status == 404:
        return None
    raise OSError(f"GET {path}: HTTP {status}: {raw[:200]!r}")


def _call(kubeconfig: Path, verb: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    """One request; its status and body, read whole (so the connection goes back to the pool)."""
    client = _client(kubeconfig)
    headers = {"Accept": "application/json"} | ({"Content-Type": "application/json"} if body else {})
    method, url, headers, payload, _ = client.param_serialize(
        verb, path, header_params=headers, body=body, auth_settings=["BearerToken"]
    )
    resp = client.call_api(method, url, header_params=headers, body=payload, _request_timeout=30)
    return int(resp.status), bytes(resp.read())


def _client(kubeconfig: Path) -> Any:
    """One client per kubeconfig (a cluster rebuilt writes a new one: its time is in the key)."""
    key = (str(kubeconfig), os.stat(kubeconfig).st_mtime)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = load_client(str(kubeconfig))
        return _clients[key]


def _shown(obj: dict[str, Any], managed_fields: bool) -> dict[str, Any]:
    if managed_fields or "managedFields" not in (obj.get("metadata") or {}):
        return obj
    metadata = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
    return {**obj, "metadata": metadata}
