"""Stands in for a mode whose screen is not built yet: says so plainly, nothing pretends."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from tui.modes import Mode
from tui.screens.base import ModeScreen


class PlannedScreen(ModeScreen):
    def __init__(self, mode: Mode) -> None:
        super().__init__(name=mode.key)
        self.mode_info = mode
        self.MODE_KEY = mode.key

    def compose_body(self) -> ComposeResult:
        with Vertical(classes="panel", id="planned"):
            yield Static(f"[b]{self.mode_info.name}[/b]: {self.mode_info.blurb}.")
            yield Static(
                "\nThis mode's screen is not built yet in this version of llmdeck. "
                "Detached runs of every kind are listed in Runs (key 9).",
                classes="muted",
            )
