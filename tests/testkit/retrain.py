"""A retrain Job template for tests: a "trainer" that sleeps, then reports a model in its
termination message, as the contract of docs/retrain.md asks (the fake kubelet maps an argument
that is exactly /dev/termination-log to the pod's own file)."""

from __future__ import annotations

import json
from typing import Any

from llmops.api.constants import OPERATOR_IMAGE
from testkit import restricted

__all__ = ["TRAINER", "trainer_job_template"]

TRAINER = (
    "import sys, time\n"
    "report, sleep, path = sys.argv[1:4]\n"
    "time.sleep(float(sleep))\n"
    "open(path, 'w').write(report)\n"
)


def trainer_job_template(model: str, revision: str, sleep: float) -> dict[str, Any]:
    """spec.retrain.jobTemplate: after ``sleep`` seconds, the Job reports ``model@revision``."""
    report = json.dumps({"model": model, "revision": revision})
    container = {
        "name": "train",
        "image": OPERATOR_IMAGE,
        "command": ["python", "-c", TRAINER, report, str(sleep), "/dev/termination-log"],
    }
    pod = restricted({"restartPolicy": "Never", "containers": [container]})
    return {"spec": {"backoffLimit": 0, "template": {"spec": pod}}}
