"""The GPU process table: sortable by GPU memory, SM%, CPU% or RSS, filterable by text.

Rows are rebuilt only when what they show changed, and the cursor stays on the same process
across rebuilds (rows are keyed by gpu:pid), so a 1 s refresh never makes the selection jump.
"""

from __future__ import annotations

from typing import Any

from textual.coordinate import Coordinate
from textual.widgets import DataTable

from engine.monitor import format as fmt
from engine.monitor.sample import ProcessSample, num

SORTS: tuple[tuple[str, str], ...] = (
    ("gpu_memory", "GPU mem"),
    ("sm_util", "SM%"),
    ("cpu_percent", "CPU%"),
    ("rss", "RSS"),
)
COLUMNS = ("GPU", "PID", "user", "GPU mem", "SM%", "CPU%", "RSS", "run", "command")


def row_key(proc: ProcessSample) -> str:
    return f"{proc.gpu_index}:{proc.pid}"


def matches(proc: ProcessSample, needle: str) -> bool:
    if not needle:
        return True
    hay = " ".join(
        str(v)
        for v in (proc.pid, proc.user, proc.name, proc.command, proc.run.text if proc.run else "",
                  f"gpu{proc.gpu_index}")
    ).lower()
    return all(part in hay for part in needle.lower().split())


def sort_procs(procs: tuple[ProcessSample, ...], key: str) -> list[ProcessSample]:
    """Largest first; n/a sorts last."""
    return sorted(procs, key=lambda p: (num(getattr(p, key)) is None, -(num(getattr(p, key)) or 0.0),
                                        p.gpu_index, p.pid))


def _cells(proc: ProcessSample) -> tuple[str, ...]:
    command = fmt.text(proc.command) if proc.command is not None else "n/a"
    return (
        str(proc.gpu_index),
        str(proc.pid),
        fmt.text(proc.user),
        fmt.size(proc.gpu_memory),
        fmt.pct(proc.sm_util),
        fmt.pct(proc.cpu_percent),
        fmt.size(proc.rss),
        proc.run.text if proc.run else "",
        command,
    )


class SortCycle:
    """The sort choice both process tables share (the GPU one, a DataTable, and the host one, drawn
    line by line): one of `SORTS`, moved on by `next_sort`, after which the rows are rebuilt."""

    SORTS: tuple[tuple[str, str], ...] = ()
    sort_index = 0

    @property
    def sort_key(self) -> str:
        return self.SORTS[self.sort_index][0]

    @property
    def sort_label(self) -> str:
        return self.SORTS[self.sort_index][1]

    def next_sort(self) -> str:
        self.sort_index = (self.sort_index + 1) % len(self.SORTS)
        self.rebuild()
        return self.sort_label

    def rebuild(self) -> None:
        raise NotImplementedError


class SortedProcessTable(SortCycle, DataTable):
    """A process table sorted by one of `SORTS` whose cursor stays on its process (`key_of`):
    rows are redrawn only when what they show changed, and while their number stays the same only
    the cells that differ are updated in place (no relayout: a re-ranking every few seconds cost
    the idle Monitor a rebuild each time). Subclasses say which processes are shown (`visible`),
    how a process is known across ticks and what its cells say."""

    COLUMNS: tuple[str, ...] = ()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.sort_index = 0
        self.procs: tuple[Any, ...] = ()
        self.shown: list[Any] = []
        self._last_rows: list[tuple[str, tuple[str, ...]]] | None = None

    def visible(self) -> list[Any]:
        raise NotImplementedError

    def key_of(self, proc: Any) -> str:
        raise NotImplementedError

    def cells_of(self, proc: Any) -> tuple[str, ...]:
        raise NotImplementedError

    def on_mount(self) -> None:
        for column in self.COLUMNS:
            self.add_column(column, key=column)

    def set_processes(self, procs: tuple[Any, ...]) -> None:
        self.procs = procs
        self.rebuild()

    def rebuild(self) -> None:
        shown = self.visible()
        rows = [(self.key_of(p), self.cells_of(p)) for p in shown]
        self.shown = shown
        if rows == self._last_rows:
            return
        previous, self._last_rows = self._last_rows, rows
        selected = self.selected if previous is not None else None
        if previous is not None and len(previous) == len(rows) == self.row_count:
            # As many rows as before (the usual tick, even when the ranking moved): change only the
            # cells that differ, in place, with no relayout; the cursor follows its process.
            for y, ((_, old), (_, new)) in enumerate(zip(previous, rows, strict=True)):
                for x, (before, after) in enumerate(zip(old, new, strict=True)):
                    if before != after:
                        self.update_cell_at(Coordinate(y, x), after, update_width=len(after) > len(before))
        else:
            self.clear()
            for _key, cells in rows:
                self.add_row(*cells)
        if selected is not None:
            chosen = self.key_of(selected)
            for i, p in enumerate(shown):
                if self.key_of(p) == chosen:
                    if i != self.cursor_row:
                        self.move_cursor(row=i, animate=False)
                    break

    @property
    def selected(self) -> Any:
        if not self.shown or self.row_count == 0:
            return None
        row = self.cursor_row
        return self.shown[row] if 0 <= row < len(self.shown) else None


class ProcessTable(SortedProcessTable):
    DEFAULT_CSS = """
    ProcessTable { height: 1fr; min-height: 4; }
    """
    SORTS = SORTS
    COLUMNS = COLUMNS

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.needle = ""

    def set_filter(self, needle: str) -> None:
        self.needle = needle.strip()
        self.rebuild()

    def visible(self) -> list[ProcessSample]:
        return [p for p in sort_procs(self.procs, self.sort_key) if matches(p, self.needle)]

    def key_of(self, proc: ProcessSample) -> str:
        return row_key(proc)

    def cells_of(self, proc: ProcessSample) -> tuple[str, ...]:
        return _cells(proc)
