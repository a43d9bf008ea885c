"""The TUI's structure: its import graph has no cycle (imports inside functions and importlib targets
("package.module:Class" strings) included), screens and widgets are where they belong, and styles are in
stylesheets, not in Python."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = re.compile(r"^(tui(?:\.\w+)+)(?::\w+)?$")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def tui_imports(path: Path, known: set[str]) -> set[str]:
    """The tui modules `path` imports: import statements anywhere in it, and importlib targets."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (m := TARGET.match(node.value)):
            names = [m.group(1)]
        found.update(name for name in names if name in known)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in (ROOT / "tui").rglob("*.py")}
    known = set(files)
    return {name: tui_imports(path, known) - {name} for name, path in files.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_tui_import_graph_has_no_cycle():
    assert find_cycle(graph()) == []


def test_the_mode_table_is_a_leaf_and_only_the_app_names_screens():
    edges = graph()
    assert "tui.screens.monitor" in edges["tui.app"]  # importlib targets are counted
    assert edges["tui.modes"] == set()
    for name, imported in edges.items():
        if name.startswith(("tui.screens.", "tui.widgets.")):
            assert "tui.app" not in imported, name


def test_widgets_are_widgets_and_import_no_screen():
    """Screens (modals included) live in tui/screens; a widget never needs one."""
    edges = graph()
    for path in (ROOT / "tui" / "widgets").glob("*.py"):
        name = module_name(path)
        assert not any(imported.startswith("tui.screens") for imported in edges[name]), name
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(base) for base in node.bases]
                assert not any("Screen" in base for base in bases), f"{name}.{node.name}({', '.join(bases)})"


def test_styles_live_in_stylesheets_not_in_screens():
    """Screens keep no CSS in Python: the shared rules are in tui/app.tcss, a screen's own in the
    .tcss its CSS_PATH names (reusable widgets may keep a scoped DEFAULT_CSS)."""
    for path in (ROOT / "tui" / "screens").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                assert not {"CSS", "DEFAULT_CSS"} & set(names), f"{path.name}: {names}"
                if names == ["CSS_PATH"]:
                    assert (path.parent / ast.literal_eval(node.value)).is_file(), path.name
    assert (ROOT / "tui" / "app.tcss").is_file()


def test_a_screens_stylesheet_styles_only_its_own_screens():
    """Every rule of a tui/screens .tcss starts with a screen class: a screen's CSS, loaded when
    the screen is first built, never restyles another screen. ModeScreen.on_mount relies on it
    (a mode shown again is not restyled for CSS that arrived with another mode)."""
    from textual.css.model import SelectorType
    from textual.css.stylesheet import Stylesheet

    from tui.app import LLMDeckApp

    screens = {node.name for path in (ROOT / "tui" / "screens").glob("*.py")
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.ClassDef) and node.name.endswith(("Screen", "Modal"))}
    variables = LLMDeckApp().get_css_variables()
    for path in sorted((ROOT / "tui" / "screens").glob("*.tcss")):
        sheet = Stylesheet(variables=variables)
        sheet.read(path)
        sheet.parse()
        assert sheet.rules, path.name
        for rule in sheet.rules:
            for selectors in rule.selector_set:
                first = selectors.selectors[0]
                assert first.type is SelectorType.TYPE and first.name in screens, f"{path.name}: {selectors.css}"
