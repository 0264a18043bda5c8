"""The evaluation dataset the integration tests share, on both sides of the wire.

``QA`` is 20 arithmetic prompts: a perfect score shows ``exactMatch >= 0.8`` on its 95% lower
bound from 16 correct answers on (the gate judges bounds, and ten prompts cannot show it).
``apply_qa`` puts it where each side reads it: the ConfigMap the evaluation Job mounts, and the
answers file the simulator's behaviours answer from (``set_behaviour(..., dataset=...)``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmops_dev.cluster import Cluster

QA_EVALUATION: dict[str, Any] = {
    "dataset": {"configMapRef": {"name": "qa", "key": "qa.jsonl"}},
    "thresholds": [{"metric": "exactMatch", "min": 0.5}],
    "concurrency": 4,
    "timeoutSeconds": 10,
    "maxNewTokens": 16,
}
"""spec.evaluation on the ConfigMap apply_qa makes: exactMatch at least 0.5, quick timeouts."""
QA: list[dict[str, str]] = [{"prompt": f"What is {i} + {i}?", "reference": str(2 * i)} for i in range(20)]


def jsonl(items: Sequence[dict[str, Any]]) -> str:
    """Items as JSON Lines, newline-terminated."""
    return "".join(json.dumps(x) + "\n" for x in items)


def apply_qa(
    cluster: Cluster, namespace: str, key: str = "qa.jsonl", lines: Sequence[str] | None = None
) -> Path:
    """ConfigMap ``qa`` in ``namespace`` (``lines`` under ``key``, QA when None) and the answers
    file the simulators answer QA from; returns the answers file. The file holds QA whatever the
    ConfigMap holds, so a test can give the Job a broken dataset while the server still knows
    the answers."""
    text = "".join(f"{line}\n" for line in lines) if lines is not None else jsonl(QA)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "qa"}, "data": {key: text}}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(cm))
    assert cluster.state_dir is not None
    answers = cluster.state_dir / "qa.jsonl"
    answers.write_text(jsonl(QA))
    return answers
