"""A fake Hugging Face Hub: exactly the routes huggingface_hub 2.4's downloads and uploads call.

``snapshot_download`` and ``hf_hub_download`` work against it through ``HF_ENDPOINT``:

    GET      /api/{models|datasets}/{repo}[/revision/{rev}]      repo info (id, sha, siblings)
    GET      /api/{models|datasets}/{repo}/tree/{rev}[/{path}]   the recursive file listing
    HEAD|GET /[datasets/]{repo}/resolve/{rev}/{file}             a file
    GET      /__cdn/{type}/{repo}/{sha}/{file}                   an LFS blob (see below)
    GET      /__hub/requests                                     recent requests, for tests

and so do ``HfApi.create_repo``, ``upload_file``, ``upload_folder`` and ``create_commit``:

    POST     /api/repos/create                                   a repo (409 with its url if it exists)
    POST     /api/{models|datasets}/{repo}/preupload/{ref}       uploadMode: lfs for weights, else regular
    POST     /[datasets/]{repo}.git/info/lfs/objects/batch       LFS batch: where to PUT each blob
    PUT      /__lfs/{sha256}                                     an LFS blob (on the CDN port, like S3)
    POST     /api/{models|datasets}/{repo}/commit/{ref}          ndjson; a new commit, the ref moves to it

As on the real Hub, a regular file answers 200 with ``ETag`` (its git blob sha1),
``X-Repo-Commit`` and ``Content-Length``; an LFS file (``*.safetensors``) answers 302 to a
"CDN" with ``X-Linked-Etag`` (its sha256) and ``X-Linked-Size``. The CDN is this server on a
second port: a different origin, so the client drops the Authorization header there just as
it does for the real CDN. Errors carry ``X-Error-Code`` (RepoNotFound, GatedRepo,
RevisionNotFound, EntryNotFound), which the client maps to its exception classes.

Any repo id exists. A revision that is a 40-hex sha resolves to itself; the ref ``main`` (and
refs listed in hub.json) resolve to a fixed sha derived from repo and ref; other refs are not
found. A model has ``config.json``, ``tokenizer.json`` and a small ``model.safetensors`` whose
content depends on the commit. Tests steer it with ``<state-dir>/hub.json``, re-read when it
changes::

    {"missing": ["org/nope"],            404 RepositoryNotFound
     "gated": ["org/gated"],             401 GatedRepo unless a token is sent (any token)
     "slow": {"org/big": 30},            each file's body takes this many seconds
     "weights": {"org/big": 62914560},   model.safetensors holds this many tensor bytes (64 KiB
                                         by default): a download whose progress can be watched
     "unavailable": ["org/down"],        503 on every route
     "refs": {"org/x": ["v1"] | {"v1": "<sha>"}},
     "absent": {"org/x": ["<sha>"]},      404 RevisionNotFound for these commits (never pushed)
     "files": {"org/x": {"path": "text"}}}   replaces the repo's default files

Dataset repos are keyed ``datasets/org/name`` and have only a README.md unless ``files`` says
otherwise.

Uploads. Every write needs a token (any token; 401 without, as the Hub answers an anonymous
write). A commit to ``main`` (or a ref of hub.json) starts from what that ref resolves to, applies
the files (``file`` base64, ``lfsFile`` by the sha256 PUT before, ``deletedFile``,
``deletedFolder``) and gets a new 40-hex sha, which the ref then resolves to and the download
routes serve. The client uploads weights through Xet when ``hf_xet`` is installed; this fake
speaks the LFS protocol only, so clients set ``HF_HUB_DISABLE_XET=1`` (the fake kubelet does for
its pods). A commit to a ``missing`` repo is 404 RepoNotFound until ``create_repo`` creates it.
Pushes live in memory, for the server's lifetime. A test that needs to know the sha a push will
get ahead (the simulators' behaviour is keyed by revision) lists it in hub.json::

    {"pushes": {"org/x": ["<sha>", ...]}}   the shas of the 1st, 2nd, ... commit pushed to org/x
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import functools
import hashlib
import json
import logging
import re
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

__all__ = ["FakeHub", "HubThread", "commit_for", "model_files", "serve_in_thread"]

log = logging.getLogger("llmops.fakehub")

_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".onnx")
_MODEL_BYTES = 64 * 1024
_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_CREATED = "2025-06-01T00:00:00.000Z"
_MAX_UPLOAD = 1 << 30
_GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


def commit_for(repo_key: str, ref: str) -> str:
    """The commit sha the fake Hub resolves ``ref`` to (``repo_key`` as in hub.json)."""
    return hashlib.sha1(f"{repo_key}@{ref}".encode()).hexdigest()


def _safetensors(repo_id: str, sha: str, size: int = _MODEL_BYTES) -> bytes:
    """A valid safetensors file with one U8 tensor of ``size`` bytes that depend on repo and commit."""
    header = {
        "__metadata__": {"format": "pt", "llmops.fake": "true", "repo": repo_id, "revision": sha},
        "weight": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]},
    }
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes
    return struct.pack("<Q", len(raw)) + raw + hashlib.shake_256(f"{repo_id}@{sha}".encode()).digest(size)


def model_files(repo_id: str, sha: str, weight_bytes: int = _MODEL_BYTES) -> dict[str, bytes]:
    """The default files of a fake model repo at a commit (``weight_bytes``: the tensor's size)."""
    config = {
        "_name_or_path": repo_id,
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "vocab_size": 256,
        "max_position_embeddings": 4096,
        "torch_dtype": "float16",
        "llmops_fake": {"repo": repo_id, "revision": sha},
    }
    tokenizer = {
        "version": "1.0",
        "added_tokens": [
            {"id": 0, "content": "<s>", "special": True},
            {"id": 1, "content": "</s>", "special": True},
        ],
        "model": {
            "type": "BPE",
            "vocab": {"<s>": 0, "</s>": 1, **{chr(c): c for c in range(32, 127)}},
            "merges": [],
        },
    }
    return {
        "config.json": json.dumps(config, indent=2).encode(),
        "tokenizer.json": json.dumps(tokenizer).encode(),
        "model.safetensors": _safetensors(repo_id, sha, weight_bytes),
    }


@dataclass(frozen=True)
class _File:
    path: str
    data: bytes

    @functools.cached_property
    def git_sha1(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()

    @functools.cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def lfs(self) -> bool:
        return self.path.endswith(_LFS_SUFFIXES)


class _HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.commit = status, code, message, commit

    def response(self) -> web.Response:
        headers = {"X-Error-Message": self.message}
        if self.code:
            headers["X-Error-Code"] = self.code
        if self.commit:
            headers["X-Repo-Commit"] = self.commit
        return web.json_response({"error": self.message}, status=self.status, headers=headers)


class _Config:
    """hub.json, re-read when its mtime or size changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self.data: dict[str, Any] = {}

    def get(self) -> dict[str, Any]:
        if self.path is None:
            return self.data
        try:
            st = self.path.stat()
        except OSError:
            self._stamp, self.data = None, {}
            return self.data
        stamp = (st.st_mtime, st.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                loaded = json.loads(self.path.read_text())
                self.data = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError) as exc:
                log.warning("ignoring unreadable %s: %s", self.path, exc)
                self.data = {}
        return self.data


class FakeHub:
    """The fake Hub's aiohttp application and its two listening sockets (Hub and CDN)."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.config = _Config(state_dir / "hub.json" if state_dir is not None else None)
        self.requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=500)
        self.url: str | None = None
        self.cdn_url: str | None = None
        self._runner: web.AppRunner | None = None
        self._created: set[str] = set()
        """Repo keys create_repo made (a ``missing`` one exists from then on)."""
        self._heads: dict[tuple[str, str], str] = {}
        """(repo key, ref) → the sha of the last commit pushed to that ref."""
        self._commits: dict[tuple[str, str], dict[str, bytes]] = {}
        """(repo key, sha) → the files of a pushed commit."""
        self._pushes: collections.Counter[str] = collections.Counter()
        """Commits pushed per repo key."""
        self._blobs: dict[str, bytes] = {}
        """LFS blobs PUT so far, by sha256."""

    # -- lifecycle ---------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=_MAX_UPLOAD)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        runner = web.AppRunner(self.make_app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        await web.TCPSite(runner, host, 0).start()
        self._runner = runner
        (_, hub_port), (_, cdn_port) = (a[:2] for a in runner.addresses)
        self.url, self.cdn_url = f"http://{host}:{hub_port}", f"http://{host}:{cdn_port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # -- repo model --------------------------------------------------------------------------

    def _listed(self, section: str, key: str) -> Any:
        value = self.config.get().get(section)
        if isinstance(value, dict):
            return value.get(key)
        if isinstance(value, list):
            return key in value
        return None

    def _resolve(self, key: str, revision: str) -> str:
        if (key, revision) in self._heads:
            return self._heads[key, revision]
        if _SHA_RE.match(revision):
            if revision in (self._listed("absent", key) or []):
                raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return revision
        refs = self._listed("refs", key)
        if isinstance(refs, dict) and revision in refs:
            return str(refs[revision]) if _SHA_RE.match(str(refs[revision])) else commit_for(key, revision)
        if revision == "main" or (isinstance(refs, list) and revision in refs):
            return commit_for(key, revision)
        raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    def _files(self, key: str, repo_type: str, repo_id: str, sha: str) -> dict[str, _File]:
        pushed = self._commits.get((key, sha))
        if pushed is not None:
            return {path: _File(path, data) for path, data in sorted(pushed.items())}
        override = self._listed("files", key)
        if isinstance(override, dict):
            raw = {str(p): str(text).encode() for p, text in override.items()}
        elif repo_type == "model":
            weights = self._listed("weights", key)
            size = (
                weights
                if isinstance(weights, int) and not isinstance(weights, bool) and weights > 0
                else None
            )
            raw = _default_model_files(repo_id, sha, size or _MODEL_BYTES)
        else:
            raw = {"README.md": f"# {repo_id}\n\nA fake {repo_type} repository.\n".encode()}
        return {path: _File(path, data) for path, data in sorted(raw.items())}

    def _check_access(self, key: str, repo_type: str, repo_id: str, request: web.Request) -> None:
        if self._listed("unavailable", key):
            raise _HubError(503, None, "Service Unavailable")
        if self._listed("missing", key) and key not in self._created:
            raise _HubError(404, "RepoNotFound", "Repository not found")
        if self._listed("gated", key) and not _token(request):
            raise _HubError(
                401,
                "GatedRepo",
                f"Access to {repo_type} {repo_id} is restricted. You must have access to it and be "
                "authenticated to access it. Please log in.",
            )

    # -- routing -----------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [unquote(p) for p in request.rel_url.raw_path.strip("/").split("/")]
        self.requests.append(
            {
                "method": request.method,
                "path": request.rel_url.path,
                "port": request.url.port,
                "authorization": bool(_token(request)),
            }
        )
        try:
            if parts[:2] == ["__hub", "requests"]:
                return web.json_response(list(self.requests))
            if request.method in ("POST", "PUT"):
                return await self._write(request, parts)
            if parts[0] == "__cdn" and request.method in ("GET", "HEAD"):
                return await self._cdn(request, parts[1:])
            if parts[0] == "api" and len(parts) >= 3 and parts[1] in _REPO_TYPES and request.method == "GET":
                return self._api(request, _REPO_TYPES[parts[1]], parts[2:])
            if request.method in ("GET", "HEAD"):
                if parts[0] in ("datasets", "spaces") and len(parts) > 1:
                    return await self._resolve_file(request, _REPO_TYPES[parts[0]], parts[1:])
                return await self._resolve_file(request, "model", parts)
        except _HubError as exc:
            return exc.response()
        return web.json_response({"error": "Not Found"}, status=404)

    def _api(self, request: web.Request, repo_type: str, rest: list[str]) -> web.Response:
        repo_id, tail = _split_repo(rest, ("tree", "revision"))
        key = _key(repo_type, repo_id)
        self._check_access(key, repo_type, repo_id, request)
        if not tail:
            revision = "main"
        elif len(tail) >= 2 and tail[0] in ("tree", "revision"):
            revision = tail[1]
        else:
            raise _HubError(404, None, "Not Found")
        sha = self._resolve(key, revision)
        files = self._files(key, repo_type, repo_id, sha)
        if tail and tail[0] == "tree":
            prefix = "/".join(tail[2:]).strip("/")
            return web.json_response(_tree(files, prefix))
        info: dict[str, Any] = {
            "_id": hashlib.md5(key.encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0] if "/" in repo_id else None,
            "sha": sha,
            "lastModified": _CREATED,
            "createdAt": _CREATED,
            "private": False,
            "gated": "auto" if self._listed("gated", key) else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": [{"rfilename": path} for path in files],
            "usedStorage": sum(len(f.data) for f in files.values()),
        }
        if repo_type == "model":
            info |= {"modelId": repo_id, "pipeline_tag": "text-generation", "library_name": "transformers"}
        return web.json_response(info)

    async def _resolve_file(
        self, request: web.Request, repo_type: str, rest: list[str]
    ) -> web.StreamResponse:
        repo_id, tail = _split_repo(rest, ("resolve",))
        if len(tail) < 3 or tail[0] != "resolve":
            raise _HubError(404, None, "Not Found")
        key = _key(repo_type, repo_id)
        self._check_access(key, repo_type, repo_id, request)
        sha = self._resolve(key, tail[1])
        path = "/".join(tail[2:])
        file = self._files(key, repo_type, repo_id, sha).get(path)
        if file is None:
            raise _HubError(404, "EntryNotFound", f'{path} does not exist on "{tail[1]}"', commit=sha)
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if file.lfs:
            assert self.cdn_url is not None
            location = f"{self.cdn_url}/__cdn/{repo_type}s/{quote(repo_id)}/{sha}/{quote(path)}"
            headers |= {
                "Location": location,
                "ETag": f'"{file.git_sha1}"',
                "X-Linked-Etag": f'"{file.sha256}"',
                "X-Linked-Size": str(len(file.data)),
            }
            return web.Response(status=302, headers=headers)
        headers["ETag"] = f'"{file.git_sha1}"'
        return await self._send(request, key, file, headers)

    async def _cdn(self, request: web.Request, rest: list[str]) -> web.StreamResponse:
        # /__cdn/{models|datasets}/{repo...}/{sha}/{path...}: a "signed" URL, so no access check.
        if len(rest) < 4 or rest[0] not in _REPO_TYPES:
            raise _HubError(404, None, "Not Found")
        repo_type = _REPO_TYPES[rest[0]]
        body = rest[1:]
        sha_at = next((i for i, p in enumerate(body) if _SHA_RE.match(p) and i > 0), None)
        if sha_at is None:
            raise _HubError(404, None, "Not Found")
        repo_id, sha, path = "/".join(body[:sha_at]), body[sha_at], "/".join(body[sha_at + 1 :])
        key = _key(repo_type, repo_id)
        file = self._files(key, repo_type, repo_id, sha).get(path)
        if file is None:
            raise _HubError(404, None, "Not Found")
        return await self._send(request, key, file, {"ETag": f'"{file.sha256}"', "X-Repo-Commit": sha})

    # -- uploads -----------------------------------------------------------------------------

    async def _write(self, request: web.Request, parts: list[str]) -> web.Response:
        """The routes huggingface_hub's create_repo, upload_* and create_commit call."""
        if request.method == "PUT" and len(parts) == 2 and parts[0] == "__lfs":
            return await self._put_blob(request, parts[1])  # a "presigned" URL: no token
        if not _token(request):
            raise _HubError(401, None, "Invalid credentials in Authorization header")
        if request.method == "POST" and parts == ["api", "repos", "create"]:
            return await self._create_repo(request)
        if request.method == "POST" and parts[-4:-1] == ["info", "lfs", "objects"] and parts[-1] == "batch":
            return await self._lfs_batch(request, parts[:-4])
        if request.method == "POST" and parts[0] == "api" and len(parts) >= 5 and parts[1] in _REPO_TYPES:
            repo_id, tail = _split_repo(parts[2:], ("preupload", "commit"))
            if len(tail) >= 2 and tail[0] in ("preupload", "commit"):
                repo_type, ref = _REPO_TYPES[parts[1]], "/".join(tail[1:])
                key = _key(repo_type, repo_id)
                self._check_access(key, repo_type, repo_id, request)
                if tail[0] == "preupload":
                    return await self._preupload(request, key, ref)
                return await self._commit(request, key, repo_type, repo_id, ref)
        raise _HubError(404, None, "Not Found")

    async def _create_repo(self, request: web.Request) -> web.Response:
        payload = await _json_body(request)
        name, org = payload.get("name"), payload.get("organization")
        repo_type = str(payload.get("type") or "model")
        if not isinstance(name, str) or not name or repo_type not in _REPO_TYPES.values():
            raise _HubError(400, None, "name (a string) and type (model, dataset or space) are required")
        repo_id = f"{org}/{name}" if org else name
        key = _key(repo_type, repo_id)
        url = f"{self.url}/{'' if repo_type == 'model' else repo_type + 's/'}{repo_id}"
        if not self._listed("missing", key) or key in self._created:
            body = {"error": f"You already created this {repo_type} repo", "url": url}
            return web.json_response(body, status=409)
        self._created.add(key)
        sha = hashlib.sha1(f"{key}@created".encode()).hexdigest()  # not one of hub.json's pushes
        self._commits[key, sha] = {".gitattributes": _GITATTRIBUTES}
        self._heads[key, "main"] = sha
        return web.json_response(
            {"url": url, "name": repo_id, "id": hashlib.md5(key.encode()).hexdigest()[:24]}
        )

    async def _preupload(self, request: web.Request, key: str, ref: str) -> web.Response:
        self._resolve(key, ref)
        files = (await _json_body(request)).get("files")
        if not isinstance(files, list):
            raise _HubError(400, None, "files (a list) is required")
        modes = [
            {
                "path": str(f.get("path")),
                "uploadMode": "lfs" if str(f.get("path")).endswith(_LFS_SUFFIXES) else "regular",
                "shouldIgnore": False,
            }
            for f in files
            if isinstance(f, dict)
        ]
        return web.json_response({"files": modes, "commitOid": self._resolve(key, ref)})

    async def _lfs_batch(self, request: web.Request, repo_parts: list[str]) -> web.Response:
        if not repo_parts or not repo_parts[-1].endswith(".git"):
            raise _HubError(404, None, "Not Found")
        repo_type = _REPO_TYPES[repo_parts[0]] if repo_parts[0] in ("datasets", "spaces") else "model"
        rest = repo_parts[1:] if repo_type != "model" else repo_parts
        repo_id = "/".join(rest)[: -len(".git")]
        key = _key(repo_type, repo_id)
        self._check_access(key, repo_type, repo_id, request)
        objects = (await _json_body(request)).get("objects")
        if not isinstance(objects, list):
            raise _HubError(400, None, "objects (a list) is required")
        assert self.cdn_url is not None
        answer = []
        for obj in objects:
            oid, size = str(obj.get("oid")), obj.get("size")
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if oid not in self._blobs:  # a blob the Hub already holds needs no upload
                entry["actions"] = {"upload": {"href": f"{self.cdn_url}/__lfs/{oid}"}}
            answer.append(entry)
        return web.json_response({"transfer": "basic", "objects": answer, "hash_algo": "sha256"})

    async def _put_blob(self, request: web.Request, oid: str) -> web.Response:
        data = await request.read()
        if hashlib.sha256(data).hexdigest() != oid:
            raise _HubError(400, None, f"the body's sha256 is not {oid}")
        self._blobs[oid] = data
        return web.Response(status=200)

    async def _commit(
        self, request: web.Request, key: str, repo_type: str, repo_id: str, ref: str
    ) -> web.Response:
        if request.query.get("create_pr"):
            raise _HubError(400, None, "this fake Hub has no pull requests")
        parent = self._resolve(key, ref)
        if _SHA_RE.match(ref) and (key, ref) not in self._heads:
            raise _HubError(400, None, f"Invalid rev id: {ref} is a commit, not a branch")
        files = {path: f.data for path, f in self._files(key, repo_type, repo_id, parent).items()}
        summary = ""
        for line in (await request.read()).splitlines():
            if not line.strip():
                continue
            summary = _apply(json.loads(line), files, self._blobs) or summary
        sha = self._next_sha(key, parent, files)
        self._commits[key, sha] = files
        self._heads[key, ref] = sha
        self._pushes[key] += 1
        log.info("commit %s to %s@%s: %s", sha, key, ref, summary)
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        return web.json_response(
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self.url}/{prefix}{repo_id}/commit/{sha}",
                "commitMessage": summary,
                "hookOutput": "",
                "pullRequestUrl": None,
            }
        )

    def _next_sha(self, key: str, parent: str, files: dict[str, bytes]) -> str:
        """The sha hub.json's ``pushes`` names for this push, else one derived from its content."""
        planned = self._listed("pushes", key)
        n = self._pushes[key]
        if isinstance(planned, list) and n < len(planned) and _SHA_RE.match(str(planned[n])):
            return str(planned[n])
        tree = "".join(f"{p}\0{hashlib.sha1(d).hexdigest()}\n" for p, d in sorted(files.items()))
        return hashlib.sha1(f"{key}\0{parent}\0{n}\0{tree}".encode()).hexdigest()

    async def _send(
        self, request: web.Request, key: str, file: _File, headers: dict[str, str]
    ) -> web.StreamResponse:
        data, status = file.data, 200
        start = _range_start(request.headers.get("Range"))
        if start is not None and 0 < start < len(file.data):
            data, status = file.data[start:], 206
            headers["Content-Range"] = f"bytes {start}-{len(file.data) - 1}/{len(file.data)}"
        headers["Content-Disposition"] = f'inline; filename="{file.path.rsplit("/", 1)[-1]}"'
        if request.method == "HEAD":
            return web.Response(status=status, headers={**headers, "Content-Length": str(len(data))})
        slow = self._listed("slow", key)
        if not isinstance(slow, int | float) or isinstance(slow, bool) or slow <= 0:
            return web.Response(status=status, body=data, headers=headers)
        # A slow mirror: the body trickles out over `slow` seconds.
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = len(data)
        await resp.prepare(request)
        steps = 20
        chunk = max(1, -(-len(data) // steps))
        for i in range(steps):
            await asyncio.sleep(slow / steps)
            piece = data[i * chunk : (i + 1) * chunk]
            if piece:
                await resp.write(piece)
        await resp.write_eof()
        return resp


@functools.lru_cache(maxsize=16)
def _default_model_files(repo_id: str, sha: str, weight_bytes: int) -> dict[str, bytes]:
    return model_files(repo_id, sha, weight_bytes)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise _HubError(400, None, f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _HubError(400, None, "the body is not a JSON object")
    return body


def _apply(op: Any, files: dict[str, bytes], blobs: dict[str, bytes]) -> str | None:
    """One line of a commit's ndjson applied to ``files``; the header returns its summary."""
    key, value = (op.get("key"), op.get("value")) if isinstance(op, dict) else (None, None)
    if not isinstance(value, dict):
        raise _HubError(400, None, f"a commit line is {{key, value}}, not {op!r:.100}")
    path = str(value.get("path", ""))
    if key == "header":
        return str(value.get("summary") or "")
    if key == "file":
        if value.get("encoding") != "base64":
            raise _HubError(400, None, f"{path}: only base64 content is supported")
        files[path] = base64.b64decode(str(value.get("content", "")))
    elif key == "lfsFile":
        oid = str(value.get("oid"))
        if oid not in blobs:
            raise _HubError(422, None, f"{path}: LFS object {oid} was not uploaded")
        files[path] = blobs[oid]
    elif key == "deletedFile":
        if files.pop(path, None) is None:
            raise _HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {path}")
    elif key == "deletedFolder":
        for name in [p for p in files if p.startswith(path.rstrip("/") + "/")]:
            del files[name]
    else:
        raise _HubError(400, None, f"unsupported commit operation {key!r}")
    return None


def _key(repo_type: str, repo_id: str) -> str:
    return repo_id if repo_type == "model" else f"{repo_type}s/{repo_id}"


def _token(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""


def _split_repo(rest: list[str], keywords: tuple[str, ...]) -> tuple[str, list[str]]:
    """Split "org/name/<keyword>/..." or "name/<keyword>/..." into the repo id and the rest."""
    if (len(rest) >= 3 and rest[2] in keywords) or (len(rest) == 2 and rest[1] not in keywords):
        return "/".join(rest[:2]), rest[2:]
    return rest[0], rest[1:]


def _tree(files: dict[str, _File], prefix: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    folders: set[str] = set()
    for path, f in files.items():
        if prefix and not path.startswith(prefix + "/"):
            continue
        parts = path.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if folder not in folders and (not prefix or folder.startswith(prefix + "/")):
                folders.add(folder)
                out.append(
                    {
                        "type": "directory",
                        "oid": hashlib.sha1(folder.encode()).hexdigest(),
                        "size": 0,
                        "path": folder,
                    }
                )
        entry: dict[str, Any] = {"type": "file", "oid": f.git_sha1, "size": len(f.data), "path": path}
        if f.lfs:
            entry["lfs"] = {"oid": f.sha256, "size": len(f.data), "pointerSize": 134}
        out.append(entry)
    return out


def _range_start(header: str | None) -> int | None:
    m = re.fullmatch(r"bytes=(\d+)-", header or "")
    return int(m.group(1)) if m else None


class HubThread:
    """A FakeHub serving from its own event loop in a daemon thread (unit tests, scripts)."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.hub = FakeHub(state_dir)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fakehub", daemon=True)

    @property
    def url(self) -> str:
        assert self.hub.url is not None
        return self.hub.url

    def start(self) -> str:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.hub.start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.hub.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@contextlib.contextmanager
def serve_in_thread(state_dir: Path | None = None) -> Iterator[HubThread]:
    """``with serve_in_thread(dir) as hub: ... hub.url``: a fake Hub for the block's duration."""
    hub = HubThread(state_dir)
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()
