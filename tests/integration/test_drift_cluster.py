"""Drift detection in the cluster: the operator process, a real Prometheus scraping the TGI
simulators the fake kubelet runs, traffic through the Service. The statistics themselves are
covered against real Prometheus without the cluster (test_prometheus_drift.py); this is the one
scenario for what a user sees: status.drift, the Drifted condition and its Event, on each engine
(the `engine` fixture: TGI's linear token buckets, vLLM's 1-2-5 ones)."""

from __future__ import annotations

import hashlib

from llmops_dev.cluster import Cluster
from llmops_dev.loadgen import Traffic
from testkit.operator import OperatorProcess, on_engine, sample, set_behaviour, wait_condition, wait_event

DRIFT = {
    "interval": "3s",
    "window": "10s",
    "traffic": {"signals": ["inputLength"], "minSamples": 150, "psi": 0.2, "ks": 0.2},
}


def test_longer_prompts_turn_drifted_true_with_the_numbers_and_an_event(
    cluster: Cluster, namespace: str, operator: OperatorProcess, engine: str
) -> None:
    assert cluster.state_dir is not None
    rev = hashlib.sha1(f"drift-a-{engine}".encode()).hexdigest()
    set_behaviour(cluster, rev)
    monitoring = {"podMonitor": {"interval": "1s"}}
    body = sample("drifty", rev, drift=DRIFT, monitoring=monitoring, **on_engine(engine))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=body)
    wait_condition(cluster, namespace, "drifty", "Available", "True", timeout=120)
    prompts = Traffic(cluster.state_dir, namespace, "drifty", rate=100, prompt_words=(20, 120), engine=engine)
    with prompts as traffic:
        calm = wait_condition(cluster, namespace, "drifty", "Drifted", "False", "NoDrift", timeout=120)
        reference = calm["status"]["drift"]["reference"]
        assert reference["revision"] == rev and reference["histograms"][0]["signal"] == "inputLength"
        traffic.prompt_words = (300, 500)
        obj = wait_condition(cluster, namespace, "drifty", "Drifted", "True", "DriftDetected", timeout=60)
    [signal] = obj["status"]["drift"]["signals"]
    assert signal["verdict"] == "Drifted" and (signal["value"] >= 0.2 or signal["ks"] >= 0.2), signal
    assert signal["samples"] >= 150 and signal["current"] and signal["reference"]
    drifted = next(x for x in obj["status"]["conditions"] if x["type"] == "Drifted")
    assert drifted["message"].startswith("inputLength: PSI "), drifted
    assert any(h["action"] == "DriftDetected" for h in obj["status"]["history"])
    wait_event(cluster, namespace, "drifty", "DriftDetected", "Warning")
