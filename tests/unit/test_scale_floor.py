"""The floor of ``make bench-scale`` does the work the operator's first pass does.

The floor is ``kubectl apply`` of what the operator writes for each LLMDeployment. Without the
gateway's signing-key Secret, which the reconciler creates beside the children ``plan()``
renders, the floor's server pods could not mount it and never started, while the operator's
did (a TGI simulator and a gateway each, then readiness, endpoints and status updates): the
floor was spared work the operator's figure paid for.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from llmops_dev.bench.scale import children_cpu_seconds, floor_objects, llmd_body


def _mounted_secrets(objects: list[dict[str, Any]]) -> set[str]:
    return {
        volume["secret"]["secretName"]
        for obj in objects
        if obj["kind"] == "Deployment"
        for volume in obj["spec"]["template"]["spec"].get("volumes") or []
        if "secret" in volume
    }


def test_the_floor_holds_every_secret_its_deployments_mount() -> None:
    body = llmd_body("m0001", "floor")
    body["metadata"]["uid"] = "0f0e0d0c-0000-4000-8000-000000000001"
    objects = floor_objects(body)
    secrets = {o["metadata"]["name"] for o in objects if o["kind"] == "Secret"}
    assert _mounted_secrets(objects) == {"m0001-gateway"}
    assert _mounted_secrets(objects) <= secrets
    secret = next(o for o in objects if o["kind"] == "Secret")
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("LLMDeployment", "m0001", body["metadata"]["uid"])


def test_the_floor_has_fresh_keys_for_each_deployment() -> None:
    keys = [
        next(o for o in floor_objects(llmd_body(n, "floor")) if o["kind"] == "Secret")["data"]
        for n in ("a", "b")
    ]
    assert keys[0] != keys[1]


def test_children_cpu_counts_a_child_that_has_exited() -> None:
    before = children_cpu_seconds(os.getpid())
    # About 0.2 s of CPU in a child, waited for: the reaped children's time must grow by it.
    subprocess.run([sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True)
    assert children_cpu_seconds(os.getpid()) - before >= 0.05
