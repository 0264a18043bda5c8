"""Volumes for the fake kubelet: each pod volume becomes a host directory.

- persistentVolumeClaim: the bound PersistentVolume's hostPath (the fake provisioner's folder)
- configMap, secret, downwardAPI, projected: their keys written as files in a per-pod folder
  (configMap and secret the kubelet's way: the files are links into a ``..data`` link to a
  versioned folder, swapped atomically, and `refresh_volumes` rewrites them when the object
  changes, so a process that watches a mounted Secret sees the change within seconds)
- emptyDir: a per-pod folder; hostPath: the path itself

A volume that cannot be set up (a ConfigMap or Secret that does not exist, a claim that is
not bound) raises `VolumeError` with the kubelet's FailedMount wording; the pod then waits in
ContainerCreating and the kubelet tries again, as the real one does.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmops_dev.kubelet.kube import KubeClient
from llmops_dev.kubelet.spec import Mounts

__all__ = ["VolumeError", "container_mounts", "prepare_volumes", "refresh_volumes"]

log = logging.getLogger("llmops.kubelet.volumes")
Obj = dict[str, Any]


class VolumeError(Exception):
    """A volume cannot be mounted yet; the message is the kubelet's FailedMount text."""


def _write_items(target: Path, data: Mapping[str, bytes], items: list[Obj] | None) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    chosen: dict[str, str] = (
        {i["key"]: str(i.get("path", i["key"])) for i in items} if items else {k: k for k in data}
    )
    for key, rel in chosen.items():
        if key not in data:
            continue
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[key])


def _chosen(data: Mapping[str, bytes], items: list[Obj] | None) -> dict[str, bytes]:
    """relative path → content, as `items` selects (all keys without items)."""
    chosen: dict[str, str] = (
        {str(i["key"]): str(i.get("path", i["key"])) for i in items} if items else {k: k for k in data}
    )
    return {rel: data[key] for key, rel in chosen.items() if key in data}


def _write_atomic(target: Path, files: Mapping[str, bytes]) -> None:
    """Write `files` as the kubelet's AtomicWriter does: a new ``..<version>`` folder, then the
    ``..data`` link swapped to it in one rename, with each top-level name a link through ``..data``.
    A reader never sees a half-written set of files."""
    if target.exists() and not (target / "..data").is_symlink():
        shutil.rmtree(target)
    target.mkdir(parents=True, exist_ok=True)
    version = target / f"..{time.time_ns()}"
    version.mkdir()
    for rel, content in files.items():
        path = version / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    tmp = target / "..data_tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(version.name)
    os.replace(tmp, target / "..data")
    tops = {rel.split("/", 1)[0] for rel in files}
    for name in tops:
        link = target / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            if entry.name not in ("..data", version.name) and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
        elif entry.name not in tops:
            entry.unlink(missing_ok=True)


def _config_data(obj: Obj) -> dict[str, bytes]:
    out = {k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()}
    out.update({k: str(v).encode() for k, v in (obj.get("data") or {}).items()})
    return out


def _secret_data(obj: Obj) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}


async def _source(
    kube: KubeClient, ns: str, *, kind: str, name: str, optional: bool, vol: str
) -> dict[str, bytes]:
    """The data of the ConfigMap or Secret a volume projects ({} when missing but optional)."""
    plural = "configmaps" if kind == "configmap" else "secrets"
    obj = await kube.get(f"/api/v1/namespaces/{ns}/{plural}/{name}")
    if obj is None:
        if optional:
            return {}
        raise VolumeError(f'MountVolume.SetUp failed for volume "{vol}" : {kind} "{name}" not found')
    return _config_data(obj) if kind == "configmap" else _secret_data(obj)


def _downward(pod: Obj, items: list[Obj]) -> dict[str, bytes]:
    meta = pod.get("metadata", {})
    out: dict[str, bytes] = {}
    for item in items:
        path = (item.get("fieldRef") or {}).get("fieldPath", "")
        if path in ("metadata.labels", "metadata.annotations"):
            values = meta.get(path.split(".")[1]) or {}
            text = "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
        else:
            text = str(meta.get(path.removeprefix("metadata."), ""))
        out[item["path"]] = text.encode()
    return out


async def _projected(kube: KubeClient, pod: Obj, target: Path, vol: Obj) -> None:
    ns = pod["metadata"]["namespace"]
    files: dict[str, bytes] = {}
    for src in vol.get("sources") or []:
        for kind, field in (("configmap", "configMap"), ("secret", "secret")):
            if field in src:
                s = src[field]
                data = await _source(
                    kube,
                    ns,
                    kind=kind,
                    name=s.get("name", ""),
                    optional=bool(s.get("optional")),
                    vol=vol["name"],
                )
                items = s.get("items")
                chosen: dict[str, str] = (
                    {i["key"]: i.get("path", i["key"]) for i in items} if items else {k: k for k in data}
                )
                files.update({rel: data[key] for key, rel in chosen.items() if key in data})
        if "downwardAPI" in src:
            files.update(_downward(pod, src["downwardAPI"].get("items") or []))
        if "serviceAccountToken" in src:
            # No TokenRequest: processes here reach the apiserver with the kubeconfig if at all.
            files[src["serviceAccountToken"].get("path", "token")] = b""
    _write_items(target, files, None)


async def prepare_volumes(kube: KubeClient, pod: Obj, pod_dir: Path) -> dict[str, str]:
    """Set up every volume of the pod; returns volume name → host directory."""
    ns = pod["metadata"]["namespace"]
    out: dict[str, str] = {}
    for vol in pod.get("spec", {}).get("volumes") or []:
        name = vol["name"]
        target = pod_dir / "volumes" / name
        if "persistentVolumeClaim" in vol:
            claim = vol["persistentVolumeClaim"]["claimName"]
            pvc = await kube.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}")
            if pvc is None:
                raise VolumeError(f'persistentvolumeclaim "{claim}" not found')
            pv_name = pvc.get("spec", {}).get("volumeName")
            if not pv_name or pvc.get("status", {}).get("phase") != "Bound":
                raise VolumeError(f'persistentvolumeclaim "{claim}" is not bound')
            pv = await kube.get(f"/api/v1/persistentvolumes/{pv_name}")
            spec = (pv or {}).get("spec", {})
            host = (spec.get("hostPath") or spec.get("local") or {}).get("path")
            if not host:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{pv_name}" : not a hostPath volume')
            Path(host).mkdir(parents=True, exist_ok=True)
            out[name] = host
        elif "configMap" in vol or "secret" in vol:
            _write_atomic(target, await _object_files(kube, ns, vol))
            out[name] = str(target)
        elif "downwardAPI" in vol:
            _write_items(target, _downward(pod, vol["downwardAPI"].get("items") or []), None)
            out[name] = str(target)
        elif "projected" in vol:
            await _projected(kube, pod, target, {"name": name, **vol["projected"]})
            out[name] = str(target)
        elif "hostPath" in vol:
            path = Path(vol["hostPath"]["path"])
            if vol["hostPath"].get("type") == "DirectoryOrCreate":
                path.mkdir(parents=True, exist_ok=True)
            out[name] = str(path)
        else:
            if "emptyDir" not in vol:
                log.warning(
                    "%s/%s: volume %s of an unsupported type is an empty folder",
                    ns,
                    pod["metadata"]["name"],
                    name,
                )
            target.mkdir(parents=True, exist_ok=True)
            out[name] = str(target)
    return out


async def _object_files(kube: KubeClient, ns: str, vol: Obj) -> dict[str, bytes]:
    """The files of a configMap or secret volume (raises VolumeError when it cannot be mounted)."""
    kind = "configmap" if "configMap" in vol else "secret"
    src = vol.get("configMap") or vol.get("secret") or {}
    obj_name = src.get("name") or src.get("secretName", "")
    data = await _source(
        kube, ns, kind=kind, name=obj_name, optional=bool(src.get("optional")), vol=vol["name"]
    )
    return _chosen(data, src.get("items"))


async def refresh_volumes(
    kube: KubeClient, pod: Obj, pod_dir: Path, written: dict[str, dict[str, bytes]]
) -> None:
    """Rewrite the pod's configMap and secret volumes whose object changed since `written`
    (volume name → files last written, updated in place). An object that is gone or unreadable
    keeps its last files, as the kubelet does."""
    ns = pod["metadata"]["namespace"]
    for vol in pod.get("spec", {}).get("volumes") or []:
        if "configMap" not in vol and "secret" not in vol:
            continue
        try:
            files = await _object_files(kube, ns, vol)
        except Exception as exc:  # missing, or the API briefly unreachable: try next time
            log.debug("%s: not refreshing volume %s: %s", pod["metadata"]["name"], vol["name"], exc)
            continue
        if written.get(vol["name"]) != files:
            _write_atomic(pod_dir / "volumes" / vol["name"], files)
            written[vol["name"]] = files


def container_mounts(container: Obj, volumes: Mapping[str, str]) -> Mounts:
    """The container's mount paths mapped to host paths (with subPath)."""
    mapping: dict[str, str] = {}
    for vm in container.get("volumeMounts") or []:
        host = volumes.get(vm["name"])
        if host is None:
            continue
        sub = vm.get("subPath")
        if sub:
            host = str(Path(host) / sub)
            Path(host).parent.mkdir(parents=True, exist_ok=True)
        mapping[vm["mountPath"]] = host
    return Mounts.of(mapping)
