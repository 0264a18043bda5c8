"""The ``applied-hash`` of a child must not move between operator versions for the same
rendered object: if it did, an upgraded operator would apply every child of every
LLMDeployment again (one write each, and a rollout where a pod template's annotation moved).

The values below are what every version so far wrote. The informers and the applies use orjson;
the hash stays on the standard library's ``json``, whose bytes differ from orjson's for
non-ASCII text (escaped by ``json``) and small floats (``1e-05`` against ``0.00001``).
"""

from __future__ import annotations

import json

import orjson

from llmops.lifecycle.context import manifest_hash

RENDERED = {
    "kind": "Deployment",
    "metadata": {"name": "m", "labels": {"a": "é"}},
    "spec": {"replicas": 1, "threshold": 1e-05, "ratio": 0.5},
}


def test_the_hash_of_a_rendered_child_is_the_one_earlier_versions_wrote() -> None:
    assert manifest_hash(RENDERED) == "b37041773c0f0650"
    assert manifest_hash({}) == "44136fa355b3678a"


def test_orjson_would_have_changed_it() -> None:
    # Why the hash keeps the standard library: the two disagree on exactly these inputs.
    stdlib = json.dumps(RENDERED, sort_keys=True, separators=(",", ":")).encode()
    assert orjson.dumps(RENDERED, option=orjson.OPT_SORT_KEYS) != stdlib
