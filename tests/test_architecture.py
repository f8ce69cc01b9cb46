"""The import rules of docs/architecture.md: no layer imports one above it.

Every ``import mmrqa_bids...`` in the package counts, the lazy ones inside functions too
(a lazy import is still a dependency). A new top-level module must be given a layer here
and in docs/architecture.md before it can be imported by anything.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mmrqa_bids"
DOC = PACKAGE.parent / "docs" / "architecture.md"

#: Top-level modules and subpackages of mmrqa_bids, by layer (bottom first).
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("vocabulary", frozenset({"__about__", "__init__", "vocabulary"})),
    ("signal", frozenset({"metrics", "artifacts", "phantom"})),
    ("foundation", frozenset({"io", "settings", "resources", "bids", "records", "ratings",
                              "redaction", "openai_endpoint"})),
    ("judgement", frozenset({"grading", "reports"})),
    ("application", frozenset({"derivatives", "group", "reference_grades", "cohorts",
                               "interfaces", "workflows", "evaluation", "mriqc", "qa", "train",
                               "merge"})),
    ("entry", frozenset({"cli", "__main__"})),
)
#: Layers whose members may import each other. In the others each member stands alone: the
#: metrics know nothing of the simulation, the graders nothing of the reports, and back.
PEER_LAYERS = {"vocabulary", "foundation", "application", "entry"}
#: Test and benchmark support: may import anything; production code must not import it.
SUPPORT = "testing"
#: Known violations, each with the issue that removes it. The test fails when one of these
#: disappears (delete it here) as well as when a new one appears.
KNOWN: dict[tuple[str, str], str] = {}

LAYER_OF = {name: index for index, (_, names) in enumerate(LAYERS) for name in names}
LAYER_NAME = {index: name for index, (name, _) in enumerate(LAYERS)}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name / "__init__.py").is_file()


def imports() -> dict[tuple[str, str], list[str]]:
    """(importer's top-level name, imported top-level name) -> where (file:line)."""
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent)
        source = _top(".".join(rel.with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # ``from mmrqa_bids import x``: a dependency on x when x is a module
                targets = [node.module] + (
                    [f"{node.module}.{a.name}" for a in node.names if _is_module(a.name)]
                    if node.module == "mmrqa_bids" else [])
            else:
                continue
            for target in targets:
                if target == "mmrqa_bids" or not target.startswith("mmrqa_bids."):
                    continue
                dest = _top(target)
                if dest != source:
                    found.setdefault((source, dest), []).append(f"{rel}:{node.lineno}")
    return found


def allowed(source: str, dest: str) -> bool:
    if source == SUPPORT:
        return True
    if dest == SUPPORT:
        return False
    s, d = LAYER_OF[source], LAYER_OF[dest]
    return d < s or (d == s and LAYER_NAME[s] in PEER_LAYERS)


def test_every_module_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").is_file())}
    unplaced = sorted(names - set(LAYER_OF) - {SUPPORT})
    assert not unplaced, f"give these a layer in tests/test_architecture.py and docs/architecture.md: {unplaced}"


def test_no_layer_imports_upward():
    edges = imports()
    bad = {edge: where for edge, where in edges.items() if not allowed(*edge) and edge not in KNOWN}
    assert not bad, "forbidden imports (docs/architecture.md):\n" + "\n".join(
        f"  {s} ({LAYER_NAME.get(LAYER_OF.get(s), s)}) -> {d} "
        f"({LAYER_NAME.get(LAYER_OF.get(d), d)}): {', '.join(w)}" for (s, d), w in sorted(bad.items()))
    stale = sorted(edge for edge in KNOWN if edge not in edges)
    assert not stale, f"fixed, remove from KNOWN: {stale}"


@pytest.mark.parametrize("source, dest, ok", [
    ("metrics", "io", False), ("metrics", "grading", False), ("metrics", "vocabulary", True),
    ("grading", "reports", False), ("grading", "metrics", True), ("reports", "grading", False),
    ("reports", "derivatives", False), ("derivatives", "reports", True), ("cli", "group", True),
    ("group", "cli", False), ("bids", "derivatives", False), ("train", "testing", False),
    ("testing", "cli", True), ("metrics", "artifacts", False), ("artifacts", "io", False),
    ("reports", "vocabulary", True), ("grading", "io", True),
])
def test_the_rules_themselves(source, dest, ok):
    assert allowed(source, dest) is ok


def test_the_architecture_page_names_every_layer_and_module():
    text = DOC.read_text()
    for layer, names in LAYERS:
        assert f"**{layer}**" in text, layer
        for name in names - {"__init__", "__about__", "__main__"}:
            assert f"`{name}" in text, name
