"""The TGI simulator's behaviour, without a server: JSON form and merge patches, which prompts
are answered right, wrong answers that no scorer mistakes for right, datasets, deterministic
latency and errors, and the behaviour file watcher."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmops_dev.tgisim.behaviour import (
    AnswerBook,
    Behaviour,
    BehaviourWatcher,
    Dice,
    load_dataset,
)


def book(answers: dict[str, str], **fields: object) -> AnswerBook:
    return AnswerBook(Behaviour(answers=answers, **fields), Path.cwd())  # type: ignore[arg-type]


QA = {f"question {i}?": f"answer {i}" for i in range(10)}


def right(b: AnswerBook, qa: dict[str, str]) -> set[str]:
    return {q for q, a in qa.items() if b.answer(q) == a}


# -- the JSON form ------------------------------------------------------------------------------


def test_round_trips_through_json() -> None:
    behaviour = Behaviour(answers={"q": "a"}, accuracy=0.5, latency_seconds=0.1, error_kind="generation")
    assert Behaviour.from_dict(json.loads(json.dumps(behaviour.to_dict()))) == behaviour


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"accuracy": 1.5}, "accuracy must be in"),
        ({"error_rate": -0.1}, "error_rate must be in"),
        ({"latency_seconds": -1}, "latency_seconds must be >= 0"),
        ({"error_kind": "teapot"}, "error_kind must be one of"),
        ({"healthy": "yes"}, "healthy must be a boolean"),
        ({"accuracy": "high"}, "accuracy must be a number"),
        ({"answers": {"q": 3}}, "answers must map"),
        ({"surprise": True}, "unknown behaviour fields: surprise"),
    ],
)
def test_rejects_invalid_data(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Behaviour.from_dict(data)


def test_merge_patch() -> None:
    base = Behaviour(answers={"a": "1", "b": "2"}, accuracy=0.3, healthy=False)
    merged = base.merged({"answers": {"b": None, "c": "3"}, "accuracy": None, "latency_seconds": 0.2})
    assert merged.answers == {"a": "1", "c": "3"}
    assert merged.accuracy == 1.0  # null restores the default
    assert (merged.latency_seconds, merged.healthy) == (0.2, False)


# -- answers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("accuracy", "expected"), [(0.0, 0), (0.25, 3), (0.5, 5), (0.7, 7), (1.0, 10)])
def test_accuracy_answers_an_exact_fraction_right(accuracy: float, expected: int) -> None:
    assert len(right(book(QA, accuracy=accuracy), QA)) == expected  # 0.25 · 10 = 2.5 rounds up


def test_right_answers_are_stable_and_nested_as_accuracy_grows() -> None:
    low, high = right(book(QA, accuracy=0.3), QA), right(book(QA, accuracy=0.6), QA)
    assert low < high
    assert right(book(QA, accuracy=0.3), QA) == low
    assert any(
        right(book(QA, accuracy=0.5, seed=s), QA) != right(book(QA, accuracy=0.5), QA) for s in range(1, 5)
    )


def test_wrong_answers_match_no_reference() -> None:
    qa = {"q1": "A", "q2": "B", "q3": "no", "q4": "Zzyzx"}
    b = book(qa, accuracy=0.0)
    wrong = {b.answer(q) for q in qa}
    assert len(wrong) == 1
    (answer,) = wrong
    for reference in qa.values():
        assert reference.lower() not in answer.lower() and answer.lower() not in reference.lower()
    assert book(qa, accuracy=0.0, wrong_answer="nope").answer("q1") == "nope"


def test_prompts_match_exactly_then_by_containment() -> None:
    b = book({"What is 2+2?": "4", "2+2": "four"})
    assert b.answer("  What is 2+2?\n") == "4"
    # A prompt wrapped in a template still finds its (longest) known prompt.
    assert b.answer("Question: What is 2+2?\nAnswer:") == "4"
    assert b.answer("Compute 2+2 please") == "four"
    assert b.answer("unrelated") == Behaviour().default_answer


def test_load_dataset(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    lines = [
        {"prompt": "p1", "reference": "r1"},
        {
            "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "p2"}],
            "references": ["r2", "x"],
        },
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "p3"}]}], "reference": "r3"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    assert load_dataset(path) == {"p1": ["r1"], "p2": ["r2", "x"], "p3": ["r3"]}

    path.write_text(json.dumps({"prompt": "p"}) + "\n" + json.dumps({"prompt": "q", "reference": 3}) + "\n")
    with pytest.raises(ValueError, match=r"d\.jsonl:1: 'reference'"):
        load_dataset(path)


def test_dataset_paths_are_relative_to_the_behaviour_folder(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text(json.dumps({"prompt": "p", "reference": "r"}))
    b = AnswerBook(Behaviour(dataset="d.jsonl", answers={"q": "override"}), tmp_path)
    assert (b.answer("p"), b.answer("q"), len(b)) == ("r", "override", 2)


# -- latency and errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.37, 0.5, 1.0])
def test_error_rate_is_exact_over_any_prefix(rate: float) -> None:
    dice = Dice(Behaviour(error_rate=rate))
    fails = [dice.fails(n) for n in range(1000)]
    assert sum(fails) == round(rate * 1000)
    # Evenly spread: after n requests the failures never stray from rate · n by a whole request.
    for n in range(1, 1001):
        assert abs(sum(fails[:n]) - rate * n) < 1


def test_latency_jitter_is_deterministic_and_bounded() -> None:
    behaviour = Behaviour(latency_seconds=0.1, jitter_seconds=0.05, seed=7)
    dice_a, dice_b = Dice(behaviour), Dice(behaviour)
    draws = [dice_a.prefill_seconds() for _ in range(200)]
    assert draws == [dice_b.prefill_seconds() for _ in range(200)]
    assert all(0.05 <= d <= 0.15 for d in draws)
    assert len(set(draws)) > 100
    assert Dice(behaviour).prefill_seconds() == draws[0]
    assert Dice(Behaviour(latency_seconds=0.2)).prefill_seconds() == 0.2


# -- the file watcher ------------------------------------------------------------------------------------


def test_watcher_reloads_only_on_change(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"accuracy": 0.5}))
    watcher = BehaviourWatcher(file=path, directory=None, revision="main")

    assert watcher.poll() == (Behaviour(accuracy=0.5), path)
    assert watcher.poll() is None
    path.write_text(json.dumps({"accuracy": 0.7}))  # same size, likely the same mtime tick
    assert watcher.poll() == (Behaviour(accuracy=0.7), path)
    assert watcher.poll() is None

    path.write_text("{not json")
    assert watcher.poll() is None  # keeps the current behaviour
    path.write_text(json.dumps({"accuracy": 0.1}))
    assert watcher.poll() == (Behaviour(accuracy=0.1), path)

    old = os.stat(path).st_mtime_ns - 10_000_000_000
    os.utime(path, ns=(old, old))  # an old file is trusted by its stat signature alone
    assert watcher.poll() == (Behaviour(accuracy=0.1), path)
    assert watcher.poll() is None

    path.unlink()
    assert watcher.poll() == (None, None)
    assert watcher.poll() is None


def test_watcher_prefers_the_revision_file(tmp_path: Path) -> None:
    watcher = BehaviourWatcher(file=None, directory=tmp_path, revision="refs/pr/3")
    assert watcher.poll() == (None, None)  # nothing there yet: the initial behaviour applies
    assert watcher.poll() is None
    (tmp_path / "default.json").write_text(json.dumps({"accuracy": 0.2}))
    assert watcher.poll() == (Behaviour(accuracy=0.2), tmp_path / "default.json")
    (tmp_path / "refs_pr_3.json").write_text(json.dumps({"accuracy": 0.9}))
    assert watcher.poll() == (Behaviour(accuracy=0.9), tmp_path / "refs_pr_3.json")
    (tmp_path / "refs_pr_3.json").unlink()
    assert watcher.poll() == (Behaviour(accuracy=0.2), tmp_path / "default.json")
