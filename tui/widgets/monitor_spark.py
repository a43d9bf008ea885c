"""A labelled one-line sparkline on an absolute scale (0..100% or 0..power limit).

Textual's Sparkline scales between the data's own min and max, which makes a flat 3% line look
like a busy GPU. Monitor charts need a fixed scale, so this renders block characters itself:
cheap (one Text per refresh) and honest.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widget import Widget

BLOCKS = " ▁▂▃▄▅▆▇█"


def spark_text(values: Sequence[float], top: float, width: int) -> str:
    """Right-aligned block characters for `values` on a 0..top scale, padded to `width`."""
    if width <= 0:
        return ""
    top = top if top and top > 0 else max([*values, 1.0])
    chars = []
    for v in list(values)[-width:]:
        level = 0 if v <= 0 else max(1, min(8, round(8 * v / top)))
        chars.append(BLOCKS[level])
    return " " * (width - len(chars)) + "".join(chars)


class MonitorSpark(Widget):
    """`label ▁▂▃▅▇ value` on one line."""

    DEFAULT_CSS = """
    MonitorSpark { height: 1; width: 1fr; }
    MonitorSpark > .monitor-spark--label { color: $text-muted; }
    MonitorSpark > .monitor-spark--bars { color: $primary; }
    """
    COMPONENT_CLASSES = {"monitor-spark--label", "monitor-spark--bars"}

    def __init__(self, label: str, *, top: float = 100.0, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.label = label
        self.top = top
        self.values: list[float] = []
        self.value_text = ""

    def set_data(self, values: Sequence[float], value_text: str, top: float | None = None) -> None:
        values = list(values)
        top = self.top if top is None else top
        if (values, value_text, top) == (self.values, self.value_text, self.top):
            return
        self.values, self.value_text, self.top = values, value_text, top
        self.refresh()

    @property
    def chart_width(self) -> int:
        return max(0, self.size.width - 6 - 9)

    def render(self) -> Text:
        text = Text(f"{self.label:<5} ", style=self.get_component_rich_style("monitor-spark--label"))
        text.append(spark_text(self.values, self.top, self.chart_width),
                    style=self.get_component_rich_style("monitor-spark--bars"))
        text.append(f" {self.value_text:>8}")
        return text
