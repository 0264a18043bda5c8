"""values.yaml and values.schema.json: every key documented and typed, nothing else accepted."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from llmops_dev.packaging.helm import KUBE_VERSION, helm_binary

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "llmops-operator"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())

# Kubernetes types passed through to the pod spec as they are: the API server validates them,
# and copying their schemas here would freeze one Kubernetes version's fields into the chart.
PASSTHROUGH = {
    "/podSecurityContext",
    "/securityContext",
    "/affinity",
    "/extraEnv[]",
    "/tolerations[]",
    "/topologySpreadConstraints[]",
}


def _objects(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if schema.get("type") == "object" or "properties" in schema:
        yield path, schema
    for key, sub in schema.get("properties", {}).items():
        yield from _objects(sub, f"{path}/{key}")
    if isinstance(schema.get("items"), dict):
        yield from _objects(schema["items"], f"{path}[]")


def _properties(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for key, sub in schema.get("properties", {}).items():
        yield f"{path}/{key}", sub
        yield from _properties(sub, f"{path}/{key}")


def test_every_object_level_refuses_unknown_keys() -> None:
    for path, schema in _objects(SCHEMA):
        extra = schema.get("additionalProperties")
        if path in PASSTHROUGH:
            continue
        # false for the chart's own objects; a value schema for maps (labels, nodeSelector).
        assert extra is False or (isinstance(extra, dict) and "type" in extra), (
            f"{path or '/'}: set additionalProperties (false, or a value schema for a map)"
        )
        if extra is False:
            assert schema.get("properties"), f"{path or '/'}: an object with no properties accepts nothing"


def test_every_property_is_described() -> None:
    for path, sub in _properties(SCHEMA):
        assert sub.get("description"), f"{path}: no description"


def test_defaults_validate_against_the_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(VALUES, SCHEMA, cls=jsonschema.Draft7Validator)


def test_values_and_schema_have_the_same_keys() -> None:
    """No value without a schema entry, no schema entry without a default in values.yaml."""

    def value_paths(values: dict[str, Any], schema: dict[str, Any], path: str = "") -> set[str]:
        out: set[str] = set()
        for key, value in values.items():
            out.add(f"{path}/{key}")
            sub = schema.get("properties", {}).get(key, {})
            if isinstance(value, dict) and sub.get("additionalProperties") is False:
                out |= value_paths(value, sub, f"{path}/{key}")
        return out

    assert value_paths(VALUES, SCHEMA) == {p for p, _ in _properties(SCHEMA)}


def test_every_key_in_values_yaml_has_a_comment() -> None:
    schema_paths = {p for p, _ in _properties(SCHEMA)}
    stack: list[tuple[int, str]] = []
    previous = ""
    checked = set()
    for line in (CHART / "values.yaml").read_text().splitlines():
        match = re.match(r"^( *)([A-Za-z][A-Za-z0-9]*):", line)
        if match:
            indent, key = len(match.group(1)), match.group(2)
            while stack and stack[-1][0] >= indent:
                stack.pop()
            path = "".join(f"/{k}" for _, k in stack) + f"/{key}"
            stack.append((indent, key))
            if path in schema_paths:
                assert previous.lstrip().startswith("#"), f"values.yaml: {path} has no comment above it"
                checked.add(path)
        if line.strip():
            previous = line
    assert checked == schema_paths


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, check=False, timeout=60
    )


def test_helm_lint_strict_passes() -> None:
    res = _helm("lint", "--strict", str(CHART))
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("command", ["lint", "template"])
@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("replicaCount=two", "at '/replicaCount': got string, want integer"),
        ("replicas=2", "at '': additional properties 'replicas' not allowed"),
        (
            "metrics.serviceMonitor.labelz.team=a",
            "at '/metrics/serviceMonitor': additional properties 'labelz' not allowed",
        ),
        (
            "image.pullPolicy=Sometimes",
            "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
        ),
        ("healthPort=70000", "at '/healthPort': maximum: got 70,000, want 65,535"),
        ("logFormat=xml", "at '/logFormat': value must be one of 'json', 'plain'"),
        ("watchNamespaces={team-*}", "at '/watchNamespaces/0': 'team-*' does not match pattern"),
        ("crds.enabled=yes", "at '/crds/enabled': got string, want boolean"),
    ],
    ids=[
        "wrong-type",
        "unknown-key",
        "unknown-nested-key",
        "enum",
        "port-range",
        "log-format",
        "glob-namespace",
        "bool",
    ],
)
def test_schema_refuses_bad_values_with_helms_message(command: str, setting: str, message: str) -> None:
    args = (
        [command, str(CHART)]
        if command == "lint"
        else [command, "r", str(CHART), "--kube-version", KUBE_VERSION]
    )
    setter = "--set-string" if setting.startswith("crds.enabled") else "--set"
    res = _helm(*args, setter, setting)
    assert res.returncode != 0
    output = res.stdout + res.stderr
    assert "values don't meet the specifications of the schema(s)" in output
    assert message in output, output


def test_contradictory_values_fail_with_a_reason() -> None:
    res = _helm(
        "template",
        "r",
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        "--set",
        "metrics.enabled=false",
        "--set",
        "metrics.serviceMonitor.enabled=true",
    )
    assert res.returncode != 0
    assert "metrics.serviceMonitor.enabled needs metrics.enabled" in res.stderr
