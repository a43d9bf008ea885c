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
        width = self.size.width
        wide = width >= 110
        text = Text(" llmdeck " if width >= 90 else "", style="bold")
        for number, mode in enumerate(MODES, start=1):
            label = f" {number} {mode.name} " if wide else f"{number}:{mode.short}"
            style = "reverse bold" if mode.key == self.current else ""
            if not wide:
                text.append(" ")
            text.append(label, style=style)
        text.append("  ? help")  # the bar's own $muted: dim on it fell under 4.5:1
        return text
