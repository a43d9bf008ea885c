"""A live view of one run: status line, progress bar, latest metrics, event or log tail.

It follows the run through the app's run watcher (`tui.run_watcher`): pointed at a run it gets
the whole of `events.jsonl` first (so a reattaching TUI shows the whole history), then each
new line; the status line comes from the watcher's run list. The log view (`show_log`) shows
the tail of the run's log.txt instead of the events. A training run on several processes or
nodes also gets one row per node (RunNodes), read in a worker when the watcher's list changes.
"""

from __future__ import annotations

import time

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.markup import escape
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Log, ProgressBar, Static

from engine.events import Metric, Progress
from engine.formatting import STOPPED_STATUSES, describe_event, figures_text, format_duration, progress_text
from engine.runs import RunInfo
from engine.train.launch import nodes_of
from engine.train.rank_status import NodeRow
from tui.run_watcher import RunWatcher
from tui.widgets.run_nodes import RunNodes
from tui.workers import ReportsWorkerErrors


class RunView(ReportsWorkerErrors, Vertical):
    DEFAULT_CSS = """
    RunView { height: 1fr; }
    RunView #run-status { height: auto; padding: 0 1; }
    RunView #run-metrics { height: auto; padding: 0 1; color: $text-muted; }
    RunView #run-progress-text { height: auto; padding: 0 1; }
    RunView ProgressBar { padding: 0 1; height: 1; }
    RunView Log { height: 1fr; border: none; }
    """

    show_log: reactive[bool] = reactive(False)
    """False: the event stream; True: the run's log.txt (stdout, tracebacks)."""

    class NodesRead(Message):
        """The run's nodes (its rank files), read in a thread worker."""

        def __init__(self, run_id: str, rows: list[NodeRow]) -> None:
            super().__init__()
            self.run_id = run_id
            self.rows = rows

    def __init__(self, watcher: RunWatcher, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.watcher = watcher
        self.run_id: str | None = None
        self._metrics: dict[str, float] = {}
        self._last_step = 0
        self._progress: Progress | None = None
        self._info: RunInfo | None = None
        self._nodes_of: str | None = None  # the run whose nodes were last read (an ended run: once)

    def compose(self) -> ComposeResult:
        yield Static("no run selected", id="run-status")
        yield ProgressBar(total=None, show_eta=False, id="run-progress")
        yield Static("", id="run-progress-text")
        yield Static("", id="run-metrics")
        yield RunNodes(id="run-nodes")
        yield Log(max_lines=2000, id="run-tail", auto_scroll=True)

    def on_mount(self) -> None:
        self.watcher.watch_runs(self)

    def on_unmount(self) -> None:
        self.watcher.forget(self)

    def set_run(self, run_id: str | None) -> None:
        if run_id == self.run_id:
            return
        self.run_id = run_id
        self._info = None
        self._nodes_of = None
        self.query_one(RunNodes).show([])
        self._restart()
        if run_id is None:
            self.query_one("#run-status", Static).update("no run selected")
        elif self.watcher.snapshot is not None:
            self._show_status(self.watcher.snapshot.get(run_id))

    def watch_show_log(self) -> None:
        if self.is_mounted:
            self._restart()

    def _restart(self) -> None:
        """Clear what was shown and follow the run from its first event (and its log)."""
        self._clear()
        self.watcher.unfollow(self)
        if self.run_id is not None:
            self.watcher.follow(self, self.run_id, log=self.show_log)

    def _clear(self, tail: bool = True) -> None:
        self._metrics = {}
        self._last_step = 0
        self._progress = None
        if tail:
            self.query_one(Log).clear()
        self.query_one("#run-metrics", Static).update("")
        self.query_one("#run-progress-text", Static).update("")
        bar = self.query_one(ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True

    # -- from the watcher --------------------------------------------------------------------
    def on_run_watcher_runs_changed(self, message: RunWatcher.RunsChanged) -> None:
        if self.run_id is not None:
            self._show_status(message.snapshot.get(self.run_id))

    def on_run_watcher_events_read(self, message: RunWatcher.EventsRead) -> None:
        if message.run_id != self.run_id:
            return
        if message.first:
            self._clear(tail=not self.show_log)  # the history from the first event: what was shown goes
        lines = []
        for event in message.events:
            if isinstance(event, Progress):
                self._progress = event
                continue  # progress goes to the bar, not the tail
            if isinstance(event, Metric) and event.step >= self._last_step:
                self._last_step = event.step
                self._metrics.update(event.values)
            if not self.show_log:
                lines.append(describe_event(event))
        if lines:
            self.query_one(Log).write_lines(lines)
        self._show_progress()
        figures = figures_text(self._metrics)
        if figures:
            self.query_one("#run-metrics", Static).update(f"step {self._last_step}: {figures}")

    def _show_progress(self) -> None:
        """The bar and its sentence. A run that ended without succeeding keeps the sentence
        ("stopped at write 236/236 tensors") but loses the bar: a full bar reads as done."""
        progress = self._progress
        if progress is None:
            return
        status = self._info.status if self._info is not None else ""
        bar = self.query_one(ProgressBar)
        bar.display = status not in STOPPED_STATUSES
        bar.update(total=progress.total, progress=progress.done)
        self.query_one("#run-progress-text", Static).update(progress_text(progress, self._metrics, status=status))

    def on_run_watcher_log_read(self, message: RunWatcher.LogRead) -> None:
        if message.run_id == self.run_id and self.show_log:
            tail = self.query_one(Log)
            tail.clear()
            tail.write_lines(message.lines)

    def _show_status(self, info: RunInfo | None) -> None:
        status = self.query_one("#run-status", Static)
        if info is None:
            status.update(f"[b]{escape(self.run_id or '')}[/b]: not found in the run store")
            return
        self._info = info
        if info.active or self._nodes_of != info.id:
            self._nodes_of = info.id
            self._read_nodes(info)
        # label, kind and reason come from run.json (user text, or a damaged file's error): escaped
        why = info.exit_reason or info.status_detail  # the end, or why a queued run waits
        reason = f" — {escape(why)}" if why else ""
        style = _status_style(info.status)
        shown = f"[{style}]{info.status}[/]" if style else info.status  # `[]x[/]` is a markup error
        elapsed = format_duration(info.elapsed(time.time()))
        status.update(f"[b]{escape(info.label)}[/b] · {escape(info.kind)} · {shown} · {elapsed}{reason}")
        self._show_progress()

    @work(thread=True, exclusive=True, group="run-nodes", exit_on_error=False, description="reading the run's nodes")
    def _read_nodes(self, info: RunInfo) -> None:
        self.post_message(self.NodesRead(info.id, nodes_of(info)))

    def on_run_view_nodes_read(self, message: NodesRead) -> None:
        message.stop()
        if message.run_id == self.run_id:
            self.query_one(RunNodes).show(message.rows)

    @property
    def info(self) -> RunInfo | None:
        return self._info


def _status_style(status: str) -> str:
    return {
        "running": "bold $primary",
        "starting": "$primary",
        "pending": "$secondary",
        "succeeded": "bold $success",
        "failed": "bold $error",
        "lost": "bold $error",
        "cancelled": "$warning",
        "damaged": "bold $error",
    }.get(status, "")
