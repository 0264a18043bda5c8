"""Generate the LLMDeployment CustomResourceDefinition from the pydantic models.

pydantic emits JSON Schema (2020-12 flavoured); Kubernetes wants a *structural* OpenAPI v3 schema.
`structural()` bridges the two: it inlines every `$ref`, turns `Optional[X]` (anyOf with null)
into a non-required X, keeps `additionalProperties` only for maps, rewrites int-or-string
quantities the way core/v1 does, turns numeric `exclusiveMinimum` into the OpenAPI 3.0 boolean
form, drops titles and null/empty defaults, and gives every object-valued spec section a
`default: {}` so the apiserver fills in the nested defaults (and `kubectl get -o yaml` shows them).

Run `python -m llmops.api.crd > crds/llmops.io_llmdeployments.yaml` (or `make crds`).
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import yaml

from llmops.api.common import X_INT_OR_STRING, X_PRESERVE_UNKNOWN, X_VALIDATIONS
from llmops.api.constants import (
    CATEGORIES,
    CRD_NAME,
    GROUP,
    KIND,
    LIST_KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)
from llmops.api.resource import ROOT_VALIDATIONS
from llmops.api.spec import LLMDeploymentSpec
from llmops.api.status import LLMDeploymentStatus

Schema = dict[str, Any]

# JSON Schema keywords that have no place in a CRD schema.
_DROP = frozenset({"title", "$defs"})

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Phase",
        "type": "string",
        "jsonPath": ".status.phase",
        "description": "Where it is in its life",
    },
    {
        "name": "Model",
        "type": "string",
        "jsonPath": ".status.model",
        "description": "Hub repository serving (a retrained model once one serves)",
    },
    {
        "name": "Revision",
        "type": "string",
        "jsonPath": ".status.servingRevision",
        "description": "Revision serving production traffic",
    },
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": ".status.ready",
        "description": "Ready/desired serving pods",
    },
    {
        "name": "Canary",
        "type": "integer",
        "jsonPath": ".status.canary.weight",
        "description": "Percent of traffic on the canary",
    },
    {
        "name": "Origin",
        "type": "string",
        "jsonPath": ".status.serving.origin",
        "description": "Where what serves came from: spec, or the retrain run that produced it",
    },
    {
        "name": "Candidate",
        "type": "string",
        "jsonPath": ".status.candidate.state",
        "description": "The last retrained candidate: Evaluating, AwaitingApproval, Rolling, Promoted, Rejected",
    },
    {
        "name": "Download",
        "type": "string",
        "jsonPath": ".status.download.progress",
        "description": "How far the download of the desired revision is, while it is Caching",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Desired",
        "type": "string",
        "jsonPath": ".status.desiredRevision",
        "description": "Revision in spec being rolled out",
        "priority": 1,
    },
    {
        "name": "Scaled-By",
        "type": "string",
        "jsonPath": ".status.replicasOwner",
        "description": "Who sets the replicas: Spec, HorizontalPodAutoscaler, ScaledObject or Nobody",
        "priority": 1,
    },
    {
        "name": "Drifted",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Drifted")].status',
        "description": "Whether the serving revision's traffic or quality drifted",
        "priority": 1,
    },
    {
        "name": "Pinned",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="PinnedToSpec")].status',
        "description": "False while a retrained model serves that spec.model does not name",
        "priority": 1,
    },
    {
        "name": "Endpoint",
        "type": "string",
        "jsonPath": ".status.endpoint",
        "description": "In-cluster URL",
        "priority": 1,
    },
]


def _resolve(node: Any, defs: dict[str, Schema]) -> Any:
    """Inline `$ref`s; a field's own keywords (its description, a default) win over the target's."""
    if isinstance(node, list):
        return [_resolve(x, defs) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        target.update({k: v for k, v in node.items() if k != "$ref"})
        return _resolve(target, defs)
    return {k: _resolve(v, defs) for k, v in node.items()}


def _is_null(node: Schema) -> bool:
    return node.get("type") == "null"


def _clean(node: Schema, *, for_spec: bool) -> Schema:
    """One schema node (already inlined) made structural, recursively."""
    node = {k: v for k, v in node.items() if k not in _DROP}
    if "const" in node:
        # Literal["x"] comes out as const; an enum reads the same in errors and docs.
        node["enum"] = [node.pop("const")]

    # Optional[X] → X (not required; a null default means "absent", so it goes too).
    if "anyOf" in node and any(_is_null(b) for b in node["anyOf"]):
        branches = [b for b in node.pop("anyOf") if not _is_null(b)]
        if node.get("default", ...) is None:
            del node["default"]
        if len(branches) == 1:
            return _clean({**branches[0], **node}, for_spec=for_spec)
        node["anyOf"] = branches

    # int-or-string (quantities): core/v1's exact shape, the branches' bounds on the node itself
    # (JSON schema applies pattern and maxLength to strings only, minimum to numbers only).
    if node.get(X_INT_OR_STRING):
        for branch in node.get("anyOf", []):
            for bound in ("pattern", "maxLength", "minimum"):
                if bound in branch:
                    node[bound] = branch[bound]
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        node.pop("type", None)

    # OpenAPI 3.0 (what Kubernetes speaks) has boolean exclusive bounds.
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), int | float) and not isinstance(node.get(bound), bool):
            node[plain] = node[bound]
            node[bound] = True

    if node.get("type") == "object" or "properties" in node:
        node["type"] = "object"
        additional = node.get("additionalProperties")
        if additional is False or additional is True or node.get(X_PRESERVE_UNKNOWN):
            # pydantic's extra=forbid/allow, and free-form objects: not maps.
            node.pop("additionalProperties", None)
        elif isinstance(additional, dict):
            node["additionalProperties"] = _clean(additional, for_spec=for_spec)
        props = node.get("properties", {})
        required = set(node.get("required", []))
        for name, raw in list(props.items()):
            optional = any(_is_null(b) for b in raw.get("anyOf", []))
            prop = _clean(raw, for_spec=for_spec)
            is_section = prop.get("type") == "object" and "properties" in prop
            if (
                for_spec
                and is_section
                and not optional
                and name not in required
                and "default" not in prop
                and not prop.get("required")
            ):
                # A section whose every field has a default: let the apiserver default it too.
                prop["default"] = {}
            props[name] = prop
        if not node.get("required"):
            node.pop("required", None)

    if node.get("type") == "array" and "items" in node:
        node["items"] = _clean(node["items"], for_spec=for_spec)

    if not for_spec:
        # Status is written by the operator alone; defaults there would only blur what it wrote.
        node.pop("default", None)
    elif (
        node.get("default") in ([], {})
        and node.get("type") in ("array", "object")
        and "properties" not in node
    ):
        # An absent list or map means empty: no need to write one into every stored object.
        del node["default"]
    if X_VALIDATIONS in node:
        node[X_VALIDATIONS] = [dict(rule) for rule in node[X_VALIDATIONS]]
    return node


def structural(model_schema: Schema, *, for_spec: bool) -> Schema:
    """A pydantic JSON schema turned into a structural CRD schema (see the module docstring)."""
    defs = model_schema.get("$defs", {})
    return _clean(_resolve(model_schema, defs), for_spec=for_spec)


def openapi_schema() -> Schema:
    """The openAPIV3Schema of LLMDeployment v1alpha1."""
    spec = structural(LLMDeploymentSpec.model_json_schema(by_alias=True), for_spec=True)
    status = structural(LLMDeploymentStatus.model_json_schema(by_alias=True), for_spec=False)
    # kopf keeps its own bookkeeping in status; a structural schema would prune it.
    status[X_PRESERVE_UNKNOWN] = True
    return {
        "type": "object",
        "description": (
            "LLMDeployment serves a Hugging Face model on an inference engine (TGI) on GPUs, and "
            "gates, canaries, monitors and retrains its revisions."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        X_VALIDATIONS: [dict(rule) for rule in ROOT_VALIDATIONS],
    }


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/name": "llmops-operator", "app.kubernetes.io/part-of": "llmops"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": LIST_KIND,
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


def render_yaml() -> str:
    """The CRD as the YAML committed in crds/ (sorted keys: stable across runs and Python versions)."""
    header = "# Generated by `python -m llmops.api.crd` (make crds) from llmops/api. Do not edit.\n"
    return header + yaml.safe_dump(crd(), sort_keys=True, default_flow_style=False, width=100)


def main(argv: list[str] | None = None) -> int:
    """Print the CRD YAML to stdout."""
    del argv  # no options: one CRD, one output
    sys.stdout.write(render_yaml())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
