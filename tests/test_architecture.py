"""The import graph of bert_insight: no cycles, and every import goes down the layers of DESIGN.md.

Read from the source with ``ast`` (function-level imports count; ``if TYPE_CHECKING:`` blocks do not,
since they never run), so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bert_insight"

#: Layer of each module (longest matching prefix wins): a module may import its own layer or lower.
LAYERS = {
    "bert_insight.errors": 0, "bert_insight._compat": 0, "bert_insight.device": 0, "bert_insight.text": 0,
    "bert_insight.layers": 0, "bert_insight.frames": 0, "bert_insight.resampling": 0,
    "bert_insight.data": 1, "bert_insight.cache": 1,
    "bert_insight.windows": 2, "bert_insight.pos": 2,
    "bert_insight.pos_training": 3, "bert_insight.models.adapters": 3, "bert_insight.models.offline": 3,
    "bert_insight.models.handle": 3, "bert_insight.models.store": 3, "bert_insight.models.checkpoint": 3,
    "bert_insight.models.training": 3,
    "bert_insight.qa": 4, "bert_insight.classification": 4, "bert_insight.models.finetune": 4,
    "bert_insight.tokens_frame": 5,
    "bert_insight.attribution": 6, "bert_insight.attention": 6, "bert_insight.representations": 6, "bert_insight.models.default": 6, "bert_insight.models.default_squad2": 6,
    "bert_insight.phases": 6, "bert_insight.models.default_babi": 6,
    "bert_insight.models.default_classifiers": 6, "bert_insight.probing": 6,
    "bert_insight.models.loading": 7, "bert_insight.testing": 7,
    "bert_insight.kovaleva2019": 7, "bert_insight.vanaken2019": 7,
    "bert_insight.viz": 8, "bert_insight.cli": 8,
}
PACKAGES = {"bert_insight", "bert_insight.models", "bert_insight.attribution", "bert_insight.attention"}  # empty or lazy __init__


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """bert_insight modules imported anywhere in ``path`` (outside TYPE_CHECKING blocks)."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_lines(tree)
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("bert_insight"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("bert_insight"):
                continue
            for alias in node.names:  # `from . import x` may name a submodule
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in modules else target)
    return {module for module in found if module in modules and module != name}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return {module_name(path): imports_of(path, modules) for path in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for neighbour in sorted(graph.get(node, ())):
            if state.get(neighbour) == 1:
                return stack[stack.index(neighbour):] + [neighbour]
            if neighbour not in state and (cycle := visit(neighbour)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def layer_of(module: str) -> int:
    matches = [prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")]
    if not matches:
        raise AssertionError(f"{module} has no layer in tests/test_architecture.py LAYERS; add it")
    return LAYERS[max(matches, key=len)]


def test_the_checker_sees_a_planted_cycle_and_a_lazy_import(tmp_path, monkeypatch):
    root = tmp_path / "bert_insight"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "low.py").write_text("def f():\n    from .high import g\n    return g\n")
    (root / "high.py").write_text("from bert_insight.low import f\n")
    (root / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .high import g\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", root)
    graph = import_graph()
    assert graph["bert_insight.typed"] == set()
    assert find_cycle(graph) in (["bert_insight.high", "bert_insight.low", "bert_insight.high"],
                                 ["bert_insight.low", "bert_insight.high", "bert_insight.low"])


def test_no_import_cycle_among_bert_insight_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("module", sorted(set(import_graph()) - PACKAGES))
def test_imports_go_down_the_layers(module):
    upward = [(imported, layer_of(imported)) for imported in sorted(import_graph()[module])
              if imported not in PACKAGES and layer_of(imported) > layer_of(module)]
    assert not upward, f"{module} (layer {layer_of(module)}) imports higher layers {upward}"


def test_no_module_shadows_a_public_name():
    """``from bert_insight import tokens`` must give the verb: a submodule of the same name would replace
    the package attribute as soon as anything imports it."""
    import bert_insight

    modules = {path.stem for path in PACKAGE.iterdir() if path.suffix == ".py" or (path / "__init__.py").is_file()}
    assert not modules & set(bert_insight.__all__)
