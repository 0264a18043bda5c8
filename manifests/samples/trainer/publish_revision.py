"""A retrain Job's trainer: the template for your own.

It "trains" a new revision of the serving model and publishes it to a Hub repository with
huggingface_hub's upload API, then reports the commit in the Job's termination message, which
is how the operator learns what to evaluate (docs/retrain.md, "The contract").

    python publish_revision.py [/dev/termination-log]

Reads LLMOPS_BASE_MODEL, LLMOPS_BASE_REVISION, LLMOPS_RUN_ID and LLMOPS_TRIGGER (the operator
sets them), TARGET_REPO (where to publish; the base model's repository if unset), HF_TOKEN (a
token that may write to TARGET_REPO) and HF_ENDPOINT (the Hub; huggingface.co if unset).

The "training" here keeps the base model's files and writes the run into the weights'
metadata, so every run is a new commit. Replace ``train`` with your fine-tuning.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import tempfile
from pathlib import Path

from huggingface_hub import HfApi, snapshot_download


def train(base: Path, out: Path, run: str, trigger: str) -> None:
    """The new model in ``out``: here the base's files, with the run in the weights' header."""
    for src in base.iterdir():
        if src.is_file():
            (out / src.name).write_bytes(src.read_bytes())
    weights = out / "model.safetensors"
    if weights.exists():
        raw = weights.read_bytes()
        size = struct.unpack("<Q", raw[:8])[0]
        header = json.loads(raw[8 : 8 + size])
        header.setdefault("__metadata__", {}).update({"llmops.run": run, "llmops.trigger": trigger[:200]})
        packed = json.dumps(header, separators=(",", ":")).encode()
        packed += b" " * (-len(packed) % 8)  # safetensors pads its header to 8 bytes
        weights.write_bytes(struct.pack("<Q", len(packed)) + packed + raw[8 + size :])


def main(termination_log: str) -> None:
    base_model = os.environ["LLMOPS_BASE_MODEL"]
    base_revision = os.environ["LLMOPS_BASE_REVISION"]
    run = os.environ["LLMOPS_RUN_ID"]
    trigger = os.environ.get("LLMOPS_TRIGGER", "")
    target = os.environ.get("TARGET_REPO") or base_model
    api = HfApi()
    api.create_repo(target, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(snapshot_download(base_model, revision=base_revision, local_dir=Path(tmp) / "base"))
        out = Path(tmp) / "out"
        out.mkdir()
        train(base, out, run, trigger)
        commit = api.upload_folder(
            repo_id=target,
            folder_path=out,
            commit_message=f"{run}: retrained from {base_model}@{base_revision[:12]}",
            commit_description=trigger,
        )
    report = {"model": target, "revision": commit.oid}
    print(f"published {target}@{commit.oid}", flush=True)
    Path(termination_log).write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/dev/termination-log")
