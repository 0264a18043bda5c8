"""Download progress in status while a revision is Caching (issue 10, point 8), end to end.

The simulated Hub serves a 60 MiB model that trickles out over 50 s; the download Job runs the
real ``llmops download`` (the real huggingface_hub client) in its pod on the fake kubelet, which
publishes the pod's progress port at its pod IP; the operator reads it there through the local
cluster's pod network (as it would in a cluster) into ``status.download``, the ModelCached and
Progressing messages and the Download column of ``kubectl get llmd``. The status must show
progress that increases before the revision is Cached, and drop it once it is.
"""

from __future__ import annotations

from typing import Any

from llmops_dev.cluster import Cluster
from testkit import wait_for
from testkit.operator import OperatorProcess, condition, configure_hub, llmd, sample

MODEL = "sim-org/progress-watched"
REV = "7" * 40
WEIGHTS = 60 * 1024 * 1024
TRICKLE_SECONDS = 50


def test_status_shows_the_download_increasing_until_cached(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    configure_hub(cluster, slow={MODEL: TRICKLE_SECONDS}, weights={MODEL: WEIGHTS})
    body = sample("big", REV)
    body = body.replace('"sim-org/tiny-chat"', f'"{MODEL}"')
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=body)

    readings: list[dict[str, Any]] = []
    columns: list[str] = []

    def cached() -> dict[str, Any] | None:
        obj = llmd(cluster, namespace, "big")
        status = obj.get("status") or {}
        download = status.get("download")
        if download and download.get("time") and (not readings or readings[-1] != download):
            readings.append(download)
            assert status["phase"] == "Caching"
            assert condition(obj, "ModelCached")["reason"] == "Downloading"
            assert download["progress"] in condition(obj, "ModelCached")["message"]
            assert download["progress"] in condition(obj, "Progressing")["message"]
            columns.append(cluster.kubectl("get", "llmd", "big", "-n", namespace, "--no-headers").stdout)
        return obj if condition(obj, "ModelCached").get("status") == "True" else None

    done = wait_for("the model cached, its progress followed", cached, TRICKLE_SECONDS + 90, 0.5)

    assert readings and all("error" not in r for r in readings), readings
    total = readings[-1]["bytesTotal"]
    seen = [r["bytesDone"] for r in readings]
    assert total and total > WEIGHTS, readings  # the whole snapshot: the weights and the small files
    assert seen == sorted(seen), f"progress went back: {seen}"
    between = sorted({b for b in seen if 0 < b < total})
    assert len(between) >= 2, f"fewer than two readings between nothing and everything: {readings}"
    # Before the Hub's file listing is read the totals are unknown ("starting"); then 3 files.
    assert all(r["revision"] == REV for r in readings), readings
    assert all(r["filesTotal"] == 3 for r in readings if r.get("bytesTotal")), readings
    assert any(r.get("bytesPerSecond") and r.get("etaSeconds") is not None for r in readings), readings
    # The Download column shows the same words as status.download.progress while Caching.
    shown = [line for r, line in zip(readings, columns, strict=True) if r["progress"] in line]
    assert shown, columns
    print(f"\nkubectl get llmd while Caching:\n{shown[len(shown) // 2]}")
    assert "download" not in (done.get("status") or {})
