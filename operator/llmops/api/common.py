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

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

# The characters of Unicode's White_Space property, for use inside a [...] class, in the escapes
# both engines that read a pattern know (Rust's regex in pydantic, Go's RE2 in the apiserver).
# Patterns never say \s or \S: to pydantic they mean these characters, to the apiserver only
# [\t\n\f\r ], so the apiserver admitted an image "\v" that the operator then refused.
# Kubernetes' own trimming (unicode.IsSpace) takes exactly this set.
WHITE_SPACE = r"\t\n\v\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}"
# Kubernetes name shapes (k8s.io/apimachinery/pkg/util/validation).
# An image reference: Kubernetes refuses leading or trailing whitespace, runtimes any at all.
IMAGE = rf"^[^{WHITE_SPACE}]+$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# A label key or other qualified name: an optional DNS-subdomain prefix (at most 253 characters:
# checked by _PREFIX_FITS, a regular expression cannot count it) and a name of at most 63.
QUALIFIED_NAME = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"  # optional DNS prefix/
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
# resource.Quantity without the sign: every quantity in the spec is a request or a size, and
# Kubernetes refuses negative ones. Not controller-gen's pattern, which takes a fractional
# exponent ("1e1.5") that resource.ParseQuantity refuses: the PVC of such a cache size was
# refused after the spec was admitted. The exponent has at most three digits (api.quantity).
_QUANTITY_SUFFIX = r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?[0-9]{1,3}))?$"
QUANTITY = r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))" + _QUANTITY_SUFFIX
# ... and one that is not zero (a PVC's size must be greater than zero): a non-zero digit before
# the suffix.
POSITIVE_QUANTITY = r"^\+?(([0-9]*[1-9][0-9]*(\.[0-9]*)?)|([0-9]*\.[0-9]*[1-9][0-9]*))" + _QUANTITY_SUFFIX
# Prometheus durations ("30s", "10m", "1h30m", "7d"): the same strings go into PromQL and into
# the Prometheus Operator's resources, and both want the units largest first, each at most once
# (Prometheus' model.ParseDuration; the PodMonitor CRD's pattern). Never empty (minLength 2).
DURATION = r"^([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$"
SHA40 = r"^[0-9a-f]{40}$"

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w)")

X_VALIDATIONS = "x-kubernetes-validations"
X_PRESERVE_UNKNOWN = "x-kubernetes-preserve-unknown-fields"
X_INT_OR_STRING = "x-kubernetes-int-or-string"
X_LIST_TYPE = "x-kubernetes-list-type"
X_LIST_MAP_KEYS = "x-kubernetes-list-map-keys"


def cel(
    rule: str, message: str, field_path: str | None = None, *, message_expression: str | None = None
) -> dict[str, str]:
    """One CEL rule for `x-kubernetes-validations`; `field_path` (".field") names the field in the error.

    `message_expression` (a CEL string expression) lets the apiserver's error carry values from the
    object; `message` stays the fallback and is what the pydantic mirror of the rule raises.
    """
    out = {"rule": rule, "message": message}
    if message_expression is not None:
        out["messageExpression"] = message_expression
    if field_path is not None:
        out["fieldPath"] = field_path
    return out


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """`json_schema_extra` that attaches CEL rules to a model's object schema."""
    return {X_VALIDATIONS: list(rules)}


def parse_duration(value: str) -> float:
    """Seconds in a DURATION string ("1h30m" → 5400.0). Raises ValueError on anything else."""
    if not value or not re.fullmatch(DURATION, value):
        raise ValueError(f"not a duration like 30s, 10m, 1h30m or 7d: {value!r}")
    return float(sum(int(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(value)))


def format_duration(seconds: float) -> str:
    """Whole seconds as a spec writes them, in DURATION's form (7d, 1d10m, 1h30m, 45s)."""
    rest, parts = int(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or f"{seconds:g}s"


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
    Annotated[int, Field(ge=0)] | Annotated[str, StringConstraints(pattern=QUANTITY, max_length=64)],
    Field(json_schema_extra={X_INT_OR_STRING: True}),
]
PositiveQuantity = Annotated[
    Annotated[int, Field(ge=1)] | Annotated[str, StringConstraints(pattern=POSITIVE_QUANTITY, max_length=64)],
    Field(json_schema_extra={X_INT_OR_STRING: True}),
]
Duration = Annotated[str, StringConstraints(pattern=DURATION, min_length=2, max_length=32)]
Image = Annotated[str, StringConstraints(pattern=IMAGE, min_length=1, max_length=512)]
LabelValue = Annotated[str, StringConstraints(pattern=LABEL_VALUE, max_length=63)]
LabelKey = Annotated[str, StringConstraints(pattern=QUALIFIED_NAME, max_length=317)]

# CEL cannot count a regular expression's prefix either: the part before "/" is at most 253.
_PREFIX_FITS = "(k.indexOf('/') < 0 || k.indexOf('/') <= 253)"
_LABEL_KEYS = cel(
    f"self.all(k, size(k) <= 317 && k.matches(r'{QUALIFIED_NAME}') && {_PREFIX_FITS})",
    "label keys must be qualified names: an optional DNS-subdomain prefix and '/', then at most 63 "
    "alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric (e.g. app.kubernetes.io/name)",
)


def is_qualified_name(key: str) -> bool:
    """A label key as Kubernetes accepts it (apimachinery's IsQualifiedName)."""
    prefix, slash, _ = key.partition("/")
    return (
        len(key) <= 317
        and re.fullmatch(QUALIFIED_NAME, key) is not None
        and (not slash or len(prefix) <= 253)
    )


def _label_keys(labels: dict[str, str]) -> dict[str, str]:
    bad = [k for k in labels if not is_qualified_name(k)]
    if bad:
        raise ValueError(f"{_LABEL_KEYS['message']}; not one: {bad[0]!r}")
    return labels


# Labels (or a nodeSelector, or matchLabels): keys are qualified names, values label values.
# JSON schema cannot constrain map keys in a CRD (no propertyNames), so a CEL rule does.
Labels = Annotated[
    dict[str, LabelValue],
    Field(max_length=64, json_schema_extra={X_VALIDATIONS: [_LABEL_KEYS]}),
    AfterValidator(_label_keys),
]
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


_VALUES_FIT_OPERATOR = cel(
    "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
    "values must be non-empty for operator In or NotIn, and empty for Exists or DoesNotExist",
    ".values",
)


class LabelSelectorRequirement(ApiModel):
    """A label selector requirement (metav1.LabelSelectorRequirement)."""

    model_config = ConfigDict(json_schema_extra=validations(_VALUES_FIT_OPERATOR))

    key: LabelKey
    """The label key."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the key relates to the values."""
    values: Annotated[list[LabelValue], Field(max_length=64)] = []
    """Values for In and NotIn; empty for Exists and DoesNotExist."""

    @model_validator(mode="after")
    def _values_fit_operator(self) -> LabelSelectorRequirement:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError(_VALUES_FIT_OPERATOR["message"])
        return self


class LabelSelector(ApiModel):
    """A label selector (metav1.LabelSelector). An empty selector selects everything."""

    match_labels: Labels = {}
    """Labels that must all match."""
    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=32)] = []
    """Requirements that must all hold."""


_TOLERATION_RULES = (
    cel(
        "has(self.key) || (has(self.operator) && self.operator == 'Exists')",
        "operator must be Exists when key is empty (it then matches every taint)",
        ".operator",
    ),
    cel(
        "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
        "value must be empty when operator is Exists",
        ".value",
    ),
    cel(
        "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
        "tolerationSeconds needs effect NoExecute",
        ".tolerationSeconds",
    ),
)


class Toleration(ApiModel):
    """A pod toleration (core/v1 Toleration), with the apiserver's rules between its fields."""

    model_config = ConfigDict(json_schema_extra=validations(*_TOLERATION_RULES))

    key: LabelKey | None = None
    """Taint key; empty with operator Exists matches every taint."""
    operator: Literal["Exists", "Equal"] | None = None
    """Exists or Equal (the default)."""
    value: LabelValue | None = None
    """Taint value for operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to match; empty matches all effects."""
    toleration_seconds: int | None = None
    """How long a NoExecute taint is tolerated before eviction."""

    @model_validator(mode="after")
    def _fields_agree(self) -> Toleration:
        key_rule, value_rule, seconds_rule = _TOLERATION_RULES
        if self.key is None and self.operator != "Exists":
            raise ValueError(key_rule["message"])
        if self.operator == "Exists" and self.value:
            raise ValueError(value_rule["message"])
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError(seconds_rule["message"])
        return self
