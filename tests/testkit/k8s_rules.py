"""The kube-apiserver's semantic validation of the fields our children fill from the spec.

The v1.36 OpenAPI schemas (kubernetes-validate) check types and required fields only; the
apiserver also checks name and label syntax, quantities, toleration rules and selector
requirements (k8s.io/apimachinery/pkg/util/validation, pkg/apis/core/validation). This module
mirrors those checks for what `render()` writes, so unit tests can assert that every child a
spec the CRD accepts would also be accepted by Kubernetes. The integration tier checks the same
children against the real apiserver with a server-side dry run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from llmops.api.quantity import parse_quantity

__all__ = ["problems", "quantity"]

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
QUALIFIED_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
WORKLOADS = {"Deployment", "Job", "CronJob"}


def quantity(value: int | str) -> Fraction:
    """A resource.Quantity as a number; ValueError if it is not one. The operator's own reading
    (llmops.api.quantity), which was checked against apimachinery's ParseQuantity."""
    return parse_quantity(value)


def _qualified_name(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return False
    return 0 < len(name) <= 63 and QUALIFIED_NAME_PART.fullmatch(name) is not None


def _label_value(value: str) -> bool:
    return len(value) <= 63 and LABEL_VALUE.fullmatch(value) is not None


def _labels(labels: Mapping[str, object] | None, path: str) -> list[str]:
    """Problems with labels as given: the values of arbitrary input need not be strings."""
    out = []
    for key, value in (labels or {}).items():
        if not _qualified_name(key):
            out.append(f"{path}: invalid label key {key!r}")
        if not isinstance(value, str) or not _label_value(value):
            out.append(f"{path}[{key}]: invalid label value {value!r}")
    return out


def _subdomain(value: str, path: str, max_len: int = 253) -> list[str]:
    if len(value) > max_len or not DNS1123_SUBDOMAIN.fullmatch(value):
        return [f"{path}: {value!r} is not a DNS-1123 subdomain of at most {max_len} characters"]
    return []


def _selector(sel: dict[str, Any] | None, path: str) -> list[str]:
    if not sel:
        return []
    out = _labels(sel.get("matchLabels"), f"{path}.matchLabels")
    for i, req in enumerate(sel.get("matchExpressions") or []):
        where = f"{path}.matchExpressions[{i}]"
        if not _qualified_name(req["key"]):
            out.append(f"{where}.key: invalid {req['key']!r}")
        values = req.get("values") or []
        if req["operator"] in ("In", "NotIn") and not values:
            out.append(f"{where}.values: must be specified when operator is In or NotIn")
        if req["operator"] in ("Exists", "DoesNotExist") and values:
            out.append(f"{where}.values: may not be specified when operator is Exists or DoesNotExist")
        out += [f"{where}.values: invalid {v!r}" for v in values if not _label_value(v)]
    return out


def _toleration(t: dict[str, Any], path: str) -> list[str]:
    out = []
    key, op, value = t.get("key", ""), t.get("operator", "Equal"), t.get("value", "")
    if key and not _qualified_name(key):
        out.append(f"{path}.key: invalid {key!r}")
    if not key and op != "Exists":
        out.append(f"{path}.operator: must be Exists when key is empty")
    if t.get("tolerationSeconds") is not None and t.get("effect") != "NoExecute":
        out.append(f"{path}.effect: must be NoExecute when tolerationSeconds is set")
    if op == "Exists" and value:
        out.append(f"{path}.operator: value must be empty when operator is Exists")
    if op == "Equal" and not _label_value(value):
        out.append(f"{path}.value: invalid {value!r}")
    return out


# What Go's strings.TrimSpace strips (unicode.IsSpace), which core/v1 validation uses on an image;
# Python's str.strip() also strips \x1c-\x1f, which Kubernetes keeps.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def _container(c: dict[str, Any], path: str) -> list[str]:
    out = []
    if not DNS1123_LABEL.fullmatch(c["name"]) or len(c["name"]) > 63:
        out.append(f"{path}.name: invalid {c['name']!r}")
    image = c.get("image", "")
    if not image or image != image.strip(_GO_SPACE):
        out.append(f"{path}.image: must be non-empty, without leading or trailing whitespace: {image!r}")
    for i, env in enumerate(c.get("env") or []):
        if (
            not env["name"]
            or "=" in env["name"]
            or not env["name"].isprintable()
            or not env["name"].isascii()
        ):
            out.append(f"{path}.env[{i}].name: invalid {env['name']!r}")
    res = c.get("resources") or {}
    for part in ("requests", "limits"):
        for rname, raw in (res.get(part) or {}).items():
            try:
                amount = quantity(raw)
            except ValueError as exc:
                out.append(f"{path}.resources.{part}[{rname}]: {exc}")
                continue
            if amount < 0:
                out.append(f"{path}.resources.{part}[{rname}]: must be greater than or equal to 0")
    for rname, raw in (res.get("requests") or {}).items():
        limit = (res.get("limits") or {}).get(rname)
        try:
            if limit is not None and quantity(raw) > quantity(limit):
                out.append(f"{path}.resources.requests[{rname}]: must be less than or equal to the limit")
        except ValueError:
            pass
    for i, port in enumerate(c.get("ports") or []):
        if not 1 <= port["containerPort"] <= 65535:
            out.append(f"{path}.ports[{i}].containerPort: out of range")
    return out


def _pod(template: dict[str, Any], path: str) -> list[str]:
    out = _labels(template.get("metadata", {}).get("labels"), f"{path}.metadata.labels")
    spec = template["spec"]
    out += _labels(spec.get("nodeSelector"), f"{path}.spec.nodeSelector")
    for i, t in enumerate(spec.get("tolerations") or []):
        out += _toleration(t, f"{path}.spec.tolerations[{i}]")
    if spec.get("priorityClassName"):
        out += _subdomain(spec["priorityClassName"], f"{path}.spec.priorityClassName")
    for kind in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(kind) or []):
            out += _container(c, f"{path}.spec.{kind}[{i}]")
    return out


def problems(obj: dict[str, Any]) -> list[str]:
    """What the apiserver would refuse in ``obj`` (for the fields render() fills); [] if nothing."""
    kind, meta, spec = obj["kind"], obj["metadata"], obj.get("spec") or {}
    name = meta["name"]
    if kind == "Service":
        out = [] if DNS1035_LABEL.fullmatch(name) and len(name) <= 63 else [f"metadata.name: {name!r}"]
    else:
        out = _subdomain(name, "metadata.name", 52 if kind == "CronJob" else 253)
    out += _labels(meta.get("labels"), "metadata.labels")
    out += [
        f"metadata.annotations: invalid key {k!r}"
        for k in meta.get("annotations") or {}
        if not _qualified_name(k)
    ]
    if kind in ("Deployment", "Job"):
        out += _pod(spec["template"], "spec.template")
    if kind == "CronJob":
        out += _pod(spec["jobTemplate"]["spec"]["template"], "spec.jobTemplate.spec.template")
    if kind in ("Deployment", "PodDisruptionBudget"):
        out += _selector(spec.get("selector"), "spec.selector")
    if kind == "Service":
        out += _labels(spec.get("selector"), "spec.selector")
        out += [f"spec.ports: {p['port']} out of range" for p in spec["ports"] if not 1 <= p["port"] <= 65535]
    if kind == "PersistentVolumeClaim":
        if spec.get("storageClassName"):
            out += _subdomain(spec["storageClassName"], "spec.storageClassName")
        storage = spec["resources"]["requests"]["storage"]
        try:
            if quantity(storage) <= 0:
                out.append(f"spec.resources.requests.storage: must be greater than zero: {storage!r}")
        except ValueError as exc:
            out.append(f"spec.resources.requests.storage: {exc}")
    if kind == "NetworkPolicy":
        out += _selector(spec.get("podSelector"), "spec.podSelector")
        for i, rule in enumerate(spec.get("ingress") or []):
            for j, peer in enumerate(rule.get("from") or []):
                for key in ("podSelector", "namespaceSelector"):
                    out += _selector(peer.get(key), f"spec.ingress[{i}].from[{j}].{key}")
    if kind == "PodMonitor":
        out += _selector(spec.get("selector"), "spec.selector")
    if kind == "HorizontalPodAutoscaler":
        out += _autoscaler(spec)
    return out


def _autoscaler(spec: dict[str, Any]) -> list[str]:
    """pkg/apis/autoscaling/validation: minReplicas at most maxReplicas, a target that is a
    positive quantity (ValidateMetricTarget)."""
    out = []
    if spec.get("minReplicas", 1) > spec["maxReplicas"]:
        out.append("spec.maxReplicas: must be greater than or equal to `minReplicas`")
    for i, metric in enumerate(spec.get("metrics") or []):
        target = (metric.get("external") or {}).get("target") or {}
        for field in ("value", "averageValue"):
            if field in target:
                try:
                    positive = quantity(target[field]) > 0
                except ValueError as exc:
                    out.append(f"spec.metrics[{i}].external.target.{field}: {exc}")
                    continue
                if not positive:
                    out.append(f"spec.metrics[{i}].external.target.{field}: must be positive")
    return out
