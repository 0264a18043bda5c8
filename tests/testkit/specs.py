"""Hypothesis strategies for LLMDeployment specs: ones the schema accepts, and ones with exactly one
field made invalid (with the path of that field), for admission fuzzing.

Accepted specs deliberately use the edges of what the schema allows (free text where a field is
free text, the longest names, negative numbers where only a pattern constrains them): a value the
schema accepts but Kubernetes refuses in a child is a hole in the schema.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from llmops.api.capture import BUILTIN_REDACTIONS
from llmops.api.common import DNS1123_LABEL, DNS1123_SUBDOMAIN, DURATION, LABEL_VALUE, QUALIFIED_NAME
from llmops.api.delivery import REPO_ID
from llmops.api.resource import LLMDeployment
from llmops.api.spec import QUANTIZE, RESERVED_ENV, TGI_QUANTIZE, VLLM_QUANTIZE
from llmops.lifecycle.autoscaling import scaler_metric
from llmops.render import deployment, render
from llmops.render.autoscaling import horizontal_pod_autoscaler
from llmops.render.evaluation import evaluation_job, scheduled_evaluation, staging_service

__all__ = [
    "HOLES",
    "Invalid",
    "accepted_spec",
    "invalid_spec",
    "invalid_spec_at",
    "loc_path",
    "object_name",
    "rendered_children",
    "with_hole",
]

SHA = "0123456789abcdef0123456789abcdef01234567"
ASCII = st.characters(codec="ascii")
UNICODE_SPACES = "\x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000"
"""White space beyond ASCII: regex engines and Kubernetes' own checks disagreed on these (and on
\v), so hostile strings carry them."""
OTHER_UNICODE = "\u200b\ufeffé日"
"""Characters that are not white space anywhere, but not ASCII either (zero-width space, BOM)."""
HOSTILE_CHARS = st.one_of(ASCII, ASCII, ASCII, st.sampled_from(UNICODE_SPACES + OTHER_UNICODE))


def _text(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    return st.text(HOSTILE_CHARS, min_size=min_size, max_size=max_size)


def _match(pattern: str, max_size: int) -> st.SearchStrategy[str]:
    return st.from_regex(pattern, fullmatch=True).filter(lambda s: len(s) <= max_size)


def _mostly(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Three times in four a value of the intended shape, else anything the field's type allows:
    enough hostile values to find holes, enough plausible ones that most specs are accepted."""
    return st.one_of(valid, valid, valid, hostile)


def _label_key() -> st.SearchStrategy[str]:
    return _mostly(_match(QUALIFIED_NAME, 80), _text(40))


def _label_value() -> st.SearchStrategy[str]:
    return _mostly(_match(LABEL_VALUE, 63), _text(63))


def _labels() -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(_label_key(), _label_value(), max_size=3)


def _quantity() -> st.SearchStrategy[int | str]:
    number = st.one_of(
        st.integers(-(2**40), 2**40),
        st.sampled_from(["0", "-1", "+1", ".5", "1e3", "8.", "2E-3", "1e1.5", "3e.5", "1e1000", "8Ei"]),
    )
    suffixed = st.tuples(
        st.integers(-4096, 4096), st.sampled_from(["", "m", "Ki", "Mi", "Gi", "k", "M", "G"])
    )
    return st.one_of(number, suffixed.map(lambda t: f"{t[0]}{t[1]}"))


def _image() -> st.SearchStrategy[str]:
    return _mostly(st.sampled_from(["ghcr.io/x/op:1.2.3", "r.example/op@sha256:" + "a" * 64]), _text(60, 1))


def _selector() -> st.SearchStrategy[dict[str, Any]]:
    requirement = st.fixed_dictionaries(
        {
            "key": _match(QUALIFIED_NAME, 60),
            "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
        },
        optional={"values": st.lists(_label_value(), max_size=3)},
    )
    return st.fixed_dictionaries(
        {}, optional={"matchLabels": _labels(), "matchExpressions": st.lists(requirement, max_size=2)}
    )


def _toleration() -> st.SearchStrategy[dict[str, Any]]:
    plausible = st.fixed_dictionaries(
        {"key": _match(QUALIFIED_NAME, 60), "operator": st.just("Equal"), "value": _match(LABEL_VALUE, 63)},
        optional={"effect": st.sampled_from(["NoSchedule", "PreferNoSchedule"])},
    )
    anything = st.fixed_dictionaries(
        {},
        optional={
            "key": _label_key(),
            "operator": st.sampled_from(["Exists", "Equal"]),
            "value": _label_value(),
            "effect": st.sampled_from(["NoSchedule", "PreferNoSchedule", "NoExecute"]),
            "tolerationSeconds": st.integers(-100, 10**6),
        },
    )
    return _mostly(plausible, anything)


def _engine() -> st.SearchStrategy[dict[str, Any]]:
    """A TGI engine section (type absent: the default) or a vLLM one, each with its own fields."""
    tgi = _engine_of({}, TGI_QUANTIZE, {})
    vllm = _engine_of(
        {"type": st.just("vllm")},
        VLLM_QUANTIZE,
        {"gpuMemoryUtilization": st.floats(0.05, 1.0), "maxBatchTokens": st.integers(1, 10**6)},
    )
    return st.one_of(tgi, vllm)


def _engine_of(
    required: dict[str, st.SearchStrategy[Any]],
    quantize: tuple[str, ...],
    own: dict[str, st.SearchStrategy[Any]],
) -> st.SearchStrategy[dict[str, Any]]:
    env_name = _match(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", 40).filter(lambda n: n not in RESERVED_ENV)
    return st.fixed_dictionaries(
        required,
        optional={
            **own,
            "quantize": st.sampled_from(quantize),
            "maxConcurrentRequests": st.integers(1, 10**6),
            "extraArgs": st.lists(_text(30), max_size=3),
            "env": st.lists(
                st.fixed_dictionaries({"name": env_name, "value": _text(30)}),
                max_size=3,
                unique_by=lambda e: e["name"],
            ),
            "apiKeySecretRef": st.fixed_dictionaries({"name": _match(DNS1123_SUBDOMAIN, 253)}),
            "startupTimeoutSeconds": st.integers(60, 86400),
        },
    )


def _placement() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "nodeSelector": _labels(),
            "tolerations": st.lists(_toleration(), max_size=2),
            "priorityClassName": _mostly(_match(DNS1123_SUBDOMAIN, 253), _text(40)),
        },
    )


def _cache() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "enabled": st.booleans(),
            "size": _quantity(),
            "storageClassName": _mostly(_match(DNS1123_SUBDOMAIN, 253), _text(40)),
            "accessMode": st.sampled_from(["ReadWriteOnce", "ReadWriteMany"]),
            "download": st.fixed_dictionaries({}, optional={"enabled": st.booleans(), "image": _image()}),
        },
    )


def _monitoring() -> st.SearchStrategy[dict[str, Any]]:
    duration = _match(DURATION, 32).filter(lambda d: len(d) >= 2)
    return st.fixed_dictionaries(
        {},
        optional={
            "namespace": _mostly(_match(DNS1123_LABEL, 63), _text(63)),
            "podMonitor": st.fixed_dictionaries({}, optional={"interval": duration, "labels": _labels()}),
            "prometheusRule": st.fixed_dictionaries({}, optional={"labels": _labels(), "for": duration}),
        },
    )


def object_name() -> st.SearchStrategy[str]:
    """An LLMDeployment name as the CRD's own rules admit it: a DNS-1035 label of at most 45."""
    return _mostly(
        st.sampled_from(["m", "a" * 45, "llama-3-1-8b"]), _match(r"^[a-z]([-a-z0-9]*[a-z0-9])?$", 45)
    )


def _evaluation() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "dataset": st.just({"configMapRef": {"name": "ds", "key": "data.jsonl"}}),
            "thresholds": st.just([{"metric": "exactMatch", "min": 0.5}]),
        },
        optional={
            "image": _image(),
            "backoffLimit": st.integers(0, 10),
            "schedule": _mostly(
                st.sampled_from(["0 3 * * *", "*/15 * * * MON-FRI", "@daily", "0 0 1 JAN,JUL ?"]),
                st.lists(_text(4, 1).filter(lambda f: f.strip() == f and f), min_size=5, max_size=5).map(
                    " ".join
                ),
            ),
        },
    )


def _capture() -> st.SearchStrategy[dict[str, Any]]:
    pattern = st.fixed_dictionaries(
        {"name": _match(r"^[A-Z][A-Z0-9_]{0,31}$", 32), "regex": _mostly(st.just(r"ACC-\d{6}"), _text(40, 1))}
    )
    sink = _mostly(st.sampled_from(["https://sink.example/events", "http://10.0.0.1:8080"]), _text(60, 1))
    return st.fixed_dictionaries(
        {},
        optional={
            "sampleRate": st.floats(0.0001, 1.0),
            "keep": st.sampled_from(["Prompts", "Responses", "Both"]),
            "redaction": st.fixed_dictionaries(
                {},
                optional={
                    "builtins": st.lists(st.sampled_from(BUILTIN_REDACTIONS), unique=True),
                    "patterns": st.lists(pattern, max_size=2, unique_by=lambda p: p["name"]),
                },
            ),
            "retention": _match(DURATION, 32).filter(lambda d: len(d) >= 2),
            "maxSize": _quantity(),
            "queueSize": st.integers(100, 1_000_000),
            "store": st.fixed_dictionaries(
                {},
                optional={
                    "storageClassName": _mostly(_match(DNS1123_SUBDOMAIN, 253), _text(40)),
                    "size": _quantity(),
                },
            ),
            "sink": st.fixed_dictionaries({"url": sink}),
        },
    )


def _gateway() -> st.SearchStrategy[dict[str, Any]]:
    """The gateway: its API keys' Secret, its limits and capture (to the store, or to a sink)."""
    return st.fixed_dictionaries(
        {},
        optional={
            "auth": st.fixed_dictionaries(
                {
                    "apiKeysSecretRef": st.fixed_dictionaries(
                        {"name": _mostly(_match(DNS1123_SUBDOMAIN, 253), _text(40))}
                    )
                }
            ),
            "maxRequestBytes": st.integers(1024, 64 * 1024 * 1024),
            "upstreamTimeoutSeconds": st.integers(1, 3600),
            "capture": _capture(),
        },
    )


def _autoscaling() -> st.SearchStrategy[dict[str, Any]]:
    """The queue depth, or a query with a target (any positive number: tiny ones too)."""
    # minReplicas at most maxReplicas, mostly: a cross-field rule refuses the rest
    bounds = _mostly(
        st.integers(1, 1000).flatmap(lambda low: st.tuples(st.just(low), st.integers(low, 1000))),
        st.tuples(st.integers(1, 1000), st.integers(1, 1000)),
    ).map(lambda b: {"minReplicas": b[0], "maxReplicas": b[1]})
    target = st.floats(min_value=0, exclude_min=True, allow_nan=False, allow_infinity=False)
    query = st.fixed_dictionaries(
        {"query": st.just("sum(rate(x[1m]))"), "target": target},
        optional={"targetType": st.sampled_from(["AverageValue", "Value"])},
    )
    depth = st.fixed_dictionaries({}, optional={"targetQueueDepth": st.integers(1, 10000)})
    return st.tuples(bounds, st.one_of(query, depth)).map(lambda t: {**t[0], **t[1]})


@st.composite
def accepted_spec(draw: Callable[..., Any]) -> dict[str, Any]:
    """A spec built only from values each field's own constraints allow. Cross-field rules and the
    full model may still refuse it: callers keep the ones `LLMDeployment` validates."""
    spec: dict[str, Any] = {
        "model": {
            "id": draw(_match(REPO_ID, 200)),
            "revision": draw(st.sampled_from(["main", SHA, "refs/pr/3", "v1.0"])),
        },
        "resources": draw(
            st.fixed_dictionaries(
                {"gpu": st.fixed_dictionaries({"count": st.integers(1, 64)})},
                optional={"cpu": _quantity(), "memory": _quantity()},
            )
        ),
        "replicas": draw(st.integers(0, 1000)),
    }
    optional = {
        "engine": _engine(),
        "placement": _placement(),
        "cache": _cache(),
        "service": st.fixed_dictionaries(
            {},
            optional={
                "type": st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"]),
                "port": st.integers(1, 65535),
            },
        ),
        "security": st.fixed_dictionaries(
            {
                "networkPolicy": st.fixed_dictionaries(
                    {"from": st.lists(st.fixed_dictionaries({"podSelector": _selector()}), max_size=2)}
                )
            }
        ),
        "monitoring": _monitoring(),
        "evaluation": _evaluation(),
        "gateway": _gateway(),
        "autoscaling": _autoscaling(),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            spec[key] = draw(strategy)
    return spec


# --- invalid specs: one field broken, its path known


class Invalid:
    """A spec with one field broken: ``path`` is that field as the apiserver names it."""

    def __init__(self, spec: dict[str, Any], path: str) -> None:
        self.spec, self.path = spec, path

    def __repr__(self) -> str:
        return f"Invalid({self.path}, {self.spec!r})"


BASE: dict[str, Any] = {"model": {"id": "org/model", "revision": SHA}, "resources": {"gpu": {"count": 1}}}
NOT_A_NUMBER = st.one_of(st.just("many"), st.lists(st.integers(), max_size=1), st.just({"a": 1}))
NOT_A_STRING = st.one_of(st.integers(), st.lists(st.integers(), max_size=1), st.just({"a": 1}))


def _out_of(lo: int | None, hi: int | None) -> st.SearchStrategy[Any]:
    """Integers outside [lo, hi], or something that is not a number at all."""
    parts: list[st.SearchStrategy[Any]] = [NOT_A_NUMBER]
    if lo is not None:
        parts.append(st.integers(max_value=lo - 1, min_value=lo - 10**6))
    if hi is not None:
        parts.append(st.integers(min_value=hi + 1, max_value=hi + 10**6))
    return st.one_of(parts)


def _not_matching(pattern: str, max_size: int = 300) -> st.SearchStrategy[Any]:
    text = _text(max_size, 1).filter(lambda s: re.fullmatch(pattern.strip("^$"), s) is None)
    return st.one_of(text, NOT_A_STRING)


# (path in the spec, strategy of an invalid value). The path is the apiserver's: dots, [i] indices.
MUTATIONS: list[tuple[str, st.SearchStrategy[Any]]] = [
    ("replicas", _out_of(0, 1000)),
    ("resources.gpu.count", _out_of(1, 64)),
    ("resources.gpu.product", _not_matching(LABEL_VALUE, 63)),
    ("resources.memory", st.sampled_from(["lots", "1 Gi", "1GB", "--1"])),
    ("model.id", _not_matching(REPO_ID)),
    ("model.revision", st.sampled_from(["", "-x", "a b", "x" * 256])),
    ("engine.type", st.sampled_from(["sglang", "TGI", "VLLM", ""])),
    (
        "engine.image",
        st.sampled_from(["repo/tgi:latest", "repo/tgi:3.3", "repo/tgi", "a b:1.2.3", "r/v:v1.2"]),
    ),
    ("engine.quantize", _text(12).filter(lambda s: s not in QUANTIZE)),
    # a vLLM-only field on the default engine (tgi), or out of its range
    ("engine.gpuMemoryUtilization", st.sampled_from([0.9, 0, 1.5, -1, "most"])),
    ("engine.maxConcurrentRequests", _out_of(1, None)),
    ("engine.startupTimeoutSeconds", _out_of(60, 86400)),
    ("engine.env[0].name", st.sampled_from(["1X", "A=B", "", "a b"])),
    ("service.port", _out_of(1, 65535)),
    ("service.type", st.sampled_from(["ExternalName", "clusterip", ""])),
    ("cache.accessMode", st.sampled_from(["ReadOnlyMany", "rwo", ""])),
    ("cache.download.activeDeadlineSeconds", _out_of(60, None)),
    ("monitoring.podMonitor.interval", st.sampled_from(["30", "1x", "s", "", "1 m"])),
    ("monitoring.prometheusRule.errorRatio", st.sampled_from([0, -0.5, 1.5, "high"])),
    ("rollout.steps[0].setWeight", _out_of(0, 100)),
    ("evaluation.concurrency", _out_of(1, 256)),
    ("evaluation.thresholds[0].metric", st.sampled_from(["accuracy", "exact_match", ""])),
    ("gateway.maxRequestBytes", _out_of(1024, 64 * 1024 * 1024)),
    ("gateway.upstreamTimeoutSeconds", _out_of(1, 3600)),
    ("gateway.auth.apiKeysSecretRef.name", st.sampled_from(["", "Keys", "a b", "x" * 254])),
    ("gateway.capture.sampleRate", st.sampled_from([0, -0.1, 1.5, "all"])),
    ("gateway.capture.keep", st.sampled_from(["Everything", "prompts", ""])),
    ("gateway.capture.retention", st.sampled_from(["30", "1x", "d", "", "1d1d"])),
    ("gateway.capture.maxSize", st.sampled_from(["0", "0Gi", "-1Gi", "1e1.5", "8 Gi", "lots"])),
    ("gateway.capture.queueSize", _out_of(100, 1_000_000)),
    ("gateway.capture.store.storageClassName", st.sampled_from(["Fast SSD", "-x", "x" * 254])),
    ("gateway.capture.redaction.patterns[0].name", st.sampled_from(["account", "1X", "", "A" * 33])),
    ("gateway.capture.sink.url", st.sampled_from(["ftp://x", "https://", "https:// x", "sink.example"])),
    ("rollout.analysis.interval", st.sampled_from(["60", "1x", "", "1m1m"])),
    ("rollout.analysis.failureLimit", _out_of(1, 100)),
    ("rollout.smokeEvaluation.samples", _out_of(1, 1000)),
    ("rollout.traffic.mode", st.sampled_from(["canary", "Replicas", "gateway", ""])),
    ("drift.window", st.sampled_from(["24", "1 d", "", "h"])),
    ("drift.traffic.psi", st.sampled_from([0, -0.2, "high"])),
    ("drift.traffic.ks", st.sampled_from([0, 1.5, -1])),
    ("drift.traffic.bins", _out_of(2, 100)),
    ("drift.traffic.signals[0]", st.sampled_from(["latency", "InputLength", ""])),
    ("drift.feedback.maxNegativeRatio", st.sampled_from([0, 1.5, -0.1])),
    ("drift.prompts.buckets", _out_of(16, 65536)),
    ("retrain.approval", st.sampled_from(["auto", "Always", ""])),
    ("retrain.maxRetrainsPerDay", _out_of(0, 24)),
    ("retrain.cooldown", st.sampled_from(["24", "1 d", "", "d"])),
    ("autoscaling.maxReplicas", _out_of(1, 1000)),
    ("autoscaling.targetQueueDepth", _out_of(1, 10000)),
    ("autoscaling.cooldownSeconds", _out_of(0, 3600)),
]


def _set(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` (dots and [0]) in ``spec``, creating what is missing along the way."""
    parts = path.replace("[0]", ".0").split(".")
    node: Any = spec
    for part, nxt in itertools.pairwise(parts):
        child: Any = [] if nxt == "0" else {}
        if part == "0":
            if not node:
                node.append(child)
            node = node[0]
        else:
            node = node.setdefault(part, child)
    last = parts[-1]
    if last == "0":
        node[:] = [value]
    else:
        node[last] = value


_RETRAIN: dict[str, Any] = {
    "evaluation": {
        "dataset": {"configMapRef": {"name": "ds", "key": "k"}},
        "thresholds": [{"metric": "exactMatch", "min": 0.5}],
    },
    "retrain": {
        "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "t", "image": "t:1"}]}}}}
    },
}
_ROLLOUT: dict[str, Any] = {"rollout": {"steps": [{"setWeight": 50}]}}
_CONTEXT: dict[str, dict[str, Any]] = {
    # The rest of a valid section, so the mutated field is the only thing wrong.
    "engine.env[0].name": {"engine": {"env": [{"value": "x"}]}},
    "rollout.steps[0].setWeight": {"rollout": {"steps": [{}]}},
    "rollout.analysis.interval": _ROLLOUT,
    "rollout.analysis.failureLimit": _ROLLOUT,
    "rollout.smokeEvaluation.samples": _ROLLOUT,
    "rollout.traffic.mode": _ROLLOUT,
    "retrain.approval": _RETRAIN,
    "retrain.maxRetrainsPerDay": _RETRAIN,
    "retrain.cooldown": _RETRAIN,
    "autoscaling.targetQueueDepth": {"autoscaling": {"maxReplicas": 4}},
    "autoscaling.cooldownSeconds": {"autoscaling": {"maxReplicas": 4}},
    "gateway.capture.redaction.patterns[0].name": {
        "gateway": {"capture": {"redaction": {"patterns": [{"regex": "ACC-[0-9]+"}]}}}
    },
    "evaluation.concurrency": {
        "evaluation": {
            "dataset": {"configMapRef": {"name": "ds", "key": "k"}},
            "thresholds": [{"metric": "exactMatch", "min": 0.5}],
        }
    },
    "evaluation.thresholds[0].metric": {
        "evaluation": {"dataset": {"configMapRef": {"name": "ds", "key": "k"}}, "thresholds": [{"min": 0.5}]}
    },
}


@st.composite
def invalid_spec(draw: Callable[..., Any]) -> Invalid:
    """A valid spec with exactly one field given a value its schema refuses."""
    path, strategy = draw(st.sampled_from(MUTATIONS))
    invalid: Invalid = draw(invalid_spec_at(path, strategy))
    return invalid


@st.composite
def invalid_spec_at(draw: Callable[..., Any], path: str, strategy: st.SearchStrategy[Any]) -> Invalid:
    """A valid spec with the field at ``path`` given a value drawn from ``strategy``."""
    spec = copy.deepcopy(BASE)
    spec.update(copy.deepcopy(_CONTEXT.get(path, {})))
    _set(spec, path, draw(strategy))
    return Invalid(spec, "spec." + path)


def loc_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the apiserver writes a field path: spec.a.b[0].c."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def rendered_children(ld: LLMDeployment) -> list[dict[str, Any]]:
    """Every kind of child the spec shapes: serving (stable and canary), cache, evaluation, and
    the HorizontalPodAutoscaler (the ScaledObject needs KEDA's CRD, which the cluster lacks)."""
    objs: list[dict[str, Any] | None] = [*render(ld)]
    objs.append(deployment(ld, track="canary", revision=SHA, replicas=1))
    if ld.spec.autoscaling is not None:
        objs.append(horizontal_pod_autoscaler(ld, scaler_metric(ld)))
    if ld.spec.evaluation is not None:
        objs.append(staging_service(ld))
        objs.append(evaluation_job(ld, revision=SHA, endpoint=f"http://{ld.name}-staging.svc:80"))
        objs.append(scheduled_evaluation(ld, revision=SHA, endpoint=f"http://{ld.name}.svc:80"))
    return [o for o in objs if o is not None]


# --- the holes admission fuzzing found: values our schema accepted whose children Kubernetes
# refuses. Each is now refused at admission, naming the field (unit and integration tests).
_EVAL = {
    "dataset": {"configMapRef": {"name": "ds", "key": "k"}},
    "thresholds": [{"metric": "exactMatch", "min": 0.5}],
}
_PEER = "spec.security.networkPolicy.from[0].podSelector"


def _peer(selector: dict[str, Any]) -> dict[str, Any]:
    return {"security": {"networkPolicy": {"from": [{"podSelector": selector}]}}}


def _toleration_spec(t: dict[str, Any]) -> dict[str, Any]:
    return {"placement": {"tolerations": [t]}}


HOLES: dict[str, tuple[dict[str, Any], str]] = {
    # PVC: spec.resources[storage] must be greater than zero
    "cache-size-zero": ({"cache": {"size": 0}}, "spec.cache.size"),
    "cache-size-zero-gi": ({"cache": {"size": "0Gi"}}, "spec.cache.size"),
    # container resources must be non-negative
    "memory-negative": ({"resources": {"gpu": {"count": 1}, "memory": -1}}, "spec.resources.memory"),
    "cpu-negative": ({"resources": {"gpu": {"count": 1}, "cpu": "-500m"}}, "spec.resources.cpu"),
    # resource.ParseQuantity: the exponent is a whole number (controller-gen's pattern took 1e1.5)
    "cache-size-fractional-exponent": ({"cache": {"size": "1e1.5"}}, "spec.cache.size"),
    "memory-fractional-exponent": (
        {"resources": {"gpu": {"count": 1}, "memory": "64E.5"}},
        "spec.resources.memory",
    ),
    # pod nodeSelector, PodMonitor/PrometheusRule metadata.labels: label syntax
    "node-selector-key": ({"placement": {"nodeSelector": {"gpu pool": "a"}}}, "spec.placement.nodeSelector"),
    "node-selector-value": ({"placement": {"nodeSelector": {"pool": "a b"}}}, "spec.placement.nodeSelector"),
    "pod-monitor-label-key": (
        {"monitoring": {"podMonitor": {"labels": {"-release": "x"}}}},
        "spec.monitoring.podMonitor.labels",
    ),
    "prometheus-rule-label-value": (
        {"monitoring": {"prometheusRule": {"labels": {"release": "x" * 64}}}},
        "spec.monitoring.prometheusRule.labels",
    ),
    # NetworkPolicy namespaceSelector kubernetes.io/metadata.name=<namespace>: a label value
    "monitoring-namespace": ({"monitoring": {"namespace": "Monitoring NS"}}, "spec.monitoring.namespace"),
    # PodMonitor interval, PrometheusRule for: the Prometheus Operator's (and PromQL's) duration
    "duration-out-of-order": (
        {"monitoring": {"podMonitor": {"interval": "30s1m"}}},
        "spec.monitoring.podMonitor.interval",
    ),
    "duration-repeated-unit": (
        {"monitoring": {"prometheusRule": {"for": "5m5m"}}},
        "spec.monitoring.prometheusRule.for",
    ),
    # pod priorityClassName, PVC storageClassName: DNS subdomains
    "priority-class-name": (
        {"placement": {"priorityClassName": "High_Priority"}},
        "spec.placement.priorityClassName",
    ),
    "storage-class-name": ({"cache": {"storageClassName": "Fast SSD"}}, "spec.cache.storageClassName"),
    "capture-storage-class-name": (
        {"gateway": {"capture": {"store": {"storageClassName": "Fast SSD"}}}},
        "spec.gateway.capture.store.storageClassName",
    ),
    # container image: no leading or trailing whitespace
    "download-image-space": ({"cache": {"download": {"image": " op:1.0.0"}}}, "spec.cache.download.image"),
    "evaluation-image-space": ({"evaluation": {**_EVAL, "image": "op:1.0.0 "}}, "spec.evaluation.image"),
    # whitespace the apiserver's regex engine (Go's RE2: \s is [\t\n\f\r ]) did not see and
    # pydantic's (Rust's: Unicode White_Space) did: admitted, then refused by the operator
    "evaluation-image-vertical-tab": ({"evaluation": {**_EVAL, "image": "\x0b"}}, "spec.evaluation.image"),
    "engine-image-no-break-space": ({"engine": {"image": "tgi\xa0x:3.3.7"}}, "spec.engine.image"),
    "schedule-vertical-tab": (
        {"evaluation": {**_EVAL, "schedule": "0\x0b3 * * *"}},
        "spec.evaluation.schedule",
    ),
    "sink-url-line-separator": (
        {"gateway": {"capture": {"sink": {"url": "https://sink.example/\u2028"}}}},
        "spec.gateway.capture.sink.url",
    ),
    # tolerations: the apiserver's rules between key, operator, value, effect and seconds
    "toleration-key": (_toleration_spec({"key": "a b", "value": "v"}), "spec.placement.tolerations[0].key"),
    "toleration-value": (
        _toleration_spec({"key": "k", "value": "a b"}),
        "spec.placement.tolerations[0].value",
    ),
    "toleration-exists-with-value": (
        _toleration_spec({"key": "k", "operator": "Exists", "value": "v"}),
        "spec.placement.tolerations[0].value",
    ),
    "toleration-no-key-equal": (
        _toleration_spec({"operator": "Equal", "value": "v"}),
        "spec.placement.tolerations[0].operator",
    ),
    "toleration-seconds-without-noexecute": (
        _toleration_spec({"key": "k", "value": "v", "effect": "NoSchedule", "tolerationSeconds": 5}),
        "spec.placement.tolerations[0].tolerationSeconds",
    ),
    # label selectors: keys, values, and values that fit the operator
    "selector-match-labels-key": (_peer({"matchLabels": {"a b": "x"}}), f"{_PEER}.matchLabels"),
    "selector-value": (
        _peer({"matchExpressions": [{"key": "a", "operator": "In", "values": ["a b"]}]}),
        f"{_PEER}.matchExpressions[0].values[0]",
    ),
    "selector-in-without-values": (
        _peer({"matchExpressions": [{"key": "a", "operator": "In"}]}),
        f"{_PEER}.matchExpressions[0].values",
    ),
    "selector-exists-with-values": (
        _peer({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
        f"{_PEER}.matchExpressions[0].values",
    ),
    # CronJob schedule: the controller's cron syntax, and no TZ= prefix
    "schedule-unparseable": ({"evaluation": {**_EVAL, "schedule": "x x x x x"}}, "spec.evaluation.schedule"),
    "schedule-time-zone": (
        {"evaluation": {**_EVAL, "schedule": "TZ=UTC 0 3 * * *"}},
        "spec.evaluation.schedule",
    ),
    # extended resource names are qualified names: the part after "/" is at most 63
    "gpu-resource-name": (
        {"resources": {"gpu": {"count": 1, "resourceName": "example.com/" + "g" * 64}}},
        "spec.resources.gpu.resourceName",
    ),
}


def with_hole(name: str) -> dict[str, Any]:
    """BASE with the hole ``name``'s section merged in."""
    section, _ = HOLES[name]
    spec = copy.deepcopy(BASE)
    for key, value in section.items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    return spec
