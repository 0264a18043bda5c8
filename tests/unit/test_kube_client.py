"""The API client's connection pool: room for every watch the informers hold, plus the passes'
requests, so that neither opens and drops a TLS connection per request."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.kube import API_CONCURRENCY, INFORMED_KINDS, load_client

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


@pytest.mark.parametrize("scopes", [1, 3])
def test_the_pool_keeps_a_connection_per_watch_of_every_scope(tmp_path: Path, scopes: int) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG)
    client = load_client(str(config), watch_scopes=scopes)
    watches = len(INFORMED_KINDS) * scopes
    assert client.configuration.connection_pool_maxsize == 2 * API_CONCURRENCY + watches
    assert client.user_agent == "llmops-operator"
