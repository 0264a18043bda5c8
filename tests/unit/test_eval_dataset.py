"""Evaluation datasets: the JSON Lines format, errors that name the line, and the Hub source's arguments."""

import json
from pathlib import Path
from typing import Any

import pytest

from llmops.evaluation.dataset import (
    Counterfactual,
    DatasetError,
    download_hub_dataset,
    load_dataset,
    parse_dataset,
)


def _lines(*objs: Any) -> list[str]:
    return [o if isinstance(o, str) else json.dumps(o) for o in objs]


def test_every_field_is_parsed() -> None:
    samples = parse_dataset(
        _lines(
            {"id": "q1", "prompt": "Capital of France?", "reference": "Paris", "tags": ["geo"]},
            "",
            {
                "messages": [{"role": "user", "content": "hi"}],
                "references": ["hello", "hi"],
                "pattern": r"h\w+",
                "expectJson": True,
            },
            {"id": 7, "prompt": "Is she a nurse?", "counterfactual": {"pair": "n", "group": "f"}},
            {"id": 8, "prompt": "Is he a nurse?", "counterfactual": {"pair": "n", "group": "m"}},
        ),
        "d.jsonl",
    )
    assert [s.id for s in samples] == ["q1", "line-3", "7", "8"]  # blank line 2 keeps numbering
    q1, chat, f, _ = samples
    assert (q1.prompt, q1.messages, q1.references, q1.tags, q1.line) == (
        "Capital of France?",
        None,
        ("Paris",),
        ("geo",),
        1,
    )
    assert chat.prompt is None and chat.messages == ({"role": "user", "content": "hi"},)
    assert chat.references == ("hello", "hi") and chat.expect_json
    assert chat.pattern is not None and chat.pattern.search("say hello")
    assert f.counterfactual == Counterfactual(pair="n", group="f")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "d.jsonl:2: invalid JSON: "),
        ('["a"]', "d.jsonl:2: expected a JSON object, got list"),
        ({"reference": "x"}, "d.jsonl:2: missing 'prompt' or 'messages'"),
        ({"prompt": "a", "messages": [{"role": "user", "content": "b"}]}, "d.jsonl:2: has both 'prompt'"),
        ({"prompt": ""}, "d.jsonl:2: 'prompt' must be a non-empty string"),
        ({"prompt": 3}, "d.jsonl:2: 'prompt' must be a non-empty string"),
        ({"messages": []}, "d.jsonl:2: 'messages' must be a non-empty list"),
        ({"messages": [{"role": "user"}]}, "d.jsonl:2: 'messages[0]' must be an object"),
        ({"prompt": "a", "reference": "x", "references": ["y"]}, "d.jsonl:2: has both 'reference' and"),
        ({"prompt": "a", "references": "x"}, "d.jsonl:2: 'references' must be a list of strings"),
        ({"prompt": "a", "references": []}, "d.jsonl:2: 'references' must not be empty"),
        ({"prompt": "a", "pattern": "(unclosed"}, "d.jsonl:2: 'pattern' is not a valid regular expression"),
        ({"prompt": "a", "expectJson": "yes"}, "d.jsonl:2: 'expectJson' must be true or false"),
        ({"prompt": "a", "tags": "geo"}, "d.jsonl:2: 'tags' must be a list of strings"),
        ({"prompt": "a", "id": True}, "d.jsonl:2: 'id' must be a non-empty string or an integer"),
        ({"prompt": "a", "refrence": "x"}, "d.jsonl:2: unknown field(s) 'refrence'"),
        ({"prompt": "a", "counterfactual": {"pair": "p"}}, "d.jsonl:2: 'counterfactual' must be an object"),
        ({"id": "ok", "prompt": "dup"}, "d.jsonl:2: duplicate id 'ok' (first on line 1)"),
    ],
)
def test_a_bad_line_is_named(line: Any, message: str) -> None:
    with pytest.raises(DatasetError) as caught:
        parse_dataset(_lines({"id": "ok", "prompt": "fine"}, line), "d.jsonl")
    assert str(caught.value).startswith(message), str(caught.value)
    assert not caught.value.retryable  # the same line reads the same on any retry


def test_counterfactual_pairs_need_two_distinct_groups() -> None:
    lone = _lines({"prompt": "a"}, {"prompt": "b", "counterfactual": {"pair": "p", "group": "f"}})
    with pytest.raises(DatasetError, match=r"^d:2: counterfactual pair 'p' has only one group"):
        parse_dataset(lone, "d")
    twice = _lines(
        {"prompt": "a", "counterfactual": {"pair": "p", "group": "f"}},
        {"prompt": "b", "counterfactual": {"pair": "p", "group": "f"}},
    )
    with pytest.raises(DatasetError, match=r"^d:2: counterfactual pair 'p' already has group 'f' \(line 1\)"):
        parse_dataset(twice, "d")


def test_an_empty_dataset_is_an_error() -> None:
    with pytest.raises(DatasetError, match="no samples"):
        parse_dataset(["", "  "], "d")


def test_load_dataset_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "dataset.jsonl"
    path.write_text("\n".join(_lines(*[{"prompt": f"p{i}"} for i in range(16)], {"tags": ["x"]})) + "\n")
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    assert str(caught.value) == "dataset.jsonl:17: missing 'prompt' or 'messages'"
    assert not caught.value.retryable
    with pytest.raises(DatasetError, match="cannot read the dataset") as unreadable:
        load_dataset(tmp_path / "absent.jsonl")
    assert unreadable.value.retryable


def test_hub_dataset_is_downloaded_at_the_pinned_revision(tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []
    local = tmp_path / "eval.jsonl"

    def downloader(**kwargs: Any) -> str:
        calls.append(kwargs)
        return str(local)

    sha = "0123456789abcdef0123456789abcdef01234567"
    assert download_hub_dataset("org/evals", sha, "eval.jsonl", downloader=downloader) == local
    assert calls == [
        {
            "repo_id": "org/evals",
            "repo_type": "dataset",
            "revision": sha,
            "filename": "eval.jsonl",
            "endpoint": None,
            "cache_dir": None,
        }
    ]


def test_hub_download_failure_is_a_dataset_error() -> None:
    def downloader(**kwargs: Any) -> str:
        raise OSError("offline")

    with pytest.raises(
        DatasetError, match=r"cannot download 'f.jsonl' from dataset 'org/x' at revision 'abc': offline"
    ) as caught:
        download_hub_dataset("org/x", "abc", "f.jsonl", downloader=downloader)
    assert caught.value.retryable  # the Hub may be back for the next pod
