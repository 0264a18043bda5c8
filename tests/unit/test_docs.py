"""The README and docs/ stand on their own and stay true to the code.

- every relative link (README, docs/, manifests/argocd/README.md) resolves to a file or folder in the repository, and none leaves it;
- every `make X` command the README names is a target of the Makefile or mk/*.mk;
- the README's `llmops run` flags are exactly the flags `llmops run` has;
- every page of docs/ is linked from the README;
- docs/analysis.md shows the PromQL every engine really writes;
- docs/gitops-argocd.md's ignoreDifferences entry covers exactly what `route_patch` changes.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops.analysis.queries import feedback_negative_ratio
from llmops.api.resource import parse
from llmops.cli import main as llmops_main
from llmops.engines import engine_names, get_engine, selector
from llmops.render.traffic import route_patch

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS, REPO / "manifests/argocd/README.md"]

_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_INLINE_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)
_EXTERNAL = re.compile(r"^(https?:|mailto:)")


def _prose(text: str) -> str:
    """The text without code blocks and inline code, where brackets are not links."""
    return _INLINE_CODE.sub("", _FENCE.sub("", text))


def links(text: str) -> list[str]:
    prose = _prose(text)
    return [*_INLINE_LINK.findall(prose), *_REFERENCE_LINK.findall(prose)]


def relative_links(page: Path) -> list[str]:
    return [x for x in links(page.read_text()) if not _EXTERNAL.match(x) and not x.startswith("#")]


def test_the_docs_pages_exist() -> None:
    names = {p.name for p in DOCS}
    assert {"architecture.md", "analysis.md", "gitops-argocd.md", "troubleshooting.md"} <= names


def test_the_link_finder_sees_links_and_ignores_code() -> None:
    text = "See [a](docs/a.md) and [b][x].\n\n[x]: ../b.md\n\n```\n[c](nope.md)\n```\n`[d](nope.md)`"
    assert links(text) == ["docs/a.md", "../b.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve_inside_the_repository(page: Path) -> None:
    found = relative_links(page)
    for target in found:
        path = target.split("#", 1)[0]
        assert path, f"{page.name}: empty link {target!r}"
        assert not path.startswith("/"), f"{page.name}: absolute link {target!r}"
        resolved = (page.parent / path).resolve()
        assert resolved.is_relative_to(REPO), f"{page.name}: {target!r} points outside the repository"
        assert resolved.exists(), f"{page.name}: {target!r} does not exist"


def test_no_page_mentions_the_shared_folder() -> None:
    for page in PAGES:
        assert "../shared" not in page.read_text(), page.name


def make_targets() -> set[str]:
    targets: set[str] = set()
    for makefile in [REPO / "Makefile", *sorted((REPO / "mk").glob("*.mk"))]:
        for line in makefile.read_text().splitlines():
            m = re.match(r"^([A-Za-z0-9_.][A-Za-z0-9_. -]*?)\s*:(?![:=])", line)
            if m and not m.group(1).startswith("."):
                targets.update(m.group(1).split())
    return targets


def test_every_make_target_the_readme_names_exists() -> None:
    # As commands: in inline code (`make dev`) or at the start of a line in a code block.
    named = set(re.findall(r"(?:^|`)make ([a-z][a-z0-9-]*)", README.read_text(), re.M))
    assert {"dev", "test", "venv"} <= named
    missing = named - make_targets()
    assert not missing, f"README names make targets that do not exist: {sorted(missing)}"


def _run_flags_in_help() -> set[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exc:
        llmops_main(["run", "--help"])
    assert exc.value.code == 0
    return set(re.findall(r"(--[a-z][a-z-]+)", out.getvalue())) - {"--help"}


def test_the_readme_lists_exactly_the_flags_of_llmops_run() -> None:
    row = next(line for line in README.read_text().splitlines() if line.startswith("| `llmops run`"))
    assert set(re.findall(r"(--[a-z][a-z-]+)", row)) == _run_flags_in_help()


def test_the_readme_links_every_docs_page() -> None:
    linked = {(REPO / x.split("#", 1)[0]).resolve() for x in relative_links(README)}
    assert {p.resolve() for p in DOCS} <= linked


@pytest.mark.parametrize("engine_name", engine_names())
def test_analysis_doc_shows_the_promql_of_every_builtin_template(engine_name: str) -> None:
    text = (REPO / "docs/analysis.md").read_text()
    engine = get_engine(engine_name)
    scope = selector("<namespace>", "<name>", "<track>")
    for template in engine.analysis_templates:
        assert f"`{template}`" in text, template
        assert engine.query(template, selector=scope, window="<interval>") in text, template
    assert "`feedback-negative-ratio`" in text
    assert feedback_negative_ratio("<namespace>", "<name>", "<track>", "<interval>") in text


# ----------------------------------------------------------------------- the Argo CD HTTPRoute


def _yaml_blocks(text: str) -> list[Any]:
    return [yaml.safe_load(b) for b in re.findall(r"^```yaml\n(.*?)^```", text, re.M | re.S)]


def _gitops() -> list[Any]:
    return _yaml_blocks((REPO / "docs/gitops-argocd.md").read_text())


def _committed_route() -> dict[str, Any]:
    return next(b for b in _gitops() if isinstance(b, dict) and b.get("kind") == "HTTPRoute")


def _ignore_entry() -> dict[str, Any]:
    app = next(b for b in _gitops() if isinstance(b, dict) and "ignoreDifferences" in (b.get("spec") or {}))
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]
    (entry,) = app["spec"]["ignoreDifferences"]
    return entry


def _json_pointers() -> list[str]:
    block = next(b for b in _gitops() if isinstance(b, dict) and set(b) == {"jsonPointers"})
    return block["jsonPointers"]


def _llmdeployment(route_name: str) -> Any:
    sample = REPO / "manifests/samples/qwen-gated-canary.yaml"
    body = next(d for d in yaml.safe_load_all(sample.read_text()) if d and d["kind"] == "LLMDeployment")
    body["metadata"]["namespace"] = "models"
    body["spec"]["rollout"]["traffic"] = {"mode": "gatewayAPI", "httpRouteRef": {"name": route_name}}
    return parse(body)


def _pointer_paths(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of ``obj`` by its JSON pointer."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_pointer_paths(value, f"{prefix}/{key.replace('~', '~0').replace('/', '~1')}"))
        return out
    if isinstance(obj, list):
        out = {}
        for i, value in enumerate(obj):
            out.update(_pointer_paths(value, f"{prefix}/{i}"))
        return out
    return {prefix: obj}


def _changed_pointers(route: dict[str, Any], weight: int) -> set[str]:
    """The JSON pointers `route_patch` changes in the committed route at a canary weight."""
    ld = _llmdeployment(route["metadata"]["name"])
    patch = route_patch(ld, {**route, "metadata": {**route["metadata"], "resourceVersion": "1"}}, weight)
    assert patch is not None, "the operator would not change the route at this weight"
    after = copy.deepcopy(route)
    after["spec"]["rules"] = patch["spec"]["rules"]  # a merge patch replaces the list whole
    before, now = _pointer_paths(route["spec"]), _pointer_paths(after["spec"])
    assert before.keys() == now.keys(), "route_patch changed more than values: commit the operator's shape"
    return {f"/spec{k}" for k in before if before[k] != now[k]}


def test_the_committed_route_is_what_the_operator_writes_when_no_canary_runs() -> None:
    route = _committed_route()
    ld = _llmdeployment(route["metadata"]["name"])
    assert route_patch(ld, route, 0) is None


@pytest.mark.parametrize("weight", [10, 50, 100])
def test_the_json_pointers_are_exactly_the_weights_route_patch_changes(weight: int) -> None:
    assert _changed_pointers(_committed_route(), weight) == set(_json_pointers())


def test_the_jq_expression_selects_the_weights_of_the_operators_backends() -> None:
    route = _committed_route()
    entry = _ignore_entry()
    assert (entry["group"], entry["kind"], entry["name"]) == (
        "gateway.networking.k8s.io",
        "HTTPRoute",
        route["metadata"]["name"],
    )
    (expression,) = entry["jqPathExpressions"]
    m = re.fullmatch(
        r'\.spec\.rules\[\]\.backendRefs\[\] \| select\(\.name == "([^"]+)" or \.name == "([^"]+)"\) \| \.weight',
        expression,
    )
    assert m, expression
    # What the expression selects: the weight of each backendRef with one of the two names.
    selected = {
        f"/spec/rules/{i}/backendRefs/{j}/weight"
        for i, rule in enumerate(route["spec"]["rules"])
        for j, ref in enumerate(rule["backendRefs"])
        if ref["name"] in m.groups()
    }
    assert selected == _changed_pointers(route, 10)
    ld = _llmdeployment(route["metadata"]["name"])
    assert set(m.groups()) == {f"{ld.name}-stable", f"{ld.name}-canary"}
