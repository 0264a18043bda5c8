"""Per-client API keys, read from a mounted Secret and reloaded when it changes.

The Secret has one data key per client: the key's name is the client's name, its value the
client's API key. Kubernetes mounts it as a folder with one file per client and swaps the
files atomically when the Secret changes; the gateway calls `reload` every second,
so a key added or revoked takes effect within seconds, without a restart.

Key values are compared with `hmac.compare_digest` against every key (no early exit), and never
leave this module: logs say how many clients there are, metrics carry the client's name.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from pathlib import Path

__all__ = ["KeyStore"]

log = logging.getLogger("llmops.gateway.keys")
_MAX_KEY_BYTES = 4096


def _read_keys(directory: Path) -> dict[str, bytes]:
    """client name → key, from the folder's files (the mount's ..data links are skipped)."""
    keys: dict[str, bytes] = {}
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return keys
    for path in entries:
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            value = path.read_bytes()[:_MAX_KEY_BYTES].strip()
        except OSError:
            continue
        if value:  # an empty value would match an empty bearer token
            keys[path.name] = value
    return keys


class KeyStore:
    """The current client keys: from `directory` (None: no Secret) plus fixed `extra` keys."""

    def __init__(self, directory: Path | None, extra: Mapping[str, bytes] | None = None) -> None:
        self.directory = directory
        self._extra = dict(extra or {})
        self._keys: tuple[tuple[str, bytes], ...] = ()
        self.reload()

    @property
    def clients(self) -> list[str]:
        """Names of the clients with a key."""
        return [name for name, _ in self._keys]

    def reload(self) -> bool:
        """Read the folder again; True when the keys changed."""
        found = _read_keys(self.directory) if self.directory is not None else {}
        keys = tuple(sorted({**found, **self._extra}.items()))
        if keys == self._keys:
            return False
        self._keys = keys
        log.info("API keys loaded: %d clients", len(keys))
        return True

    def client_for(self, presented: str | None) -> str | None:
        """The client whose key is `presented`, or None. Compares against every key."""
        if not presented:
            return None
        given = presented.encode()
        match: str | None = None
        for name, key in self._keys:
            if hmac.compare_digest(given, key):
                match = name
        return match
