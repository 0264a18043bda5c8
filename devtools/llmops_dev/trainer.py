"""The sample retrain Job that publishes to the Hub, for ``make dev`` and the tests.

``manifests/samples/trainer/publish_revision.py`` is a trainer as a user would write one: it reads
the operator's ``LLMOPS_*`` variables, publishes a new revision with huggingface_hub's upload API
(``create_repo`` + ``upload_folder``) and reports it in the termination message. This module
ships it the Kubernetes way: a ConfigMap holding the script, a Secret holding a Hub write token,
and a ``spec.retrain`` whose Job runs the operator's image (which has huggingface_hub) on the
mounted script. On the local cluster the fake kubelet runs that container as a local process and
points ``HF_ENDPOINT`` at the simulated Hub, which takes the upload (llmops_dev.fakehub).
"""

from __future__ import annotations

from typing import Any

from llmops.api.constants import OPERATOR_IMAGE
from llmops_dev.cluster.build import repo_root

__all__ = ["SCRIPT", "publish_retrain_spec", "trainer_objects"]

SCRIPT = "publish_revision.py"
_MOUNT = "/trainer"


def _script_text() -> str:
    return (repo_root() / "manifests" / "samples" / "trainer" / SCRIPT).read_text()


def trainer_objects(name: str, token: str) -> list[dict[str, Any]]:
    """The ConfigMap ``<name>-trainer`` (the script) and the Secret ``<name>-hub-write`` (``token``)."""
    script = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-trainer"},
        "data": {SCRIPT: _script_text()},
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{name}-hub-write"},
        "type": "Opaque",
        "stringData": {"token": token},
    }
    return [script, secret]


def publish_retrain_spec(
    name: str,
    target_repo: str,
    *,
    approval: str = "Auto",
    cooldown: str = "1h",
    max_drop: float = 0.05,
) -> dict[str, Any]:
    """``spec.retrain`` running the script of ``trainer_objects(name, ...)``, publishing to
    ``target_repo``, judged no worse than what serves on exactMatch (within ``max_drop``)."""
    container = {
        "name": "train",
        "image": OPERATOR_IMAGE,
        "command": ["python", f"{_MOUNT}/{SCRIPT}", "/dev/termination-log"],
        "env": [
            {"name": "TARGET_REPO", "value": target_repo},
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": f"{name}-hub-write", "key": "token"}},
            },
        ],
        "volumeMounts": [{"name": "trainer", "mountPath": _MOUNT, "readOnly": True}],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    pod = {
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "trainer", "configMap": {"name": f"{name}-trainer"}}],
    }
    return {
        "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": pod}}},
        "approval": approval,
        "cooldown": cooldown,
        "noWorseThan": [{"metric": "exactMatch", "maxDrop": max_drop}],
    }
