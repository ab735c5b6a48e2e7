"""The package's shape (issue 22): imports only run downward, and no module outgrows a ten-minute read."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mmfer"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import of a module, at its top and deferred into functions alike (a deferred import that closes
    a loop is still a loop, only a hidden one), but not those under ``if TYPE_CHECKING:``, which never run."""
    found: list[ast.Import | ast.ImportFrom] = []

    def walk(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
            return
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        for child in ast.iter_child_nodes(node):
            walk(child)

    walk(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """mmfer module -> the mmfer modules it imports (``from pkg import mod`` counts as importing ``pkg.mod``).
    Names that moved are reached through ``mmfer.compat.moved``, an import at attribute-read time that is no
    dependency of the old module, so it is not an edge here."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        deps: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
                continue
            base = node.module or ""
            if node.level:
                parts = name.split(".")[: len(name.split(".")) - (0 if is_package else 1)]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            for a in node.names:
                deps.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    graph = import_graph()
    assert "mmfer.engine.train" in graph and graph["mmfer.engine.train"]  # the graph is not empty by mistake
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(
        " <-> ".join(f"{m} -> {sorted(graph[m] & set(c))}" for m in c) for c in found)


MAX_LINES = 700


def test_no_module_over_700_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_config_reference_is_in_step_with_the_code():
    """docs/config.md lists every config key; ``python tools/config_reference.py`` rewrites it."""
    import importlib.util

    tool = PACKAGE.parent / "tools" / "config_reference.py"
    spec = importlib.util.spec_from_file_location("config_reference", tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.OUT.read_text(encoding="utf-8") == module.reference(), \
        "docs/config.md is out of date: run python tools/config_reference.py"


@pytest.mark.parametrize("old, name, new", [
    ("mmfer.engine.folds", "speaker_of", "mmfer.data.splits"),
    ("mmfer.engine.folds", "fold_records", "mmfer.data.splits"),
])
def test_moved_names_warn_from_their_old_path(old, name, new):
    import importlib

    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} moved to {new}\.{name}"):
        value = getattr(importlib.import_module(old), name)
    assert value is getattr(importlib.import_module(new), name)


@pytest.mark.parametrize("old, name, new", [
    ("mmfer.faces.base", "get_backend", "mmfer.faces.backends"),
    ("mmfer.engine.scoring", "resolve_device", "mmfer.engine.device"),
    ("mmfer.engine.train", "holdout_split", "mmfer.data.splits"),
])
def test_names_mmfer_still_reads_from_the_old_path_stay_quiet(old, name, new):
    import importlib

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = getattr(importlib.import_module(old), name)
    assert value is getattr(importlib.import_module(new), name)
