"""The fake Hugging Face Hub against the real huggingface_hub client: routes, headers, errors, hub.json."""

from __future__ import annotations

import hashlib
import json
import struct
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from llmops_dev.fakehub import HubThread, commit_for, serve_in_thread

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubThread]:
    with serve_in_thread(tmp_path) as h:
        yield h


def configure(tmp_path: Path, **config: object) -> None:
    (tmp_path / "hub.json").write_text(json.dumps(config))


def api(hub: HubThread, token: str | bool = False) -> HfApi:
    return HfApi(endpoint=hub.url, token=token)


def test_main_resolves_to_a_fixed_sha_per_repo_and_a_sha_to_itself(hub: HubThread) -> None:
    info = api(hub).model_info("org/model", revision="main")
    assert info.sha == commit_for("org/model", "main")
    assert api(hub).model_info("org/model").sha == info.sha
    assert api(hub).model_info("org/other", revision="main").sha != info.sha
    assert api(hub).model_info("org/model", revision=SHA).sha == SHA
    assert sorted(s.rfilename for s in info.siblings or []) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]


def test_single_segment_repo_ids_work(hub: HubThread, tmp_path: Path) -> None:
    path = hf_hub_download("gpt2", "config.json", endpoint=hub.url, cache_dir=tmp_path / "c", token=False)
    assert json.loads(Path(path).read_text())["_name_or_path"] == "gpt2"


def test_tree_lists_the_weights_as_lfs_with_their_sha256(hub: HubThread, tmp_path: Path) -> None:
    tree = {f.path: f for f in api(hub).list_repo_tree("org/model", revision=SHA, recursive=True)}
    weights = tree["model.safetensors"]
    assert weights.lfs is not None and tree["config.json"].lfs is None  # type: ignore[union-attr]
    path = hf_hub_download(
        "org/model",
        "model.safetensors",
        revision=SHA,
        endpoint=hub.url,
        cache_dir=tmp_path / "c",
        token=False,
    )
    data = Path(path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == weights.lfs.sha256  # type: ignore[union-attr]
    assert len(data) == weights.size
    # A valid safetensors file whose metadata names the commit it came from.
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    assert header["__metadata__"]["revision"] == SHA
    start, end = header["weight"]["data_offsets"]
    assert 8 + header_len + end == len(data) and start == 0


def test_weights_come_from_another_origin_without_the_token(hub: HubThread, tmp_path: Path) -> None:
    configure(tmp_path, gated=["org/gated"])
    hf_hub_download(
        "org/gated", "model.safetensors", endpoint=hub.url, cache_dir=tmp_path / "c", token="hf_x"
    )
    requests = list(hub.hub.requests)
    resolve = [r for r in requests if "/resolve/" in r["path"]]
    cdn = [r for r in requests if r["path"].startswith("/__cdn/")]
    assert resolve and all(r["authorization"] for r in resolve)
    assert len(cdn) == 1 and not cdn[0]["authorization"]
    assert cdn[0]["port"] != resolve[0]["port"]


def test_errors_carry_the_codes_the_client_maps_to_its_exceptions(hub: HubThread, tmp_path: Path) -> None:
    configure(tmp_path, missing=["org/nope"], gated=["org/gated"])
    with pytest.raises(RepositoryNotFoundError):
        api(hub).model_info("org/nope")
    with pytest.raises(GatedRepoError):
        api(hub).model_info("org/gated")
    assert api(hub, token="hf_any").model_info("org/gated").gated == "auto"
    with pytest.raises(RevisionNotFoundError):
        api(hub).model_info("org/model", revision="no-such-branch")
    configure(tmp_path, absent={"org/model": [SHA]})
    with pytest.raises(RevisionNotFoundError):
        api(hub).model_info("org/model", revision=SHA)  # a commit that was never pushed
    assert api(hub).model_info("org/other", revision=SHA).sha == SHA
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("org/model", "nope.txt", endpoint=hub.url, cache_dir=tmp_path / "c", token=False)


def test_hub_json_is_reread_and_its_refs_resolve(hub: HubThread, tmp_path: Path) -> None:
    with pytest.raises(RevisionNotFoundError):
        api(hub).model_info("org/model", revision="v2")
    configure(tmp_path, refs={"org/model": {"v2": SHA, "v3": "not-a-sha"}})
    assert api(hub).model_info("org/model", revision="v2").sha == SHA
    assert api(hub).model_info("org/model", revision="v3").sha == commit_for("org/model", "v3")
    configure(tmp_path, refs={"org/model": ["v4"]}, missing=["org/model"])
    with pytest.raises(RepositoryNotFoundError):
        api(hub).model_info("org/model", revision="v4")


def test_dataset_files_come_from_hub_json(hub: HubThread, tmp_path: Path) -> None:
    configure(tmp_path, files={"datasets/org/evalset": {"data/test.jsonl": '{"prompt": "hi"}\n'}})
    path = hf_hub_download(
        "org/evalset",
        "data/test.jsonl",
        repo_type="dataset",
        revision="main",
        endpoint=hub.url,
        cache_dir=tmp_path / "c",
        token=False,
    )
    assert Path(path).read_text() == '{"prompt": "hi"}\n'
    tree = api(hub).list_repo_tree("org/evalset", repo_type="dataset", recursive=True)
    assert [(t.path, type(t).__name__) for t in tree] == [
        ("data", "RepoFolder"),
        ("data/test.jsonl", "RepoFile"),
    ]


def test_a_slow_repo_trickles_its_files(hub: HubThread, tmp_path: Path) -> None:
    configure(tmp_path, slow={"org/big": 1})
    started = time.monotonic()
    hf_hub_download("org/big", "config.json", endpoint=hub.url, cache_dir=tmp_path / "c", token=False)
    assert time.monotonic() - started >= 0.9


# -- uploads: HfApi's create_repo, upload_folder/upload_file and create_commit -------------------


@pytest.fixture
def lfs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake speaks LFS, not Xet (the fake kubelet sets HF_HUB_DISABLE_XET=1 for its pods)."""
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)


def trained(folder: Path, note: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "note": note}))
    (folder / "model.safetensors").write_bytes(b"weights " + note.encode() * 1000)
    return folder


# huggingface_hub 2.4's LFS upload PUTs a file object with httpx's data=, which httpx deprecates.
@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
def test_an_upload_is_a_new_revision_that_main_moves_to_and_downloads_serve(
    hub: HubThread, tmp_path: Path, lfs_only: None
) -> None:
    writer = api(hub, token="hf_write")
    before = writer.model_info("org/model").sha
    assert writer.create_repo("org/model", exist_ok=True) == f"{hub.url}/org/model"
    info = writer.upload_folder(
        repo_id="org/model", folder_path=trained(tmp_path / "out", "v2"), commit_message="retrained"
    )
    assert info.oid != before and len(info.oid) == 40 and info.commit_url.endswith(f"/commit/{info.oid}")
    assert api(hub).model_info("org/model").sha == info.oid
    got = Path(
        snapshot_download(
            "org/model", revision=info.oid, endpoint=hub.url, cache_dir=tmp_path / "c", token=False
        )
    )
    assert json.loads((got / "config.json").read_text())["note"] == "v2"
    assert (got / "model.safetensors").read_bytes() == (tmp_path / "out" / "model.safetensors").read_bytes()
    assert (got / "tokenizer.json").exists()  # the parent's files stay
    tree = {f.path: f for f in api(hub).list_repo_tree("org/model", revision=info.oid)}
    assert tree["model.safetensors"].lfs is not None  # the weights went through the LFS batch API
    requests = [(r["method"], r["path"]) for r in api_requests(hub)]
    assert ("POST", "/org/model.git/info/lfs/objects/batch") in requests
    # The commit before is still there, unchanged.
    old = hf_hub_download(
        "org/model", "config.json", revision=before, endpoint=hub.url, cache_dir=tmp_path / "c", token=False
    )
    assert "note" not in json.loads(Path(old).read_text())


def test_commits_build_on_each_other_and_deletions_apply(
    hub: HubThread, tmp_path: Path, lfs_only: None
) -> None:
    writer = api(hub, token="hf_write")
    first = writer.upload_file(path_or_fileobj=b"one", path_in_repo="notes/a.txt", repo_id="org/m")
    second = writer.create_commit(
        "org/m",
        [CommitOperationAdd("notes/b.txt", b"two"), CommitOperationDelete("tokenizer.json")],
        commit_message="b, and no tokenizer",
    )
    assert first.oid != second.oid and api(hub).model_info("org/m").sha == second.oid
    files = sorted(s.rfilename for s in api(hub).model_info("org/m").siblings or [])
    assert files == ["config.json", "model.safetensors", "notes/a.txt", "notes/b.txt"]


def test_a_write_without_a_token_is_401(hub: HubThread, tmp_path: Path, lfs_only: None) -> None:
    with pytest.raises(HfHubHTTPError) as err:
        api(hub).upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="org/model")
    assert err.value.response.status_code == 401
    assert api(hub).model_info("org/model").sha == commit_for("org/model", "main")


def test_a_commit_to_a_missing_repo_is_404_until_create_repo_makes_it(
    hub: HubThread, tmp_path: Path, lfs_only: None
) -> None:
    configure(tmp_path, missing=["org/new"])
    writer = api(hub, token="hf_write")
    with pytest.raises(RepositoryNotFoundError):
        writer.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="org/new")
    writer.create_repo("org/new")
    with pytest.raises(HfHubHTTPError) as err:
        writer.create_repo("org/new")  # exists now: 409, which exist_ok=True passes
    assert err.value.response.status_code == 409
    info = writer.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="org/new")
    files = sorted(s.rfilename for s in api(hub).model_info("org/new").siblings or [])
    assert files == [".gitattributes", "x.txt"] and api(hub).model_info("org/new").sha == info.oid


def test_hub_json_pushes_name_the_shas_commits_get(hub: HubThread, tmp_path: Path, lfs_only: None) -> None:
    planned = [hashlib.sha1(b"push-1").hexdigest(), hashlib.sha1(b"push-2").hexdigest()]
    configure(tmp_path, pushes={"org/model": planned})
    writer = api(hub, token="hf_write")
    shas = [
        writer.upload_file(path_or_fileobj=n.encode(), path_in_repo="n.txt", repo_id="org/model").oid
        for n in ("1", "2", "3")
    ]
    assert shas[:2] == planned and shas[2] not in planned


def api_requests(hub: HubThread) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{hub.url}/__hub/requests") as resp:
        return list(json.load(resp))
