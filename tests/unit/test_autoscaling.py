"""spec.autoscaling: the API's rules, the rendered autoscalers (HPA and KEDA ScaledObject), and the
plan: who owns the stable replicas, the hand-over, the canary sized from the live count, the
custom query's syntax check, and giving the count back to spec.replicas."""

from __future__ import annotations

import copy
import datetime as dt
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from llmops.analysis import Error
from llmops.api import conditions as c
from llmops.api.crd import openapi_schema
from llmops.api.quantity import parse_quantity
from llmops.api.resource import parse
from llmops.api.spec import AutoscalingSpec
from llmops.lifecycle.autoscaling import (
    HANDOVER_MANAGER,
    handover_manifest,
    query_check_request,
    scaler_metric,
)
from llmops.lifecycle.observations import KEDA_API, MONITORING_API, Observations
from llmops.lifecycle.ownership import FIELD_MANAGER
from llmops.lifecycle.plan import Plan
from llmops.render.autoscaling import (
    AUTOSCALING_METRIC,
    ScalerMetric,
    horizontal_pod_autoscaler,
    quantity,
    scaled_object,
)
from llmops.render.monitoring import prometheus_rule
from testkit.canary_sim import GOOD, Sim
from testkit.planning import T0, body, children_of, cond, plan, rollout, to_serving, with_status

SCALING = {"minReplicas": 2, "maxReplicas": 6}
STABLE = ("Deployment", "m-stable")
HPA = ("HorizontalPodAutoscaler", "m")
SCALED_OBJECT = ("ScaledObject", "m")


def _ld(**scaling: Any) -> Any:
    return parse({**body(autoscaling={**SCALING, **scaling}), "metadata": {"name": "m", "namespace": "ns"}})


def _applied(p: Plan, key: tuple[str, str]) -> dict[str, Any] | None:
    return next((o for o in p.apply if (o["kind"], o["metadata"]["name"]) == key), None)


# ------------------------------------------------------------------------------------------ API


def test_min_above_max_is_refused_naming_both_fields() -> None:
    with pytest.raises(
        ValidationError, match=r"minReplicas \(5\) must be less than or equal to .*maxReplicas \(3\)"
    ):
        AutoscalingSpec(min_replicas=5, max_replicas=3)
    rules = openapi_schema()["properties"]["spec"]["properties"]["autoscaling"]["x-kubernetes-validations"]
    min_max = next(r for r in rules if r["fieldPath"] == ".minReplicas")
    assert min_max["rule"] == "!has(self.minReplicas) || self.minReplicas <= self.maxReplicas"
    assert "autoscaling.maxReplicas" in min_max["message"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"targetQueueDepth": 3, "query": "sum(x)", "target": 1}, "mutually exclusive"),
        ({"query": "sum(x)"}, "query and autoscaling.target go together"),
        ({"target": 3}, "query and autoscaling.target go together"),
        ({"targetType": "Value"}, "targetType applies to a custom query only"),
    ],
)
def test_inconsistent_metric_fields_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AutoscalingSpec.model_validate({"maxReplicas": 3, **fields})


def test_spec_replicas_is_the_clamped_starting_count() -> None:
    spec = AutoscalingSpec(min_replicas=2, max_replicas=6)
    assert [spec.start_replicas(n) for n in (0, 1, 4, 9)] == [2, 2, 4, 6]


# -------------------------------------------------------------------------------------- render


def test_the_queue_depth_query_is_the_engines_own_metric_summed_over_stable_pods() -> None:
    stable = 'namespace="ns",llmops_deployment="m",llmops_track="stable"'
    assert scaler_metric(_ld()) == ScalerMetric(
        f"sum(tgi_queue_size{{{stable}}}) or vector(0)", 4.0, "AverageValue"
    )
    vllm = parse(
        {
            **body(autoscaling={**SCALING, "targetQueueDepth": 8}, engine={"type": "vllm"}),
            "metadata": {"name": "m", "namespace": "ns"},
        }
    )
    assert scaler_metric(vllm) == ScalerMetric(
        f"sum(vllm:num_requests_waiting{{{stable}}}) or vector(0)", 8.0, "AverageValue"
    )


def test_a_custom_query_gets_its_placeholders() -> None:
    ld = _ld(query="avg(rate(x{ {{ selector }} }[{{ interval }}]))", target=0.5, targetType="Value")
    assert scaler_metric(ld) == ScalerMetric(
        'avg(rate(x{ namespace="ns",llmops_deployment="m",llmops_track="stable" }[1m]))', 0.5, "Value"
    )


def test_hpa_scales_stable_on_the_recorded_external_metric() -> None:
    ld = _ld(cooldownSeconds=120)
    hpa = horizontal_pod_autoscaler(ld, scaler_metric(ld))
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["metadata"]["ownerReferences"][0]["kind"] == "LLMDeployment"
    assert hpa["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "m-stable"},
        "minReplicas": 2,
        "maxReplicas": 6,
        "metrics": [
            {
                "type": "External",
                "external": {
                    "metric": {
                        "name": AUTOSCALING_METRIC,
                        "selector": {"matchLabels": {"llmops_deployment": "m"}},
                    },
                    "target": {"type": "AverageValue", "averageValue": "4"},
                },
            }
        ],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120}},
    }
    value = horizontal_pod_autoscaler(ld, ScalerMetric("q", 0.25, "Value"))
    assert value["spec"]["metrics"][0]["external"]["target"] == {"type": "Value", "value": "250m"}
    assert [quantity(x) for x in (4, 4.0, 0.25, 1.5)] == ["4", "4", "250m", "1500m"]


@given(st.floats(min_value=0, exclude_min=True, allow_infinity=False, allow_nan=False))
def test_every_target_the_api_admits_is_a_positive_quantity_near_it(target: float) -> None:
    """autoscaling.target is any number above 0; the HPA refuses a target that is not positive.
    Rounded to milli-units, a target of 0.0004 became "0m"."""
    text = quantity(target)
    value = parse_quantity(text)
    assert value > 0, text
    assert abs(value - Fraction(target)) <= max(Fraction(target) * Fraction(1, 10**6), Fraction(1, 10**9)), (
        text
    )


def test_the_prometheus_rule_records_the_metric_the_hpa_reads() -> None:
    ld = _ld()
    metric = scaler_metric(ld)
    rule = prometheus_rule(ld, metric)
    assert rule is not None
    recording = rule["spec"]["groups"][1]
    assert recording["rules"] == [
        {
            "record": AUTOSCALING_METRIC,
            "expr": metric.query,
            "labels": {"namespace": "ns", "llmops_deployment": "m"},
        }
    ]
    assert len((prometheus_rule(ld) or {})["spec"]["groups"]) == 1
    # The pods-not-ready alert counts against the fewest replicas the autoscaler keeps.
    alerts = rule["spec"]["groups"][0]["rules"]
    assert next(a for a in alerts if a["alert"] == "LLMDeploymentPodsNotReady")["expr"].endswith("< 2")


def test_scaled_object_has_a_prometheus_trigger_on_the_query_itself() -> None:
    ld = _ld(pollingIntervalSeconds=15)
    so = scaled_object(ld, scaler_metric(ld), "http://prom:9090")
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    assert so["spec"]["scaleTargetRef"]["name"] == "m-stable"
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"], so["spec"]["pollingInterval"]) == (
        2,
        6,
        15,
    )
    assert so["spec"]["triggers"] == [
        {
            "type": "prometheus",
            "metricType": "AverageValue",
            "metadata": {
                "serverAddress": "http://prom:9090",
                "query": scaler_metric(ld).query,
                "threshold": "4",
            },
        }
    ]
    assert so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == {
        "scaleDown": {"stabilizationWindowSeconds": 300}
    }


# ---------------------------------------------------------------------------------------- plan


def _serving(**scaling: Any) -> tuple[dict[str, Any], dict[tuple[str, str], dict[str, Any]]]:
    """Serving with autoscaling on from the start (spec.replicas 1 → starts at minReplicas 2)."""
    b = body(autoscaling={**SCALING, **scaling})
    b, ch = to_serving(b)
    rollout(ch, ready=2, replicas=2)
    p = plan(b, Observations(children=ch), T0 + dt.timedelta(minutes=10))
    return with_status(p, b), children_of(p, ch)


def test_a_new_stable_starts_at_the_clamped_count_then_leaves_replicas_to_the_hpa() -> None:
    b = body(autoscaling=SCALING)
    p = plan(b, Observations(), T0)
    assert _applied(p, HPA) is not None  # waiting for its Deployment, which comes once cached
    ch = children_of(p)
    ch[("Job", next(k[1] for k in ch if k[0] == "Job"))]["status"] = {
        "conditions": [{"type": "Complete", "status": "True"}]
    }
    ch[("PersistentVolumeClaim", "m-model-cache")]["status"] = {"phase": "Bound"}
    p = plan(with_status(p, b), Observations(children=ch), T0)
    created = _applied(p, STABLE)
    assert created is not None and created["spec"]["replicas"] == 2

    b, ch = _serving()
    st = b["status"]
    assert st["replicasOwner"] == "HorizontalPodAutoscaler"
    assert st["autoscaling"]["scaler"] == "HorizontalPodAutoscaler"
    assert (st["autoscaling"]["minReplicas"], st["autoscaling"]["maxReplicas"]) == (2, 6)
    assert cond(with_status_plan(b), c.AUTOSCALING)["reason"] == c.SCALER_CONFIGURED
    assert "replicas" not in ch[STABLE]["spec"] or ch[STABLE]["spec"]["replicas"] == 2


def with_status_plan(b: dict[str, Any]) -> Plan:
    out = Plan()
    out.status = b["status"]
    return out


def test_replicas_set_by_the_autoscaler_are_never_written_and_status_follows_them() -> None:
    b, ch = _serving()
    assert "replicas" not in ch[STABLE]["spec"]
    # The autoscaler (another field manager) scales stable to 5: the operator writes nothing.
    ch[STABLE]["spec"]["replicas"] = 5
    rollout(ch, ready=5, replicas=5)
    for minutes in (20, 30, 40):
        p = plan(
            b, Observations(children=ch, apis=frozenset({MONITORING_API})), T0 + dt.timedelta(minutes=minutes)
        )
        stable = _applied(p, STABLE)
        assert stable is None or "replicas" not in stable["spec"]
        b, ch = with_status(p, b), children_of(p, ch)
        ch[STABLE]["spec"]["replicas"] = 5
    p = plan(b, Observations(children=ch, apis=frozenset({MONITORING_API})), T0 + dt.timedelta(minutes=50))
    assert p.apply == [] and p.handover == [] and not p.status_changed
    assert (p.status["ready"], p.status["replicas"], p.status["autoscaling"]["replicas"]) == ("5/5", 5, 5)
    assert p.status["phase"] == "Serving"


def _owned_by_us(dep: dict[str, Any]) -> dict[str, Any]:
    dep = copy.deepcopy(dep)
    dep["metadata"]["managedFields"] = [
        {
            "manager": FIELD_MANAGER,
            "operation": "Apply",
            "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}},
        }
    ]
    return dep


def test_turning_autoscaling_on_hands_the_replica_count_over_before_leaving_it_out() -> None:
    b, ch = to_serving(body(replicas=3))
    rollout(ch, ready=3, replicas=3)
    ch[STABLE]["spec"]["replicas"] = 3
    ch[STABLE] = _owned_by_us(ch[STABLE])
    b["spec"]["autoscaling"] = SCALING
    b["metadata"]["generation"] += 1
    p = plan(b, Observations(children=ch), T0 + dt.timedelta(hours=1))
    assert p.handover == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "m-stable", "namespace": "ns"},
            "spec": {"replicas": 3},
        }
    ]
    stable = _applied(p, STABLE)
    assert stable is not None and "replicas" not in stable["spec"]
    assert _applied(p, HPA) is not None
    assert p.status["replicasOwner"] == "HorizontalPodAutoscaler" and p.status["ready"] == "3/3"
    assert "now set by the HorizontalPodAutoscaler" in p.status["history"][-1]["message"]
    assert handover_manifest(ch[STABLE])["spec"] == {"replicas": 3}
    assert HANDOVER_MANAGER == "llmops-replicas-handover"

    # Even with an unchanged manifest, a Deployment whose replicas we still own is re-applied.
    observed = copy.deepcopy(stable)
    observed["spec"]["replicas"] = 3
    observed["status"] = ch[STABLE]["status"]
    ch2 = {**children_of(p, ch), STABLE: _owned_by_us(observed)}
    p2 = plan(with_status(p, b), Observations(children=ch2), T0 + dt.timedelta(hours=1, minutes=1))
    assert p2.handover and _applied(p2, STABLE) is not None


def test_a_count_of_ours_outside_the_bounds_is_brought_within_them_before_the_hand_over() -> None:
    b, ch = to_serving(body(replicas=0))
    ch[STABLE]["spec"]["replicas"] = 0
    ch[STABLE] = _owned_by_us(ch[STABLE])
    b["spec"]["autoscaling"] = SCALING
    p = plan(b, Observations(children=ch), T0 + dt.timedelta(hours=1))
    stable = _applied(p, STABLE)
    assert stable is not None and stable["spec"]["replicas"] == 2  # minReplicas: an HPA leaves 0 alone
    assert p.handover == []
    observed = _owned_by_us({**stable, "spec": {**stable["spec"], "replicas": 2}})
    p = plan(with_status(p, b), Observations(children={**children_of(p, ch), STABLE: observed}), T0)
    assert [h["spec"] for h in p.handover] == [{"replicas": 2}]
    stable = _applied(p, STABLE)
    assert stable is not None and "replicas" not in stable["spec"]


def test_turning_autoscaling_off_deletes_the_autoscaler_and_restores_spec_replicas() -> None:
    b, ch = _serving()
    ch[STABLE]["spec"]["replicas"] = 5
    del b["spec"]["autoscaling"]
    b["metadata"]["generation"] += 1
    p = plan(b, Observations(children=ch), T0 + dt.timedelta(hours=1))
    stable = _applied(p, STABLE)
    assert stable is not None and stable["spec"]["replicas"] == 1
    assert HPA in p.delete
    assert p.status["replicasOwner"] == "Spec"
    assert [(e.reason, e.message) for e in p.events] == [
        ("ReplicasOwnerChanged", "the replicas of m-stable are now set by the operator, from spec.replicas")
    ]
    assert p.status["history"][-1]["action"] == "ReplicasOwnerChanged"
    assert "autoscaling" not in p.status
    assert not any(x["type"] == c.AUTOSCALING for x in p.status["conditions"])


def test_with_keda_a_scaled_object_replaces_the_hpa() -> None:
    b, ch = _serving()
    keda = frozenset({KEDA_API})
    p = plan(
        b, Observations(children=ch, apis=keda, prometheus_url="http://prom:9090"), T0 + dt.timedelta(hours=1)
    )
    so = _applied(p, SCALED_OBJECT)
    assert so is not None and so["spec"]["triggers"][0]["metadata"]["serverAddress"] == "http://prom:9090"
    assert HPA in p.delete
    assert p.status["replicasOwner"] == "ScaledObject"
    # The spec's Prometheus wins over the operator's; without either there is no ScaledObject.
    b["spec"]["monitoring"] = {"prometheus": {"url": "http://spec-prom:9090"}}
    p = plan(
        b, Observations(children=ch, apis=keda, prometheus_url="http://prom:9090"), T0 + dt.timedelta(hours=1)
    )
    so = _applied(p, SCALED_OBJECT)
    assert (
        so is not None and so["spec"]["triggers"][0]["metadata"]["serverAddress"] == "http://spec-prom:9090"
    )
    del b["spec"]["monitoring"]
    p = plan(b, Observations(children=ch, apis=keda), T0 + dt.timedelta(hours=1))
    assert _applied(p, SCALED_OBJECT) is None and cond(p, c.AUTOSCALING)["reason"] == "NoPrometheusURL"
    assert p.status["replicasOwner"] == "Nobody"


def test_a_custom_query_that_does_not_parse_gets_no_autoscaler_and_a_condition_naming_the_field() -> None:
    query = "sum(rate(x[1m])"
    b, ch = _serving(query=query, target=3)
    assert cond(with_status_plan(b), c.AUTOSCALING)["reason"] == c.QUERY_NOT_CHECKED
    assert query_check_request(b, parse(b)) == query
    error = Error(
        'bad_data: invalid parameter "query": 1:16: parse error: unclosed left parenthesis', "rejected"
    )
    now = T0 + dt.timedelta(hours=1)
    p = plan(b, Observations(children=ch, query_check=(query, error)), now)
    bad = cond(p, c.AUTOSCALING)
    assert (bad["status"], bad["reason"]) == ("False", c.INVALID_QUERY)
    assert bad["message"].startswith("spec.autoscaling.query does not parse: bad_data")
    assert HPA in p.delete and _applied(p, HPA) is None
    assert p.status["replicasOwner"] == "Nobody"
    b = with_status(p, b)
    # Asked once: the verdict is remembered, and the next pass needs no Prometheus.
    assert query_check_request(b, parse(b)) is None
    ch = children_of(p, ch)
    p = plan(b, Observations(children=ch), now)
    assert cond(p, c.AUTOSCALING)["reason"] == c.INVALID_QUERY and not p.status_changed
    # A fixed query is checked again, and passes.
    b["spec"]["autoscaling"]["query"] = "sum(x)"
    assert query_check_request(b, parse(b)) == "sum(x)"
    p = plan(b, Observations(children=ch, query_check=("sum(x)", None)), now)
    assert cond(p, c.AUTOSCALING)["reason"] == c.SCALER_CONFIGURED and _applied(p, HPA) is not None


def test_an_unreachable_prometheus_leaves_the_query_unchecked_but_the_hpa_applied() -> None:
    b, ch = _serving(query="sum(x)", target=3)
    down = Error("cannot query Prometheus at http://p: connection refused", "unreachable")
    p = plan(b, Observations(children=ch, query_check=("sum(x)", down)), T0 + dt.timedelta(hours=1))
    unknown = cond(p, c.AUTOSCALING)
    assert (unknown["status"], unknown["reason"]) == ("Unknown", c.QUERY_NOT_CHECKED)
    assert "connection refused" in unknown["message"]
    assert "checkedQuery" not in p.status["autoscaling"]


def test_an_unknown_placeholder_is_an_invalid_query() -> None:
    b, _ = to_serving(body(autoscaling={**SCALING, "query": "sum(x{ {{ pod }} })", "target": 1}))
    bad = cond(with_status_plan(b), c.AUTOSCALING)
    assert bad["reason"] == c.INVALID_QUERY and "spec.autoscaling.query" in bad["message"]
    assert "{{ pod }}" in bad["message"]


# -------------------------------------------------------------------------------------- canary


def _autoscaled_sim(live: int) -> Sim:
    sim = Sim(replicas=1)
    sim.b["spec"]["autoscaling"] = {"minReplicas": 1, "maxReplicas": 10}
    sim.b["metadata"]["generation"] += 1
    sim.step()
    sim.ch[STABLE]["spec"]["replicas"] = live  # what the autoscaler set
    rollout(sim.ch, ready=live, replicas=live)
    sim.step(1)
    return sim


@pytest.mark.parametrize(("live", "canary"), [(4, 1), (8, 2), (9, 3)])
def test_the_canary_is_sized_from_the_live_count_and_stable_is_never_scaled(live: int, canary: int) -> None:
    sim = _autoscaled_sim(live)
    sim.new_revision()
    p = sim.step()
    dep = sim.deployment("m-canary")
    assert dep is not None and dep["spec"]["replicas"] == canary  # 25% of the live stable count
    stable = _applied(p, STABLE)
    assert stable is None or "replicas" not in stable["spec"]
    sim.ch[STABLE]["spec"]["replicas"] = live
    sim.ready("m-canary")
    p = sim.step(1, analysis=GOOD)
    assert sim.canary["state"] == "Progressing"
    assert all("replicas" not in o["spec"] for o in p.apply if (o["kind"], o["metadata"]["name"]) == STABLE)


def test_a_canary_without_gpus_still_pauses_with_autoscaling() -> None:
    sim = _autoscaled_sim(4)
    sim.new_revision()
    sim.step()
    sim.ch[STABLE]["spec"]["replicas"] = 4
    pending = {
        "metadata": {
            "name": "m-canary-x",
            "labels": {"llmops.io/deployment": "m", "llmops.io/track": "canary"},
        },
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                }
            ],
        },
    }
    p = sim.step(120, pods=[pending])
    assert sim.canary["state"] == "Paused"
    assert cond(p, c.PROGRESSING)["reason"] == c.INSUFFICIENT_GPU
    assert p.status["replicasOwner"] == "HorizontalPodAutoscaler"
