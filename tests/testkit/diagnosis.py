"""What the cluster looked like when an integration test failed, for the failure report.

A test that times out says what it waited for and the last value it saw; that is rarely enough
to tell a slow scheduler from a crashing pod or a stale status, and CI keeps nothing but the
test output. So a failed test's report gets, for its namespace: every pod (phase, node, ready,
restarts, why a container waits or ended), the namespace's latest Events, the LLMDeployments'
status and conditions, how many GPUs the pods of other namespaces still hold, and the lines of
the operator's and the fake kubelet's logs that name the namespace.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from testkit import get_json

__all__ = ["namespace_report"]

LOG_LINES = 25
"""Log lines kept per source: the most recent ones that name the namespace (not DEBUG ones, which
in the operator's verbose log are one per API request)."""
EVENTS = 20
"""Events kept: the most recent."""


def namespace_report(cluster: Any, namespace: str, operator_log: Path | None) -> str:
    """The namespace's pods, Events, LLMDeployments, GPU use elsewhere and log lines, as text."""
    sections = [
        ("pods", _pods(get_json(cluster, "pods", "-n", namespace).get("items", []))),
        ("events", _events(get_json(cluster, "events", "-n", namespace).get("items", []))),
        ("llmdeployments", _llmds(get_json(cluster, "llmdeployments", "-n", namespace).get("items", []))),
        ("gpus held by other namespaces", _gpus_elsewhere(cluster, namespace)),
        ("operator log", _log_lines(operator_log, namespace)),
    ]
    if cluster.state_dir is not None:
        sections.append(
            ("fake kubelet log", _log_lines(cluster.state_dir / "logs" / "kubelet.log", namespace))
        )
    return "\n".join(f"--- {title}\n{body or '(none)'}" for title, body in sections)


def _pods(pods: Iterable[Mapping[str, Any]]) -> str:
    return "\n".join(_pod_line(p) for p in pods)


def _pod_line(pod: Mapping[str, Any]) -> str:
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    states = "; ".join(_container_state(c) for c in statuses if _container_state(c))
    unready = [
        f"{c['type']}={c.get('status')} {c.get('reason') or ''} {c.get('message') or ''}".strip()
        for c in status.get("conditions") or []
        if c.get("status") != "True"
    ]
    deleting = " deleting" if (pod.get("metadata") or {}).get("deletionTimestamp") else ""
    return (
        f"{pod['metadata']['name']} {status.get('phase')}{deleting} node={(pod.get('spec') or {}).get('nodeName')} "
        f"ready={ready}/{len(statuses)} restarts={restarts} {states} {' | '.join(unready)}"
    ).rstrip()


def _container_state(container: Mapping[str, Any]) -> str:
    for kind in ("waiting", "terminated"):
        state = (container.get("state") or {}).get(kind)
        if state:
            return (
                f"{container['name']} {kind} {state.get('reason')}: {str(state.get('message') or '')[:200]}"
            )
    return ""


def _events(events: list[Mapping[str, Any]]) -> str:
    def when(event: Mapping[str, Any]) -> str:
        return str(event.get("lastTimestamp") or event.get("eventTime") or "")

    latest = sorted(events, key=when)[-EVENTS:]
    return "\n".join(
        f"{when(e)} {e.get('type')} {e.get('reason')} {(e.get('involvedObject') or {}).get('name')}: {e.get('message')}"
        for e in latest
    )


def _llmds(llmds: Iterable[Mapping[str, Any]]) -> str:
    out = []
    for obj in llmds:
        status = dict(obj.get("status") or {})
        conditions = status.pop("conditions", [])
        status.pop("history", None)
        out.append(f"{obj['metadata']['name']}: {json.dumps(status, sort_keys=True)[:1500]}")
        out += [f"  {c['type']}={c['status']} {c.get('reason')}: {c.get('message')}" for c in conditions]
    return "\n".join(out)


def _gpus_elsewhere(cluster: Any, namespace: str) -> str:
    """GPUs requested by the scheduled, unfinished pods of other namespaces, per namespace: a
    test's pods wait for them while the namespaces of earlier tests are still being deleted."""
    held: dict[str, int] = {}
    for pod in get_json(cluster, "pods", "--all-namespaces").get("items", []):
        ns = pod["metadata"]["namespace"]
        if ns == namespace or not (pod.get("spec") or {}).get("nodeName"):
            continue
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        gpus = sum(
            int(((c.get("resources") or {}).get("requests") or {}).get("nvidia.com/gpu", 0))
            for c in pod["spec"].get("containers") or []
        )
        if gpus:
            held[ns] = held.get(ns, 0) + gpus
    return "\n".join(f"{ns}: {n}" for ns, n in sorted(held.items()))


def _log_lines(path: Path | None, namespace: str) -> str:
    if path is None or not path.exists():
        return ""
    with path.open(errors="replace") as f:
        lines = [line.rstrip() for line in f if namespace in line and "DEBUG" not in line]
    return "\n".join(line[:400] for line in lines[-LOG_LINES:])
