"""The host's busiest processes, shown by the Monitor when there is no GPU (as htop shows them).

The engine sends the union of the top processes by CPU and by memory each tick
(`engine.monitor.host.TopProcesses`); this table shows the top `TOP_PROCESSES` by the chosen key.
Rows are keyed by pid and only changed cells are updated, so the cursor stays on its process.
"""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable

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


class HostProcessTable(DataTable):
    DEFAULT_CSS = """
    HostProcessTable { height: 1fr; min-height: 4; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.sort_index = 0
        self.procs: tuple[HostProcess, ...] = ()
        self.shown: list[HostProcess] = []
        self._last_rows: list[tuple[str, tuple[str, ...]]] | None = None

    def on_mount(self) -> None:
        for column in COLUMNS:
            self.add_column(column, key=column)

    @property
    def sort_key(self) -> str:
        return SORTS[self.sort_index][0]

    @property
    def sort_label(self) -> str:
        return SORTS[self.sort_index][1]

    def next_sort(self) -> str:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.rebuild()
        return self.sort_label

    def set_processes(self, procs: tuple[HostProcess, ...]) -> None:
        self.procs = procs
        self.rebuild()

    def rebuild(self) -> None:
        shown = top_by(self.procs, self.sort_key)
        rows = [(str(p.pid), _cells(p)) for p in shown]
        self.shown = shown
        if rows == self._last_rows:
            return
        previous, self._last_rows = self._last_rows, rows
        if previous is not None and [k for k, _ in previous] == [k for k, _ in rows]:
            for (key, old), (_, new) in zip(previous, rows, strict=True):  # same rows: update the changed cells only
                for column, before, after in zip(COLUMNS, old, new, strict=True):
                    if before != after:
                        self.update_cell(key, column, after)
            return
        selected = self.selected
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        if selected is not None:
            for i, p in enumerate(shown):
                if p.pid == selected.pid:
                    self.move_cursor(row=i, animate=False)
                    break

    @property
    def selected(self) -> HostProcess | None:
        if not self.shown or self.row_count == 0:
            return None
        row = self.cursor_row
        return self.shown[row] if 0 <= row < len(self.shown) else None
