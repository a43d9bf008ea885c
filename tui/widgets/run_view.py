"""A live view of one run: status line, progress bar, latest metrics, event or log tail.

It follows the run through the app's run watcher (`tui.run_watcher`): pointed at a run it gets
the whole of `events.jsonl` first (so a reattaching TUI shows the whole history), then each
new line; the status line comes from the watcher's run list. The log view (`show_log`) shows
the tail of the run's log.txt instead of the events.
"""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.markup import escape
from textual.reactive import reactive
from textual.widgets import Log, ProgressBar, Static

from engine.events import Metric, Progress
from engine.formatting import STOPPED_STATUSES, describe_event, figures_text, format_duration, progress_text
from engine.runs import RunInfo
from tui.run_watcher import RunWatcher


class RunView(Vertical):
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

    def __init__(self, watcher: RunWatcher, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.watcher = watcher
        self.run_id: str | None = None
        self._metrics: dict[str, float] = {}
        self._last_step = 0
        self._progress: Progress | None = None
        self._info: RunInfo | None = None

    def compose(self) -> ComposeResult:
        yield Static("no run selected", id="run-status")
        yield ProgressBar(total=None, show_eta=False, id="run-progress")
        yield Static("", id="run-progress-text")
        yield Static("", id="run-metrics")
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
        # label, kind and reason come from run.json (user text, or a damaged file's error): escaped
        reason = f" — {escape(info.exit_reason)}" if info.exit_reason else ""
        style = _status_style(info.status)
        shown = f"[{style}]{info.status}[/]" if style else info.status  # `[]x[/]` is a markup error
        elapsed = format_duration(info.elapsed(time.time()))
        status.update(f"[b]{escape(info.label)}[/b] · {escape(info.kind)} · {shown} · {elapsed}{reason}")
        self._show_progress()

    @property
    def info(self) -> RunInfo | None:
        return self._info


def _status_style(status: str) -> str:
    return {
        "running": "bold $primary",
        "starting": "$primary",
        "succeeded": "bold $success",
        "failed": "bold $error",
        "lost": "bold $error",
        "cancelled": "$warning",
        "damaged": "bold $error",
    }.get(status, "")
