"""Errors in a pass are visible and retried with a bounded, growing backoff; only the API and
the network count as transient, never a bug in our own code."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from llmops.kube import ApiError, Kube
from llmops.lifecycle.diagnose import spec_field_behind
from llmops.lifecycle.observations import Observations
from llmops.reconciler import Reconciler, backoff

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BODY: dict[str, Any] = {
    "apiVersion": "llmops.io/v1alpha1",
    "kind": "LLMDeployment",
    "metadata": {"name": "chat", "namespace": "ns", "generation": 3, "uid": "u1"},
    "spec": {},
    "status": {"conditions": [{"type": "Available", "status": "True", "reason": "X", "message": ""}]},
}


class _Client:
    """An ApiClient whose request fails the way the test says (no network involved)."""

    def __init__(self, serialize_error: Exception | None = None, call_error: Exception | None = None) -> None:
        self.serialize_error, self.call_error = serialize_error, call_error

    def param_serialize(self, method: str, path: str, **_: Any) -> tuple[Any, ...]:
        if self.serialize_error:
            raise self.serialize_error
        return method, path, {}, None, None

    def call_api(self, *_: Any, **__: Any) -> Any:
        assert self.call_error is not None
        raise self.call_error


@pytest.mark.parametrize(
    "error",
    [
        urllib3.exceptions.MaxRetryError(None, "/x", reason=None),
        urllib3.exceptions.ReadTimeoutError(None, "/x", "read timed out"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
    ids=["max-retries", "timeout", "refused"],
)
def test_network_failures_are_transient_api_errors(error: Exception) -> None:
    kube = Kube(_Client(call_error=error))  # type: ignore[arg-type]
    with pytest.raises(ApiError) as caught:
        kube.get_llmd("ns", "chat")
    assert caught.value.status == 0 and caught.value.transient


def test_a_retry_after_response_keeps_its_status() -> None:
    kube = Kube(_Client(call_error=ApiException(status=429, reason="Too Many Requests")))  # type: ignore[arg-type]
    with pytest.raises(ApiError) as caught:
        kube.get_llmd("ns", "chat")
    assert caught.value.status == 429 and caught.value.transient


@pytest.mark.parametrize("error", [TypeError("bad body"), KeyError("kind"), ValueError("bad value")])
def test_programming_errors_are_not_turned_into_api_errors(error: Exception) -> None:
    kube = Kube(_Client(serialize_error=error))  # type: ignore[arg-type]
    with pytest.raises(type(error)):
        kube.get_llmd("ns", "chat")


def test_a_request_the_client_cannot_build_is_not_transient() -> None:
    bad = ApiException(status=0, reason="Cannot prepare a request message for provided arguments.")
    kube = Kube(_Client(call_error=bad))  # type: ignore[arg-type]
    with pytest.raises(ApiException):
        kube.get_llmd("ns", "chat")


def test_backoff_grows_and_is_bounded() -> None:
    delays = [backoff(n) for n in range(1, 20)]
    assert delays == sorted(delays)
    assert delays[0] == 1.0 and delays[-1] == 60.0 and len(set(delays)) > 3


class _Kube(Kube):
    """The adapter with its reads and writes kept in memory; ``observe`` fails as told."""

    def __init__(self, failure: Exception) -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self.failure = failure
        self.body = {**BODY, "status": dict(BODY["status"])}
        self.events: list[tuple[str, str, str]] = []

    def get_llmd(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.body

    def observe(self, namespace: str, name: str) -> Observations:
        raise self.failure

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self._write("patch-status", "LLMDeployment", name)
        self.body["status"] = {**self.body["status"], **status}

    def event(
        self, owner: Mapping[str, Any], type_: str, reason: str, message: str, now: dt.datetime
    ) -> None:
        self.events.append((type_, reason, message))


def _progressing(kube: _Kube) -> dict[str, Any]:
    return next(c for c in kube.body["status"]["conditions"] if c["type"] == "Progressing")


@pytest.mark.parametrize(
    ("failure", "words"),
    [
        (KeyError("metadata"), "internal error KeyError: 'metadata'"),
        (
            ApiError(403, 'apply Service chat: services "chat" is forbidden: exceeded quota'),
            "apply Service chat",
        ),
        (ApiError(503, "etcdserver: leader changed"), "etcdserver: leader changed"),
    ],
    ids=["bug", "forbidden", "transient"],
)
async def test_every_failed_pass_is_a_condition_with_a_growing_backoff(
    failure: Exception, words: str
) -> None:
    kube = _Kube(failure)
    reconciler = Reconciler(kube, clock=lambda: NOW)
    delays = [await reconciler(("ns", "chat")) for _ in range(4)]
    assert delays == [1.0, 2.0, 5.0, 10.0]
    cond = _progressing(kube)
    assert (cond["status"], cond["reason"], cond["observedGeneration"]) == ("Unknown", "ReconcileError", 3)
    assert words in cond["message"]
    assert "retried with a growing backoff, at most 60s apart" in cond["message"]
    # One status write per streak: every write is a watch event that starts a pass within a moment, so a
    # message that changed with each attempt (a count, the next delay) retried in a hot loop.
    assert [w for w in kube.writes if w[0] == "patch-status"] == [("patch-status", "LLMDeployment", "chat")]
    # One Warning Event per streak of failures, not one per retry.
    assert [(t, r) for t, r, _ in kube.events] == [("Warning", "ReconcileError")]
    assert words in kube.events[0][2]
    # The other conditions are left as they were.
    assert any(c["type"] == "Available" and c["status"] == "True" for c in kube.body["status"]["conditions"])


async def test_a_child_the_apiserver_refuses_as_invalid_names_the_spec_field_to_fix() -> None:
    refused = ApiError(
        422,
        'apply Job chat-download-1: Job.batch "chat-download-1" is invalid: spec.template.spec.affinity.'
        "nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: Required value",
    )
    kube = _Kube(refused)
    await Reconciler(kube, clock=lambda: NOW)(("ns", "chat"))
    cond = _progressing(kube)
    assert (cond["status"], cond["reason"]) == ("Unknown", "ChildRefused")
    assert "nodeSelectorTerms: Required value" in cond["message"]
    assert "fix spec.placement.affinity" in cond["message"]
    assert [(t, r) for t, r, _ in kube.events] == [("Warning", "ChildRefused")]


@pytest.mark.parametrize(
    ("child_path", "spec_field"),
    [
        ("spec.template.spec.affinity.podAffinity", "spec.placement.affinity"),
        ("spec.template.spec.nodeSelector", "spec.placement.nodeSelector"),
        ("spec.template.spec.tolerations[0].key", "spec.placement.tolerations"),
        ("spec.template.spec.priorityClassName", "spec.placement.priorityClassName"),
        ("spec.template.spec.containers[0].env[3].name", "spec.engine.env"),
        ("spec.template.spec.containers[0].resources.limits", "spec.resources"),
        ("spec.schedule", "spec.evaluation.schedule"),
    ],
)
def test_the_spec_field_behind_a_refused_child_field(child_path: str, spec_field: str) -> None:
    assert (
        spec_field_behind(f'Deployment.apps "x" is invalid: {child_path}: Invalid value: "y"') == spec_field
    )


def test_a_refused_child_field_with_no_spec_field_behind_it_gives_no_hint() -> None:
    assert spec_field_behind('Service "x" is invalid: metadata.name: Invalid value') is None


async def test_a_success_resets_the_backoff() -> None:
    kube = _Kube(KeyError("x"))
    reconciler = Reconciler(kube, clock=lambda: NOW)
    await reconciler(("ns", "chat"))
    await reconciler(("ns", "chat"))
    kube.body = None  # type: ignore[assignment]  # the object is gone: the pass succeeds with nothing to do
    assert await reconciler(("ns", "chat")) is None
    kube.body = {**BODY, "status": dict(BODY["status"])}
    assert await reconciler(("ns", "chat")) == 1.0


async def test_an_llmdeployment_deleted_during_a_failed_pass_is_not_reported_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A namespace being deleted refuses the pass's writes (403), then its LLMDeployment goes:
    the status write of the report finds nothing (404), which is the end of it, not an error."""

    class _Gone(_Kube):
        def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
            raise ApiError(404, 'llmdeployments.llmops.io "chat" not found')

    kube = _Gone(ApiError(403, "unable to create new content in namespace ns because it is being terminated"))
    with caplog.at_level("INFO", logger="llmops.reconciler"):
        await Reconciler(kube, clock=lambda: NOW)(("ns", "chat"))
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert any("gone before its error could be reported" in r.getMessage() for r in caplog.records)
