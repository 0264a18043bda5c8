"""The harness fails clearly and leaves nothing running.

These start their own (failing) clusters next to the session's, with the real binaries.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from llmops_dev.cluster import Cluster, ClusterError
from llmops_dev.cluster.build import REQUIRED, binaries
from llmops_dev.processes import is_ours


def _own_processes(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and is_ours(int(entry.name), marker):
            pids.append(int(entry.name))
    return pids


def test_port_in_use_is_named_and_nothing_starts(tmp_path: Path, cluster: Cluster) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ClusterError, match=rf"apiserver: port {port} on 127.0.0.1 is already in use"):
            Cluster.start(tmp_path / "state", ports={"apiserver": port})
    assert not _own_processes(str(tmp_path))


def test_component_that_fails_to_start_is_named_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: Cluster
) -> None:
    # A bin folder whose kube-apiserver dies at once; everything else is real.
    real = binaries()
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in REQUIRED:
        (fake / name).symlink_to(os.path.realpath(real / name))
    (fake / "kube-apiserver").unlink()
    broken = fake / "kube-apiserver"
    broken.write_text("#!/bin/sh\necho 'Error: invalid flag --etcd-servers for this test' >&2\nexit 3\n")
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("LLMOPS_BIN_DIR", str(fake))

    state = tmp_path / "state"
    with pytest.raises(ClusterError) as err:
        Cluster.start(state, deadline_s=20)
    msg = str(err.value)
    assert "kube-apiserver exited with code 3" in msg
    assert str(state / "logs" / "kube-apiserver.log") in msg
    assert "invalid flag --etcd-servers for this test" in msg
    # etcd had started first; it must have been stopped.
    assert not _own_processes(str(fake))
    assert not (state / "state.json").exists()


def test_missing_go_toolchain_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMOPS_BIN_DIR", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ClusterError, match=r"Go toolchain is missing: 'go' is not on PATH"):
        binaries()
