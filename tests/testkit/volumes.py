"""A PersistentVolume on a folder of this machine, bound ahead to one claim (the fake kubelet
mounts hostPath folders as they are): for tests that need the store's data on a filesystem they
choose (a tiny tmpfs, say) rather than the provisioner's."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["static_volume"]


def static_volume(name: str, path: Path, *, namespace: str, claim: str, storage_class: str, size: str) -> str:
    """The PersistentVolume `name` on folder `path`, reserved for claim `namespace/claim`, as JSON."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": storage_class,
                "hostPath": {"path": str(path), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        }
    )
