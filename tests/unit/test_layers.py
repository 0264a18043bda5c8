"""The pure core (api, engines, render, lifecycle, analysis) reads no clock, no environment and
no randomness, and opens no files: `plan(body, observations, now)` and `render()` give the same
answer for the same input, so tests and a restarted operator see the same decisions.

Which modules a layer may import is import-linter's job (the contracts in pyproject.toml, run by
`make lint` and `make test`). Import-linter sees imports, not calls: `import datetime as dt` is
fine in the core (it needs the type), `dt.datetime.now()` is not. This file checks the calls.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "operator" / "llmops"
CORE_PACKAGES = ("api", "engines", "render", "lifecycle", "analysis")

# Fully qualified names the core must never use (a prefix match: `random` forbids `random.choice`).
FORBIDDEN_NAMES = (
    "datetime.datetime.now",
    "datetime.datetime.utcnow",
    "datetime.datetime.today",
    "datetime.date.today",
    "time.time",
    "time.time_ns",
    "time.monotonic",
    "time.monotonic_ns",
    "time.perf_counter",
    "time.perf_counter_ns",
    "time.localtime",
    "time.gmtime",
    "time.sleep",
    "os.environ",
    "os.getenv",
    "os.environb",
    "os.urandom",
    "random",
    "secrets",
    "uuid",
    "socket",
    "subprocess",
)
# Builtins that read the outside world. crd.py's main() writes the CRD to stdout, no open() either.
FORBIDDEN_BUILTINS = ("open", "input")


def _forbidden(qualified: str) -> bool:
    return any(qualified == name or qualified.startswith(name + ".") for name in FORBIDDEN_NAMES)


def _dotted(node: ast.expr) -> list[str] | None:
    """`a.b.c` as ["a", "b", "c"]; None for anything that is not a plain attribute chain."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> what it is bound to by imports: `import datetime as dt` gives dt -> datetime,
    `from time import monotonic` gives monotonic -> time.monotonic."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                bound[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


def violations(source: str) -> list[str]:
    """Every use of a clock, the environment, randomness or a file in ``source``, as `line: name`."""
    tree = ast.parse(source)
    bound = _aliases(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            names = (
                [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else []
            )
            found += [f"{node.lineno}: import {m}" for m in [*modules, *names] if _forbidden(m)]
        elif isinstance(node, ast.Attribute | ast.Name):
            parts = _dotted(node)
            if not parts or parts[0] not in bound:
                if isinstance(node, ast.Name) and node.id in FORBIDDEN_BUILTINS:
                    found.append(f"{node.lineno}: {node.id}")
                continue
            qualified = ".".join([bound[parts[0]], *parts[1:]])
            if _forbidden(qualified):
                found.append(f"{node.lineno}: {qualified}")
    return sorted(set(found))


def _core_files() -> list[Path]:
    return sorted(p for pkg in CORE_PACKAGES for p in (CORE / pkg).rglob("*.py"))


def test_the_core_packages_exist() -> None:
    files = _core_files()
    assert {p.relative_to(CORE).parts[0] for p in files} == set(CORE_PACKAGES)
    assert len(files) >= 30


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(CORE)))
def test_the_core_reads_no_clock_no_environment_no_randomness(path: Path) -> None:
    assert violations(path.read_text()) == [], f"{path.relative_to(REPO)} is not pure"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import datetime as dt\nx = dt.datetime.now(dt.UTC)", ["2: datetime.datetime.now"]),
        ("from datetime import datetime\nx = datetime.utcnow()", ["2: datetime.datetime.utcnow"]),
        ("from datetime import date\nx = date.today()", ["2: datetime.date.today"]),
        ("import time\nx = time.monotonic()", ["2: time.monotonic"]),
        ("from time import time as now\nx = now()", ["1: import time.time", "2: time.time"]),
        ("import os\nx = os.environ['HOME']", ["2: os.environ"]),
        ("import os\nx = os.getenv('HOME')", ["2: os.getenv"]),
        ("import random\nx = random.random()", ["1: import random", "2: random", "2: random.random"]),
        ("import uuid\nx = uuid.uuid4()", ["1: import uuid", "2: uuid", "2: uuid.uuid4"]),
        ("x = open('/etc/hosts').read()", ["1: open"]),
    ],
)
def test_the_checker_catches_each_kind(source: str, expected: list[str]) -> None:
    assert violations(source) == expected


def test_the_checker_allows_what_the_core_needs() -> None:
    allowed = (
        "import datetime as dt\n"
        "def f(now: dt.datetime) -> str:\n"
        "    return dt.datetime.strptime('2026', '%Y').replace(tzinfo=dt.UTC).isoformat()\n"
        "import os.path\n"
        "x = os.path.join('a', 'b')\n"
    )
    assert violations(allowed) == []


def test_the_import_contracts_hold() -> None:
    """The import-linter contracts in pyproject.toml (also run by `make lint`), here so that a
    plain `pytest tests/unit` checks the layers too."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    res = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout
