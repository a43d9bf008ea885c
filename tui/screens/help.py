"""The `?` screen: every key the current screen answers to, with what it does."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "modals.tcss"
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close help")]

    def __init__(self, screen_name: str, keys: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.screen_name = screen_name
        self.keys = keys

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Keys of {self.screen_name}  (Esc closes)", id="help-title")
            table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True)
            table.add_columns("key", "action", "from")
            for row in self.keys:
                table.add_row(*row)
            yield table


def collect_keys(app) -> list[tuple[str, str, str]]:  # app: textual App
    """Every binding active on the current screen, each key once, with its description
    (hidden ones included): the screen's own keys first, then the app's, then those of the
    focused widget (cursor movement and the like). Keys are named as Textual's footer names
    them (`app.get_key_display`: "[", "^r", "alt+←"), so the help and the footer agree."""
    from textual.app import App
    from textual.screen import Screen

    groups: tuple[list[tuple[str, str, str]], ...] = ([], [], [])
    seen: set[str] = set()
    for key, active in app.active_bindings.items():
        binding: Binding = active.binding
        if key in seen or not binding.description:
            continue
        seen.add(key)
        shown = app.get_key_display(binding)
        if isinstance(active.node, Screen):
            groups[0].append((shown, binding.description, "screen"))
        elif isinstance(active.node, App):
            groups[1].append((shown, binding.description, "app"))
        else:
            groups[2].append((shown, binding.description, type(active.node).__name__))
    return [row for group in groups for row in group]
