"""What ships: the operator wheel, built from exactly what the Dockerfile copies (pyproject.toml
and operator/), holds the `llmops` package and nothing of the dev tools or the tests; installed
alone into a fresh virtualenv (its dependencies from the package index) every module imports and
the console script works; and its declared dependencies are exactly the distributions the
operator imports.

The fresh virtualenv's dependencies are cached under .dev/ keyed by pyproject.toml (installing
kubernetes, kopf and pydantic takes a minute); the freshly built wheel is reinstalled into it on
every run, and `pip check` proves the cached dependencies still satisfy it.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "operator" / "llmops"
# What the Dockerfile copies into its build stage; the wheel is built from these alone.
BUILD_CONTEXT = ("pyproject.toml", "operator")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The operator wheel, built (isolated, as pip would) from a copy of the build context."""
    src = tmp_path_factory.mktemp("context")
    shutil.copy2(REPO / "pyproject.toml", src / "pyproject.toml")
    shutil.copytree(
        REPO / "operator", src / "operator", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    out = tmp_path_factory.mktemp("dist")
    res = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (built,) = out.glob("llmops_operator-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        return z.namelist()


@pytest.fixture(scope="module")
def metadata(wheel: Path, wheel_files: list[str]) -> dict[str, list[str]]:
    (name,) = [f for f in wheel_files if f.endswith(".dist-info/METADATA")]
    with zipfile.ZipFile(wheel) as z:
        msg = Parser().parsestr(z.read(name).decode())
    return {key: msg.get_all(key) or [] for key in ("Name", "Requires-Dist", "Requires-Python")}


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path) -> Path:
    """A virtualenv with nothing but the wheel and its dependencies; never the dev tools."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    venv = REPO / ".dev" / f"wheel-venv-{key}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        for stale in venv.parent.glob("wheel-venv-*"):  # built for an older pyproject.toml
            shutil.rmtree(stale, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        _pip(python, "install", "-q", str(wheel))  # with its dependencies
        (venv / ".complete").touch()
    _pip(python, "install", "-q", "--no-deps", "--force-reinstall", str(wheel))
    _pip(python, "check")
    return venv


def _pip(python: Path, *args: str) -> None:
    res = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd="/",
    )
    assert res.returncode == 0, f"pip {' '.join(args)}:\n{res.stdout[-3000:]}{res.stderr[-3000:]}"


def _run(venv: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    """Run in the fresh venv, from a directory where neither the repo nor tests are importable."""
    return subprocess.run(
        [str(venv / "bin" / cmd[0]), *cmd[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd="/",
        env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(venv)},
    )


def _source_modules() -> set[str]:
    """Every module of the llmops package in the source tree, as a dotted name."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_the_wheel_holds_the_operator_and_nothing_else(wheel_files: list[str], metadata) -> None:
    assert metadata["Name"] == ["llmops-operator"]
    top_level = {f.split("/")[0] for f in wheel_files}
    assert {t for t in top_level if not t.endswith(".dist-info")} == {"llmops"}
    for forbidden in ("llmops_dev", "devcluster", "tests", "testkit", "conftest", "devtools"):
        assert not [f for f in wheel_files if forbidden in f.split("/")[0] or f"/{forbidden}" in f], forbidden
    shipped = {
        f.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for f in wheel_files
        if f.startswith("llmops/") and f.endswith(".py")
    }
    assert shipped == _source_modules()
    assert not [f for f in wheel_files if f.startswith("llmops/") and not f.endswith(".py")]


def test_the_entry_point_is_the_cli(wheel: Path, wheel_files: list[str]) -> None:
    (name,) = [f for f in wheel_files if f.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(wheel) as z:
        text = z.read(name).decode()
    assert "[console_scripts]" in text and "llmops = llmops.cli:main" in text


def test_every_module_imports_from_the_installed_wheel_alone(fresh_venv: Path) -> None:
    script = (
        "import importlib, json, pkgutil, llmops\n"
        "names = [m.name for m in pkgutil.walk_packages(llmops.__path__, 'llmops.')]\n"
        "for n in names: importlib.import_module(n)\n"
        "try:\n    import llmops_dev\nexcept ImportError:\n    dev = False\nelse:\n    dev = True\n"
        "print(json.dumps({'file': llmops.__file__, 'modules': names, 'dev': dev}))\n"
    )
    res = _run(fresh_venv, "python", "-c", script)
    assert res.returncode == 0, res.stderr
    found = json.loads(res.stdout)
    assert found["file"].startswith(str(fresh_venv)), found["file"]
    assert not found["dev"], "llmops_dev is importable next to the wheel"
    assert {"llmops", *found["modules"]} == _source_modules()


def test_the_installed_console_script_runs(fresh_venv: Path) -> None:
    res = _run(fresh_venv, "llmops", "--help")
    assert res.returncode == 0, res.stderr
    assert "llmops run" in res.stderr and "llmops crds" in res.stderr
    res = _run(fresh_venv, "llmops", "crds")
    assert res.returncode == 0, res.stderr
    assert res.stdout == (REPO / "crds" / "llmops.io_llmdeployments.yaml").read_text()


def _imported_top_level_names() -> dict[str, set[str]]:
    """Top-level names of every absolute import in the package -> the files importing them.
    Function-local imports count: they run in the same image."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


def _imported_distributions() -> dict[str, set[str]]:
    """The distributions the operator imports (not the stdlib, not itself) -> the importing files."""
    owners = importlib.metadata.packages_distributions()
    result: dict[str, set[str]] = {}
    for top, files in _imported_top_level_names().items():
        if top in sys.stdlib_module_names or top == "llmops":
            continue
        assert top in owners, f"{top} (imported by {sorted(files)}) belongs to no installed distribution"
        for dist in owners[top]:
            result.setdefault(_normalize(dist), set()).update(files)
    return result


def test_declared_dependencies_are_exactly_what_the_operator_imports(metadata) -> None:
    declared = {_normalize(Requirement(r).name) for r in metadata["Requires-Dist"] if "extra ==" not in r}
    imported = _imported_distributions()
    undeclared = {d: sorted(f) for d, f in imported.items() if d not in declared}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
    unused = declared - set(imported)
    assert not unused, f"declared but never imported by the operator: {sorted(unused)}"
    # The dev tools' dependencies stay in devtools/pyproject.toml. (aiohttp is not among them any
    # more: the evaluation's lean transport imports it, and kopf requires it in the image anyway.)
    assert not declared & {"pytest", "ruff", "hypothesis", "import-linter", "build"}


def test_the_import_scan_sees_function_local_imports() -> None:
    """download.py imports huggingface_hub inside functions: the scan must see it there."""
    names = _imported_top_level_names()
    assert "operator/llmops/download.py" in names["huggingface_hub"]
    assert "operator/llmops/prom.py" in names["requests"]
