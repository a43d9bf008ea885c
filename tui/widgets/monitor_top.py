"""The host's busiest processes, shown by the Monitor when there is no GPU (as htop shows them).

The engine sends the union of the top processes by CPU and by memory each slow tick
(`engine.monitor.host.TopProcesses`); this table shows the top `TOP_PROCESSES` by the chosen key,
with a cursor that stays on its process (rows are known by pid) across re-rankings.

Why not a DataTable, as the GPU process table is: this list re-ranks every `slow_interval` for as
long as the Monitor is open (all day, on a box with no GPU), and DataTable re-renders every
visible cell, through Rich, whenever any one cell changes: 16 ms a tick on a 2-core box, a third
of the idle app's CPU (bench/idle.py). Here each row is one line drawn from its text, and a tick
repaints only the lines whose text changed.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from engine.monitor import format as fmt
from engine.monitor.host import TOP_PROCESSES
from engine.monitor.sample import HostProcess, num

SORTS: tuple[tuple[str, str], ...] = (("cpu_percent", "CPU%"), ("rss", "memory"))
COLUMNS = ("PID", "user", "CPU%", "RSS", "MEM%", "command")


def top_by(procs: tuple[HostProcess, ...], key: str, limit: int = TOP_PROCESSES) -> list[HostProcess]:
    """The `limit` largest by `key` (n/a last), ties by the other figure, then pid."""
    other = "rss" if key == "cpu_percent" else "cpu_percent"
    return sorted(procs, key=lambda p: (num(getattr(p, key)) is None, -(num(getattr(p, key)) or 0.0),
                                        -(num(getattr(p, other)) or 0.0), p.pid))[:limit]


def _cells(proc: HostProcess) -> tuple[str, ...]:
    return (
        str(proc.pid),
        fmt.text(proc.user),
        fmt.pct(proc.cpu_percent),
        fmt.size(proc.rss),
        fmt.pct(proc.mem_percent),
        fmt.text(proc.command),
    )


class HostProcessTable(Widget, can_focus=True):
    """A header line and one line per process, sorted by one of `SORTS`; the cursor row follows
    its process. Looks and moves like the GPU process table (a DataTable): zebra rows, a cursor
    that is bright while focused, arrows / page keys / home / end, the wheel, a click."""

    DEFAULT_CSS = """
    HostProcessTable {
        height: 1fr; min-height: 4; background: $surface; color: $foreground;
        &:focus { background-tint: $foreground 5%; }
        & > .host-procs--header { text-style: bold; background: $panel; color: $foreground; }
        & > .host-procs--even-row { background: $surface-lighten-1 50%; }
        &:dark > .host-procs--even-row { background: $surface-darken-1 40%; }
        & > .host-procs--cursor {
            background: $block-cursor-blurred-background; color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus > .host-procs--cursor {
            background: $block-cursor-background; color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"host-procs--header", "host-procs--even-row", "host-procs--cursor"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "up", show=False),
        Binding("down", "cursor(1)", "down", show=False),
        Binding("pageup", "page(-1)", "page up", show=False),
        Binding("pagedown", "page(1)", "page down", show=False),
        Binding("home", "cursor(-1000000)", "first", show=False),
        Binding("end", "cursor(1000000)", "last", show=False),
    ]
    SORTS = SORTS
    COLUMNS = COLUMNS

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sort_index = 0
        self.procs: tuple[HostProcess, ...] = ()
        self.shown: list[HostProcess] = []
        self.rows: list[tuple[str, ...]] = []
        """The cells of each shown process, as drawn."""
        self.cursor_row = 0
        self._top = 0  # the first row on screen (rows below the header scroll, the header stays)
        self._widths = [len(c) for c in COLUMNS]  # grow only: a column never jumps back and forth

    # -- what is shown -------------------------------------------------------------------------
    @property
    def sort_key(self) -> str:
        return self.SORTS[self.sort_index][0]

    @property
    def sort_label(self) -> str:
        return self.SORTS[self.sort_index][1]

    @property
    def row_count(self) -> int:
        return len(self.rows)

    @property
    def selected(self) -> HostProcess | None:
        return self.shown[self.cursor_row] if 0 <= self.cursor_row < len(self.shown) else None

    def next_sort(self) -> str:
        self.sort_index = (self.sort_index + 1) % len(self.SORTS)
        self.rebuild()
        return self.sort_label

    def set_processes(self, procs: tuple[HostProcess, ...]) -> None:
        if procs is self.procs:
            return  # the same list as the last tick (the engine re-samples it on the slow cadence)
        self.procs = procs
        self.rebuild()

    def rebuild(self) -> None:
        selected = self.selected
        shown = top_by(self.procs, self.sort_key)
        rows = [_cells(p) for p in shown]
        previous, self.shown, self.rows = self.rows, shown, rows
        if selected is not None:  # the cursor follows its process
            self.cursor_row = next((i for i, p in enumerate(shown) if p.pid == selected.pid), self.cursor_row)
        self.cursor_row = max(0, min(self.cursor_row, len(rows) - 1))
        widths = [max(w, *(len(r[i]) for r in rows)) if rows else w for i, w in enumerate(self._widths)]
        scrolled = self._keep_cursor_in_view()
        if widths != self._widths or scrolled or len(rows) != len(previous):
            self._widths = widths
            self.refresh()
            return
        for i, (old, new) in enumerate(zip(previous, rows, strict=True)):
            if old != new:
                self._refresh_row(i)

    def row_cells(self, index: int) -> tuple[str, ...]:
        """The cells of row `index` as drawn."""
        return self.rows[index]

    # -- drawing ---------------------------------------------------------------------------------
    def _line_text(self, cells: tuple[str, ...]) -> str:
        return "".join(f" {cell:<{width}} " for cell, width in zip(cells, self._widths, strict=True))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y == 0:
            style: Style = self.get_component_rich_style("host-procs--header")
            return Strip([Segment(self._line_text(self.COLUMNS), style)]).crop_extend(0, width, style)
        row = self._top + y - 1
        if row >= len(self.rows):
            return Strip.blank(width, base)
        if row == self.cursor_row:
            style = self.get_component_rich_style("host-procs--cursor")
        elif row % 2:
            style = self.get_component_rich_style("host-procs--even-row")
        else:
            style = base
        return Strip([Segment(self._line_text(self.rows[row]), style)]).crop_extend(0, width, style)

    def _visible_rows(self) -> int:
        return max(1, self.size.height - 1)

    def _refresh_row(self, row: int) -> None:
        y = row - self._top + 1
        if 1 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def _keep_cursor_in_view(self) -> bool:
        """Scroll so the cursor row is on screen; whether the rows moved."""
        top = min(self._top, self.cursor_row)
        top = max(top, self.cursor_row - self._visible_rows() + 1)
        top = max(0, min(top, max(0, len(self.rows) - self._visible_rows())))
        moved, self._top = top != self._top, top
        return moved

    def on_resize(self) -> None:
        self._keep_cursor_in_view()

    # -- moving ----------------------------------------------------------------------------------
    def move_cursor(self, row: int) -> None:
        if not self.rows:
            return
        before = self.cursor_row
        self.cursor_row = max(0, min(row, len(self.rows) - 1))
        if self._keep_cursor_in_view():
            self.refresh()
        elif before != self.cursor_row:
            self._refresh_row(before)
            self._refresh_row(self.cursor_row)

    def action_cursor(self, delta: int) -> None:
        self.move_cursor(self.cursor_row + delta)

    def action_page(self, pages: int) -> None:
        self.move_cursor(self.cursor_row + pages * self._visible_rows())

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.move_cursor(self.cursor_row + 1)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.move_cursor(self.cursor_row - 1)

    def on_click(self, event: events.Click) -> None:
        if event.y >= 1:
            self.move_cursor(self._top + event.y - 1)
