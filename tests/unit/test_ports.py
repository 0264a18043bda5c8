"""The fake kubelet's host ports come from below the kernel's ephemeral range (llmops_dev.ports)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from llmops_dev.ports import PortRange, ephemeral_floor


def test_ports_are_below_the_ephemeral_range_so_no_outgoing_connection_can_take_one() -> None:
    ports = PortRange()
    taken = [ports.take() for _ in range(50)]
    assert all(20000 <= p < ephemeral_floor() for p in taken)
    assert len(set(taken)) == 50


def test_a_port_bound_by_someone_else_is_skipped() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        bound = s.getsockname()[1]
        # The ports after it may be taken by others too (the kernel hands them out): any but it.
        port = PortRange(bound, bound + 50, start=bound).take()
        assert bound < port < bound + 50


def test_a_port_handed_out_is_not_handed_out_again_until_its_hold_ends() -> None:
    now = [0.0]
    ports = PortRange(40000, 40002, held=60, in_use=lambda port: False, clock=lambda: now[0], start=40000)
    assert (ports.take(), ports.take()) == (40000, 40001)
    with pytest.raises(RuntimeError, match=r"no free loopback port in \[40000, 40002\)"):
        ports.take()
    now[0] = 61
    assert ports.take() == 40000


def test_the_floor_is_read_from_the_kernel_and_defaults_to_linuxs(tmp_path: Path) -> None:
    (tmp_path / "range").write_text("40000\t60999\n")
    assert ephemeral_floor(tmp_path / "range") == 40000
    assert ephemeral_floor(tmp_path / "missing") == 32768
    with pytest.raises(ValueError, match="empty port range"):
        PortRange(30000, 30000)
