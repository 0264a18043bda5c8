"""The LLMDeployment pydantic models: defaults, the cross-field rules (mirrors of the CRD's CEL
rules, with the same messages), the samples, and the API's named constants."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import llmops.api as api
from llmops.api import conditions
from llmops.api.common import parse_duration
from llmops.api.metric_names import METRIC_NAMES
from llmops.api.spec import RESERVED_ENV, AdapterSpec, adapter_revision
from testkit import sample_llmd

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "manifests" / "samples").glob("*.yaml"))
SHA = "0123456789abcdef0123456789abcdef01234567"


def minimal(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "llmops.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": "m", "namespace": "ns"},
        "spec": {"model": {"id": "org/model"}, **spec},
    }


def rollout(**over: Any) -> dict[str, Any]:
    return {"steps": [{"setWeight": 20}, {"setWeight": 60}], **over}


def evaluation(**over: Any) -> dict[str, Any]:
    return {
        "dataset": {"configMapRef": {"name": "ds", "key": "data.jsonl"}},
        "thresholds": [{"metric": "exactMatch", "min": 0.5}],
        **over,
    }


def test_the_samples_are_valid_and_pinned() -> None:
    assert {p.name for p in SAMPLES} >= {"llama-3.1-8b.yaml", "llama-3.1-70b-sharded.yaml"}
    for path in SAMPLES:
        ld = api.parse(sample_llmd(path))
        assert api.is_pinned_revision(ld.spec.model.revision), path.name
    big = api.parse(sample_llmd(REPO / "manifests/samples/llama-3.1-70b-sharded.yaml"))
    assert big.spec.resources.gpu.count == 4


def test_defaults_fill_every_section() -> None:
    ld = api.parse(minimal())
    s = ld.spec
    assert s.model.revision == "main"
    assert s.engine.type == "tgi"
    assert s.engine.image is None  # the engine picks its pinned release (see test_render_engine_*)
    assert s.engine.startup_timeout_seconds == 1800
    assert (s.resources.gpu.count, s.resources.gpu.resource_name) == (1, "nvidia.com/gpu")
    assert s.replicas == 1
    assert (s.cache.enabled, s.cache.size, s.cache.access_mode) == (True, "100Gi", "ReadWriteOnce")
    assert (s.cache.download.enabled, s.cache.download.active_deadline_seconds) == (True, 3600)
    assert s.cache.download.image is None  # the operator's image, chosen at render time
    assert (s.service.type, s.service.port) == ("ClusterIP", 80)
    assert s.security.network_policy.enabled
    assert (s.monitoring.enabled, s.monitoring.namespace, s.monitoring.pod_monitor.interval) == (
        True,
        "monitoring",
        "30s",
    )
    assert s.monitoring.prometheus_rule.enabled
    assert s.evaluation is s.rollout is s.drift is s.retrain is None
    assert ld.status.phase is None and ld.status.conditions == []


def test_section_defaults() -> None:
    ld = api.parse(minimal(rollout=rollout(), evaluation=evaluation()))
    r = ld.spec.rollout
    assert r is not None
    assert (r.analysis.interval, r.analysis.failure_limit, r.analysis.inconclusive_limit) == ("1m", 2, 3)
    assert [m.template for m in r.analysis.metrics] == ["error-ratio", "latency-p95"]
    assert r.progress_deadline_seconds == 3600
    assert (r.smoke_evaluation.enabled, r.smoke_evaluation.samples) == (True, 20)
    assert r.traffic.mode == "replicas"
    e = ld.spec.evaluation
    assert e is not None
    assert (
        e.concurrency,
        e.timeout_seconds,
        e.max_new_tokens,
        e.active_deadline_seconds,
        e.backoff_limit,
    ) == (
        8,
        60,
        256,
        3600,
        2,
    )


def test_vllm_spec_accepts_its_own_fields_and_a_v_tagged_image() -> None:
    engine = {
        "type": "vllm",
        "image": "vllm/vllm-openai:v0.11.0",
        "quantize": "awq_marlin",
        "dtype": "float16",  # vLLM takes --dtype with --quantization; only TGI refuses the pair
        "gpuMemoryUtilization": 0.85,
        "maxTotalTokens": 8192,
        "maxBatchTokens": 8192,
    }
    ld = api.parse(minimal(engine=engine, evaluation=evaluation(route="completion")))
    assert ld.spec.engine.type == "vllm" and ld.spec.engine.gpu_memory_utilization == 0.85
    assert ld.spec.evaluation is not None and ld.spec.evaluation.route == "completion"


def test_camel_case_round_trip() -> None:
    body = minimal(engine={"maxInputTokens": 100, "maxTotalTokens": 200, "apiKeySecretRef": {"name": "k"}})
    ld = api.parse(body)
    dumped = ld.spec.model_dump(exclude_none=True)
    assert dumped["engine"]["maxInputTokens"] == 100
    assert dumped["engine"]["apiKeySecretRef"] == {"name": "k", "key": "api-key"}
    assert dumped["model"]["id"] == "org/model"
    assert api.parse({**body, "spec": dumped}).spec == ld.spec
    assert "from" in ld.spec.security.network_policy.model_dump()


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"resources": {"gpu": {"count": 0}}}, "count"),
        ({"engine": {"type": "sglang"}}, "type"),
        ({"engine": {"type": "vllm", "maxInputTokens": 100}}, "maxInputTokens is a TGI setting"),
        ({"engine": {"gpuMemoryUtilization": 0.9}}, "gpuMemoryUtilization is a vLLM setting"),
        ({"engine": {"type": "vllm", "quantize": "eetq"}}, "quantize eetq is not supported by engine vllm"),
        ({"engine": {"quantize": "gguf"}}, "quantize gguf is not supported by engine tgi"),
        ({"engine": {"type": "vllm", "gpuMemoryUtilization": 1.5}}, "gpuMemoryUtilization"),
        ({"engine": {"image": "vllm/vllm-openai:latest"}}, "image"),
        (
            {
                "engine": {"type": "vllm"},
                "rollout": rollout(
                    analysis={
                        "metrics": [
                            {"name": "e", "template": "tgi-error-ratio", "thresholdRange": {"max": 1}}
                        ]
                    }
                ),
            },
            "the tgi-* names are deprecated aliases for engine tgi only",
        ),
        (
            {"engine": {"type": "vllm"}, "evaluation": evaluation(route="generate")},
            "evaluation.route generate is TGI's native route",
        ),
        (
            {"engine": {"maxInputTokens": 4096, "maxTotalTokens": 4096}},
            "maxInputTokens must be less than maxTotalTokens",
        ),
        ({"model": {"id": "org/model", "tokenSecretRef": {"key": "token"}}}, "name"),
        ({"model": {"id": "org/model", "tokenSecretRef": {"name": "Not_A_Name"}}}, "name"),
        ({"model": {"id": "no-org"}}, "id"),
        ({"engine": {"quantize": "int3"}}, "quantize"),
        ({"engine": {"dtype": "float16", "quantize": "awq"}}, "mutually exclusive"),
        ({"engine": {"image": "ghcr.io/huggingface/text-generation-inference:latest"}}, "image"),
        ({"engine": {"image": "ghcr.io/huggingface/text-generation-inference:3.3"}}, "image"),
        ({"engine": {"startupTimeoutSeconds": 30}}, "startupTimeoutSeconds"),
        ({"engine": {"env": [{"name": "HF_TOKEN", "value": "hf_x"}]}}, "env must not set"),
        ({"replicas": -1}, "replicas"),
        ({"cache": {"accessMode": "ReadOnlyMany"}}, "accessMode"),
        ({"security": {"networkPolicy": {"from": [{}]}}}, "a peer needs"),
        ({"evaluation": evaluation(thresholds=[{"metric": "accuracy", "min": 1}])}, "metric"),
        ({"evaluation": evaluation(thresholds=[{"metric": "tokenF1"}])}, "needs min, max or both"),
        ({"evaluation": evaluation(thresholds=[{"metric": "tokenF1", "min": 2, "max": 1}])}, "min must not"),
        ({"evaluation": evaluation(dataset={})}, "exactly one source"),
        (
            {
                "evaluation": evaluation(
                    dataset={
                        "configMapRef": {"name": "a", "key": "b"},
                        "hub": {"repo": "o/d", "revision": SHA, "filename": "f.jsonl"},
                    }
                )
            },
            "exactly one source",
        ),
        (
            {"evaluation": evaluation(dataset={"hub": {"repo": "o/d", "revision": "main", "filename": "f"}})},
            "revision",
        ),
        ({"rollout": {"steps": [{"setWeight": 50}, {"setWeight": 20}]}}, "strictly increasing"),
        ({"rollout": {"steps": [{"setWeight": 50}, {"setWeight": 50}]}}, "strictly increasing"),
        ({"rollout": {"steps": [{"setWeight": 101}]}}, "setWeight"),
        ({"rollout": {"steps": []}}, "steps"),
        ({"rollout": rollout(analysis={"failureLimit": 0})}, "failureLimit"),
        (
            {
                "rollout": rollout(
                    analysis={"metrics": [{"name": "x", "template": "nope", "thresholdRange": {"max": 1}}]}
                )
            },
            "template",
        ),
        (
            {
                "rollout": rollout(
                    analysis={
                        "metrics": [
                            {
                                "name": "x",
                                "template": "tgi-queue-size",
                                "query": "up",
                                "thresholdRange": {"max": 1},
                            }
                        ]
                    }
                )
            },
            "exactly one of template and query",
        ),
        (
            {"rollout": rollout(analysis={"metrics": [{"name": "x", "query": "up"}]})},
            "thresholdRange, compareToStable",
        ),
        ({"rollout": rollout(traffic={"mode": "gatewayAPI"})}, "gatewayAPI requires httpRouteRef"),
        ({"rollout": rollout(steps=[{"setWeight": 10, "pause": {"duration": "ten minutes"}}])}, "duration"),
        ({"drift": {"quality": {"metric": "tokenF1", "maxDrop": 0.1}}}, "needs evaluation.schedule"),
        (
            {
                "evaluation": evaluation(schedule="0 3 * * *"),
                "drift": {"quality": {"metric": "tokenF1", "maxDrop": 0.1}},
            },
            "drift.quality.metric must be one of evaluation.thresholds",
        ),
        ({"drift": {"traffic": {"signals": ["inputLength", "inputLength"]}}}, "each signal may appear once"),
        ({"drift": {"traffic": {"ks": 1.5}}}, "drift.traffic.ks"),
        ({"drift": {"traffic": {"reference": {"mode": "Yesterday"}}}}, "drift.traffic.reference.mode"),
        ({"drift": {"evalScoreDrop": {"metric": "tokenF1", "maxDrop": 0.1}}}, "drift.evalScoreDrop"),
        ({"drift": {"prompts": {}}}, "drift.prompts needs gateway.capture"),
        (
            {"gateway": {"capture": {"sink": {"url": "http://sink"}}}, "drift": {"prompts": {}}},
            "drift.prompts needs gateway.capture",
        ),
        ({"gateway": {"capture": {"keep": "Responses"}}, "drift": {"prompts": {}}}, "drift.prompts needs"),
        ({"gateway": {"capture": {}}, "drift": {"prompts": {"buckets": 8}}}, "drift.prompts.buckets"),
        (
            {"evaluation": evaluation(heldOut={"corrections": {}})},
            "evaluation.heldOut.corrections needs gateway.capture",
        ),
        (
            {
                "gateway": {"capture": {}},
                "evaluation": evaluation(heldOut={"corrections": {"fraction": 0.9}}),
            },
            "evaluation.heldOut.corrections.fraction",
        ),
        (
            {
                "gateway": {"capture": {}},
                "evaluation": evaluation(
                    heldOut={"corrections": {"thresholds": [{"metric": "jsonValid", "min": 1}]}}
                ),
            },
            "evaluation.heldOut.corrections.thresholds.0.metric",
        ),
        ({"retrain": {"jobTemplate": {"spec": {"template": {}}}}}, "retrain needs evaluation"),
        (
            {"evaluation": evaluation(), "retrain": {"jobTemplate": {}}},
            "retrain.jobTemplate needs spec.template",
        ),
        (
            {
                "evaluation": evaluation(),
                "retrain": {
                    "jobTemplate": {"spec": {"template": {}}},
                    "noWorseThan": [{"metric": "tokenF1", "maxDrop": 0.01}],
                },
            },
            "retrain.noWorseThan[].metric must be one of evaluation.thresholds",
        ),
        (
            {
                "evaluation": evaluation(),
                "retrain": {
                    "jobTemplate": {"spec": {"template": {}}},
                    "noWorseThan": [{"metric": "exactMatch", "maxDrop": -0.1}],
                },
            },
            "retrain.noWorseThan.0.maxDrop",
        ),
        (
            {"evaluation": evaluation(), "retrain": {"jobTemplate": {"spec": {"backoffLimit": 1}}}},
            "retrain.jobTemplate needs spec.template",
        ),
        ({"unknownField": 1}, "unknownField"),
        ({"model": {"id": "org/m", "adapter": {"name": "a", "path": "/tmp/a"}}}, "model.adapter.path"),
        ({"model": {"id": "org/m", "adapter": {"name": "a", "path": "/data/../etc"}}}, "model.adapter.path"),
        ({"model": {"id": "org/m", "adapter": {"name": "a=b", "path": "/data/a"}}}, "model.adapter.name"),
        (
            {
                "model": {"id": "org/m", "adapter": {"name": "a", "path": "/data/a"}},
                "gateway": {"enabled": False},
            },
            "model.adapter needs gateway.enabled",
        ),
        (
            {
                "model": {"id": "org/m", "adapter": {"name": "a", "path": "/data/a"}},
                "cache": {"enabled": False},
            },
            "model.adapter needs cache.enabled",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_field(spec: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as info:
        api.parse(minimal(**spec))
    assert needle in str(info.value)


def test_good_variants_pass() -> None:
    hub = {"hub": {"repo": "org/evalset", "revision": SHA, "filename": "data/eval.jsonl"}}
    api.parse(
        minimal(
            model={"id": "org/model", "revision": SHA, "tokenSecretRef": {"name": "hf", "key": "tok"}},
            engine={
                "image": "registry.local:5000/tgi:3.3.7-rocm@sha256:" + "a" * 64,
                "quantize": "bitsandbytes-nf4",
                "maxInputTokens": 10,
                "maxTotalTokens": 11,
                "env": [{"name": "CUDA_GRAPHS", "value": "1,2"}],
            },
            resources={"cpu": 8, "memory": "64Gi"},
            evaluation=evaluation(dataset=hub, schedule="0 3 * * *"),
            rollout=rollout(
                steps=[{"setWeight": 0}, {"setWeight": 10, "pause": {}}, {"setWeight": 100}],
                traffic={"mode": "gatewayAPI", "httpRouteRef": {"name": "route"}},
            ),
            drift={
                "interval": "10m",
                "window": "1h",
                "traffic": {
                    "signals": ["inputLength", "generatedTokens", "requestDuration", "timePerOutputToken"],
                    "psi": 0.25,
                    "ks": 0.15,
                    "minSamples": 500,
                    "bins": 20,
                    "reference": {"mode": "Offset", "offset": "7d"},
                },
                "quality": {"metric": "exactMatch", "maxDrop": 0.05, "consecutive": 3},
                "feedback": {"maxNegativeRatio": 0.3, "minSamples": 50},
                "prompts": {"psi": 0.3, "minSamples": 100, "buckets": 2048, "bins": 40},
            },
            gateway={"capture": {"keep": "Prompts"}},
            retrain={"jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}, "approval": "Auto"},
        )
    )
    api.parse(minimal(engine={"image": "ghcr.io/huggingface/text-generation-inference@sha256:" + "0" * 64}))


def test_evaluation_metric_enum_is_the_shared_list() -> None:
    for name in METRIC_NAMES:
        api.parse(minimal(evaluation=evaluation(thresholds=[{"metric": name, "max": 1}])))
    assert len(METRIC_NAMES) == 15


def test_reserved_env_covers_what_the_engine_sets() -> None:
    from llmops.engines import get_engine

    spec = api.parse(
        minimal(
            model={"id": "o/m", "tokenSecretRef": {"name": "t"}}, engine={"apiKeySecretRef": {"name": "k"}}
        )
    ).spec
    names = {e["name"] for e in get_engine("tgi").env(spec, revision="main")}
    assert names <= set(RESERVED_ENV)


def test_is_pinned_revision() -> None:
    assert api.is_pinned_revision(SHA)
    assert not api.is_pinned_revision("main")
    assert not api.is_pinned_revision(SHA.upper())
    assert not api.is_pinned_revision(SHA[:12])


def test_parse_duration() -> None:
    assert parse_duration("30s") == 30
    assert parse_duration("1h30m") == 5400
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("250ms") == 0.25
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("10 minutes")


def test_status_keeps_unknown_fields_and_phases_are_closed() -> None:
    body = minimal()
    body["status"] = {"phase": "Canary", "kopf": {"progress": {}}, "canary": {"weight": 20, "step": 1}}
    ld = api.parse(body)
    assert ld.status.phase is api.Phase.CANARY
    assert ld.status.model_dump()["kopf"] == {"progress": {}}
    assert ld.status.canary is not None and ld.status.canary.weight == 20
    assert [p.value for p in api.Phase] == [
        "Pending",
        "Caching",
        "Evaluating",
        "Canary",
        "Serving",
        "RolledBack",
        "Retraining",
        "Failed",
        "Degraded",
    ]
    bad = copy.deepcopy(body)
    bad["status"]["phase"] = "Running"
    with pytest.raises(ValidationError):
        api.parse(bad)


def test_parse_accepts_a_parsed_object_and_does_not_mutate_input() -> None:
    body = minimal()
    before = copy.deepcopy(body)
    ld = api.parse(body)
    assert api.parse(ld) is ld
    assert body == before
    assert (ld.name, ld.namespace, ld.uid) == ("m", "ns", "")


def test_constants() -> None:
    assert api.ANNOTATION_PROMOTE == "llmops.io/promote"
    assert api.ANNOTATION_ABORT == "llmops.io/abort"
    assert api.ANNOTATION_APPROVE == "llmops.io/approve-retrain"
    assert api.OPERATOR_IMAGE == "ghcr.io/llmops-io/llmops-operator:0.1.0"
    assert api.API_VERSION == f"{api.GROUP}/{api.VERSION}" == "llmops.io/v1alpha1"
    assert conditions.CONDITION_TYPES == (
        "Available",
        "Progressing",
        "Degraded",
        "ModelCached",
        "Evaluated",
        "Promoted",
        "Drifted",
        "Retrained",
        "Autoscaling",
        "CaptureDegraded",
        "Candidate",
        "PinnedToSpec",
    )
    reasons = [v for k, v in vars(conditions).items() if k.isupper() and isinstance(v, str)]
    for reason in reasons:
        assert reason[0].isupper() and reason.isalnum(), reason


def test_public_names_are_exported() -> None:
    assert sorted(api.__all__) == sorted(n for n in api.__all__ if hasattr(api, n))
    assert len(api.__all__) == len(set(api.__all__))


def test_an_adapter_names_a_revision_of_its_own_that_does_not_depend_on_where_it_comes_from() -> None:
    plain = api.parse(minimal(model={"id": "org/m", "revision": SHA})).spec.model
    adapter = {"name": "tuned", "path": "/data/adapters/run-3"}
    tuned = api.parse(minimal(model={"id": "org/m", "revision": SHA, "adapter": adapter})).spec.model
    moved = {"name": "tuned", "path": "/data/adapters/run-4"}
    elsewhere = api.parse(minimal(model={"id": "org/m", "revision": SHA, "adapter": moved})).spec.model
    assert plain.served_revision == SHA
    assert tuned.served_revision.startswith(f"{SHA}+tuned-") and len(tuned.served_revision) == 40 + 7 + 8
    assert tuned.served_revision == api.parse(minimal(model=tuned.model_dump())).spec.model.served_revision
    assert elsewhere.served_revision != tuned.served_revision  # same name, another folder: a new revision
    long_ref = "refs/heads/" + "x" * 200
    tags = [adapter_revision(f"{long_ref}{i}", AdapterSpec(name="n" * 63, path="/data/a")) for i in (1, 2)]
    assert tags[0] != tags[1] and max(len(t) for t in tags) <= 137  # fits status (256 at most)
