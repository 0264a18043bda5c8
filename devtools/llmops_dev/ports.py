"""Loopback ports for the servers the fake kubelet starts, out of the kernel's way.

``free_port()`` asks the kernel for a port (bind to 0) and closes it; the server that is meant to
listen there binds it a moment later. The kernel hands out the same range, the ephemeral range,
for every outgoing connection too, and nothing stops it from choosing that port for a kubectl or
a Prometheus scrape in between: the server then fails with EADDRINUSE. The fake kubelet keeps a
pod's host ports for the pod's life, so the restarted container fails the same way, again and
again, while the connection that took its port lives (a scrape's keep-alive connection does).

A ``PortRange`` hands out ports from below the ephemeral range, which the kernel never assigns
on its own: only a server that binds one explicitly can take it, and that is seen by the check
made before handing it out. Walking from a random start keeps two kubelets (two clusters on one
machine) apart, and a port handed out recently is not handed out again while its server starts.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

from llmops_dev.processes import port_in_use

__all__ = ["PortRange", "ephemeral_floor"]

LOWEST = 20000
"""The lowest port handed out: above the well-known and most registered service ports."""
HELD_SECONDS = 300.0
"""How long a handed-out port stays reserved for the server it was given to, bound or not."""
_PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_floor(path: Path = _PORT_RANGE_FILE) -> int:
    """The first port of the kernel's ephemeral range (Linux's default, 32768, when unreadable)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


class PortRange:
    """Ports in ``[low, high)`` not bound by anyone and not handed out in the last ``held`` seconds."""

    def __init__(
        self,
        low: int = LOWEST,
        high: int | None = None,
        *,
        held: float = HELD_SECONDS,
        in_use: Callable[[int], bool] = port_in_use,
        clock: Callable[[], float] = time.monotonic,
        start: int | None = None,
    ) -> None:
        self.low, self.high = low, high if high is not None else ephemeral_floor()
        if self.high <= self.low:
            raise ValueError(f"empty port range [{self.low}, {self.high})")
        self._held, self._in_use, self._clock = held, in_use, clock
        self._next = start if start is not None else random.randrange(self.low, self.high)
        self._given: dict[int, float] = {}
        self._lock = threading.Lock()

    def take(self) -> int:
        """The next port that is free and not recently handed out."""
        with self._lock:
            now = self._clock()
            self._given = {p: t for p, t in self._given.items() if now - t < self._held}
            for _ in range(self.high - self.low):
                port, self._next = self._next, self._next + 1 if self._next + 1 < self.high else self.low
                if port not in self._given and not self._in_use(port):
                    self._given[port] = now
                    return port
        raise RuntimeError(f"no free loopback port in [{self.low}, {self.high})")
