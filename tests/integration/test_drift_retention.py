"""A drift window further back than Prometheus keeps samples, against a real Prometheus (Debian's)
started with ``--storage.tsdb.retention.time=2m`` (testkit.drift_rig, no cluster): the operator
reads the retention from ``/api/v1/status/runtimeinfo`` through its cache, and Drifted is Unknown
with reason BeyondRetention, naming the field, with nothing queried, until the spec fits; then
the windows are measured again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmops.api import conditions as c
from llmops.prom import RetentionCache
from testkit import wait_for
from testkit.drift_rig import drift_rig

TRAFFIC: dict[str, Any] = {"signals": ["inputLength"], "minSamples": 20}
OFFSET = {"mode": "Offset", "offset": "5m"}
DRIFT = {"interval": "1s", "window": "10s", "traffic": {**TRAFFIC, "reference": OFFSET}}


def test_windows_beyond_prometheus_retention_are_unknown_naming_the_field(tmp_path: Path) -> None:
    with drift_rig(tmp_path, DRIFT, rate=10, prompt_words=(20, 40), retention="2m") as rig:
        cache = RetentionCache()
        rig.retention = cache.get(rig.prometheus.url)
        assert rig.retention == 120.0  # runtimeinfo's storageRetention "2m"

        p = rig.check()
        assert p is not None
        drifted = rig.drifted()
        assert (drifted["status"], drifted["reason"]) == (c.UNKNOWN, c.BEYOND_RETENTION)
        assert drifted["message"].startswith(
            "spec.drift.traffic.reference.offset (5m) plus spec.drift.window (10s) reach 5m10s back, "
            "further than Prometheus keeps 2m (its storage retention"
        ), drifted["message"]

        rig.spec(window="3m", traffic=TRAFFIC)  # Promotion reference: the window itself is too long
        rig.check()
        drifted = rig.drifted()
        assert (drifted["status"], drifted["reason"]) == (c.UNKNOWN, c.BEYOND_RETENTION)
        assert drifted["message"].startswith(
            "spec.drift.window (3m) reaches further back than Prometheus keeps 2m"
        )

        # Within the retention: measured again (an Offset reference 20 s back, which Prometheus holds).
        rig.spec(window="10s", traffic={**TRAFFIC, "reference": {"mode": "Offset", "offset": "20s"}})

        def measured() -> bool:
            p = rig.check()
            signals = (p.status.get("drift") or {}).get("signals") if p else None
            return bool(signals) and rig.drifted()["reason"] != c.BEYOND_RETENTION

        wait_for("a measured check", measured, timeout=60, interval=0.5)
        for _ in range(100):
            cache.get(rig.prometheus.url)
        assert cache.reads == 1  # one runtimeinfo read, however many passes
