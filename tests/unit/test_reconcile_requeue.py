"""When a pass asks to be run again after writing.

A write changes what the next pass observes. When informers watch the written kinds, the
write comes back as a watch event that triggers that pass, so the pass asks for no requeue of
its own (a one-second requeue only added a pass that saw nothing new whenever the events took
longer than a second, as they do on a busy apiserver). Without informers, or for a write no
informer sees (a PodMonitor, a merge patch of the user's HTTPRoute), it looks again in a second.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pytest

from llmops.kube import Kube
from llmops.lifecycle.observations import MONITORING_API, Observations
from llmops.lifecycle.plan import Plan
from llmops.reconciler import RESYNC_SECONDS, Reconciler
from testkit.planning import body

NOW = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)


class _Kube(Kube):
    """The adapter in memory: nothing observed yet, every write recorded and answered as sent."""

    def __init__(self, use_informers: bool, apis: frozenset[str] = frozenset()) -> None:
        super().__init__(None, use_informers=use_informers)  # type: ignore[arg-type]
        self.body, self.apis = body(cache={"enabled": False}), apis

    def get_llmd(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.body

    def observe(self, namespace: str, name: str) -> Observations:
        return Observations(apis=self.apis)

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        self._write("apply", obj["kind"], obj["metadata"]["name"])
        return dict(obj)

    def create_if_absent(self, obj: Mapping[str, Any]) -> bool:
        self._write("create", obj["kind"], obj["metadata"]["name"])
        return True

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self._write("patch-status", "LLMDeployment", name)

    def event(
        self, owner: Mapping[str, Any], type_: str, reason: str, message: str, now: dt.datetime
    ) -> None:
        pass


def _first_pass(kube: _Kube) -> float | None:
    delay = Reconciler(kube, clock=lambda: NOW).reconcile("ns", "m")
    assert {kind for verb, kind, _ in kube.writes if verb == "apply"} >= {"Deployment", "Service"}
    return delay


def test_writes_that_informers_watch_wait_for_their_events() -> None:
    assert _first_pass(_Kube(use_informers=True)) == RESYNC_SECONDS


def test_without_informers_a_pass_that_wrote_looks_again_in_a_second() -> None:
    assert _first_pass(_Kube(use_informers=False)) == 1.0


@pytest.mark.parametrize("kind", ["PodMonitor", "PrometheusRule"])
def test_a_write_no_informer_sees_looks_again_in_a_second(kind: str) -> None:
    kube = _Kube(use_informers=True, apis=frozenset({MONITORING_API}))
    assert _first_pass(kube) == 1.0
    assert kind in {k for verb, k, _ in kube.writes if verb == "apply"}


class _Deleting(_Kube):
    def delete(self, kind: str, namespace: str, name: str) -> None:
        self._write("delete", kind, name)


@pytest.mark.parametrize(
    ("decided", "quiet"),
    [(Plan(), True), (Plan(delete=[("Job", "m-download-0123abcd")]), False)],
    ids=["nothing", "only-a-delete"],
)
def test_nothing_to_change_is_logged_only_when_the_pass_wrote_nothing(
    decided: Plan, quiet: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The scale test and users read `pass: nothing to change` as "this pass wrote nothing"; a pass
    whose only write was a delete (the previous revision's download Job, a pass after the promotion)
    said it too."""
    monkeypatch.setattr("llmops.reconciler.plan", lambda *_: decided)
    kube = _Deleting(use_informers=True)
    with caplog.at_level("INFO", logger="llmops.reconciler"):
        Reconciler(kube, clock=lambda: NOW).reconcile("ns", "m")
    assert ("ns/m: pass: nothing to change" in caplog.messages) is quiet
    assert [verb for verb, _, _ in kube.writes] == ([] if quiet else ["delete"])
