"""Admission fuzzing against the real kube-apiserver, with hypothesis (a modest number of
examples: each is a server-side dry run).

- Generated invalid specs (one field broken) are refused, and the apiserver's message names the
  broken field's path.
- Specs the CRD admits render children (Deployments, Services, Jobs, the PVC, the NetworkPolicy,
  the PDB) that the apiserver admits too: a spec that passes our schema but whose child Kubernetes
  refuses is a hole in the schema. (PodMonitor and PrometheusRule are checked against their CRD
  schema in tests/unit/test_admission_fuzz.py: installing those CRDs here would change what the
  other tests of this session's cluster see.)
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from llmops.api.resource import parse
from testkit.operator import install_crd
from testkit.specs import (
    HOLES,
    MUTATIONS,
    Invalid,
    accepted_spec,
    invalid_spec,
    invalid_spec_at,
    object_name,
    rendered_children,
    with_hole,
)

pytestmark = pytest.mark.integration

AGAINST_THE_APISERVER = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def installed(cluster: Any) -> Any:
    install_crd(cluster)
    return cluster


def dry_run(cluster: Any, namespace: str, *objs: dict[str, Any], client_validation: bool = True) -> Any:
    """Create ``objs`` with a server-side dry run: full admission (schema, CEL, the apiserver's
    own validation of built-in kinds), nothing stored. Without ``client_validation`` kubectl
    sends every object, and each refusal comes from the apiserver (kubectl's own check stops at
    the first object it refuses)."""
    docs = [{**copy.deepcopy(o), "metadata": {**o["metadata"], "namespace": namespace}} for o in objs]
    # As JSON, not YAML: PyYAML leaves strings such as "08" or "n" unquoted, which kubectl's YAML
    # 1.1 parser reads as a number and a boolean, so the apiserver saw another spec than the model.
    items = {"apiVersion": "v1", "kind": "List", "items": docs}
    flags = [] if client_validation else ["--validate=false"]
    return cluster.kubectl(
        "create", "--dry-run=server", *flags, "-f", "-", input=json.dumps(items), check=False
    )


def llmd(namespace: str, spec: dict[str, Any], name: str = "fuzz") -> dict[str, Any]:
    return {
        "apiVersion": "llmops.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


@AGAINST_THE_APISERVER
@given(inv=invalid_spec())
def test_invalid_specs_are_refused_naming_the_field(installed: Any, namespace: str, inv: Invalid) -> None:
    res = dry_run(installed, namespace, llmd(namespace, inv.spec))
    assert res.returncode != 0, f"admitted: {inv}"
    assert inv.path in res.stderr, res.stderr


# Each example: one dry run of every mutation. Not shrunk: the failure names the field already,
# and shrinking ~60 drawn values one dry run at a time took minutes.
@settings(AGAINST_THE_APISERVER, max_examples=3, phases=(Phase.generate,))
@given(data=st.data())
def test_every_field_the_fuzz_breaks_is_refused_by_the_apiserver_naming_it(
    installed: Any, namespace: str, data: st.DataObject
) -> None:
    """The test above draws 40 of the fields MUTATIONS can break, at random: a field can go
    untried for many runs. Here each gets one value per example, all in one dry run."""
    invalid = [data.draw(invalid_spec_at(path, strategy), label=path) for path, strategy in MUTATIONS]
    res = dry_run(
        installed,
        namespace,
        *(llmd(namespace, inv.spec, name=f"fuzz-{i}") for i, inv in enumerate(invalid)),
        client_validation=False,
    )
    refusals = {
        m["name"]: m["why"] for m in re.finditer(r'"(?P<name>fuzz-\d+)" is invalid: (?P<why>.*)', res.stderr)
    }
    for i, inv in enumerate(invalid):
        assert inv.path in refusals.get(f"fuzz-{i}", ""), (inv, refusals.get(f"fuzz-{i}"), res.stdout)


@settings(AGAINST_THE_APISERVER, max_examples=25)  # each example: two dry runs, one of ~8 objects
@given(spec=accepted_spec(), name=object_name())
def test_children_of_admitted_specs_are_admitted(
    installed: Any, namespace: str, spec: dict[str, Any], name: str
) -> None:
    obj = llmd(namespace, spec, name)
    res = dry_run(installed, namespace, obj)
    try:
        ld = parse({**obj, "metadata": {**obj["metadata"], "uid": "u"}})
    except ValidationError:
        # The model refused it: so must the apiserver (they share every spec rule).
        assert res.returncode != 0, f"the apiserver admitted a spec the model refuses: {spec}"
        return
    if res.returncode != 0:
        # Only the rules on metadata.name live in the CRD alone (the operator never sees a
        # refused name); anything else is a disagreement between the model and the CRD.
        assert "metadata.name" in res.stderr, f"the model accepts, the apiserver refuses:\n{res.stderr}"
        return
    children = [c for c in rendered_children(ld) if not c["apiVersion"].startswith("monitoring.coreos.com/")]
    res = dry_run(installed, namespace, *children)
    assert res.returncode == 0, (
        f"a child of an admitted spec is refused:\n{res.stderr}\nname: {name}, spec: {spec}"
    )


@pytest.mark.parametrize("hole", sorted(HOLES))
def test_each_hole_found_is_refused_at_admission_naming_the_field(
    installed: Any, namespace: str, hole: str
) -> None:
    _, path = HOLES[hole]
    res = dry_run(installed, namespace, llmd(namespace, with_hole(hole)))
    assert res.returncode != 0, f"{hole}: admitted"
    assert path in res.stderr, res.stderr


def test_a_name_too_long_for_the_scheduled_evaluation_cronjob_is_refused(
    installed: Any, namespace: str
) -> None:
    """<name>-eval-scheduled is a CronJob, whose name Kubernetes caps at 52: with a schedule the
    name may have 37 characters, not the 45 it may have otherwise."""
    evaluation = {
        "dataset": {"configMapRef": {"name": "ds", "key": "k"}},
        "thresholds": [{"metric": "exactMatch", "min": 0.5}],
        "schedule": "0 3 * * *",
    }
    spec = {"model": {"id": "org/model"}, "evaluation": evaluation}
    assert dry_run(installed, namespace, llmd(namespace, spec, "a" * 37)).returncode == 0
    res = dry_run(installed, namespace, llmd(namespace, spec, "a" * 38))
    assert res.returncode != 0 and "metadata.name must be at most 37 characters" in res.stderr, res.stderr
    del evaluation["schedule"]
    assert dry_run(installed, namespace, llmd(namespace, spec, "a" * 45)).returncode == 0
