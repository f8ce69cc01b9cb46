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
                              "ratings_queue", "redaction", "openai_endpoint", "output_lock"})),
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


# --------------------------------------------------------------------------- train/
#: train/ holds two pipelines that share nothing but the level: ``train.metric_model`` (the
#: metric classifier: the shipped model's recipe and the ratings model) and ``train.lora``
#: (LoRA fine-tuning of LLaVA-OneVision, with its half of the level, ``train.lora.level``).
#: ``train.level`` (the CLI's ``train`` level) and its data stage (``train.examples``,
#: ``train.split``) run either ``train.lora.level`` or ``train.metric_level`` (the metric
#: models fitted on ratings). (importer prefix, imported prefix) pairs that must never appear:
TRAIN_FORBIDDEN: tuple[tuple[str, str], ...] = (
    ("mmrqa_bids.train.metric_model", "mmrqa_bids.train.lora"),
    ("mmrqa_bids.train.lora", "mmrqa_bids.train.metric_model"),
    ("mmrqa_bids.train.metric_model", "mmrqa_bids.train.level"),
    ("mmrqa_bids.train.lora", "mmrqa_bids.train.level"),
    ("mmrqa_bids.train.metric_model", "mmrqa_bids.train.examples"),
    ("mmrqa_bids.train.lora", "mmrqa_bids.train.examples"),
    ("mmrqa_bids.train.metric_model", "mmrqa_bids.train.split"),
    ("mmrqa_bids.train.lora", "mmrqa_bids.train.split"),
    ("mmrqa_bids.train.lora", "mmrqa_bids.train.metric_level"),
    ("mmrqa_bids.train.metric_level", "mmrqa_bids.train.lora"),
    ("mmrqa_bids.train.metric_level", "mmrqa_bids.train.level"),
    ("mmrqa_bids.train.metric_model", "mmrqa_bids.train.metric_level"),
)
#: The only modules outside ``train.lora`` that may import it (the metric classifier is
#: imported by grading benchmarks and the cohort model too; the LoRA trainer only by the level).
LORA_IMPORTERS = ("mmrqa_bids.train.lora", "mmrqa_bids.train.level", "mmrqa_bids.cli")


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def module_imports() -> list[tuple[str, str, str]]:
    """(importing module, imported module, file:line) for every ``mmrqa_bids`` import, with
    full dotted names (``from mmrqa_bids.train import lora`` counts as
    ``mmrqa_bids.train.lora``)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent)
        parts = rel.with_suffix("").parts
        source = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{a.name}" for a in node.names]
                targets = [t if (PACKAGE.parent / f"{t.replace('.', '/')}.py").is_file()
                           or (PACKAGE.parent / t.replace(".", "/")).is_dir()
                           else node.module for t in targets]
            else:
                continue
            found += [(source, t, f"{rel}:{node.lineno}") for t in targets
                      if t.startswith("mmrqa_bids.")]
    return found


def train_import_allowed(source: str, dest: str) -> bool:
    if any(_within(source, a) and _within(dest, b) for a, b in TRAIN_FORBIDDEN):
        return False
    if _within(dest, "mmrqa_bids.train.lora"):
        return any(_within(source, ok) for ok in LORA_IMPORTERS)
    return True


def test_train_pipelines_stay_apart():
    bad = [f"  {s} -> {d}: {where}" for s, d, where in module_imports()
           if not train_import_allowed(s, d)]
    assert not bad, "forbidden imports in train/ (docs/architecture.md):\n" + "\n".join(bad)


def test_train_holds_the_two_subpackages_the_rules_name():
    for prefix in ("mmrqa_bids.train.metric_model", "mmrqa_bids.train.lora"):
        assert (PACKAGE.parent / prefix.replace(".", "/") / "__init__.py").is_file(), prefix
    sources = {s for s, _, _ in module_imports()}
    assert "mmrqa_bids.train.metric_model.fit" in sources
    assert "mmrqa_bids.train.lora.finetune" in sources
    assert {"mmrqa_bids.train.lora.level", "mmrqa_bids.train.metric_level"} <= sources


@pytest.mark.parametrize("source, dest, ok", [
    ("mmrqa_bids.train.metric_model.fit", "mmrqa_bids.train.lora.dataset", False),
    ("mmrqa_bids.train.lora.finetune", "mmrqa_bids.train.metric_model.trees", False),
    ("mmrqa_bids.train.metric_model.rated", "mmrqa_bids.train.level", False),
    ("mmrqa_bids.train.lora.judge", "mmrqa_bids.train.examples", False),
    ("mmrqa_bids.cohorts.train", "mmrqa_bids.train.lora.finetune", False),
    ("mmrqa_bids.grading.llava", "mmrqa_bids.train.lora", False),
    ("mmrqa_bids.train.level", "mmrqa_bids.train.lora.finetune", True),
    ("mmrqa_bids.train.level", "mmrqa_bids.train.metric_model.rated", True),
    ("mmrqa_bids.cohorts.simulate", "mmrqa_bids.train.metric_model.rendering", True),
    ("mmrqa_bids.train.lora.finetune", "mmrqa_bids.train.lora.dataset", True),
    ("mmrqa_bids.train.metric_model.fit", "mmrqa_bids.train.metric_model.trees", True),
    ("mmrqa_bids.train.metric_level", "mmrqa_bids.train.lora.level", False),
    ("mmrqa_bids.train.lora.level", "mmrqa_bids.train.metric_level", False),
    ("mmrqa_bids.train.metric_model.rated", "mmrqa_bids.train.metric_level", False),
    ("mmrqa_bids.train.level", "mmrqa_bids.train.lora.level", True),
    ("mmrqa_bids.train.level", "mmrqa_bids.train.metric_level", True),
    ("mmrqa_bids.train.metric_level", "mmrqa_bids.train.metric_model.rated", True),
])
def test_the_train_rules_themselves(source, dest, ok):
    assert train_import_allowed(source, dest) is ok
