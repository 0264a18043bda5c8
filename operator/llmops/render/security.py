"""The restricted security context every rendered pod runs with.

It satisfies Pod Security Standards `restricted`: non-root, no privilege escalation, all
capabilities dropped, RuntimeDefault seccomp. Set on the pod and on each container so that a
container-level default elsewhere cannot loosen it.
"""

from __future__ import annotations

from typing import Any

# A fixed non-root uid/gid: TGI's image runs as root by default, and fsGroup makes the cache
# volume writable for this uid.
RUN_AS_USER = 1000
RUN_AS_GROUP = 1000


def pod_security_context() -> dict[str, Any]:
    """securityContext of a pod."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_GROUP,
        "fsGroup": RUN_AS_GROUP,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """securityContext of a container."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_GROUP,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
