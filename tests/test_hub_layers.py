"""The import graph of mmzoo: no cycles, and the hub below the converters (read with ast, no import)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "mmzoo"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, top_level_only: bool) -> set[str]:
    """mmzoo modules named by `module`'s import statements (module level only, or all)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes):
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If) and _is_type_checking(node):
                continue
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and top_level_only:
                continue
            for field in ("body", "orelse", "finalbody", "handlers"):
                visit(getattr(node, field, None) or [])

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return {name for name in found if name in MODULES}


def _edges(module: str) -> set[str]:
    """What importing `module` executes first: each imported mmzoo module and, for a submodule,
    the package __init__ files above it that `module` is not itself inside."""
    own = {module.rsplit(".", i)[0] for i in range(module.count(".") + 1)}
    out = set()
    for target in _imports(module, top_level_only=True):
        parts = target.split(".")
        out.update(p for p in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if p not in own)
    return out


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
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
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            connect(v)
    return found


def test_the_graph_is_read():
    assert "mmzoo.hub.repo" in MODULES and "mmzoo.convert" in MODULES
    assert "mmzoo.hub.repo" in _edges("mmzoo.convert")
    assert "mmzoo.hub" in _edges("mmzoo.convert")  # importing hub.repo runs hub/__init__ first


def test_cycle_finder_finds_cycles():
    assert _cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert _cycles({"a": ["b"], "b": []}) == []


def test_no_import_cycle_among_top_level_imports():
    assert _cycles({m: sorted(_edges(m)) for m in MODULES}) == []


def test_hub_never_imports_the_converters_and_nn_never_imports_the_hub():
    for module in MODULES:
        names = _imports(module, top_level_only=False)
        if module.startswith("mmzoo.hub"):
            assert not any(n.startswith("mmzoo.convert") for n in names), module
        if module.startswith("mmzoo.nn"):
            assert not any(n.startswith("mmzoo.hub") for n in names), module


@pytest.mark.parametrize("module", ["mmzoo.convert", "mmzoo.hub", "mmzoo.hub.sources", "mmzoo.convert.pytorchvideo"])
def test_imports_alone_in_a_fresh_process(module):
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
