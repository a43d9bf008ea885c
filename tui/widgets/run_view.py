"""A live view of one run: status line, progress bar, latest metrics, event or log tail.

It replays `events.jsonl` from the start when pointed at a run (so a reattaching TUI shows the
whole history) and then follows new lines. Reading happens in a thread worker; results come
back as a message, so a slow disk never stalls typing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.markup import escape
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Log, ProgressBar, Static
from textual.worker import get_current_worker

from engine.events import JobEvent, Metric, Progress
from engine.formatting import describe_event, format_duration, progress_text
from engine.runs import RunError, RunInfo, RunStore


@dataclass
class RunPolled(Message):
    run_id: str
    info: RunInfo | None
    events: list[JobEvent]
    offset: int
    log_lines: list[str] = field(default_factory=list)
    error: str = ""


class RunView(Vertical):
    DEFAULT_CSS = """
    RunView { height: 1fr; }
    RunView #run-status { height: auto; padding: 0 1; }
    RunView #run-metrics { height: auto; padding: 0 1; color: $text-muted; }
    RunView ProgressBar { padding: 0 1; height: 1; }
    RunView Log { height: 1fr; border: none; }
    """

    show_log: reactive[bool] = reactive(False)
    """False: the event stream; True: the run's log.txt (stdout, tracebacks)."""

    def __init__(self, store: RunStore, *, interval: float = 0.5, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store
        self.interval = interval
        self.run_id: str | None = None
        self._offset = 0
        self._metrics: dict[str, float] = {}
        self._last_step = 0
        self._info: RunInfo | None = None

    def compose(self) -> ComposeResult:
        yield Static("no run selected", id="run-status")
        yield ProgressBar(total=None, show_eta=False, id="run-progress")
        yield Static("", id="run-metrics")
        yield Log(max_lines=2000, id="run-tail", auto_scroll=True)

    def on_mount(self) -> None:
        self.set_interval(self.interval, self.poll)

    def set_run(self, run_id: str | None) -> None:
        if run_id == self.run_id:
            return
        self.run_id = run_id
        self._offset = 0
        self._metrics = {}
        self._last_step = 0
        self._info = None
        self.query_one(Log).clear()
        self.query_one("#run-metrics", Static).update("")
        self.query_one(ProgressBar).update(total=None, progress=0)
        if run_id is None:
            self.query_one("#run-status", Static).update("no run selected")
        self.poll()

    def watch_show_log(self) -> None:
        if self.is_mounted:
            self.query_one(Log).clear()
            self._offset = 0
            self._metrics = {}
            self.poll()

    def poll(self) -> None:
        if self.run_id is not None:
            self._read(self.run_id, self._offset, self.show_log)

    @work(thread=True, exclusive=True, group="run-view", exit_on_error=False)
    def _read(self, run_id: str, offset: int, want_log: bool) -> None:
        if get_current_worker().is_cancelled:
            return
        try:
            info = self.store.get(run_id)
            events, new_offset = self.store.read_events(run_id, offset)
            log_lines = self.store.log_tail(run_id, 500) if want_log else []
            self.post_message(RunPolled(run_id, info, events, new_offset, log_lines))
        except (RunError, OSError) as exc:
            self.post_message(RunPolled(run_id, None, [], offset, error=str(exc)))

    def on_run_polled(self, message: RunPolled) -> None:
        message.stop()
        if message.run_id != self.run_id or message.offset < self._offset:
            return
        status = self.query_one("#run-status", Static)
        if message.info is None:
            status.update(f"[b]{escape(message.run_id)}[/b]: {escape(message.error)}")
            return
        self._info = info = message.info
        self._offset = message.offset
        # label, kind and reason come from run.json (user text, or a damaged file's error): escaped
        reason = f" — {escape(info.exit_reason)}" if info.exit_reason else ""
        shown = f"[{_status_style(info.status)}]{escape(info.status)}[/]"
        status.update(
            f"[b]{escape(info.label)}[/b] · {escape(info.kind)} · {shown} · "
            f"{format_duration(info.elapsed(time.time()))}{reason}"
        )
        tail = self.query_one(Log)
        bar = self.query_one(ProgressBar)
        lines = []
        for event in message.events:
            if isinstance(event, Progress):
                bar.update(total=event.total, progress=event.done)
                continue  # progress goes to the bar, not the tail
            if isinstance(event, Metric) and event.step >= self._last_step:
                self._last_step = event.step
                self._metrics.update(event.values)
            if not self.show_log:
                lines.append(describe_event(event))
        if self.show_log:
            tail.clear()
            tail.write_lines(message.log_lines)
        elif lines:
            tail.write_lines(lines)
        if self._metrics:
            shown = "  ".join(f"{k} {v:.4g}" for k, v in list(self._metrics.items())[:8])
            self.query_one("#run-metrics", Static).update(f"step {self._last_step}: {shown}")

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
    }.get(status, "$text")


__all__ = ["RunView", "RunPolled", "progress_text"]
