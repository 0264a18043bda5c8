"""Admission fuzzing at unit level, with hypothesis.

- Invalid specs (one field broken) are refused by the model with that field's path, and `plan()`
  turns them into a Failed status naming it; no exception escapes `plan()` for any spec, valid,
  invalid or garbage.
- Specs the schema accepts render children that Kubernetes accepts: every child is checked against
  the v1.36 OpenAPI schema (kubernetes-validate), the apiserver's semantic rules for the fields we
  fill (testkit.k8s_rules), and, for PodMonitor and PrometheusRule, the Prometheus Operator's CRD
  schema. A spec the schema accepts whose child Kubernetes would refuse is a hole in the schema.

tests/integration/test_admission_fuzz_cluster.py sends the same kinds of specs to the real apiserver.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from llmops.api import conditions as c
from llmops.api.common import parse_duration
from llmops.api.quantity import quantity_bytes
from llmops.api.resource import parse
from llmops.lifecycle.observations import Observations
from llmops.lifecycle.plan import plan
from llmops.render import deployment
from llmops_dev.cluster.build import binaries
from testkit import k8s_rules
from testkit.planning import T0
from testkit.planning import body as planning_body
from testkit.specs import HOLES, Invalid, accepted_spec, invalid_spec, loc_path, rendered_children, with_hole

K8S_VERSION = "1.36"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Rendering and validating every child takes ~0.2 s an example: fewer, to keep the unit tier fast.
FUZZ_CHILDREN = settings(FUZZ, max_examples=50)


def body_of(spec: Any, name: str = "m") -> dict[str, Any]:
    b = planning_body()
    b["metadata"].update(name=name, uid="3b0c7a52-5f7e-4d1e-9c1a-2d3f4e5a6b7c")
    b["spec"] = spec
    return b


def _degraded_message(p: Any) -> str:
    return next(x["message"] for x in p.status["conditions"] if x["type"] == c.DEGRADED)


# --- (a) invalid specs: refused naming the field; plan() never raises


@FUZZ
@given(invalid_spec())
def test_an_invalid_spec_is_refused_naming_the_field(inv: Invalid) -> None:
    body = body_of(inv.spec)
    with pytest.raises(ValidationError) as exc:
        parse(body)
    paths = [loc_path(e["loc"]) for e in exc.value.errors()]
    assert any(p == inv.path or p.startswith((inv.path + ".", inv.path + "[")) for p in paths), paths

    p = plan(body, Observations(), T0)
    assert p.status["phase"] == "Failed"
    assert p.apply == [] and p.delete == []
    dotted = inv.path.replace("[", ".").replace("]", "")
    assert dotted in _degraded_message(p)
    assert [e.reason for e in p.events] == [c.INVALID_SPEC]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10,
)


@FUZZ
@given(st.one_of(accepted_spec(), invalid_spec().map(lambda i: i.spec), JSON), st.data())
def test_no_exception_escapes_plan(spec: Any, data: st.DataObject) -> None:
    if isinstance(spec, dict) and spec and data.draw(st.booleans()):
        spec = copy.deepcopy(spec)  # graft garbage somewhere into an otherwise plausible spec
        spec[data.draw(st.sampled_from(sorted(spec)))] = data.draw(JSON)
    p = plan(body_of(spec), Observations(), T0)
    assert p.status["phase"], p.status
    if p.status["phase"] == "Failed":
        assert p.apply == []


# --- (c) accepted specs render children Kubernetes accepts


@cache
def _prometheus_operator_validator(kind: str) -> Any:
    """A validator of the Prometheus Operator CRD's schema, built once (jsonschema.validate
    would check the large schema itself on every call)."""
    schema = _prometheus_operator_schema(kind)
    return jsonschema.validators.validator_for(schema)(schema)


def _prometheus_operator_schema(kind: str) -> dict[str, Any]:
    plural = {"PodMonitor": "podmonitors", "PrometheusRule": "prometheusrules"}[kind]
    text = (binaries() / "crds" / f"monitoring.coreos.com_{plural}.yaml").read_text()
    # Go's regexp takes a flag group after "^"; Python's wants it first. Same language.
    crd = yaml.safe_load(text.replace("^(?i)", "(?i)^"))
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def check_child(obj: dict[str, Any]) -> None:
    if obj["apiVersion"].startswith("monitoring.coreos.com/"):
        _prometheus_operator_validator(obj["kind"]).validate(obj)
    else:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    assert k8s_rules.problems(obj) == [], f"{obj['kind']} {obj['metadata']['name']}"
    check_program_flags(obj)


def _program_parsers() -> dict[str, Callable[[], argparse.ArgumentParser]]:
    from llmops.capture_store.main import _parser as capture_store
    from llmops.download import _parser as download
    from llmops.evaluation.main import build_parser as evaluation
    from llmops.gateway.main import _parser as gateway

    return {"capture-store": capture_store, "download": download, "eval": evaluation, "gateway": gateway}


def check_program_flags(obj: dict[str, Any]) -> None:
    """Every container that runs one of our programs gets flags that program takes: a spec's
    value becomes a flag, and a flag the program refuses stops the pod at startup (the capture
    store refused an admitted maxSize of 1e10 so)."""
    spec = obj.get("spec") or {}
    pod = ((spec.get("jobTemplate") or {}).get("spec") or spec).get("template", {}).get("spec", {})
    for container in [*pod.get("containers", []), *pod.get("initContainers", [])]:
        argv = [*container.get("command", []), *container.get("args", [])]
        if argv[:1] != ["llmops"]:
            continue
        parser = _program_parsers()[argv[1]]()
        try:
            flags = parser.parse_args(argv[2:])
        except SystemExit:
            raise AssertionError(
                f"{obj['kind']} {obj['metadata']['name']}: llmops {argv[1]} refuses {argv[2:]}"
            ) from None
        if argv[1] == "capture-store":
            assert quantity_bytes(flags.max_size) >= 1 and parse_duration(flags.retention) >= 0


@FUZZ_CHILDREN
@given(accepted_spec())
def test_children_of_an_accepted_spec_are_valid_kubernetes(spec: dict[str, Any]) -> None:
    try:
        ld = parse(body_of(spec))
    except ValidationError:
        return  # a cross-field rule refused it: not an accepted spec
    for obj in rendered_children(ld):
        check_child(obj)


def test_the_strategy_produces_mostly_accepted_specs() -> None:
    """Guard against a strategy that silently tests nothing: many drawn specs must validate.
    About half do; 120 examples, because a draw of 60 ranged from 20 to 41 accepted (one clean
    clone drew 19) and 120 from 54 to 87."""
    accepted = 0

    @settings(max_examples=120, deadline=None, database=None, derandomize=True)
    @given(accepted_spec())
    def count(spec: dict[str, Any]) -> None:
        nonlocal accepted
        try:
            parse(body_of(spec))
            accepted += 1
        except ValidationError:
            pass

    count()
    assert accepted >= 40


def test_the_rules_catch_what_the_apiserver_refuses() -> None:
    """The semantic checker is itself checked: each mistake it exists for is reported."""
    ld = parse(body_of({"model": {"id": "org/model"}, "resources": {"gpu": {"count": 1}}}))
    dep = deployment(ld, track="stable", revision="0" * 40, replicas=1)
    assert k8s_rules.problems(dep) == []
    pod = dep["spec"]["template"]["spec"]
    pod["nodeSelector"] = {"bad key!": "v", "ok": "bad value!"}
    pod["tolerations"] = [{"operator": "Exists", "value": "x"}, {"key": "k", "tolerationSeconds": 5}]
    pod["priorityClassName"] = "High"
    pod["containers"][0]["image"] = " img:1.0.0"
    pod["containers"][0]["resources"] = {"requests": {"cpu": "-1"}}
    found = "\n".join(k8s_rules.problems(dep))
    for expected in (
        "invalid label key 'bad key!'",
        "invalid label value 'bad value!'",
        "value must be empty when operator is Exists",
        "must be NoExecute when tolerationSeconds is set",
        "priorityClassName",
        "leading or trailing whitespace",
        "must be greater than or equal to 0",
    ):
        assert expected in found
    assert k8s_rules.quantity("1Gi") == 2**30 and k8s_rules.quantity("500m") * 2 == 1


@pytest.mark.parametrize("hole", sorted(HOLES))
def test_each_hole_found_is_refused_by_the_model_naming_the_field(hole: str) -> None:
    _, path = HOLES[hole]
    with pytest.raises(ValidationError) as exc:
        parse(body_of(with_hole(hole)))
    errors = [(loc_path(e["loc"]), e["msg"]) for e in exc.value.errors()]
    field = path.rsplit(".", 1)[-1].split("[")[0]
    # A rule between fields (a model validator) is reported on their object, and its message
    # names the field; the CRD's CEL rule carries the exact fieldPath (the integration test).
    assert any(
        p == path or p.startswith((path + ".", path + "[")) or (path.startswith(p) and field in msg)
        for p, msg in errors
    ), errors
