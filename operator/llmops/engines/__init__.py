"""Inference engines behind one interface (base.Engine), and the registry that picks one by name.

TGI (tgi.py) and vLLM (vllm.py); another engine is a new module plus one registry entry.
"""

from llmops.engines.base import (
    CONTAINER_NAME,
    DATA_DIR,
    PORT_NAME,
    TEMPLATES,
    Engine,
    Metrics,
    Routes,
    alert_rules,
    matchers,
    selector,
)
from llmops.engines.tgi import TGI
from llmops.engines.vllm import VLLM

_ENGINES: dict[str, Engine] = {"tgi": TGI(), "vllm": VLLM()}


def get_engine(name: str) -> Engine:
    """The engine for spec.engine.type. Raises KeyError naming the known engines."""
    try:
        return _ENGINES[name]
    except KeyError:
        raise KeyError(f"unknown engine {name!r}; known: {', '.join(sorted(_ENGINES))}") from None


def engine_names() -> tuple[str, ...]:
    """Names of the registered engines."""
    return tuple(sorted(_ENGINES))


__all__ = [
    "CONTAINER_NAME",
    "DATA_DIR",
    "PORT_NAME",
    "TEMPLATES",
    "TGI",
    "VLLM",
    "Engine",
    "Metrics",
    "Routes",
    "alert_rules",
    "engine_names",
    "get_engine",
    "matchers",
    "selector",
]
