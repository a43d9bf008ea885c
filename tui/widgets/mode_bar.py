"""The one-line bar at the top of every mode: which modes exist, their keys, the current one."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from tui.modes import MODES


class ModeBar(Widget):
    """Renders `1 Mon  2 Chat ...` with the current mode highlighted; fits 80 columns."""

    DEFAULT_CSS = """
    ModeBar { dock: top; height: 1; }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def render(self) -> Text:
        text = Text(" llmdeck ", style="bold")
        wide = self.size.width >= 110
        for number, mode in enumerate(MODES, start=1):
            label = f" {number} {mode.name if wide else mode.short} "
            if mode.key == self.current:
                text.append(label, style="reverse bold")
            else:
                text.append(label)
        text.append("  ? help", style="dim")
        return text
