"""Static manifests from ``helm template`` output: the single-file install, the kustomize
base and the overlays.

Everything here is a pure function of rendered text. The base and ``install.yaml`` hold the
chart's default render verbatim (plus the Namespace the chart leaves to ``helm install
--create-namespace``). An overlay holds only what the chart, rendered with the overlay's
values, adds to, removes from or changes in the default render, as kustomize patches; the
unit tests build each overlay with ``kubectl kustomize`` and compare it with that render.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from llmops_dev.packaging.json_patch import diff

__all__ = [
    "Doc",
    "base_files",
    "doc_key",
    "install_yaml",
    "namespace_doc",
    "overlay_files",
    "split_render",
]

Key = tuple[str, str, str, str]


class _Dumper(yaml.SafeDumper):
    """Prints multi-line strings (the inline patches) as literal blocks, readable in review."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=1000)


_RBAC_KINDS = frozenset({"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"})


@dataclass(frozen=True)
class Doc:
    """One rendered document: its text as Helm printed it (comments included) and its data."""

    text: str
    obj: dict[str, Any]

    @property
    def key(self) -> Key:
        return doc_key(self.obj)


def doc_key(obj: Mapping[str, Any]) -> Key:
    """Identity of an object: (apiVersion, kind, namespace, name)."""
    meta = obj.get("metadata") or {}
    return (str(obj["apiVersion"]), str(obj["kind"]), str(meta.get("namespace", "")), str(meta["name"]))


def split_render(text: str) -> list[Doc]:
    """Split multi-document YAML into documents, dropping empty ones (comments only)."""
    docs: list[Doc] = []
    chunks: list[list[str]] = [[]]
    for line in text.splitlines(keepends=True):
        if line.rstrip() == "---":
            chunks.append([])
        else:
            chunks[-1].append(line)
    for chunk in chunks:
        body = "".join(chunk)
        obj = yaml.safe_load(body)
        if obj is None:
            continue
        if not isinstance(obj, dict) or "kind" not in obj:
            raise ValueError(f"not a Kubernetes object:\n{body[:400]}")
        docs.append(Doc(text=body.strip("\n") + "\n", obj=obj))
    seen: set[Key] = set()
    for doc in docs:
        if doc.key in seen:
            raise ValueError(f"{doc.key} is rendered twice")
        seen.add(doc.key)
    return docs


def namespace_doc(namespace: str) -> Doc:
    """The operator's namespace, enforcing the restricted Pod Security Standard its pod meets."""
    obj = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "labels": {
                "app.kubernetes.io/part-of": "llmops",
                "pod-security.kubernetes.io/enforce": "restricted",
            },
        },
    }
    text = "# The operator pod meets the restricted Pod Security Standard; enforce it.\n" + yaml.safe_dump(
        obj, sort_keys=False
    )
    return Doc(text=text, obj=obj)


def _join(header: str, docs: list[Doc]) -> str:
    return header + "".join(f"---\n{d.text}" for d in docs)


def install_yaml(header: str, namespace: str, render: list[Doc]) -> str:
    """One file for ``kubectl apply -f``: the Namespace, then the render in Helm's order."""
    return _join(header, [namespace_doc(namespace), *render])


def _base_file(doc: Doc) -> str:
    kind = doc.obj["kind"]
    if kind == "CustomResourceDefinition":
        return "crds.yaml"
    if kind in _RBAC_KINDS:
        return "rbac.yaml"
    return "operator.yaml"


def base_files(header: str, namespace: str, render: list[Doc]) -> dict[str, str]:
    """The kustomize base: namespace.yaml, crds.yaml, rbac.yaml, operator.yaml, kustomization.yaml."""
    groups: dict[str, list[Doc]] = {"namespace.yaml": [namespace_doc(namespace)]}
    for doc in render:
        groups.setdefault(_base_file(doc), []).append(doc)
    order = ["namespace.yaml", "crds.yaml", "rbac.yaml", "operator.yaml"]
    files = {name: _join(header, groups[name]) for name in order if name in groups}
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [name for name in order if name in groups],
    }
    files["kustomization.yaml"] = header + _dump(kustomization)
    return files


def _target(obj: Mapping[str, Any]) -> dict[str, str]:
    group, _, version = str(obj["apiVersion"]).rpartition("/")
    meta = obj["metadata"]
    target = {"group": group, "version": version, "kind": str(obj["kind"]), "name": str(meta["name"])}
    if meta.get("namespace"):
        target["namespace"] = str(meta["namespace"])
    return target


def overlay_files(header: str, base: list[Doc], overlay: list[Doc], comment: str) -> dict[str, str]:
    """An overlay on ``../../base``: added objects in resources.yaml, the rest as patches."""
    base_by_key = {d.key: d for d in base}
    overlay_by_key = {d.key: d for d in overlay}
    added = [d for d in overlay if d.key not in base_by_key]
    patches: list[dict[str, Any]] = []
    for doc in base:
        if doc.key not in overlay_by_key:
            meta = {"name": doc.obj["metadata"]["name"]}
            if doc.obj["metadata"].get("namespace"):
                meta["namespace"] = doc.obj["metadata"]["namespace"]
            deletion = {
                "$patch": "delete",
                "apiVersion": doc.obj["apiVersion"],
                "kind": doc.obj["kind"],
                "metadata": meta,
            }
            patches.append({"patch": _dump(deletion)})
            continue
        ops = diff(doc.obj, overlay_by_key[doc.key].obj)
        if ops:
            patches.append({"target": _target(doc.obj), "patch": _dump(ops)})
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../../base", *(["resources.yaml"] if added else [])],
    }
    if patches:
        kustomization["patches"] = patches
    files = {"kustomization.yaml": header + comment + _dump(kustomization)}
    if added:
        files["resources.yaml"] = _join(header, added)
    return files
