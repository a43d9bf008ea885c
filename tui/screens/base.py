"""Base class for mode screens: the mode bar on top, the footer at the bottom.

A mode screen subclasses `ModeScreen`, sets `MODE_KEY`, and yields its body from
`compose_body()`. Its `BINDINGS` (with descriptions) are what the help screen lists.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from tui.widgets.mode_bar import ModeBar


class ModeScreen(Screen):
    MODE_KEY: str = ""

    def compose(self) -> ComposeResult:
        yield ModeBar(self.MODE_KEY)
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    @property
    def deck(self):  # -> LLMDeckApp, typed loosely to avoid importing the app here
        """The running app (settings, run store)."""
        return self.app
