"""The status line under the transcript: model state, last answer's figures, context gauge."""

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

    def render(self) -> Text:
        text = Text(self.state, style="bold")
        if self.figures:
            text.append("  " + self.figures)
        if self.context_size:
            frac = min(1.0, self.context_used / self.context_size)
            style = "bold red" if frac > 0.9 else ("yellow" if frac > 0.7 else "")
            ctx = f"ctx {gauge(frac)} {frac:.0%} {self.context_used}/{self.context_size}"
        elif self.context_used:
            ctx, style = f"ctx {self.context_used} tokens", ""
        else:
            ctx, style = "", ""
        if ctx:
            pad = max(2, self.size.width - len(text.plain) - len(ctx) - 2)
            text.append(" " * pad)
            text.append(ctx, style=style)
        return text
