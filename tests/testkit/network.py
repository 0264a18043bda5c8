"""Reaching Services and pod IPs of the local cluster from the test process, as a client in the
cluster would: through the fake kubelet's HTTP proxy."""

from __future__ import annotations

from typing import Any

import huggingface_hub
import pytest

from llmops_dev.kubelet.proxy import proxy_url

__all__ = ["NOT_PROXIED", "through_the_cluster"]

NOT_PROXIED = "127.0.0.1,localhost"
"""The host itself: the apiserver, Prometheus and the fake Hub are reached directly."""


def through_the_cluster(monkeypatch: pytest.MonkeyPatch, cluster: Any) -> str:
    """Send this test's HTTP requests (httpx2, huggingface_hub) to `*.svc.cluster.local` and pod
    IPs through the proxy, for the rest of the test; returns the proxy's URL.

    huggingface_hub keeps one HTTP client per process, made on its first request from the
    environment of that moment: made before HTTP_PROXY was set (by another test in the same
    process, say), it would try to resolve the Service's name itself. It is closed here, so the
    next request makes one that uses the proxy; it stays for the tests after, which reach the host
    directly all the same (NO_PROXY). Not closed after every test: a module's background traffic
    (test_prometheus_canary's) uses that client across its tests, and closing it under a read
    broke that traffic with EBADF."""
    url = proxy_url(cluster.state_dir)
    monkeypatch.setenv("HTTP_PROXY", url)
    monkeypatch.setenv("NO_PROXY", NOT_PROXIED)
    huggingface_hub.close_session()
    return url
