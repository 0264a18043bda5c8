"""What the fake kubelet derives from a server container: which simulator mode runs it and where it listens."""

from __future__ import annotations

import pytest

from llmops.api.constants import DEFAULT_TGI_IMAGE, DEFAULT_VLLM_IMAGE, OPERATOR_IMAGE
from llmops_dev.kubelet.spec import OPERATOR, TGI, VLLM, Mounts, listen_port, runtime_for


@pytest.mark.parametrize(
    ("image", "runtime"),
    [
        (DEFAULT_TGI_IMAGE, TGI),
        (DEFAULT_VLLM_IMAGE, VLLM),
        ("vllm/vllm-openai:v0.12.0", VLLM),  # any tag of the repository
        ("vllm/vllm-openai@sha256:" + "a" * 64, VLLM),
        (OPERATOR_IMAGE, OPERATOR),
        ("docker.io/library/nginx:1.27.0", None),
    ],
)
def test_images_map_to_their_runtime(image: str, runtime: str | None) -> None:
    assert runtime_for(image) == runtime


def test_listen_port_per_engine() -> None:
    # TGI's launcher: --port, else $PORT (the image sets 80); vllm serve: --port, else 8000, no env
    assert listen_port([], {"PORT": "8080"}) == 8080
    assert listen_port(["--port", "9000"], {"PORT": "8080"}) == 9000
    assert listen_port([], {"PORT": "8080"}, VLLM) == 8000
    assert listen_port(["org/model", "--port", "8001"], {}, VLLM) == 8001


def test_lora_adapter_folders_are_mapped_to_the_volumes_behind_them() -> None:
    mounts = Mounts.of({"/data": "/state/volumes/pvc-1"})
    assert mounts.rewrite_pairs("a=/data/adapters/a, b=/elsewhere/b,org/c") == (
        "a=/state/volumes/pvc-1/adapters/a, b=/elsewhere/b,org/c"
    )
