"""Every rendered object is valid Kubernetes: checked against the v1.36 OpenAPI schemas (strict:
unknown fields are errors) that the kubernetes-validate package bundles, against Pod Security
`restricted`, and, for the Prometheus Operator kinds (not in those schemas), against their
required fields. Also: the golden renders of the samples. (The purity of the core is
tests/unit/test_layers.py's.)"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from llmops.render import render
from testkit import sample_llmd

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
SAMPLES = {p.stem: p for p in (REPO / "manifests" / "samples").glob("*.yaml")}
K8S_VERSION = "1.36"
UID = "3b0c7a52-5f7e-4d1e-9c1a-2d3f4e5a6b7c"
SHA = "0123456789abcdef0123456789abcdef01234567"


def sample(name: str) -> dict[str, Any]:
    body = sample_llmd(SAMPLES[name])
    body["metadata"].update(namespace="models", uid=UID)
    return body


def variant(**spec: Any) -> dict[str, Any]:
    body = sample("llama-3.1-8b")
    body["spec"].update(spec)
    return body


VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    **{f"sample-{name}": (sample(name), {}) for name in SAMPLES},
    "canary-track": (sample("llama-3.1-70b-sharded"), {"track": "canary", "replicas": 1, "revision": SHA}),
    "staging-ref": (sample("llama-3.1-8b"), {"track": "staging", "revision": "refs/pr/12"}),
    "no-cache": (variant(cache={"enabled": False}), {}),
    "everything": (
        variant(
            engine={
                "quantize": "fp8",
                "maxConcurrentRequests": 10,
                "extraArgs": ["--trust-remote-code"],
                "env": [{"name": "CUDA_GRAPHS", "value": "0"}],
                "apiKeySecretRef": {"name": "k"},
            },
            resources={
                "gpu": {"count": 8, "product": "NVIDIA-H100-80GB-HBM3"},
                "cpu": "500m",
                "memory": 1073741824,
            },
            placement={
                "nodeSelector": {"pool": "gpu"},
                "tolerations": [
                    {
                        "key": "gpu",
                        "operator": "Equal",
                        "value": "yes",
                        "effect": "NoExecute",
                        "tolerationSeconds": 30,
                    }
                ],
                "affinity": {
                    "podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "weight": 1,
                                "podAffinityTerm": {
                                    "topologyKey": "kubernetes.io/hostname",
                                    "labelSelector": {
                                        "matchLabels": {"llmops.io/deployment": "llama-3-1-8b"}
                                    },
                                },
                            }
                        ]
                    }
                },
                "priorityClassName": "high",
            },
            replicas=0,
            cache={
                "storageClassName": "nfs",
                "accessMode": "ReadWriteMany",
                "download": {"image": "mirror/op:1.0.0"},
            },
            service={"type": "NodePort", "port": 8080},
            security={
                "networkPolicy": {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"a": "b"}},
                            "podSelector": {"matchExpressions": [{"key": "x", "operator": "Exists"}]},
                        }
                    ]
                }
            },
            monitoring={
                "podMonitor": {"labels": {"release": "x"}},
                "prometheusRule": {"labels": {"release": "x"}},
            },
        ),
        {},
    ),
    "capture-store": (
        variant(
            gateway={
                "enabled": True,
                "capture": {
                    "retention": "14d",
                    "maxSize": "3Gi",
                    "store": {"size": "4Gi", "storageClassName": "ssd"},
                },
            }
        ),
        {},
    ),
    "no-monitoring-no-netpol": (
        variant(monitoring={"enabled": False}, security={"networkPolicy": {"enabled": False}}),
        {},
    ),
}


def rendered(name: str) -> list[dict[str, Any]]:
    body, kwargs = VARIANTS[name]
    return render(body, **kwargs)


def check_prometheus_operator(obj: dict[str, Any]) -> None:
    """The required shape of monitoring.coreos.com/v1 PodMonitor and PrometheusRule."""
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
    assert obj["metadata"]["name"] and obj["metadata"]["namespace"]
    spec = obj["spec"]
    if obj["kind"] == "PodMonitor":
        assert set(spec) <= {
            "selector",
            "podMetricsEndpoints",
            "namespaceSelector",
            "jobLabel",
            "podTargetLabels",
        }
        assert isinstance(spec["selector"]["matchLabels"], dict)
        for ep in spec["podMetricsEndpoints"]:
            assert set(ep) <= {
                "port",
                "path",
                "interval",
                "scrapeTimeout",
                "relabelings",
                "metricRelabelings",
            }
            assert isinstance(ep["port"], str) and ep["path"].startswith("/")
            for r in ep["relabelings"]:
                assert set(r) <= {
                    "action",
                    "sourceLabels",
                    "targetLabel",
                    "regex",
                    "replacement",
                    "separator",
                }
                assert r["action"] in {"replace", "keep", "drop", "labelmap"}
                assert all(s.startswith("__meta_kubernetes_pod_label_") for s in r["sourceLabels"])
    elif obj["kind"] == "PrometheusRule":
        assert set(spec) == {"groups"}
        for group in spec["groups"]:
            assert set(group) <= {"name", "interval", "rules"} and group["name"]
            for rule in group["rules"]:
                assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations"}
                assert rule["expr"] and ("alert" in rule) != ("record" in rule)
                assert all(isinstance(v, str) for v in rule.get("labels", {}).values())
                assert all(isinstance(v, str) for v in rule.get("annotations", {}).values())
    else:
        raise AssertionError(f"unexpected kind {obj['kind']}")


def check_restricted(obj: dict[str, Any]) -> None:
    """Pod Security Standards `restricted` (v1.36) on a workload's pod template."""
    pod = obj["spec"]["template"]["spec"]
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    allowed_volumes = {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
    for volume in pod.get("volumes", []):
        assert set(volume) - {"name"} <= allowed_volumes, volume
    pod_sc = pod.get("securityContext", {})
    assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    assert pod_sc.get("runAsUser", 1) != 0
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c.get("securityContext", {})
        assert sc.get("allowPrivilegeEscalation") is False, c["name"]
        assert sc.get("privileged") in (None, False)
        assert "ALL" in sc.get("capabilities", {}).get("drop", [])
        assert set(sc.get("capabilities", {}).get("add", [])) <= {"NET_BIND_SERVICE"}
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True
        assert sc.get("runAsUser", pod_sc.get("runAsUser", 1)) != 0
        assert sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type") == "RuntimeDefault"
        assert not any(p.get("hostPort") for p in c.get("ports", []))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_rendered_objects_match_the_kubernetes_schema(name: str) -> None:
    objs = rendered(name)
    assert objs
    for obj in objs:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            check_prometheus_operator(obj)
        else:
            # raises kubernetes_validate.ValidationError with the failing path
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        if obj["kind"] in {"Deployment", "Job"}:
            check_restricted(obj)


def test_the_validator_has_the_v1_36_schemas_and_catches_mistakes() -> None:
    assert "1.36.0" in kubernetes_validate.utils.all_versions()
    dep = next(o for o in rendered("sample-llama-3.1-8b") if o["kind"] == "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy "] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, K8S_VERSION, strict=True)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_golden_render_of_the_samples(name: str) -> None:
    text = "# Generated by tests/unit/test_render_schema.py (UPDATE_GOLDEN=1 to refresh). Do not edit.\n"
    text += yaml.safe_dump_all(render(sample(name)), sort_keys=True, width=120)
    golden = GOLDEN / f"{name}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert golden.exists(), f"{golden} is missing: run UPDATE_GOLDEN=1 pytest {__file__}"
    assert text == golden.read_text(), f"render changed for {name}; if intended, rerun with UPDATE_GOLDEN=1"
