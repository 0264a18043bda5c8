"""The Dockerfile, checked without a Docker engine: every COPY source exists and survives
.dockerignore, the base image is pinned, the image runs as a fixed non-root user, and the
entrypoint is the console script pyproject.toml declares, with flags the CLI accepts."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Dockerfile instructions, with line continuations joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a line continuation"
    return out


INSTRUCTIONS = parse((REPO / "Dockerfile").read_text())
ARGS = {k: v for i in INSTRUCTIONS if i.keyword == "ARG" and "=" in i.args for k, v in [i.args.split("=", 1)]}
STAGES = [i for i in INSTRUCTIONS if i.keyword == "FROM"]


def _final_stage() -> list[Instruction]:
    start = max(n for n, i in enumerate(INSTRUCTIONS) if i.keyword == "FROM")
    return INSTRUCTIONS[start:]


def _ignored(rel: str) -> bool:
    """Docker's .dockerignore semantics for the patterns used here: last match wins, ! re-includes."""
    ignored = False
    for pattern in (REPO / ".dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = rel.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(p, pattern[3:]) for p in parts)
        else:
            hit = any(fnmatch.fnmatch(p, pattern) for p in prefixes)
        if hit:
            ignored = not negate
    return ignored


def test_multi_stage_with_a_pinned_base() -> None:
    assert len(STAGES) >= 2
    for stage in STAGES:
        image = stage.args.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: ARGS[m.group(1)], image)
        name, _, tag = image.partition(":")
        assert tag, f"{image}: no tag"
        # A full version (3.11.14) and distribution (bookworm), not a floating tag.
        assert re.fullmatch(r"\d+\.\d+\.\d+-slim-[a-z]+", tag), f"{image}: pin a full version tag"
        assert name == "python"


def test_copy_sources_exist_and_survive_dockerignore() -> None:
    copies = [i for i in INSTRUCTIONS if i.keyword == "COPY" and "--from=" not in i.args]
    assert copies
    for copy in copies:
        *sources, _dest = copy.args.split()
        for src in sources:
            path = REPO / src
            assert path.exists(), f"COPY {src}: not in the repository"
            assert not _ignored(src.rstrip("/")), f"COPY {src}: excluded by .dockerignore"


def test_the_package_survives_dockerignore() -> None:
    package = REPO / "operator" / "llmops"
    kept = [p for p in package.rglob("*.py") if not _ignored(str(p.relative_to(REPO)))]
    assert len(kept) == len([p for p in package.rglob("*.py") if "__pycache__" not in p.parts])
    assert _ignored("operator/llmops/__pycache__/x.pyc")
    assert _ignored(".venv/bin/python") and _ignored("tests/unit/test_dockerfile.py")


def test_copy_from_names_an_earlier_stage() -> None:
    names = [s.args.split()[-1] for s in STAGES if " AS " in s.args.upper()]
    for copy in (i for i in INSTRUCTIONS if i.keyword == "COPY" and "--from=" in i.args):
        assert copy.args.split("--from=")[1].split()[0] in names


def test_runs_as_a_fixed_non_root_user() -> None:
    users = [i.args for i in _final_stage() if i.keyword == "USER"]
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be numeric (runAsNonRoot checks it) and not root"
    values = yaml.safe_load((REPO / "charts/llmops-operator/values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)


def test_entrypoint_is_the_declared_console_script() -> None:
    entry = [json.loads(i.args) for i in _final_stage() if i.keyword == "ENTRYPOINT"]
    assert entry == [["llmops"]], "exec form, the llmops console script"
    assert PYPROJECT["project"]["scripts"]["llmops"] == "llmops.cli:main"
    module, _, func = PYPROJECT["project"]["scripts"]["llmops"].partition(":")
    source = REPO / "operator" / (module.replace(".", "/") + ".py")
    assert source.is_file(), f"{module} does not exist"
    assert re.search(rf"^def {func}\(", source.read_text(), re.M), f"{module} defines no {func}()"


def _run_help() -> str:
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from llmops.cli import main; sys.argv[0] = 'llmops'; main()",
            "run",
            "--help",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_default_command_and_chart_flags_are_accepted_by_the_cli() -> None:
    cmd = [json.loads(i.args) for i in _final_stage() if i.keyword == "CMD"][-1]
    assert cmd[0] == "run"
    help_text = _run_help()
    chart_flags = [
        "--all-namespaces",
        "--namespace",
        "--liveness-port",
        "--metrics-port",
        "--log-format",
        "--peering",
        "--standalone",
    ]
    for flag in [*cmd[1:], *chart_flags]:
        assert re.search(rf"(^|[\s,]){re.escape(flag)}\b", help_text), f"`llmops run` does not accept {flag}"


@pytest.mark.parametrize("port", ["8080", "9090"])
def test_exposed_ports_are_the_charts_defaults(port: str) -> None:
    exposed = " ".join(i.args for i in _final_stage() if i.keyword == "EXPOSE").split()
    assert port in exposed


def test_the_dev_tools_never_enter_the_image() -> None:
    """Only pyproject.toml and operator/ are copied, and .dockerignore keeps devtools/ and the
    tests out of the build context even if a COPY widened."""
    copies = [i for i in INSTRUCTIONS if i.keyword == "COPY" and "--from=" not in i.args]
    sources = {src.rstrip("/") for copy in copies for src in copy.args.split()[:-1]}
    assert sources == {"pyproject.toml", "operator"}
    for path in ("devtools", "devtools/pyproject.toml", "devtools/llmops_dev/cluster/build.py", "tests"):
        assert _ignored(path), f"{path} is in the Docker build context"
    assert not (REPO / "operator" / "llmops_dev").exists()


def test_the_image_installs_only_the_operator_distribution() -> None:
    """One `pip install .` of the root project (llmops-operator): no editable install, no extras,
    no second project (devtools), no requirements file pulling in test tools."""
    installs = [i.args for i in INSTRUCTIONS if i.keyword == "RUN" and "pip install" in i.args]
    assert len(installs) == 1
    words = installs[0].split("&&")[0].split()
    targets = [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
    assert targets == ["."], f"the image installs {targets}"
    assert not {"-e", "--editable", "-r", "--requirement"} & set(words)
    assert PYPROJECT["project"]["name"] == "llmops-operator"
