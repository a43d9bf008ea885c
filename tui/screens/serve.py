"""Serve mode: the OpenAI-compatible servers running on this box, live; start and stop them.

Servers are detached runs of kind `serve` (started here, by `llmdeck serve --detach`, or from
another terminal), so they outlive the TUI. The app's run watcher sends the run list and each
listed server's new events (engine.serve.stats folds them into requests/s, tokens/s, active
requests and the request log); a thread worker reads a starting server's out/server.json
(its URL) until it is there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Log, Select, Static

from engine.runs import RunError, RunInfo
from engine.serve.launch import ENGINES, SERVE_KIND, model_label, server_details, start_detached
from engine.serve.stats import ServeSnapshot, ServeStats
from tui.messages import StopRun
from tui.run_watcher import RunWatcher
from tui.screens.base import ModeScreen
from tui.widgets.model_input import ModelInput
from tui.widgets.tables import cursor_row_key, sync_rows

COLUMNS = ("server", "status", "url", "req/s", "tok/s", "active")
RECENT_ENDED_S = 3600.0


@dataclass
class ServerRow:
    info: RunInfo
    details: dict | None
    snap: ServeSnapshot


class StartServerModal(ModalScreen[dict | None]):
    """A small form: model, engine, port, API key, queue length. Dismisses with the spec + key.

    One line a field, so it fits at 80x24 with room to spare, inside a scroll view in case it does
    not (a tall font, a split pane). A field's problem shows on the line under it, and the field
    gets the focus, so the reason is where the eye is."""

    CSS_PATH = "modals.tcss"
    BINDINGS = [Binding("escape", "cancel", "cancel")]
    FIELDS = ("model", "engine", "port", "key", "queue")

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("Start a server", id="serve-form-title")
            with Horizontal(classes="form-row"):
                yield Label("model")
                yield ModelInput(placeholder="empty: the bundled Gemma 3 270M; ctrl+o picks one", id="serve-model",
                                 kinds=("gguf", "hf"), compact=True)
            yield Static("", id="serve-model-error", classes="field-error")  # shown with a problem
            with Horizontal(classes="form-row"):
                yield Label("engine")
                yield Select([(e, e) for e in ENGINES], value="auto", allow_blank=False, id="serve-engine",
                             compact=True)
            yield Static("", id="serve-engine-error", classes="field-error")
            with Horizontal(classes="form-row"):
                yield Label("port")
                yield Input("8000", id="serve-port", type="integer", placeholder="0: any free port", compact=True)
            yield Static("", id="serve-port-error", classes="field-error")
            with Horizontal(classes="form-row"):
                yield Label("API key")
                yield Input(password=True, id="serve-key", placeholder="empty: none (127.0.0.1 only)", compact=True)
            yield Static("", id="serve-key-error", classes="field-error")
            with Horizontal(classes="form-row"):
                yield Label("max queue")
                yield Input("16", id="serve-queue", type="integer", placeholder="queued requests", compact=True)
            yield Static("", id="serve-queue-error", classes="field-error")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="serve-cancel", compact=True)
                yield Button("Start", id="serve-start", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#serve-model", Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#serve-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    def _problem(self) -> tuple[str, str] | None:
        """The first field with a problem, and the problem; None when the form can start."""
        from pathlib import Path

        model = self.query_one("#serve-model", Input).value.strip()
        engine = str(self.query_one("#serve-engine", Select).value)
        for field, name in (("port", "the port"), ("queue", "the queue length")):
            if not self.query_one(f"#serve-{field}", Input).value.strip().lstrip("-").isdigit():
                return field, f"{name} must be a whole number"
        port = int(self.query_one("#serve-port", Input).value)
        if not 0 <= port <= 65535:
            return "port", "the port must be 0-65535 (0: any free port)"
        if int(self.query_one("#serve-queue", Input).value) < 0:
            return "queue", "the queue length must be 0 or more"
        if model and engine != "vllm" and not Path(model).expanduser().exists():
            return "model", f"model not found: {model}"
        if engine == "vllm" and not model:
            return "model", "vLLM needs a model: an HF folder or hub name"
        return None

    @on(Input.Submitted)
    @on(Button.Pressed, "#serve-start")
    def _start(self) -> None:
        from pathlib import Path

        problem = self._problem()
        for field in self.FIELDS:
            error = self.query_one(f"#serve-{field}-error", Static)
            text = problem[1] if problem and problem[0] == field else ""
            error.update(text)
            error.display = bool(text)
        if problem is not None:
            self.query_one(f"#serve-{problem[0]}").focus()
            self.query_one(f"#serve-{problem[0]}-error").scroll_visible(animate=False)
            return
        model = self.query_one("#serve-model", Input).value.strip()
        engine = str(self.query_one("#serve-engine", Select).value)
        found = bool(model) and Path(model).expanduser().exists()
        spec = {"model": str(Path(model).expanduser().resolve()) if found else model, "engine": engine,
                "host": "127.0.0.1", "port": int(self.query_one("#serve-port", Input).value),
                "max_queue": int(self.query_one("#serve-queue", Input).value)}
        self.dismiss({"spec": spec, "key": self.query_one("#serve-key", Input).value.strip() or None})


class ServeScreen(ModeScreen):
    CSS_PATH = "serve.tcss"
    MODE_KEY = "serve"
    BINDINGS = [
        Binding("n", "new_server", "start a server"),
        Binding("s", "stop_server", "stop server"),
        Binding("y", "copy_ssh", "copy ssh -L line"),
        Binding("r", "refresh", "refresh", show=False),
    ]

    class DetailsRead(Message):
        """out/server.json of live servers (None: not written yet)."""

        def __init__(self, details: dict[str, dict | None]) -> None:
            super().__init__()
            self.details = details

    def __init__(self) -> None:
        super().__init__()
        self._stats: dict[str, ServeStats] = {}
        self._details: dict[str, dict | None] = {}
        self._servers: list[RunInfo] = []
        self._error = ""
        self._rows: dict[str, ServerRow] = {}
        self._shown_cells: dict[str, tuple[str, ...]] = {}
        self._log_for: tuple[str, int] | None = None

    def compose_body(self) -> ComposeResult:
        table: DataTable[str] = DataTable(id="serve-table", cursor_type="row", zebra_stripes=True)
        for column in COLUMNS:
            table.add_column(column, key=column)
        yield table
        yield Static("", id="serve-empty")
        with Vertical(id="serve-detail", classes="panel") as detail:
            detail.border_title = "server"
            yield Static("", id="serve-info")
            yield Log(id="serve-log", max_lines=500)

    def on_mount(self) -> None:
        self.app.run_watcher.watch_runs(self)

    # -- from the run watcher ------------------------------------------------------------------
    def action_refresh(self) -> None:
        self.app.run_watcher.poke()

    def on_run_watcher_runs_changed(self, message: RunWatcher.RunsChanged) -> None:
        now = time.time()
        servers = [r for r in message.snapshot.runs if r.kind == SERVE_KIND
                   and (r.active or (r.ended or r.created) > now - RECENT_ENDED_S)][:50]
        self._servers, self._error = servers, message.snapshot.error
        watcher = self.app.run_watcher
        listed = {run.id for run in servers}
        for run_id in watcher.following(self) - listed:
            watcher.unfollow(self, run_id)
            self._stats.pop(run_id, None)
        for run in servers:
            if run.id not in self._stats:
                self._stats[run.id] = ServeStats()
                watcher.follow(self, run.id)
            if not run.active:
                self._details.pop(run.id, None)
        waiting = [run for run in servers if run.active and not self._details.get(run.id)]
        if waiting:
            self._read_details(waiting)
        self._render_rows()

    def on_run_watcher_events_read(self, message: RunWatcher.EventsRead) -> None:
        if message.first or message.run_id not in self._stats:
            self._stats[message.run_id] = ServeStats()
        self._stats[message.run_id].feed(message.events)
        self._render_rows()

    @work(thread=True, exclusive=True, group="serve-details", exit_on_error=False, description="reading server details")
    def _read_details(self, runs: list[RunInfo]) -> None:
        self.post_message(self.DetailsRead({run.id: server_details(run) for run in runs}))

    def on_serve_screen_details_read(self, message: DetailsRead) -> None:
        self._details.update(message.details)
        self._render_rows()

    def _render_rows(self) -> None:
        now = time.time()
        rows = [ServerRow(run, self._details.get(run.id) if run.active else None,
                          self._stats.setdefault(run.id, ServeStats()).snapshot(now)) for run in self._servers]
        table = self.query_one("#serve-table", DataTable)
        empty = self.query_one("#serve-empty", Static)
        if self._error:
            empty.update(f"[b]cannot read runs:[/b] {self._error}")
        elif not rows:
            empty.update("No servers. Press n to start one, or run `llmdeck serve MODEL --detach`.")
        else:
            empty.update("")
        empty.display = bool(self._error or not rows)
        sync_rows(table, COLUMNS, ((row.info.id, self._cells(row)) for row in rows), self._shown_cells)
        wanted = {row.info.id: row for row in rows}
        self._rows = wanted
        self._show_selected()

    @staticmethod
    def _cells(row: ServerRow) -> tuple[str, ...]:
        snap, info = row.snap, row.info
        status = info.status
        if info.active and not row.details:
            status = snap.phase or "starting"
        url = row.details["api"] if row.details else ""
        active = f"{snap.active}" + (f" +{snap.waiting} queued" if snap.waiting else "")
        live = info.active and row.details
        return (
            model_label(info.spec) if not info.name.startswith("serve ") else info.name[6:],
            status,
            url,
            f"{snap.requests_per_s:.1f}" if live else "",
            f"{snap.tokens_per_s:.1f}" if live else "",
            active if live else "",
        )

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_selected()

    @property
    def selected(self) -> ServerRow | None:
        return self._rows.get(cursor_row_key(self.query_one("#serve-table", DataTable)) or "")

    def _show_selected(self) -> None:
        row = self.selected
        info_widget = self.query_one("#serve-info", Static)
        log = self.query_one("#serve-log", Log)
        if row is None:
            info_widget.update("")
            log.clear()
            self._log_for = None
            return
        info_widget.update(self._describe(row))
        lines = row.snap.log
        # Append only what is new since the last render of this server's log.
        if self._log_for is None or self._log_for[0] != row.info.id or self._log_for[1] > len(lines):
            log.clear()
            shown = 0
        else:
            shown = self._log_for[1]
        if len(lines) > shown:
            log.write_lines(lines[shown:])
        self._log_for = (row.info.id, len(lines))

    @staticmethod
    def _describe(row: ServerRow) -> str:
        d, s, info = row.details, row.snap, row.info
        if d:
            auth = "API key required" if d.get("auth") else "no API key (127.0.0.1 only)"
            return (
                f"[b]{d['api']}[/b]  model [b]{d['model_id']}[/b] ({d['engine']}) · {auth}\n"
                f"from your laptop: [b]{d['ssh']}[/b]\n"
                f"{s.requests_per_s:.1f} req/s · {s.tokens_per_s:.1f} tok/s · {s.active} active · "
                f"{s.waiting} queued · "
                f"{s.requests} requests ({s.errors} errors) · {s.completion_tokens} tokens generated"
            )
        reason = f" ({info.exit_reason})" if info.exit_reason else ""
        return f"{info.label}: {s.phase or info.status if info.active else info.status}{reason}\n{info.dir}"

    # -- actions -----------------------------------------------------------------------------
    def action_new_server(self) -> None:
        def answered(result: dict | None) -> None:
            if not result:
                return
            try:
                info = start_detached(self.app.store, result["spec"], result["key"])
            except (RunError, OSError) as exc:
                self.notify(str(exc), severity="error")
                return
            self.notify(f"starting {info.label}")
            self.action_refresh()

        self.app.push_screen(StartServerModal(), answered)

    def action_stop_server(self) -> None:
        row = self.selected
        if row is not None:
            self.post_message(StopRun(row.info, where=row.details["api"] if row.details else ""))

    def action_copy_ssh(self) -> None:
        row = self.selected
        if row is None or not row.details:
            return
        self.app.copy_to_clipboard(row.details["ssh"])
        self.notify(f"copied: {row.details['ssh']}")
