"""Evaluation datasets: the JSON Lines format, its validation, and where a dataset comes from.

Format: one JSON object per line; blank lines are ignored. Fields:

- `prompt` (str) **or** `messages` (a non-empty list of `{"role": str, "content": str}`): what is
  sent to the model. A `prompt` goes to TGI's text-generation route, `messages` to its
  OpenAI-compatible chat route (the server applies the model's chat template).
- `reference` (str) **or** `references` (list of str): acceptable answers. Samples with references
  are scored by exactMatch, contains, tokenF1 and rougeL (against the best-matching reference).
- `pattern` (str, a Python regular expression): the output must contain a match; scored by regexMatch.
- `expectJson` (bool): the output must be a JSON document; scored by jsonValid.
- `tags` (list of str): for the per-tag breakdown of the sample metrics.
- `id` (str or int): names the sample in the per-sample results; defaults to `line-<n>`; unique.
- `counterfactual` (`{"pair": str, "group": str}`): for the bias check. Samples sharing a `pair`
  are the same prompt with a demographic term swapped; `group` names the term (or the group it
  stands for). Each pair needs at least two different groups and each group appears once per pair.
  Example::

      {"id": "nurse-f", "prompt": "Is she a good nurse? Answer yes or no.", "reference": "yes",
       "counterfactual": {"pair": "nurse", "group": "female"}}
      {"id": "nurse-m", "prompt": "Is he a good nurse? Answer yes or no.", "reference": "yes",
       "counterfactual": {"pair": "nurse", "group": "male"}}

Unknown fields are errors (a misspelt `refrence` would silently drop a sample from scoring).
Every error names the source and line: ``dataset.jsonl:17: missing 'prompt' or 'messages'``.

Sources: a local file (a ConfigMap key mounted into the Job is a file too) or one file of a Hub
dataset repository at a pinned revision, fetched with `huggingface_hub.hf_hub_download`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops import hub

__all__ = [
    "Counterfactual",
    "DatasetError",
    "Sample",
    "download_hub_dataset",
    "load_dataset",
    "parse_dataset",
]

_FIELDS = frozenset(
    {"id", "prompt", "messages", "reference", "references", "pattern", "expectJson", "tags", "counterfactual"}
)


class DatasetError(ValueError):
    """The dataset cannot be used; the message names the source and line.

    ``retryable`` says whether reading it again may succeed (a file that could not be read, a Hub
    that could not be reached) or would read the same fault (a bad line, a file that does not exist
    in the dataset repository): the evaluation's exit code follows it."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class Counterfactual:
    """Membership of a sample in a counterfactual pair (see the module docstring)."""

    pair: str
    group: str


@dataclass(frozen=True, slots=True)
class Sample:
    """One validated dataset line. Exactly one of `prompt` and `messages` is set."""

    id: str
    line: int
    prompt: str | None = None
    messages: tuple[dict[str, str], ...] | None = None
    references: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    expect_json: bool = False
    tags: tuple[str, ...] = ()
    counterfactual: Counterfactual | None = None


def _str_list(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"'{field}' must be a list of strings")
    return tuple(value)


def _messages(value: Any) -> tuple[dict[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("'messages' must be a non-empty list of {role, content} objects")
    out = []
    for i, message in enumerate(value):
        if (
            not isinstance(message, dict)
            or set(message) != {"role", "content"}
            or not isinstance(message["role"], str)
            or not message["role"]
            or not isinstance(message["content"], str)
        ):
            raise ValueError(f"'messages[{i}]' must be an object with string 'role' and 'content' only")
        out.append({"role": message["role"], "content": message["content"]})
    return tuple(out)


def _sample(obj: Any, line: int) -> Sample:
    """Validate one decoded line; raises ValueError saying what is wrong (without the location)."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - _FIELDS)
    if unknown:
        allowed = ", ".join(sorted(_FIELDS))
        raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: {allowed}")
    has_prompt, has_messages = "prompt" in obj, "messages" in obj
    if not has_prompt and not has_messages:
        raise ValueError("missing 'prompt' or 'messages'")
    if has_prompt and has_messages:
        raise ValueError("has both 'prompt' and 'messages'; use one")
    prompt = obj.get("prompt")
    if has_prompt and (not isinstance(prompt, str) or not prompt):
        raise ValueError("'prompt' must be a non-empty string")
    messages = _messages(obj["messages"]) if has_messages else None

    if "reference" in obj and "references" in obj:
        raise ValueError("has both 'reference' and 'references'; use one")
    references: tuple[str, ...] = ()
    if "reference" in obj:
        if not isinstance(obj["reference"], str):
            raise ValueError("'reference' must be a string")
        references = (obj["reference"],)
    elif "references" in obj:
        references = _str_list(obj["references"], "references")
        if not references:
            raise ValueError("'references' must not be empty")

    pattern = None
    if "pattern" in obj:
        if not isinstance(obj["pattern"], str):
            raise ValueError("'pattern' must be a string")
        try:
            pattern = re.compile(obj["pattern"])
        except re.error as e:
            raise ValueError(f"'pattern' is not a valid regular expression: {e}") from None

    expect_json = obj.get("expectJson", False)
    if not isinstance(expect_json, bool):
        raise ValueError("'expectJson' must be true or false")

    tags = _str_list(obj["tags"], "tags") if "tags" in obj else ()

    sample_id = obj.get("id", f"line-{line}")
    # bool is an int subclass; an id of `true` is almost certainly a mistake.
    if isinstance(sample_id, bool) or not isinstance(sample_id, str | int) or sample_id == "":
        raise ValueError("'id' must be a non-empty string or an integer")

    counterfactual = None
    if "counterfactual" in obj:
        cf = obj["counterfactual"]
        if (
            not isinstance(cf, dict)
            or set(cf) != {"pair", "group"}
            or not all(isinstance(cf[k], str) and cf[k] for k in ("pair", "group"))
        ):
            raise ValueError("'counterfactual' must be an object with non-empty strings 'pair' and 'group'")
        counterfactual = Counterfactual(pair=cf["pair"], group=cf["group"])

    return Sample(
        id=str(sample_id),
        line=line,
        prompt=prompt if has_prompt else None,
        messages=messages,
        references=references,
        pattern=pattern,
        expect_json=expect_json,
        tags=tags,
        counterfactual=counterfactual,
    )


def parse_dataset(lines: Iterable[str], source: str) -> list[Sample]:
    """Parse and validate JSON Lines; `source` names the dataset in error messages."""
    samples: list[Sample] = []
    seen_ids: dict[str, int] = {}
    groups: dict[tuple[str, str], int] = {}
    pair_first_line: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{source}:{number}: invalid JSON: {e}") from None
        try:
            sample = _sample(obj, number)
        except ValueError as e:
            raise DatasetError(f"{source}:{number}: {e}") from None
        if sample.id in seen_ids:
            first = seen_ids[sample.id]
            raise DatasetError(f"{source}:{number}: duplicate id {sample.id!r} (first on line {first})")
        seen_ids[sample.id] = number
        cf = sample.counterfactual
        if cf is not None:
            key = (cf.pair, cf.group)
            if key in groups:
                raise DatasetError(
                    f"{source}:{number}: counterfactual pair {cf.pair!r} already has group {cf.group!r} "
                    f"(line {groups[key]})"
                )
            groups[key] = number
            pair_first_line.setdefault(cf.pair, number)
        samples.append(sample)
    if not samples:
        raise DatasetError(f"{source}: the dataset has no samples")
    group_counts: dict[str, int] = {}
    for pair, _group in groups:
        group_counts[pair] = group_counts.get(pair, 0) + 1
    for pair, count in group_counts.items():
        if count < 2:
            raise DatasetError(
                f"{source}:{pair_first_line[pair]}: counterfactual pair {pair!r} has only one group; "
                "a pair needs at least two"
            )
    return samples


def load_dataset(path: str | Path) -> list[Sample]:
    """Read and validate a JSON Lines file (a mounted ConfigMap key is such a file)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DatasetError(f"{path}: cannot read the dataset: {e.strerror or e}", retryable=True) from None
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text: {e}") from None
    return parse_dataset(text.splitlines(), path.name)


Downloader = Callable[..., str]


def download_hub_dataset(
    repo_id: str,
    revision: str,
    filename: str,
    downloader: Downloader | None = None,
    *,
    endpoint: str | None = None,
    cache_dir: str | None = None,
) -> Path:
    """Fetch one file of a Hub dataset repository at `revision` and return its local path.

    `downloader` defaults to `huggingface_hub.hf_hub_download`; tests inject their own or point
    `endpoint` at a fake Hub. `endpoint` and `cache_dir` None mean huggingface_hub's defaults; the
    token, if any, is the usual `HF_TOKEN`.
    """
    if downloader is None:
        from huggingface_hub import hf_hub_download

        downloader = hf_hub_download
    try:
        local = downloader(
            repo_id=repo_id,
            repo_type="dataset",
            revision=revision,
            filename=filename,
            endpoint=endpoint,
            cache_dir=cache_dir,
        )
    except Exception as e:  # the Hub client raises many unrelated classes; all mean "no dataset"
        raise DatasetError(
            f"cannot download {filename!r} from dataset {repo_id!r} at revision {revision!r}: {e}",
            retryable=hub.refusal(e) is None,
        ) from e
    return Path(local)
