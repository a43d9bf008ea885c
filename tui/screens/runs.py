"""Runs mode: every detached run on this box, live, whoever started it.

The list comes from the app's run watcher (runs are plain folders, so a run started by the CLI
or by another llmdeck shows up here too). The lower pane follows the selected run; Enter
attaches full-screen.
"""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from engine.formatting import format_duration, progress_text
from engine.runs import RunError, RunInfo
from tui.messages import StopRun
from tui.run_watcher import RunWatcher
from tui.screens.base import ModeScreen
from tui.screens.confirm import ConfirmModal
from tui.widgets.run_view import RunView
from tui.widgets.tables import cursor_row_key, sync_rows

COLUMNS = ("run", "kind", "status", "progress", "elapsed")


class RunsScreen(ModeScreen):
    CSS_PATH = "runs.tcss"
    MODE_KEY = "runs"
    BINDINGS = [
        Binding("enter", "attach", "attach"),
        Binding("c", "cancel_run", "stop run"),
        Binding("d", "delete_run", "delete run"),
        Binding("l", "toggle_log", "events/log"),
        Binding("n", "new_selftest", "new self-test run"),
        Binding("r", "refresh", "refresh", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._runs: dict[str, RunInfo] = {}
        self._cells: dict[str, tuple[str, ...]] = {}

    def compose_body(self) -> ComposeResult:
        table: DataTable[str] = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        for column in COLUMNS:
            table.add_column(column, key=column)
        yield table
        yield Static("", id="runs-empty")
        with Vertical(id="runs-detail", classes="panel") as detail:
            detail.border_title = "selected run"
            yield RunView(self.app.run_watcher, id="runs-view")

    def on_mount(self) -> None:
        self.app.run_watcher.watch_runs(self)

    # -- the run list ------------------------------------------------------------------------
    def action_refresh(self) -> None:
        self.app.run_watcher.poke()

    def on_run_watcher_runs_changed(self, message: RunWatcher.RunsChanged) -> None:
        snapshot = message.snapshot
        table = self.query_one("#runs-table", DataTable)
        empty = self.query_one("#runs-empty", Static)
        if snapshot.error:
            empty.update(f"[b]cannot read runs:[/b] {snapshot.error}")
        elif not snapshot.runs:
            empty.update(f"No runs yet in {self.app.store.root}. Press n to start a self-test run.")
        else:
            empty.update("")
        now = time.time()
        rows = ((run.id, (run.label, run.kind, run.status,
                          progress_text(snapshot.progress.get(run.id), status=run.status),
                          format_duration(run.elapsed(now)))) for run in snapshot.runs)
        sync_rows(table, COLUMNS, rows, self._cells, ordered=True)  # newest first, as `llmdeck runs list`
        wanted = {run.id: run for run in snapshot.runs}
        self._runs = wanted
        if table.row_count and self.query_one(RunView).run_id is None:
            self._select_current()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._select_current()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # The table takes Enter itself (select row); selecting a row attaches to it.
        self.action_attach()

    def _select_current(self) -> None:
        run_id = self.selected_run_id
        self.query_one(RunView).set_run(run_id)

    @property
    def selected_run_id(self) -> str | None:
        return cursor_row_key(self.query_one("#runs-table", DataTable))

    # -- actions -----------------------------------------------------------------------------
    def action_attach(self) -> None:
        run_id = self.selected_run_id
        if run_id:
            self.app.push_screen(RunAttachScreen(run_id))

    def action_toggle_log(self) -> None:
        view = self.query_one(RunView)
        view.show_log = not view.show_log

    def action_cancel_run(self) -> None:
        run = self._runs.get(self.selected_run_id or "")
        if run is not None:
            self.post_message(StopRun(run))

    def action_delete_run(self) -> None:
        run = self._runs.get(self.selected_run_id or "")
        if run is None:
            return
        if run.active:
            self.notify(f"{run.label} is {run.status}: stop it (c) before deleting it", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                self.app.store.delete(run.id)
            except (RunError, OSError) as exc:
                self.notify(str(exc), severity="error")
                return
            self.notify(f"deleted {run.label}")
            self.query_one(RunView).set_run(None)
            self.action_refresh()

        self.app.push_screen(
            ConfirmModal("Delete run?", f"{run.label} ({run.kind}, {run.status})\n{run.dir}\n\n"
                         "Its folder, log and outputs are removed.", "Delete", "Keep it"),
            answered,
        )

    def action_new_selftest(self) -> None:
        try:
            info = self.app.store.start("selftest", {"steps": 20, "delay": 0.5}, name="selftest")
        except (RunError, OSError) as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"started {info.id}")
        self.action_refresh()


class RunAttachScreen(Screen):
    """One run, full screen: its whole history replayed, then live."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("c", "cancel_run", "stop run"),
        Binding("l", "toggle_log", "events/log"),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def compose(self) -> ComposeResult:
        view = RunView(self.app.run_watcher, id="attach-view")
        yield view
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(RunView).set_run(self.run_id)

    def action_toggle_log(self) -> None:
        view = self.query_one(RunView)
        view.show_log = not view.show_log

    def action_cancel_run(self) -> None:
        try:
            run = self.app.store.get(self.run_id)
        except RunError as exc:
            self.notify(str(exc), severity="error")
            return
        self.post_message(StopRun(run))
