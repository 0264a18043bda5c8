"""The CRD on the real kube-apiserver: it is accepted and Established, the samples apply, the
defaults are filled in, and bad input is refused at admission with a message naming the field."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops.api import crd
from testkit import wait_for
from testkit.operator import OperatorProcess

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "manifests" / "samples").glob("*.yaml"))

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def installed(cluster: Any) -> Any:
    """The CRD, applied from the committed file and Established."""
    cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        str(REPO / "crds" / "llmops.io_llmdeployments.yaml"),
    )

    def established() -> bool:
        out = cluster.kubectl("get", "crd", crd.CRD_NAME, "-o", "json").stdout
        conditions = (json.loads(out).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for("the LLMDeployment CRD to be Established", established, timeout=60)
    return cluster


def manifest(namespace: str, name: str = "probe", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "llmops.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": {"id": "org/model"}, **spec},
    }


def apply(cluster: Any, obj: dict[str, Any], *extra: str) -> Any:
    return cluster.kubectl("apply", *extra, "-f", "-", input=yaml.safe_dump(obj), check=False)


def test_crd_is_established_and_served(installed: Any) -> None:
    out = installed.kubectl("api-resources", "--api-group=llmops.io", "-o", "wide").stdout
    assert "llmdeployments" in out and "llmd" in out and "LLMDeployment" in out


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_samples_apply_cleanly(installed: Any, namespace: str, path: Path) -> None:
    res = installed.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path), check=False)
    assert res.returncode == 0, res.stderr


@pytest.fixture
def operator_stopped(operator: OperatorProcess) -> Iterator[None]:
    """The session's operator stopped for one test (and started again after it): a test that
    writes an LLMDeployment's status itself must not race the operator's own writes."""
    operator.kill()
    try:
        yield
    finally:
        operator.start()


def test_defaults_printer_columns_and_status(installed: Any, namespace: str, operator_stopped: None) -> None:
    assert apply(installed, manifest(namespace)).returncode == 0
    stored = json.loads(installed.kubectl("get", "llmd", "probe", "-n", namespace, "-o", "json").stdout)
    spec = stored["spec"]
    assert spec["engine"]["type"] == "tgi" and "image" not in spec["engine"]  # the engine pins its image
    assert spec["engine"]["startupTimeoutSeconds"] == 1800
    assert spec["resources"]["gpu"] == {"count": 1, "resourceName": "nvidia.com/gpu"}
    assert spec["model"]["revision"] == "main"
    assert spec["cache"]["download"] == {"enabled": True, "activeDeadlineSeconds": 3600}
    assert spec["replicas"] == 1
    # status is a subresource: the operator's writes there keep fields the schema does not declare
    status = {
        "phase": "Serving",
        "model": "org/model",
        "ready": "1/1",
        "servingRevision": "abc",
        "canary": {"weight": 20},
        "kopf": {"x": 1},
    }
    installed.kubectl(
        "patch",
        "llmd",
        "probe",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    table = installed.kubectl("get", "llmd", "probe", "-n", namespace).stdout.splitlines()
    assert table[0].split() == [
        "NAME",
        "PHASE",
        "MODEL",
        "REVISION",
        "READY",
        "CANARY",
        "ORIGIN",
        "CANDIDATE",
        "DOWNLOAD",
        "AGE",
    ]
    assert table[1].split()[:6] == ["probe", "Serving", "org/model", "abc", "1/1", "20"]
    got = json.loads(installed.kubectl("get", "llmd", "probe", "-n", namespace, "-o", "json").stdout)[
        "status"
    ]
    assert got["kopf"] == {"x": 1}


THRESHOLD = [{"metric": "exactMatch", "min": 0.5}]
DATASET = {"configMapRef": {"name": "ds", "key": "data.jsonl"}}
STEPS = [{"setWeight": 20}, {"setWeight": 60}]

BAD: dict[str, tuple[dict[str, Any], list[str]]] = {
    "gpu-count-zero": ({"resources": {"gpu": {"count": 0}}}, ["spec.resources.gpu.count"]),
    "gpu-count-negative": ({"resources": {"gpu": {"count": -2}}}, ["spec.resources.gpu.count"]),
    "unknown-engine": ({"engine": {"type": "sglang"}}, ["spec.engine.type", "sglang"]),
    "tgi-field-on-vllm": (
        {"engine": {"type": "vllm", "maxInputTokens": 1024}},
        ["spec.engine.maxInputTokens", "maxInputTokens is a TGI setting"],
    ),
    "vllm-field-on-tgi": (
        {"engine": {"gpuMemoryUtilization": 0.9}},
        ["spec.engine.gpuMemoryUtilization", "gpuMemoryUtilization is a vLLM setting"],
    ),
    "tgi-quantize-on-vllm": (
        {"engine": {"type": "vllm", "quantize": "eetq"}},
        ["spec.engine.quantize", "quantize eetq is not supported by engine vllm"],
    ),
    "vllm-quantize-on-tgi": (
        {"engine": {"quantize": "gguf"}},
        ["spec.engine.quantize", "quantize gguf is not supported by engine tgi"],
    ),
    "deprecated-template-on-vllm": (
        {
            "engine": {"type": "vllm"},
            "rollout": {
                "steps": [{"setWeight": 50}],
                "analysis": {
                    "metrics": [{"name": "e", "template": "tgi-error-ratio", "thresholdRange": {"max": 0.1}}]
                },
            },
        },
        ["spec.rollout.analysis.metrics", "deprecated aliases for engine tgi only"],
    ),
    "generate-route-on-vllm": (
        {
            "engine": {"type": "vllm"},
            "evaluation": {"dataset": DATASET, "thresholds": THRESHOLD, "route": "generate"},
        },
        ["spec.evaluation.route", "TGI's native route"],
    ),
    "input-not-below-total": (
        {"engine": {"maxInputTokens": 8192, "maxTotalTokens": 4096}},
        ["spec.engine.maxInputTokens", "maxInputTokens must be less than maxTotalTokens"],
    ),
    "secret-ref-without-name": (
        {"model": {"id": "org/model", "tokenSecretRef": {"key": "token"}}},
        ["spec.model.tokenSecretRef.name", "Required value"],
    ),
    "secret-ref-invalid-name": (
        {"model": {"id": "org/model", "tokenSecretRef": {"name": "My_Secret"}}},
        ["spec.model.tokenSecretRef.name"],
    ),
    "api-key-ref-invalid-key": (
        {"engine": {"apiKeySecretRef": {"name": "keys", "key": "a key"}}},
        ["spec.engine.apiKeySecretRef.key"],
    ),
    "unknown-quantize": ({"engine": {"quantize": "int3"}}, ["spec.engine.quantize", "int3"]),
    "dtype-with-quantize": (
        {"engine": {"dtype": "float16", "quantize": "gptq"}},
        ["spec.engine.dtype", "mutually exclusive"],
    ),
    "unpinned-image": (
        {"engine": {"image": "ghcr.io/huggingface/text-generation-inference:latest"}},
        ["spec.engine.image"],
    ),
    "secret-in-env": (
        {"engine": {"env": [{"name": "HF_TOKEN", "value": "hf_abc"}]}},
        ["spec.engine.env", "HF_TOKEN"],
    ),
    "unknown-threshold-metric": (
        {"evaluation": {"dataset": DATASET, "thresholds": [{"metric": "accuracy", "min": 0.5}]}},
        ["spec.evaluation.thresholds[0].metric", "accuracy"],
    ),
    "duplicate-threshold-metric": (
        {
            "evaluation": {
                "dataset": DATASET,
                "thresholds": [{"metric": "tokenF1", "min": 0.5}, {"metric": "tokenF1", "max": 0.9}],
            }
        },
        ["spec.evaluation.thresholds[1]", "Duplicate value"],
    ),
    "threshold-without-bounds": (
        {"evaluation": {"dataset": DATASET, "thresholds": [{"metric": "tokenF1"}]}},
        ["spec.evaluation.thresholds[0]", "min, max or both"],
    ),
    "two-dataset-sources": (
        {
            "evaluation": {
                "dataset": {**DATASET, "hub": {"repo": "o/d", "revision": "a" * 40, "filename": "f.jsonl"}},
                "thresholds": THRESHOLD,
            }
        },
        ["spec.evaluation.dataset", "exactly one source"],
    ),
    "weights-not-increasing": (
        {"rollout": {"steps": [{"setWeight": 50}, {"setWeight": 10}]}},
        ["spec.rollout.steps", "strictly increasing"],
    ),
    "weight-above-100": ({"rollout": {"steps": [{"setWeight": 150}]}}, ["spec.rollout.steps[0].setWeight"]),
    "weight-below-0": ({"rollout": {"steps": [{"setWeight": -5}]}}, ["spec.rollout.steps[0].setWeight"]),
    "failure-limit-zero": (
        {"rollout": {"steps": STEPS, "analysis": {"failureLimit": 0}}},
        ["spec.rollout.analysis.failureLimit"],
    ),
    "unknown-template": (
        {
            "rollout": {
                "steps": STEPS,
                "analysis": {
                    "metrics": [{"name": "x", "template": "tgi-bogus", "thresholdRange": {"max": 1}}]
                },
            }
        },
        ["spec.rollout.analysis.metrics[0].template", "tgi-bogus"],
    ),
    "template-and-query": (
        {
            "rollout": {
                "steps": STEPS,
                "analysis": {
                    "metrics": [
                        {
                            "name": "x",
                            "template": "tgi-queue-size",
                            "query": "up",
                            "thresholdRange": {"max": 1},
                        }
                    ]
                },
            }
        },
        ["spec.rollout.analysis.metrics[0].template", "exactly one of template and query"],
    ),
    "gateway-without-route": (
        {"rollout": {"steps": STEPS, "traffic": {"mode": "gatewayAPI"}}},
        ["spec.rollout.traffic.httpRouteRef", "gatewayAPI requires httpRouteRef"],
    ),
    "retrain-without-evaluation": (
        {"retrain": {"jobTemplate": {"spec": {"template": {}}}}},
        ["spec.retrain", "retrain needs evaluation"],
    ),
    "retrain-no-worse-than-an-unthresholded-metric": (
        {
            "evaluation": {"dataset": DATASET, "thresholds": THRESHOLD},
            "retrain": {
                "jobTemplate": {"spec": {"template": {}}},
                "noWorseThan": [{"metric": "tokenF1", "maxDrop": 0.01}],
            },
        },
        ["spec.retrain.noWorseThan", "must be one of evaluation.thresholds"],
    ),
    "retrain-no-worse-than-a-negative-drop": (
        {
            "evaluation": {"dataset": DATASET, "thresholds": THRESHOLD},
            "retrain": {
                "jobTemplate": {"spec": {"template": {}}},
                "noWorseThan": [{"metric": "exactMatch", "maxDrop": -0.1}],
            },
        },
        ["spec.retrain.noWorseThan[0].maxDrop", "greater than or equal to 0"],
    ),
    "retrain-dataset-url-without-a-scheme": (
        {
            "evaluation": {"dataset": DATASET, "thresholds": THRESHOLD},
            "retrain": {"jobTemplate": {"spec": {"template": {}}}, "datasetUrl": "bucket/chat.jsonl"},
        },
        ["spec.retrain.datasetUrl", "should match"],
    ),
    "retrain-output-repo-not-org-name": (
        {
            "evaluation": {"dataset": DATASET, "thresholds": THRESHOLD},
            "retrain": {"jobTemplate": {"spec": {"template": {}}}, "outputRepo": "tuned"},
        },
        ["spec.retrain.outputRepo", "should match"],
    ),
    "retrain-without-job-template": (
        {"evaluation": {"dataset": DATASET, "thresholds": THRESHOLD}, "retrain": {"jobTemplate": {}}},
        ["spec.retrain.jobTemplate.spec", "Required value"],
    ),
    "retrain-job-template-without-pod-template": (
        {
            "evaluation": {"dataset": DATASET, "thresholds": THRESHOLD},
            "retrain": {"jobTemplate": {"spec": {"backoffLimit": 1}}},
        },
        ["spec.retrain.jobTemplate.spec.template", "Required value"],
    ),
    "drift-prompts-without-capture": (
        {"drift": {"prompts": {"psi": 0.2}}},
        ["spec.drift.prompts", "drift.prompts needs gateway.capture"],
    ),
    "drift-prompts-with-a-sink": (
        {"gateway": {"capture": {"sink": {"url": "http://sink.example"}}}, "drift": {"prompts": {}}},
        ["spec.drift.prompts", "drift.prompts needs gateway.capture"],
    ),
    "held-out-corrections-without-capture": (
        {"evaluation": {"dataset": DATASET, "thresholds": THRESHOLD, "heldOut": {"corrections": {}}}},
        ["spec.evaluation.heldOut", "evaluation.heldOut.corrections needs gateway.capture"],
    ),
    "drift-quality-without-schedule": (
        {
            "evaluation": {"dataset": DATASET, "thresholds": THRESHOLD},
            "drift": {"quality": {"metric": THRESHOLD[0]["metric"], "maxDrop": 0.1}},
        },
        ["spec.drift", "drift.quality needs evaluation.schedule"],
    ),
    "drift-quality-metric-not-gated": (
        {
            "evaluation": {"dataset": DATASET, "thresholds": THRESHOLD, "schedule": "@daily"},
            "drift": {"quality": {"metric": "biasGap", "maxDrop": 0.1}},
        },
        ["spec.drift", "drift.quality.metric must be one of evaluation.thresholds"],
    ),
    "drift-signal-twice": (
        {"drift": {"traffic": {"signals": ["inputLength", "inputLength"]}}},
        ["spec.drift.traffic.signals", "each signal may appear once"],
    ),
    "drift-ks-above-1": ({"drift": {"traffic": {"ks": 1.5}}}, ["spec.drift.traffic.ks"]),
    "adapter-without-gateway": (
        {
            "model": {"id": "org/model", "adapter": {"name": "tuned", "path": "/data/adapters/tuned"}},
            "gateway": {"enabled": False},
        },
        ["spec.model.adapter", "model.adapter needs gateway.enabled"],
    ),
    "adapter-without-cache": (
        {
            "model": {"id": "org/model", "adapter": {"name": "tuned", "path": "/data/adapters/tuned"}},
            "cache": {"enabled": False},
        },
        ["spec.model.adapter", "model.adapter needs cache.enabled"],
    ),
    "adapter-outside-the-cache": (
        {"model": {"id": "org/model", "adapter": {"name": "tuned", "path": "/data/../etc"}}},
        ["spec.model.adapter.path"],
    ),
    "adapter-name-with-a-separator": (
        {"model": {"id": "org/model", "adapter": {"name": "a,b", "path": "/data/a"}}},
        ["spec.model.adapter.name"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_refused_naming_the_field(installed: Any, namespace: str, case: str) -> None:
    spec, needles = BAD[case]
    res = apply(installed, manifest(namespace, **copy.deepcopy(spec)), "--dry-run=server")
    assert res.returncode != 0, f"{case} was admitted"
    for needle in needles:
        assert needle in res.stderr, f"{case}: {needle!r} not in {res.stderr!r}"


def test_a_name_too_long_for_the_children_is_refused(installed: Any, namespace: str) -> None:
    res = apply(installed, manifest(namespace, name="a" * 46), "--dry-run=server")
    assert res.returncode != 0 and "metadata.name must be at most 45 characters" in res.stderr
    assert apply(installed, manifest(namespace, name="a" * 45), "--dry-run=server").returncode == 0
