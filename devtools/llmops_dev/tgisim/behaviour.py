"""What the TGI simulator answers and how it misbehaves: the `Behaviour` and its sources.

A `Behaviour` is plain JSON-serialisable data (answers, accuracy, latency, error rate, health).
`AnswerBook` compiles it into answers: for a prompt with a known reference the simulator answers
the reference for a deterministic fraction `accuracy` of the known prompts (ranked by a stable
hash, never by chance) and a wrong answer for the rest. `Dice` turns latency jitter and the
error rate into deterministic sequences. `BehaviourWatcher` re-reads a behaviour file (or, per
model revision, `DIR/<revision>.json` else `DIR/default.json`) whenever it changes on disk.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ERROR_KINDS",
    "AnswerBook",
    "Behaviour",
    "BehaviourWatcher",
    "Dice",
    "last_user_text",
    "load_dataset",
    "merge_patch",
    "message_text",
    "prompt_key",
]

log = logging.getLogger(__name__)

ERROR_KINDS = ("overloaded", "generation")
"""Simulated failures: 429 overloaded (as TGI past MAX_CONCURRENT_REQUESTS) or 424 generation."""

# Candidates for the wrong answer, tried in order: the first that neither contains nor is
# contained in any reference wins, so that no lenient scorer (exact, contains, first letter of a
# multiple-choice answer) can count a wrong answer as right.
_WRONG_CANDIDATES = ("Zzyzx.", "Qwxv jjj.", "Xyzzy plugh.")


@dataclass(frozen=True)
class Behaviour:
    """How a simulated TGI server behaves. Frozen: change it with `dataclasses.replace`."""

    answers: Mapping[str, str | list[str]] = field(default_factory=dict)
    """Prompt text (a raw prompt, or the last user message of a chat) → reference answer(s)."""
    dataset: str | None = None
    """A JSONL file with `prompt` or `messages` and `reference` or `references` per line; relative
    paths are resolved against the behaviour file's folder. `answers` override its entries."""
    accuracy: float = 1.0
    """Fraction of the known prompts answered with their reference; the rest get a wrong answer."""
    default_answer: str = "This is a simulated answer from the TGI simulator."
    """The answer to prompts with no known reference."""
    wrong_answer: str | None = None
    """The wrong answer; by default one chosen to match no reference."""
    seed: int = 0
    """Salts which prompts are answered right and seeds the latency jitter."""
    latency_seconds: float = 0.0
    """Mean time before the first token (prefill)."""
    jitter_seconds: float = 0.0
    """Half-width of the uniform jitter added to `latency_seconds` (deterministic given `seed`)."""
    time_per_token_seconds: float = 0.0
    """Time per generated token after the first."""
    error_rate: float = 0.0
    """Exact fraction of generation requests that fail, spread evenly over arrival order."""
    error_kind: str = "overloaded"
    """Which failure: `overloaded` (429) or `generation` (424)."""
    healthy: bool = True
    """False makes /health answer 503."""
    startup_delay_seconds: float = 0.0
    """/health answers 503 until this long after the server started (model loading, warmup)."""

    def __post_init__(self) -> None:
        for name in ("accuracy", "error_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        for name in ("latency_seconds", "jitter_seconds", "time_per_token_seconds", "startup_delay_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.error_kind not in ERROR_KINDS:
            raise ValueError(f"error_kind must be one of {ERROR_KINDS}, got {self.error_kind!r}")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["answers"] = dict(self.answers)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Behaviour:
        """Build from JSON data; unknown keys and wrong types raise ValueError."""
        if not isinstance(data, Mapping):
            raise ValueError("a behaviour must be a JSON object")
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                kwargs[f.name] = _checked(f.name, data[f.name])
        unknown = sorted(set(data) - set(kwargs))
        if unknown:
            raise ValueError(f"unknown behaviour fields: {', '.join(unknown)}")
        return cls(**kwargs)

    def merged(self, patch: Mapping[str, Any]) -> Behaviour:
        """This behaviour with a JSON merge patch (RFC 7386) applied; `null` resets a field."""
        return Behaviour.from_dict(merge_patch(self.to_dict(), patch, drop=_defaults()))


def _defaults() -> dict[str, Any]:
    return Behaviour().to_dict()


def merge_patch(target: dict[str, Any], patch: Mapping[str, Any], drop: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge of `patch` into `target`; a top-level null restores `drop[key]`."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            if key in drop:
                out[key] = drop[key]
            else:
                out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {k: v for k, v in {**out[key], **value}.items() if v is not None}
        else:
            out[key] = value
    return out


def _checked(name: str, value: Any) -> Any:
    if name == "answers":
        ok = isinstance(value, Mapping) and all(
            isinstance(k, str) and (isinstance(v, str) or _is_str_list(v)) for k, v in value.items()
        )
        if not ok:
            raise ValueError("answers must map prompt strings to a reference string or list of strings")
        return dict(value)
    if name in ("dataset", "wrong_answer"):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a string or null")
        return value
    if name in ("default_answer", "error_kind"):
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string")
        return value
    if name == "healthy":
        if not isinstance(value, bool):
            raise ValueError("healthy must be a boolean")
        return value
    if name == "seed":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("seed must be an integer")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    return float(value)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def prompt_key(text: str) -> str:
    """How prompts are matched: surrounding whitespace does not count."""
    return text.strip()


def last_user_text(messages: list[Any]) -> str | None:
    """The text of the last user message of an OpenAI-style message list, if any."""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return message_text(message.get("content"))
    return None


def message_text(content: Any) -> str:
    """A message's text: a string, or the text chunks of a chunk list joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            c["text"]
            for c in content
            if isinstance(c, Mapping) and c.get("type") == "text" and isinstance(c.get("text"), str)
        )
    return ""


def load_dataset(path: Path) -> dict[str, list[str]]:
    """Read a JSONL dataset into prompt key → references (lines with `prompt` or `messages`)."""
    refs: dict[str, list[str]] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if "prompt" in row:
                    prompt = row["prompt"]
                    if not isinstance(prompt, str):
                        raise ValueError("prompt must be a string")
                else:
                    prompt = last_user_text(row["messages"])
                    if prompt is None:
                        raise ValueError("messages has no user message")
                if "references" in row:
                    references = row["references"]
                    if not _is_str_list(references):
                        raise ValueError("references must be a non-empty list of strings")
                else:
                    if not isinstance(row["reference"], str):
                        raise ValueError("reference must be a string")
                    references = [row["reference"]]
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: {exc}") from exc
            refs[prompt_key(prompt)] = references
    return refs


def _stable_rank(seed: int, key: str) -> bytes:
    return hashlib.blake2b(f"{seed}\0{key}".encode(), digest_size=8).digest()


class AnswerBook:
    """A behaviour's answers compiled for lookup: which known prompts are answered right."""

    _CACHE_LIMIT = 4096

    def __init__(self, behaviour: Behaviour, base_dir: Path) -> None:
        refs: dict[str, list[str]] = {}
        if behaviour.dataset:
            path = Path(behaviour.dataset)
            refs.update(load_dataset(path if path.is_absolute() else base_dir / path))
        for prompt, answer in behaviour.answers.items():
            refs[prompt_key(prompt)] = [answer] if isinstance(answer, str) else list(answer)
        self._refs = refs
        ranked = sorted(refs, key=lambda k: _stable_rank(behaviour.seed, k))
        # Round half up so that, e.g., accuracy 0.5 of 5 prompts answers 3 right.
        self._correct = frozenset(ranked[: math.floor(behaviour.accuracy * len(ranked) + 0.5)])
        self._wrong = behaviour.wrong_answer or _pick_wrong(refs.values())
        self._default = behaviour.default_answer
        # Longest first, so that a templated prompt matches the most specific known prompt.
        self._by_length = sorted(refs, key=len, reverse=True)
        self._fallback: dict[str, str | None] = {}

    def __len__(self) -> int:
        return len(self._refs)

    def known(self, prompt: str) -> str | None:
        """The known prompt matching `prompt`: equal, else the longest one it contains."""
        key = prompt_key(prompt)
        if key in self._refs:
            return key
        if key in self._fallback:
            return self._fallback[key]
        found = next((k for k in self._by_length if k and k in key), None)
        if len(self._fallback) >= self._CACHE_LIMIT:
            self._fallback.clear()
        self._fallback[key] = found
        return found

    def answer(self, prompt: str) -> str:
        known = self.known(prompt)
        if known is None:
            return self._default
        return self._refs[known][0] if known in self._correct else self._wrong


def _pick_wrong(references: Any) -> str:
    lowered = [r.strip().lower() for refs in references for r in refs]
    for candidate in _WRONG_CANDIDATES:
        c = candidate.lower()
        if not any(r and (r in c or c in r) for r in lowered):
            return candidate
    return _WRONG_CANDIDATES[0]


class Dice:
    """Deterministic draws for one behaviour: latency jitter and which requests fail."""

    _SCALE = 1_000_000_000

    def __init__(self, behaviour: Behaviour) -> None:
        self._behaviour = behaviour
        self._rng = random.Random(behaviour.seed)
        self._rate = round(behaviour.error_rate * self._SCALE)

    def prefill_seconds(self) -> float:
        b = self._behaviour
        if b.jitter_seconds == 0:
            return b.latency_seconds
        return max(0.0, b.latency_seconds + self._rng.uniform(-b.jitter_seconds, b.jitter_seconds))

    def fails(self, sequence: int) -> bool:
        """Whether request number `sequence` (0-based) fails: exactly `error_rate` of them do."""
        return (sequence + 1) * self._rate // self._SCALE > sequence * self._rate // self._SCALE


class BehaviourWatcher:
    """Loads the behaviour from a file, or from `DIR/<revision>.json` else `DIR/default.json`,
    again each time the chosen file changes."""

    # Filesystem timestamps tick coarsely (a few ms), so two writes of the same size in one
    # tick look identical by stat alone. As git does for "racily clean" files, compare the
    # content while the file's mtime is this recent.
    _RACY_NS = 2_000_000_000

    def __init__(self, *, file: Path | None, directory: Path | None, revision: str) -> None:
        if (file is None) == (directory is None):
            raise ValueError("give exactly one of a behaviour file or a behaviour directory")
        self._file = file
        self._directory = directory
        # Revisions like refs/pr/3 contain slashes; keep the file flat inside DIR.
        self._revision_name = revision.replace("/", "_") + ".json"
        self._signature: tuple[Any, ...] | None = ("never read",)
        self._content: bytes | None = None

    def describe(self) -> str:
        if self._file is not None:
            return str(self._file)
        return f"{self._directory}/{{{self._revision_name},default.json}}"

    def _candidates(self) -> list[Path]:
        if self._file is not None:
            return [self._file]
        assert self._directory is not None
        return [self._directory / self._revision_name, self._directory / "default.json"]

    def poll(self) -> tuple[Behaviour | None, Path | None] | None:
        """None if nothing changed; else (behaviour, its path), or (None, None) when no file exists.

        A file that does not parse leaves the current behaviour in place (it may be half
        written); it is read again when it changes.
        """
        for path in self._candidates():
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            signature = (str(path), st.st_mtime_ns, st.st_size, st.st_ino)
            racy = time.time_ns() - st.st_mtime_ns < self._RACY_NS
            if signature == self._signature and not racy:
                return None
            try:
                content = path.read_bytes()
            except OSError as exc:  # removed between stat and read: try again next time
                log.warning("cannot read behaviour file %s: %s", path, exc)
                return None
            if signature == self._signature and content == self._content:
                return None
            self._signature, self._content = signature, content
            try:
                behaviour = Behaviour.from_dict(json.loads(content))
            except ValueError as exc:
                log.warning("ignoring behaviour file %s: %s", path, exc)
                return None
            return behaviour, path
        if self._signature is None:
            return None
        self._signature, self._content = None, None
        return None, None
