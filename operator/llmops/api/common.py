"""Building blocks shared by the spec and status models: the base model, CEL rules, and small
Kubernetes-shaped types (Secret references, quantities, durations, selectors, tolerations).

The CRD is generated from these models (see crd.py), so every constraint that Kubernetes must
enforce at admission lives here next to its field: JSON-schema bounds and patterns through
pydantic, cross-field rules as CEL `x-kubernetes-validations` through `json_schema_extra`, each
mirrored by a pydantic validator with the same message so the operator and the apiserver agree.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

# Kubernetes name shapes (k8s.io/apimachinery/pkg/util/validation).
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
QUALIFIED_NAME = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"  # optional DNS prefix/
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
# resource.Quantity, as controller-gen emits it for int-or-string quantities.
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"  # number
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"  # suffix
)
# Prometheus-style durations ("30s", "10m", "1h30m", "7d"): the same strings go into PromQL.
DURATION = r"^([0-9]+(ms|s|m|h|d|w))+$"
SHA40 = r"^[0-9a-f]{40}$"

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w)")

X_VALIDATIONS = "x-kubernetes-validations"
X_PRESERVE_UNKNOWN = "x-kubernetes-preserve-unknown-fields"
X_INT_OR_STRING = "x-kubernetes-int-or-string"
X_LIST_TYPE = "x-kubernetes-list-type"
X_LIST_MAP_KEYS = "x-kubernetes-list-map-keys"


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One CEL rule for `x-kubernetes-validations`; `field_path` (".field") names the field in the error."""
    out = {"rule": rule, "message": message}
    if field_path is not None:
        out["fieldPath"] = field_path
    return out


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """`json_schema_extra` that attaches CEL rules to a model's object schema."""
    return {X_VALIDATIONS: list(rules)}


def parse_duration(value: str) -> float:
    """Seconds in a DURATION string ("1h30m" → 5400.0). Raises ValueError on anything else."""
    if not re.fullmatch(DURATION, value):
        raise ValueError(f"not a duration like 30s, 10m, 1h30m or 7d: {value!r}")
    return float(sum(int(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(value)))


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, snake_case in Python, immutable.

    Unknown fields are errors: the apiserver prunes them anyway, so in the operator they can only
    come from a typo in a test or a sample, and those should fail loudly.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
        extra="forbid",
        frozen=True,
    )


# A Kubernetes quantity: "8", 8, "32Gi", "500m". int-or-string on the wire, as in core/v1.
Quantity = Annotated[
    int | Annotated[str, StringConstraints(pattern=QUANTITY)],
    Field(json_schema_extra={X_INT_OR_STRING: True}),
]
Duration = Annotated[str, StringConstraints(pattern=DURATION, max_length=32)]
# Timestamps in status are RFC 3339 strings ("2026-01-02T03:04:05Z"): plain data that compares
# equal after a round trip through the apiserver.
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"}, max_length=64)]
ObjectName = Annotated[str, StringConstraints(pattern=DNS1123_SUBDOMAIN, min_length=1, max_length=253)]
# Object maps that Kubernetes may grow (a Volume, an affinity, a Job template): kept verbatim.
FreeForm = Annotated[dict[str, Any], Field(json_schema_extra={X_PRESERVE_UNKNOWN: True})]


class SecretKeyRef(ApiModel):
    """A key of a Secret in the LLMDeployment's namespace. The value is never read by the operator:
    it reaches the pod through `valueFrom.secretKeyRef`."""

    name: ObjectName
    """Name of the Secret."""
    key: Annotated[str, StringConstraints(pattern=SECRET_KEY, min_length=1, max_length=253)]
    """Key in the Secret."""


class TokenSecretRef(ApiModel):
    """A Hugging Face access token in a Secret of the LLMDeployment's namespace (for gated or
    private models). It is passed to the pods as HF_TOKEN through `secretKeyRef`, never read."""

    name: ObjectName
    """Name of the Secret."""
    key: Annotated[str, StringConstraints(pattern=SECRET_KEY, min_length=1, max_length=253)] = "token"
    """Key in the Secret."""


class ApiKeySecretRef(ApiModel):
    """The API key TGI requires as `Authorization: Bearer <key>` on its generation routes."""

    name: ObjectName
    """Name of the Secret."""
    key: Annotated[str, StringConstraints(pattern=SECRET_KEY, min_length=1, max_length=253)] = "api-key"
    """Key in the Secret."""


class ConfigMapKeyRef(ApiModel):
    """A key of a ConfigMap in the LLMDeployment's namespace."""

    name: ObjectName
    """Name of the ConfigMap."""
    key: Annotated[str, StringConstraints(pattern=SECRET_KEY, min_length=1, max_length=253)]
    """Key in the ConfigMap."""


class LocalObjectReference(ApiModel):
    """A reference by name to an object in the LLMDeployment's namespace."""

    name: ObjectName
    """Name of the object."""


class EnvVar(ApiModel):
    """A plain environment variable. Secrets go through the spec's *SecretRef fields instead."""

    name: Annotated[str, StringConstraints(pattern=ENV_NAME, min_length=1, max_length=128)]
    """Variable name."""
    value: Annotated[str, StringConstraints(max_length=4096)] = ""
    """Variable value (a literal: never put a secret here)."""


class LabelSelectorRequirement(ApiModel):
    """A label selector requirement (metav1.LabelSelectorRequirement)."""

    key: Annotated[str, StringConstraints(pattern=QUALIFIED_NAME, max_length=317)]
    """The label key."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the key relates to the values."""
    values: Annotated[list[Annotated[str, StringConstraints(max_length=63)]], Field(max_length=64)] = []
    """Values for In and NotIn; empty for Exists and DoesNotExist."""


class LabelSelector(ApiModel):
    """A label selector (metav1.LabelSelector). An empty selector selects everything."""

    match_labels: dict[str, str] = {}
    """Labels that must all match."""
    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=32)] = []
    """Requirements that must all hold."""


class Toleration(ApiModel):
    """A pod toleration (core/v1 Toleration)."""

    key: Annotated[str, StringConstraints(max_length=317)] | None = None
    """Taint key; empty with operator Exists matches every taint."""
    operator: Literal["Exists", "Equal"] | None = None
    """Exists or Equal (the default)."""
    value: Annotated[str, StringConstraints(max_length=63)] | None = None
    """Taint value for operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to match; empty matches all effects."""
    toleration_seconds: int | None = None
    """How long a NoExecute taint is tolerated before eviction."""
