"""A fake dynamic storage provisioner: hostPath PersistentVolumes under the state folder.

The local cluster has no storage. At start this makes the default StorageClass ``standard``
(provisioner ``llmops.io/fake-hostpath``, Immediate binding, reclaim Delete); for each Pending
claim of that class it creates a PersistentVolume ``pvc-<claim uid>`` backed by
``<state-dir>/volumes/<pv>`` with a claimRef to the claim, and the controller-manager's PV
controller binds the two, exactly as with an external provisioner. A Released volume of ours
is deleted with its folder. A claim that names a class that does not exist stays Pending, as
on a real cluster.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any

from llmops_dev.kubelet.kube import ApiError, Informer, KubeClient

__all__ = ["PROVISIONER", "STORAGE_CLASS", "Provisioner"]

log = logging.getLogger("llmops.provisioner")
Obj = dict[str, Any]

STORAGE_CLASS = "standard"
PROVISIONER = "llmops.io/fake-hostpath"
_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


class Provisioner:
    """Watches claims and volumes; creates and deletes hostPath volumes."""

    def __init__(self, kube: KubeClient, state_dir: Path) -> None:
        self.kube = kube
        self.volumes = state_dir / "volumes"
        self.claims = Informer(kube, "/api/v1/persistentvolumeclaims", self._on_claim, name="pvcs")
        self.pvs = Informer(kube, "/api/v1/persistentvolumes", self._on_volume, name="pvs")
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def ensure_storage_class(self) -> None:
        path = f"/apis/storage.k8s.io/v1/storageclasses/{STORAGE_CLASS}"
        if await self.kube.get(path) is not None:
            return
        body = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        }
        try:
            await self.kube.create("/apis/storage.k8s.io/v1/storageclasses", body)
            log.info("created the default StorageClass %s", STORAGE_CLASS)
        except ApiError as exc:
            if exc.status != 409:
                raise

    async def run(self) -> None:
        await asyncio.gather(self.claims.run(), self.pvs.run())

    def _spawn(self, key: str, coro: Any) -> None:
        if key in self._busy:
            coro.close()
            return
        self._busy.add(key)
        task = asyncio.create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            self._busy.discard(key)
            if not t.cancelled() and t.exception() is not None:
                log.error("%s failed: %s", key, t.exception())

        task.add_done_callback(done)

    def _on_claim(self, event: str, pvc: Obj) -> None:
        spec, status = pvc.get("spec", {}), pvc.get("status", {})
        if event == "DELETED" or spec.get("volumeName") or status.get("phase", "Pending") != "Pending":
            return
        if spec.get("storageClassName") != STORAGE_CLASS or pvc["metadata"].get("deletionTimestamp"):
            return
        self._spawn(f"provision {pvc['metadata']['uid']}", self._provision(pvc))

    async def _provision(self, pvc: Obj) -> None:
        meta, spec = pvc["metadata"], pvc["spec"]
        name = f"pvc-{meta['uid']}"
        folder = self.volumes / name
        folder.mkdir(parents=True, exist_ok=True)
        size = (spec.get("resources", {}).get("requests") or {}).get("storage", "1Gi")
        pv = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {_PROVISIONED_BY: PROVISIONER}},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": STORAGE_CLASS,
                "volumeMode": spec.get("volumeMode", "Filesystem"),
                "hostPath": {"path": str(folder), "type": "DirectoryOrCreate"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        try:
            await self.kube.create("/api/v1/persistentvolumes", pv)
            log.info("provisioned %s (%s) for %s/%s", name, size, meta["namespace"], meta["name"])
        except ApiError as exc:
            if exc.status != 409:
                raise

    def _on_volume(self, event: str, pv: Obj) -> None:
        meta, spec = pv["metadata"], pv.get("spec", {})
        if (meta.get("annotations") or {}).get(_PROVISIONED_BY) != PROVISIONER:
            return
        if event == "DELETED":
            self._remove_folder(spec)
            return
        if (
            pv.get("status", {}).get("phase") == "Released"
            and spec.get("persistentVolumeReclaimPolicy") == "Delete"
        ):
            self._spawn(f"reclaim {meta['name']}", self._reclaim(pv))

    async def _reclaim(self, pv: Obj) -> None:
        await self.kube.delete(f"/api/v1/persistentvolumes/{pv['metadata']['name']}")
        log.info("deleted released volume %s", pv["metadata"]["name"])
        self._remove_folder(pv.get("spec", {}))

    def _remove_folder(self, spec: Obj) -> None:
        path = Path((spec.get("hostPath") or {}).get("path", ""))
        # Only ever a folder of ours.
        if path.parent == self.volumes and path.name.startswith("pvc-"):
            shutil.rmtree(path, ignore_errors=True)
