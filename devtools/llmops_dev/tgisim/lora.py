"""LoRA adapters as TGI serves them (LORA_ADAPTERS / --lora-adapters), for the simulator.

TGI's launcher passes LORA_ADAPTERS to the server, which parses it as comma-separated entries
``id``, ``id=path`` or ``id@revision`` (text_generation_server/utils/adapter.py,
parse_lora_adapters: more than one ``=`` or ``@`` in an entry is "Invalid LoRA adapter format"),
loads each at startup (a path that is not there fails the shard, so the server never comes up)
and numbers them from 1; index 0 is the base model. A request picks one by
``parameters.adapter_id``, or on the OpenAI routes by ``model`` unless it is "tgi"
(router/src/server.rs). The router does not check the id: an id that was not loaded gets index 0,
the base model (``ADAPTER_TO_INDEX.get(adapter_id, 0)`` in flash_causal_lm.py), without an error.

In the simulator an adapter changes what is answered: its behaviour is ``DIR/adapter-<id>.json``
in the behaviour folder (else the base model's), so a test can tell base from base + adapter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LoraAdapter", "LoraError", "adapter_behaviour_file", "check_paths", "parse_lora_adapters"]

_ENTRY = re.compile(r"^([^=@]+)(?:=([^@]+))?(?:@(.+))?$")


class LoraError(ValueError):
    """LORA_ADAPTERS cannot be served (TGI fails at startup the same way)."""


@dataclass(frozen=True)
class LoraAdapter:
    """One entry of LORA_ADAPTERS."""

    id: str
    path: str | None = None
    revision: str | None = None


def parse_lora_adapters(value: str | None) -> tuple[LoraAdapter, ...]:
    """The adapters of a LORA_ADAPTERS value, as TGI parses it; LoraError for a bad entry."""
    if not value:
        return ()
    adapters = []
    for raw in value.split(","):
        entry = raw.strip()
        match = _ENTRY.match(entry)
        if entry.count("=") > 1 or entry.count("@") > 1 or match is None:
            raise LoraError(f"Invalid LoRA adapter format: {entry}")
        adapter_id, path, revision = match.groups()
        adapters.append(LoraAdapter(adapter_id, path, revision))
    return tuple(adapters)


def check_paths(adapters: tuple[LoraAdapter, ...]) -> None:
    """TGI loads every adapter at startup: a local path that does not exist stops the server."""
    for adapter in adapters:
        if adapter.path is not None and not Path(adapter.path).is_dir():
            raise LoraError(f"Loading adapter {adapter.id} failed: {adapter.path} is not a directory")


def adapter_behaviour_file(directory: Path, adapter_id: str) -> Path:
    """Where an adapter's behaviour is read from, in the behaviour folder (ids may hold slashes)."""
    return directory / f"adapter-{adapter_id.replace('/', '_')}.json"
