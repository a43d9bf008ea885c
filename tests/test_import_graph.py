"""The import graph has no cycle, counting imports made by name through importlib.

import-linter (tests/test_import_contracts.py) sees only `import` statements. The app also
imports by name: `engine.cli` loads its command modules from COMMAND_MODULES, `tui.modes` builds
each screen from a "module:Class" target, `engine.kinds` imports a run's job from
"module:function". Each such literal is an import edge too, and a cycle through one is as real
as any other: the modules on it cannot be understood, tested or moved apart.

The graph is read from the source (ast), so it also sees imports made inside functions (the
deferred heavy imports): a cycle hidden behind a lazy import is still a cycle of design.
Imports under `if TYPE_CHECKING:` are skipped (they never run).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "tui", "themes")
# "pkg.module" or "pkg.module:attribute", as the registries and mode targets spell them
NAMED_MODULE = re.compile(r"^[A-Za-z_]\w*(\.\w+)+(:\w+)?$")
IMPORTS_BY_NAME = ("import_module", "__import__")


def project_modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The project module `name` refers to (itself, or the package holding it), if any."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _walk(tree: ast.AST):
    """Every node, except what sits under `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not _type_checking_block(child):
                stack.append(child)


def edges_of(module: str, path: Path, modules: dict[str, Path]) -> dict[str, str]:
    """module -> {imported project module: how (the statement or literal)}."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    nodes = list(_walk(tree))
    by_name = any(
        isinstance(n, ast.Call)
        and ((isinstance(n.func, ast.Attribute) and n.func.attr in IMPORTS_BY_NAME)
             or (isinstance(n.func, ast.Name) and n.func.id in IMPORTS_BY_NAME))
        for n in nodes
    )
    found: dict[str, str] = {}

    def add(name: str, how: str) -> None:
        target = _owner(name, modules)
        if target and target != module:
            found.setdefault(target, how)

    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                add(full if full in modules else base, f"from {base} import {alias.name}")
        elif by_name and isinstance(node, ast.Constant) and NAMED_MODULE.match(str(node.value)):
            add(str(node.value).partition(":")[0], f"importlib {node.value!r}")
    return found


def import_graph(prefix: str = "") -> dict[str, dict[str, str]]:
    """The project's import graph (modules starting with `prefix`)."""
    modules = project_modules()
    return {m: edges_of(m, p, modules) for m, p in modules.items() if m.startswith(prefix)}


def cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph.get(start, {})))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, {}))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def describe(component: list[str], graph: dict[str, dict[str, str]]) -> str:
    """One loop through the component, each step with the statement that makes it."""
    members = set(component)
    path = [component[0]]
    while True:
        node = path[-1]
        nxt = next(t for t in sorted(graph[node]) if t in members)
        if nxt in path:
            loop = path[path.index(nxt):] + [nxt]
            return "\n".join(f"  {a} -> {b}   ({graph[a][b]})" for a, b in zip(loop, loop[1:], strict=False))
        path.append(nxt)


def assert_acyclic(graph: dict[str, dict[str, str]]) -> None:
    found = cycles(graph)
    report = "\n".join(f"cycle among {', '.join(c)}:\n{describe(c, graph)}" for c in found)
    assert not found, "import cycles:\n" + report


def test_the_finder_sees_imports_made_by_name(tmp_path):
    """A cycle closed only by an importlib literal (as tui/modes.py closed one) is found."""
    pkg = tmp_path / "engine"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "registry.py").write_text("import importlib\nTARGETS = ('engine.screen:Screen',)\n"
                                     "def load(t):\n    return importlib.import_module(t)\n")
    (pkg / "screen.py").write_text("def f():\n    from engine import registry\n")
    (pkg / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import engine.screen\n")
    modules = {"engine": pkg / "__init__.py", "engine.registry": pkg / "registry.py",
               "engine.screen": pkg / "screen.py", "engine.typed": pkg / "typed.py"}
    graph = {m: edges_of(m, p, modules) for m, p in modules.items()}
    assert graph["engine.registry"] == {"engine.screen": "importlib 'engine.screen:Screen'"}
    assert graph["engine.typed"] == {}
    assert cycles(graph) == [["engine.registry", "engine.screen"]]


def test_engine_has_no_import_cycle():
    assert_acyclic(import_graph("engine"))


def test_tui_has_no_import_cycle():
    assert_acyclic(import_graph("tui"))


def test_the_whole_project_has_no_import_cycle():
    """engine, tui and themes together (a cycle can pass through both halves)."""
    assert_acyclic(import_graph())
