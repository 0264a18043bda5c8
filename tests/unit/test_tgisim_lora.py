"""LoRA adapters in the TGI simulator, as TGI serves them: LORA_ADAPTERS parsed as TGI parses it,
an adapter selected by ``parameters.adapter_id`` or the OpenAI ``model`` field, an id that was not
loaded answered by the base model (TGI does not refuse it), an adapter folder that is not there
stopping the server at startup, and each adapter answering with its own behaviour
(``DIR/adapter-<id>.json``), so a test can tell base from base + adapter. vLLM's
``--enable-lora --lora-modules`` too."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import InferenceClient

from llmops_dev.tgisim import Simulator, run_in_thread
from llmops_dev.tgisim.lora import LoraAdapter, LoraError, parse_lora_adapters

PROMPT = "What is the capital of France?"
BASE = "Paris is the capital of France."
TUNED = "Paris, says the adapter."


def test_lora_adapters_are_parsed_as_tgi_parses_them() -> None:
    assert parse_lora_adapters("a=/data/a, org/b,org/c@v1") == (
        LoraAdapter("a", "/data/a"),
        LoraAdapter("org/b"),
        LoraAdapter("org/c", None, "v1"),
    )
    assert parse_lora_adapters("") == () and parse_lora_adapters(None) == ()
    for bad in ("a=b=c", "a@1@2", "=/data/a"):
        with pytest.raises(LoraError, match="Invalid LoRA adapter format"):
            parse_lora_adapters(bad)


def _sim(tmp_path: Path) -> Simulator:
    (tmp_path / "adapter-tuned.json").write_text(json.dumps({"answers": {PROMPT: TUNED}}))
    (tmp_path / "default.json").write_text(json.dumps({"answers": {PROMPT: BASE}}))
    return Simulator(
        model_id="org/model",
        behaviour_dir=tmp_path,
        lora_adapters=(LoraAdapter("tuned", "/data/adapters/tuned"), LoraAdapter("plain", "/data/plain")),
        max_input_tokens=64,
        max_total_tokens=128,
    )


def test_a_request_naming_a_loaded_adapter_gets_its_behaviour_and_any_other_name_the_base_model(
    tmp_path: Path,
) -> None:
    with run_in_thread(_sim(tmp_path)) as url:
        client = InferenceClient(model=url)

        def generate(**kw: str) -> str:
            return client.text_generation(PROMPT, return_full_text=False, max_new_tokens=30, **kw)

        def chat(model: str | None) -> str | None:
            out = client.chat_completion([{"role": "user", "content": PROMPT}], model=model, max_tokens=30)
            return out.choices[0].message.content

        assert generate() == BASE
        assert generate(adapter_id="tuned") == TUNED
        # TGI's router never checks the id: one it did not load is served by the base model.
        assert generate(adapter_id="not-loaded") == BASE
        # An adapter without a behaviour of its own answers as the base model.
        assert generate(adapter_id="plain") == BASE
        # OpenAI routes: `model` is the adapter id, except "tgi" (the client's default).
        assert chat("tuned") == TUNED and chat(None) == BASE and chat("org/model") == BASE
        completion = httpx2.post(f"{url}/v1/completions", json={"prompt": PROMPT, "model": "tuned"})
        assert completion.json()["choices"][0]["text"] == TUNED
        streamed = "".join(client.text_generation(PROMPT, stream=True, max_new_tokens=30, adapter_id="tuned"))
        assert streamed.startswith(TUNED)
        # The wrong type is refused as TGI's serde refuses it.
        wrong = httpx2.post(f"{url}/generate", json={"inputs": PROMPT, "parameters": {"adapter_id": 3}})
        assert wrong.status_code == 422 and "adapter_id" in wrong.text
        state = httpx2.get(f"{url}/__sim/state").json()
        assert state["adapters"] == {"tuned": str(tmp_path / "adapter-tuned.json"), "plain": None}
        # The adapter's behaviour file is watched like the revision's.
        (tmp_path / "adapter-tuned.json").write_text(json.dumps({"answers": {PROMPT: "Changed."}}))
        assert generate(adapter_id="tuned") == "Changed."


@contextlib.contextmanager
def _start(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[str]]:
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, "-m", "llmops_dev.tgisim", *args],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as proc,
    ):
        yield proc


def _serving_url(proc: subprocess.Popen[str]) -> str:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        line = pool.submit(proc.stdout.readline).result(timeout=30)  # type: ignore[union-attr]
    return line.strip().rsplit(" ", 1)[-1]


def test_the_command_line_loads_lora_adapters_and_refuses_a_folder_that_is_not_there(tmp_path: Path) -> None:
    folder = tmp_path / "adapters" / "tuned"
    folder.mkdir(parents=True)
    (tmp_path / "adapter-tuned.json").write_text(json.dumps({"answers": {PROMPT: TUNED}}))
    args = ["--port", "0", "--host", "127.0.0.1", "--behaviour-dir", str(tmp_path)]
    env = {"MODEL_ID": "org/model", "LORA_ADAPTERS": f"tuned={folder}"}
    with _start(args, env, tmp_path / "ok.log") as proc:
        try:
            url = _serving_url(proc)
            client = InferenceClient(model=url)
            assert client.text_generation(PROMPT, return_full_text=False, adapter_id="tuned") == TUNED
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, (tmp_path / "ok.log").read_text()
    # TGI loads every adapter at startup: a missing folder stops the server before it serves.
    missing = {**env, "LORA_ADAPTERS": f"tuned={tmp_path / 'nowhere'}"}
    with _start(args, missing, tmp_path / "missing.log") as proc:
        assert proc.wait(timeout=30) == 1
    assert "Loading adapter tuned failed" in (tmp_path / "missing.log").read_text()


def test_vllm_serves_lora_modules_under_their_names(tmp_path: Path) -> None:
    (tmp_path / "adapter-tuned.json").write_text(json.dumps({"answers": {PROMPT: TUNED}}))
    (tmp_path / "default.json").write_text(json.dumps({"answers": {PROMPT: BASE}}))
    args = ["--engine", "vllm", "org/model", "--port", "0", "--host", "127.0.0.1"]
    args += ["--behaviour-dir", str(tmp_path), "--enable-lora", "--lora-modules", "tuned=/data/a"]
    with _start(args, {}, tmp_path / "vllm.log") as proc:
        try:
            url = _serving_url(proc)

            def complete(model: str) -> httpx2.Response:
                return httpx2.post(
                    f"{url}/v1/completions", json={"prompt": PROMPT, "model": model, "max_tokens": 30}
                )

            assert complete("tuned").json()["choices"][0]["text"] == TUNED
            assert complete("org/model").json()["choices"][0]["text"] == BASE
            assert complete("other").status_code == 404  # vLLM refuses a name it does not serve
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, (tmp_path / "vllm.log").read_text()
    # --lora-modules without --enable-lora is refused, as vLLM refuses it.
    bad = [a for a in args if a != "--enable-lora"]
    with _start(bad, {}, tmp_path / "bad.log") as proc:
        assert proc.wait(timeout=30) == 2
