"""The generated CRD: in sync with the models, structural, and its defaults agree with pydantic's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

import llmops.api as api
from llmops.api import crd
from llmops.api.common import LABEL_VALUE

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "llmops.io_llmdeployments.yaml"
INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]
ALLOWED_KEYS = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "enum",
    "default",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "maxProperties",
    "anyOf",
    "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
}


def schema() -> dict[str, Any]:
    return crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, prop in node.get("properties", {}).items():
        yield from walk(prop, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_committed_crd_is_up_to_date() -> None:
    assert CRD_FILE.read_text() == crd.render_yaml(), (
        "crds/llmops.io_llmdeployments.yaml is out of date with llmops/api: run `make crds`"
    )


def test_generation_is_deterministic() -> None:
    assert crd.render_yaml() == crd.render_yaml()
    assert yaml.safe_load(crd.render_yaml()) == crd.crd()


# Open objects that still name a few fields: status (kopf's own keys) and the retrain Job
# template, whose spec.template the apiserver must require.
OPEN_WITH_FIELDS = {".status", ".spec.retrain.jobTemplate", ".spec.retrain.jobTemplate.spec"}


def test_schema_is_structural() -> None:
    for path, node in walk(schema()):
        assert set(node) <= ALLOWED_KEYS, f"{path}: unexpected keywords {set(node) - ALLOWED_KEYS}"
        assert "nullable" not in node
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == INT_OR_STRING and "type" not in node, path
            continue
        assert "anyOf" not in node, f"{path}: anyOf is only allowed for int-or-string"
        if node.get("x-kubernetes-preserve-unknown-fields") and path not in OPEN_WITH_FIELDS:
            assert node.get("type") == "object" and "properties" not in node, path
            continue
        assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, path
        if node["type"] == "object":
            has_props = "properties" in node
            has_map = isinstance(node.get("additionalProperties"), dict)
            assert not (has_props and has_map), f"{path}: properties and additionalProperties"
            assert "additionalProperties" not in node or has_map, f"{path}: boolean additionalProperties"
            assert has_props or has_map or path == ".metadata", f"{path}: object without fields"
            for name in node.get("required", []):
                assert name in node.get("properties", {}), f"{path}: required {name} is not a property"
        if node["type"] == "array":
            assert isinstance(node.get("items"), dict), path
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            if bound in node:
                assert node[bound] is True, f"{path}: OpenAPI 3.0 exclusive bounds are booleans"


def test_no_json_schema_leftovers() -> None:
    text = crd.render_yaml()
    for leftover in ("$ref", "$defs", "title:", "const:", "null"):
        assert leftover not in text, leftover


def test_cel_rules_carry_messages() -> None:
    rules = [(path, r) for path, node in walk(schema()) for r in node.get("x-kubernetes-validations", [])]
    assert len(rules) >= 15
    for path, rule in rules:
        assert set(rule) <= {"rule", "message", "messageExpression", "fieldPath"}, path
        assert rule["rule"] and rule["message"], path
        if "fieldPath" in rule:
            # a field path may go down several levels (".rollout.analysis.metrics"): each must exist
            node = dict(walk(schema()))[path]
            for part in rule["fieldPath"].lstrip(".").split("."):
                assert part in node["properties"], f"{path}: {rule['fieldPath']}"
                node = node["properties"][part]
    by_path = {
        path: [r["message"] for r in node.get("x-kubernetes-validations", [])]
        for path, node in walk(schema())
    }
    assert "maxInputTokens must be less than maxTotalTokens" in by_path[".spec.engine"]
    assert "steps[].setWeight must be strictly increasing" in by_path[".spec.rollout.steps"]
    assert "traffic.mode gatewayAPI requires httpRouteRef" in by_path[".spec.rollout.traffic"]
    assert "each signal may appear once" in by_path[".spec.drift.traffic.signals"]
    template = dict(walk(schema()))[".spec.retrain.jobTemplate"]
    assert template["required"] == ["spec"] and template["properties"]["spec"]["required"] == ["template"]


# \s, \d, \w and \b mean different things to the two engines that check a spec: pydantic's (Rust's
# regex: Unicode classes) and the apiserver's (Go's RE2: ASCII, \s without \v). A pattern that
# uses them lets the apiserver admit what the operator then refuses: "\v" was an image to one and
# whitespace to the other.
ENGINE_DEPENDENT_CLASS = re.compile(r"(?<!\\)(?:\\\\)*\\[sSdDwWbB]")


def test_patterns_mean_the_same_to_pydantic_and_to_the_apiserver() -> None:
    found = [
        (path, node["pattern"])
        for path, node in walk(schema())
        if "pattern" in node and ENGINE_DEPENDENT_CLASS.search(node["pattern"])
    ]
    found += [
        (path, rule["rule"])
        for path, node in walk(schema())
        for rule in node.get("x-kubernetes-validations", [])
        if "matches(" in rule["rule"] and ENGINE_DEPENDENT_CLASS.search(rule["rule"])
    ]
    assert not found, f"write the characters out (llmops.api.common.WHITE_SPACE): {found}"
    assert ENGINE_DEPENDENT_CLASS.search(r"^\S+$") and not ENGINE_DEPENDENT_CLASS.search(r"^a\\s$")


def test_preserve_unknown_fields_exactly_where_meant() -> None:
    preserved = {path for path, node in walk(schema()) if node.get("x-kubernetes-preserve-unknown-fields")}
    assert preserved == {
        ".status",
        ".spec.placement.affinity",
        ".spec.evaluation.dataset.path.volume",
        ".spec.retrain.jobTemplate",
        ".spec.retrain.jobTemplate.metadata",
        ".spec.retrain.jobTemplate.spec",
        ".spec.retrain.jobTemplate.spec.template",
    }


def test_maps_and_bounds() -> None:
    nodes = dict(walk(schema()))
    for labels in (".spec.placement.nodeSelector", ".spec.monitoring.podMonitor.labels"):
        # Label maps: values are label values; keys are checked by CEL (a CRD has no propertyNames).
        assert nodes[labels]["additionalProperties"] == {
            "type": "string",
            "maxLength": 63,
            "pattern": LABEL_VALUE,
        }
        assert nodes[labels]["maxProperties"] == 64
        assert "qualified names" in nodes[labels]["x-kubernetes-validations"][0]["message"]
    memory = nodes[".spec.resources.memory"]
    assert (memory["minimum"], memory["maxLength"]) == (0, 64) and "-" not in memory["pattern"][:4]
    assert nodes[".spec.resources.gpu.count"]["minimum"] == 1
    assert nodes[".spec.replicas"]["minimum"] == 0
    assert nodes[".spec.engine.startupTimeoutSeconds"]["minimum"] == 60
    weight = nodes[".spec.rollout.steps[].setWeight"]
    assert (weight["minimum"], weight["maximum"]) == (0, 100)
    assert nodes[".spec.rollout.analysis.failureLimit"]["minimum"] == 1
    assert nodes[".spec.engine.type"]["enum"] == ["tgi", "vllm"]
    assert "fp8" in nodes[".spec.engine.quantize"]["enum"]
    assert nodes[".status.phase"]["enum"] == [p.value for p in api.Phase]
    assert nodes[".status.history"]["maxItems"] == 20
    assert nodes[".status.conditions"]["x-kubernetes-list-type"] == "map"
    assert nodes[".spec.engine.env"]["x-kubernetes-list-map-keys"] == ["name"]
    assert nodes[".spec"]["required"] == ["model"]
    assert set(nodes[".spec.model"]["required"]) == {"id"}
    # Optional sections are absent unless set; the rest default to {} so nested defaults apply.
    for optional in ("evaluation", "rollout", "drift", "retrain"):
        assert "default" not in nodes[f".spec.{optional}"], optional
    for section in ("engine", "resources", "placement", "cache", "service", "security", "monitoring"):
        assert nodes[f".spec.{section}"]["default"] == {}, section
    assert not [path for path, node in walk(nodes[".status"]) if "default" in node]


def apply_defaults(node: dict[str, Any], value: Any) -> Any:
    """The apiserver's structural defaulting: set missing defaulted fields, then recurse."""
    if isinstance(value, dict) and "properties" in node:
        for name, prop in node["properties"].items():
            if name not in value and "default" in prop:
                value[name] = yaml.safe_load(yaml.safe_dump(prop["default"]))
            if name in value:
                value[name] = apply_defaults(prop, value[name])
    if isinstance(value, list) and "items" in node:
        return [apply_defaults(node["items"], v) for v in value]
    return value


def drop_empty(value: Any) -> Any:
    if isinstance(value, dict):
        pruned = {k: drop_empty(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ([], {})}
    if isinstance(value, list):
        return [drop_empty(v) for v in value]
    return value


def test_crd_defaults_agree_with_pydantic_defaults() -> None:
    spec_schema = schema()["properties"]["spec"]
    spec = {
        "model": {"id": "org/model"},
        "rollout": {"steps": [{"setWeight": 10}]},
        "evaluation": {
            "dataset": {"configMapRef": {"name": "a", "key": "b"}},
            "thresholds": [{"metric": "tokenF1", "min": 0.1}],
        },
        "drift": {},
        "retrain": {"jobTemplate": {"spec": {"template": {}}}},
    }
    by_apiserver = apply_defaults(spec_schema, yaml.safe_load(yaml.safe_dump(spec)))
    by_pydantic = api.LLMDeploymentSpec.model_validate(spec).model_dump(exclude_none=True, mode="json")
    assert drop_empty(by_apiserver) == drop_empty(by_pydantic)
    # and what the apiserver stores parses back to the same model
    assert api.LLMDeploymentSpec.model_validate(by_apiserver) == api.LLMDeploymentSpec.model_validate(spec)


def test_every_model_field_is_in_the_schema() -> None:
    nodes = dict(walk(schema()))

    def check(model: type[api.ApiModel], path: str) -> None:
        for name, field in model.model_fields.items():
            key = field.alias or name
            assert f"{path}.{key}" in nodes, f"{path}.{key}"
            assert nodes[f"{path}.{key}"].get("description"), f"{path}.{key} has no description"

    check(api.LLMDeploymentSpec, ".spec")
    check(api.EngineSpec, ".spec.engine")
    check(api.RolloutSpec, ".spec.rollout")
    check(api.LLMDeploymentStatus, ".status")


def test_crd_names_columns_and_subresources() -> None:
    obj = crd.crd()
    assert obj["metadata"]["name"] == "llmdeployments.llmops.io"
    names = obj["spec"]["names"]
    assert names["shortNames"] == ["llmd"]
    assert names["categories"] == ["llmops"]
    assert obj["spec"]["scope"] == "Namespaced"
    version = obj["spec"]["versions"][0]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Phase": ".status.phase",
        "Model": ".status.model",
        "Revision": ".status.servingRevision",
        "Ready": ".status.ready",
        "Canary": ".status.canary.weight",
        "Origin": ".status.serving.origin",
        "Candidate": ".status.candidate.state",
        "Download": ".status.download.progress",
        "Age": ".metadata.creationTimestamp",
        "Desired": ".status.desiredRevision",
        "Scaled-By": ".status.replicasOwner",
        "Drifted": '.status.conditions[?(@.type=="Drifted")].status',
        "Pinned": '.status.conditions[?(@.type=="PinnedToSpec")].status',
        "Endpoint": ".status.endpoint",
    }
    nodes = dict(walk(schema()))
    for column in version["additionalPrinterColumns"]:
        if column["jsonPath"].startswith((".spec", ".status")):
            # A filter on a list (the conditions by type) is checked up to the list.
            assert column["jsonPath"].split("[", 1)[0] in nodes, column
    assert schema()["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] is True


def test_main_prints_the_crd(capsys: Any) -> None:
    assert crd.main([]) == 0
    assert capsys.readouterr().out == crd.render_yaml()
