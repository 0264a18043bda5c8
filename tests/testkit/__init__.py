"""Helpers shared by the test tiers: waiting for conditions with deadlines, unique names."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "RESTRICTED",
    "create_namespace",
    "delete_namespace",
    "get_json",
    "restricted",
    "sample_llmd",
    "unique",
    "wait_for",
]

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
"""Labels of every namespace the tests create: the apiserver's PodSecurity admission refuses
any pod (ours, the operator's, a Job's) that the `restricted` level does not allow."""

T = TypeVar("T")


def restricted(pod_spec: dict[str, Any]) -> dict[str, Any]:
    """``pod_spec`` with the security context the `restricted` level asks for (non-root,
    RuntimeDefault seccomp, no privilege escalation, every capability dropped), for pods a test
    makes by hand in the restricted namespaces."""
    containers = [
        {
            **c,
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                **(c.get("securityContext") or {}),
            },
        }
        for c in pod_spec.get("containers") or []
    ]
    pod_security = {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}
    return {**pod_spec, "securityContext": pod_security, "containers": containers}


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.1) -> T:
    """Poll ``probe`` until it returns something truthy and return it; fail after ``timeout``.

    This is the only way tests wait: for a condition, with a deadline, never a bare sleep.
    The failure message says what was awaited and the last value seen.
    """
    end = time.monotonic() + timeout
    last: object = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}")
        time.sleep(interval)


def unique(prefix: str) -> str:
    """A DNS-1123 name unique to this call."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def get_json(cluster: Any, *args: str) -> dict[str, Any]:
    """``kubectl get ... -o json`` as a dict; an empty dict when the object is not there.

    The reads tests poll are one GET from this process (``testkit.direct``: a kubectl process
    costs 0.15 s of CPU, taken from the operator the test waits for); kubectl reads the rest."""
    kubeconfig = getattr(cluster, "kubeconfig", None)
    if kubeconfig is not None:
        from testkit import direct  # the Kubernetes client's import is for the cluster tier only

        answer = direct.read(kubeconfig, args)
        if answer is not None:
            return answer
    res = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 else {}


def sample_llmd(path: Any) -> dict[str, Any]:
    """The LLMDeployment in a sample file (samples may carry a ConfigMap or other objects too)."""
    import yaml

    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    return next(d for d in docs if d.get("kind") == "LLMDeployment")


def create_namespace(cluster: Any, name: str) -> None:
    """Create namespace ``name`` enforcing the restricted Pod Security level."""
    from testkit import direct

    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": RESTRICTED}}
    direct.create_namespace(cluster.kubeconfig, ns)


def delete_namespace(cluster: Any, name: str) -> None:
    """Delete namespace ``name`` without waiting; one already gone is no error."""
    from testkit import direct

    direct.delete_namespace(cluster.kubeconfig, name)
