"""One row per node of a multi-node (or multi-process) training run: state, ranks alive, step,
memory and heartbeat. Fed with `engine.train.launch.nodes_of(info)` rows by the view that polls
the run (Runs and Train); hidden while the run has no such rows (one process)."""

from __future__ import annotations

from textual.markup import escape
from textual.widgets import Static

from engine.train.rank_status import NodeRow

STATE_STYLE = {
    "running": "bold $success",
    "starting": "$primary",
    "silent": "bold $warning",
    "done": "$success",
    "failed": "bold $error",
    "stopped": "$warning",
}


class RunNodes(Static):
    DEFAULT_CSS = """
    RunNodes { height: auto; max-height: 8; padding: 0 1; display: none; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.rows: list[NodeRow] = []

    def show(self, rows: list[NodeRow]) -> None:
        self.rows = rows
        self.display = bool(rows)
        if not rows:
            self.update("")
            return
        width = max(len(r.name) for r in rows)
        lines = []
        for r in rows:
            style = STATE_STYLE.get(r.state, "")
            memory = ""
            if r.memory:
                memory = f"  {'GPU' if r.memory == 'gpu' else 'RAM'} {r.mem_gib:.1f}/{r.peak_gib:.1f} GiB"
            beat = f"  ♥ {r.heartbeat_age_s:.0f}s" if r.heartbeat_age_s is not None and r.state == "running" else ""
            detail = f"  {escape(r.detail)}" if r.detail else ""
            lines.append(f"{escape(r.name):{width}}  [{style}]{r.state:8}[/]  {r.alive}/{len(r.ranks)} ranks  "
                         f"step {r.step}{memory}{beat}{detail}")
        self.update("\n".join(lines))
