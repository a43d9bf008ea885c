"""Base class for mode screens: the mode bar on top, the footer at the bottom.

A mode screen subclasses `ModeScreen`, sets `MODE_KEY`, and yields its body from
`compose_body()`. Its `BINDINGS` (with descriptions) are what the help screen lists.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input

from tui.widgets.mode_bar import ModeBar


class ModeScreen(Screen):
    MODE_KEY: str = ""
    # Number keys switch modes, but a focused text field takes them as text: Esc leaves the
    # field first. Screens that give Esc another meaning override this binding.
    BINDINGS = [Binding("escape", "leave_input", "leave the text field", show=False)]

    def action_leave_input(self) -> None:
        from textual.widgets import TextArea  # here, not at import: it loads the document model (start-up)

        if isinstance(self.focused, (Input, TextArea)):
            self.set_focus(None)

    def compose(self) -> ComposeResult:
        yield ModeBar(self.MODE_KEY)
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()
