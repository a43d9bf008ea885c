"""The host's busiest processes, shown by the Monitor when there is no GPU (as htop shows them).

The engine sends the union of the top processes by CPU and by memory each tick
(`engine.monitor.host.TopProcesses`); this table shows the top `TOP_PROCESSES` by the chosen key.
Rows are keyed by pid and only changed cells are updated, so the cursor stays on its process.
"""

from __future__ import annotations

from engine.monitor import format as fmt
from engine.monitor.host import TOP_PROCESSES
from engine.monitor.sample import HostProcess, num
from tui.widgets.monitor_procs import SortedProcessTable

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


class HostProcessTable(SortedProcessTable):
    DEFAULT_CSS = """
    HostProcessTable { height: 1fr; min-height: 4; }
    """
    SORTS = SORTS
    COLUMNS = COLUMNS

    def visible(self) -> list[HostProcess]:
        return top_by(self.procs, self.sort_key)

    def key_of(self, proc: HostProcess) -> str:
        return str(proc.pid)

    def cells_of(self, proc: HostProcess) -> tuple[str, ...]:
        return _cells(proc)
