"""Drift detection from managedFields: a field of our manifest that our manager no longer owns."""

from __future__ import annotations

from typing import Any

from llmops.lifecycle.ownership import drifted_fields, manifest_paths

SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "chat", "namespace": "ns", "labels": {"app": "chat"}},
    "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
}
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "chat-stable", "namespace": "ns"},
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "tgi",
                        "args": ["--port", "80"],
                        "env": [{"name": "MODEL_ID", "value": "m"}],
                        "ports": [{"name": "http", "containerPort": 80}],
                    }
                ],
                "volumes": [{"name": "cache", "emptyDir": {}}],
            }
        },
    },
}
# What the apiserver records for an apply of SERVICE / DEPLOYMENT (keys defaulted, "." markers).
SERVICE_FIELDS = {
    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
    "f:spec": {
        "f:ports": {
            'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:name": {}, "f:port": {}, "f:targetPort": {}}
        },
        "f:type": {},
    },
}
CONTAINER = {
    ".": {},
    "f:args": {},
    "f:env": {'k:{"name":"MODEL_ID"}': {".": {}, "f:name": {}, "f:value": {}}},
    "f:name": {},
    "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}, "f:name": {}}},
}
DEPLOYMENT_FIELDS = {
    "f:spec": {
        "f:replicas": {},
        "f:template": {
            "f:spec": {
                "f:containers": {'k:{"name":"tgi"}': CONTAINER},
                "f:volumes": {'k:{"name":"cache"}': {".": {}, "f:emptyDir": {}, "f:name": {}}},
            }
        },
    }
}


def _observed(obj: dict[str, Any], *entries: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    managed = [{"manager": m, "operation": "Apply", "fieldsV1": f} for m, f in entries]
    managed.append(
        {"manager": "kube-controller-manager", "subresource": "status", "fieldsV1": {"f:status": {}}}
    )
    return {**obj, "metadata": {**obj["metadata"], "managedFields": managed}}


def test_paths_follow_the_fieldsv1_notation() -> None:
    assert sorted(manifest_paths(SERVICE)) == [
        ("f:metadata", "f:labels", "f:app"),
        ("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}', "f:name"),
        ("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}', "f:port"),
        ("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}', "f:targetPort"),
        ("f:spec", "f:type"),
    ]


def test_an_untouched_child_has_no_drift() -> None:
    assert drifted_fields(SERVICE, _observed(SERVICE, ("llmops", SERVICE_FIELDS))) == []
    assert drifted_fields(DEPLOYMENT, _observed(DEPLOYMENT, ("llmops", DEPLOYMENT_FIELDS))) == []


def test_fields_taken_by_another_manager_are_drift() -> None:
    ours = {"f:spec": {k: v for k, v in DEPLOYMENT_FIELDS["f:spec"].items() if k != "f:replicas"}}
    observed = _observed(DEPLOYMENT, ("llmops", ours), ("kubectl", {"f:spec": {"f:replicas": {}}}))
    assert drifted_fields(DEPLOYMENT, observed) == ["spec.replicas"]


def test_a_renumbered_key_is_drift() -> None:
    # Another manager changed port 80 to 8081: our item is gone from our entry, theirs is new.
    renumbered = {"f:metadata": SERVICE_FIELDS["f:metadata"], "f:spec": {"f:type": {}}}
    theirs = {"f:spec": {"f:ports": {'k:{"port":8081,"protocol":"TCP"}': {".": {}, "f:port": {}}}}}
    observed = _observed(SERVICE, ("llmops", renumbered), ("intruder", theirs))
    assert len(drifted_fields(SERVICE, observed)) == 3


def test_a_list_treated_as_atomic_by_either_side_is_owned() -> None:
    # The server keyed a list we treat as atomic (or the reverse): ownership above or below counts.
    atomic_volumes = {"f:spec": {**DEPLOYMENT_FIELDS["f:spec"]}}
    atomic_volumes["f:spec"]["f:template"] = {
        "f:spec": {**DEPLOYMENT_FIELDS["f:spec"]["f:template"]["f:spec"], "f:volumes": {}}
    }
    assert drifted_fields(DEPLOYMENT, _observed(DEPLOYMENT, ("llmops", atomic_volumes))) == []


def test_nothing_to_compare_without_managed_fields() -> None:
    assert drifted_fields(SERVICE, SERVICE) == []
    assert drifted_fields(SERVICE, None) == []


def test_a_key_the_server_defaulted_differently_still_matches() -> None:
    # Our key leaves protocol out (defaulted to TCP); the server's names it: the same item.
    fields = {
        "f:spec": {"f:ports": {'k:{"protocol":"TCP","port":80}': {".": {}, "f:port": {}, "f:name": {}}}}
    }
    fields["f:spec"]["f:ports"]['k:{"protocol":"TCP","port":80}']["f:targetPort"] = {}
    fields["f:spec"]["f:type"] = {}
    fields["f:metadata"] = SERVICE_FIELDS["f:metadata"]
    assert drifted_fields(SERVICE, _observed(SERVICE, ("llmops", fields))) == []


def test_the_remembered_answer_follows_our_fields_not_only_the_manifest() -> None:
    """With a content key (the plan's applied hash), the answer is remembered by manifest and by
    the fields we own: an edit that takes a field away is seen at once, and an answer is the same
    with the memo as without it."""
    untouched = _observed(DEPLOYMENT, ("llmops", DEPLOYMENT_FIELDS))
    ours = {"f:spec": {k: v for k, v in DEPLOYMENT_FIELDS["f:spec"].items() if k != "f:replicas"}}
    edited = _observed(DEPLOYMENT, ("llmops", ours), ("kubectl", {"f:spec": {"f:replicas": {}}}))
    for _ in range(2):  # the second round answers from the memo
        assert (
            drifted_fields(DEPLOYMENT, untouched, "digest-1") == drifted_fields(DEPLOYMENT, untouched) == []
        )
        assert drifted_fields(DEPLOYMENT, edited, "digest-1") == drifted_fields(DEPLOYMENT, edited)
        assert drifted_fields(DEPLOYMENT, edited, "digest-1") == ["spec.replicas"]
