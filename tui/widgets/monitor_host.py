"""The host panel: CPU (total and per core), load, RAM, swap and the data folder's disk.

Redrawn every Monitor tick (once a second, all day): its lines go straight from the Rich text
`render()` builds to strips (`render_line`), cached until the sample, the size or the theme
changes. Returned from `render()` as usual, Textual converted that text to its own Content and
then to strips, span by span: 2-3 ms a tick, a quarter of the idle no-GPU Monitor's CPU
(bench/idle.py); this way, a fraction of that.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

from engine.monitor import format as fmt
from engine.monitor.sample import HostSample, num
from tui.widgets.gpu_card import bar
from tui.widgets.monitor_spark import BLOCKS, spark_text


class HostPanel(Widget):
    DEFAULT_CSS = """
    HostPanel {
        height: auto; border: round $panel-lighten-2; border-title-color: $primary; border-subtitle-color: $muted;
        padding: 0 1;
    }
    HostPanel > .host--bar { color: $primary; }
    HostPanel > .host--muted { color: $text-muted; }
    """
    COMPONENT_CLASSES = {"host--bar", "host--muted"}

    def __init__(self, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self.host: HostSample | None = None
        self.border_title = "host"
        self._lines: list[Strip] = []
        self._lines_of: tuple = ()
        self._blank = Strip.blank(0)

    expanded = False
    """Host-only mode (no GPU panel): also draw a bar per CPU core, several to a line."""

    CORE_CELL = 18  # "cpu12 ██████░░ 45% "

    def set_expanded(self, expanded: bool) -> None:
        if expanded != self.expanded:
            self.expanded = expanded
            self.refresh(layout=True)

    def _core_lines(self, width: int) -> int:
        cores = self.host.per_core if self.host is not None and isinstance(self.host.per_core, tuple) else ()
        if not self.expanded or not cores:
            return 0
        per_line = max(1, width // self.CORE_CELL)
        return -(-len(cores) // per_line)

    def get_content_height(self, container, viewport, width: int) -> int:  # noqa: ANN001
        return 2 + self._core_lines(width) + (2 if self.expanded and self.history is not None else 0)

    history = None
    window_s = 60.0

    def set_history(self, history, window_s: float) -> None:  # noqa: ANN001
        """In host-only mode the panel charts CPU and RAM from the engine's history."""
        self.history, self.window_s = history, window_s

    def set_host(self, host: HostSample) -> None:
        if host == self.host:
            return  # nothing new to draw (idle CPU matters: this screen is open all day)
        before = self.host
        cores_before = len(before.per_core) if before is not None and isinstance(before.per_core, tuple) else -1
        self.host = host
        cores_now = len(host.per_core) if isinstance(host.per_core, tuple) else -1
        self.refresh(layout=self.expanded and cores_now != cores_before)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        made_of = (self.host, width, self.expanded, self.history, self.window_s, self.app.theme, self._lines_version)
        if made_of != self._lines_of:
            base = self.rich_style
            lines = self.render().split("\n")
            self._lines = [Strip(Segment.apply_style(line.render(self.app.console, end=""), base))
                           .crop_extend(0, width, base) for line in lines]
            self._lines_of, self._blank = made_of, Strip.blank(width, base)
        return self._lines[y] if y < len(self._lines) else self._blank

    _lines_version = 0

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines_version += 1  # restyled (a theme, a focus...): its colours may have changed

    def _bar(self, text: Text, used: object, total: object, width: int) -> None:
        u, t = num(used), num(total)
        filled, empty = bar(u / t if u is not None and t else None, width)
        text.append(filled, style=self.get_component_rich_style("host--bar"))
        text.append(empty, style=self.get_component_rich_style("host--muted"))

    def render(self) -> Text:
        host = self.host
        muted = self.get_component_rich_style("host--muted")
        if host is None:
            return Text("reading the host…", style=muted)
        width = max(40, self.size.width)
        text = Text("CPU ", style=muted)
        text.append(f"{fmt.pct(host.cpu_percent):>4} ")
        cores = host.per_core if isinstance(host.per_core, tuple) else ()
        load = " ".join(f"{v:.2f}" for v in host.load_avg) if isinstance(host.load_avg, tuple) else "n/a"
        tail = f"  load {load}"
        room = max(0, width - 9 - len(tail))
        if cores:
            shown = cores[:room]
            text.append("".join(BLOCKS[0 if v <= 0 else max(1, min(8, round(v / 12.5)))] for v in shown),
                        style=self.get_component_rich_style("host--bar"))
            if len(cores) > len(shown):
                text.append("…", style=muted)
        text.append(tail, style=muted)
        text.append("\n")
        half = max(6, (width - 60) // 2)
        text.append("RAM ", style=muted)
        self._bar(text, host.ram_used, host.ram_total, half)
        text.append(f" {fmt.size(host.ram_used, 'GiB').removesuffix(' GiB')}/{fmt.size(host.ram_total, 'GiB')}")
        text.append("  swap ", style=muted)
        text.append(f"{fmt.size(host.swap_used, 'GiB').removesuffix(' GiB')}/{fmt.size(host.swap_total, 'GiB')}")
        text.append("  disk ", style=muted)
        self._bar(text, host.disk_used, host.disk_total, half)
        text.append(f" {fmt.size(host.disk_used, 'GiB').removesuffix(' GiB')}/{fmt.size(host.disk_total, 'GiB')}")
        if self.expanded and self.history is not None:
            chart = max(0, width - 12)
            for key, label in ((("host", "cpu"), "cpu"), (("host", "ram"), "ram")):
                values = self.history.series(key, self.window_s, chart)
                latest = self.history.latest(key)
                text.append(f"\n{label:<4}", style=muted)
                text.append(spark_text(values, 100.0, chart), style=self.get_component_rich_style("host--bar"))
                text.append(f" {fmt.pct(latest):>6}")
        if self._core_lines(width):
            per_line = max(1, width // self.CORE_CELL)
            for i, value in enumerate(cores):
                text.append("\n" if i % per_line == 0 else "")
                text.append(f"cpu{i:<3}", style=muted)
                self._bar(text, value, 100.0, 6)
                text.append(f" {fmt.pct(value):>4} ")
        return text
