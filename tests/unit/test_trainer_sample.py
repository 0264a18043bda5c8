"""The sample trainer (manifests/samples/trainer/publish_revision.py) against the fake Hub, run as
the retrain Job's container runs it: a process with the operator's variables, publishing through
the real huggingface_hub upload API and reporting in its termination message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download

from llmops_dev.cluster.build import repo_root
from llmops_dev.fakehub import HubThread, commit_for, serve_in_thread
from llmops_dev.trainer import SCRIPT, publish_retrain_spec, trainer_objects

BASE = commit_for("org/base", "main")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubThread]:
    with serve_in_thread(tmp_path) as h:
        yield h


def run_trainer(hub: HubThread, tmp_path: Path, token: str | None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "HF_ENDPOINT": hub.url,
        "HF_HUB_DISABLE_XET": "1",
        "LLMOPS_BASE_MODEL": "org/base",
        "LLMOPS_BASE_REVISION": BASE,
        "LLMOPS_RUN_ID": "chat-retrain-1",
        "LLMOPS_TRIGGER": "drift: inputLength: PSI 8.710 >= 0.2",
        "TARGET_REPO": "org/tuned",
        **({"HF_TOKEN": token} if token else {}),
    }
    script = repo_root() / "manifests" / "samples" / "trainer" / SCRIPT
    log = tmp_path / "termination-log"
    return subprocess.run(
        [sys.executable, str(script), str(log)], env=env, capture_output=True, text=True, timeout=120
    )


def test_the_trainer_publishes_a_new_revision_and_reports_it(hub: HubThread, tmp_path: Path) -> None:
    (tmp_path / "hub.json").write_text(json.dumps({"missing": ["org/tuned"]}))
    done = run_trainer(hub, tmp_path, "hf_write")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "termination-log").read_text())
    assert report["model"] == "org/tuned" and len(report["revision"]) == 40
    info = HfApi(endpoint=hub.url, token=False).model_info("org/tuned")
    assert info.sha == report["revision"]  # main moved to the pushed commit
    weights = Path(
        hf_hub_download(
            "org/tuned",
            "model.safetensors",
            revision=report["revision"],
            endpoint=hub.url,
            cache_dir=tmp_path / "c",
            token=False,
        )
    ).read_bytes()
    header = json.loads(weights[8 : 8 + int.from_bytes(weights[:8], "little")])
    assert header["__metadata__"]["llmops.run"] == "chat-retrain-1"
    assert header["__metadata__"]["revision"] == BASE  # trained from the base it was given


def test_without_a_write_token_the_trainer_fails_and_reports_nothing(hub: HubThread, tmp_path: Path) -> None:
    (tmp_path / "hub.json").write_text(json.dumps({"missing": ["org/tuned"]}))
    done = run_trainer(hub, tmp_path, None)
    assert done.returncode != 0 and "401" in done.stderr, done.stderr
    assert not (tmp_path / "termination-log").exists()


def test_the_retrain_spec_mounts_the_script_and_reads_the_token_from_the_secret() -> None:
    configmap, secret = trainer_objects("chat", "hf_dev")
    assert SCRIPT in configmap["data"] and secret["stringData"] == {"token": "hf_dev"}
    pod = publish_retrain_spec("chat", "org/tuned")["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["command"] == ["python", f"/trainer/{SCRIPT}", "/dev/termination-log"]
    token = next(e for e in container["env"] if e["name"] == "HF_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": "token"}
    assert pod["volumes"][0]["configMap"]["name"] == configmap["metadata"]["name"]
