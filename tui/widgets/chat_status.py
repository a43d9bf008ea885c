"""The status line under the transcript: model state, last answer's figures, context gauge.

At 80 columns it does not all fit: the context gauge on the right is drawn first (shorter
when narrow), the state and figures get what is left and end in "…" rather than push it off."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


def gauge(fraction: float, width: int = 10) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled)


class ChatStatus(Widget):
    DEFAULT_CSS = """
    ChatStatus { height: 1; padding: 0 1; background: $panel; color: $text-muted; }
    """

    state: reactive[str] = reactive("")
    figures: reactive[str] = reactive("")
    context_used: reactive[int] = reactive(0)
    context_size: reactive[int] = reactive(0)

    def _gauge_text(self, width: int) -> tuple[str, str]:
        if self.context_size:
            frac = min(1.0, self.context_used / self.context_size)
            colours = self.app.theme_variables
            style = f"bold {colours['text-error']}" if frac > 0.9 else (colours["text-warning"] if frac > 0.7 else "")
            if width >= 100:
                return f"ctx {gauge(frac)} {frac:.0%} {self.context_used}/{self.context_size}", style
            return f"ctx {gauge(frac, 5)} {frac:.0%}", style
        if self.context_used:
            return f"ctx {self.context_used} tok", ""
        return "", ""

    def render(self) -> Text:
        width = self.content_size.width or self.size.width
        ctx, style = self._gauge_text(width)
        room = max(0, width - (len(ctx) + 2 if ctx else 0))
        left = Text(self.state, style="bold")
        if self.figures:
            left.append("  " + self.figures)
        if left.cell_len > room:
            left.truncate(max(0, room - 1))
            left.append("…")
        if ctx:
            left.append(" " * max(2, width - left.cell_len - len(ctx)))
            left.append(ctx, style=style)
        return left
