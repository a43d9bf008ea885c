"""The model picker (a modal): every model llmdeck knows of (engine.model_catalog), in a list you
filter by typing. Opened by the app for a `PickModel` request (ctrl+o in any model field, F8 in
Chat); dismisses with the chosen path, or None.

The scan runs in a thread worker (it may walk big folders; engine.model_catalog bounds it in time
and depth), so the dialog is up at once and says "looking…" until the list arrives. The list
starts on the kinds the field takes; ctrl+r shows every kind."""

from __future__ import annotations

import time
from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from engine.formatting import format_bytes
from engine.model_catalog import Catalog, FoundModel, matches
from tui.workers import ReportsWorkerErrors

COLUMNS = ("model", "kind", "size", "from")


class ModelPickerModal(ReportsWorkerErrors, ModalScreen[str | None]):
    CSS_PATH = "modals.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "cancel"),
        Binding("enter", "pick", "pick", priority=True),
        Binding("up", "move(-1)", "up", show=False),
        Binding("down", "move(1)", "down", show=False),
        Binding("pageup", "move(-10)", "page up", show=False),
        Binding("pagedown", "move(10)", "page down", show=False),
        Binding("ctrl+r", "every_kind", "every kind"),
    ]

    @dataclass
    class Scanned(Message):
        catalog: Catalog

    def __init__(self, kinds: tuple[str, ...] = (), current: str = "", folders: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.kinds = kinds
        self.current = current
        self.folders = folders
        self.catalog: Catalog | None = None
        self.every_kind = not kinds
        self.shown: list[FoundModel] = []

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "pick a model"
            yield Input(placeholder="type to filter: name, folder, kind (gguf, hf, adapter), source",
                        id="picker-filter", compact=True)
            table: DataTable[str] = DataTable(id="picker-list", cursor_type="row", zebra_stripes=True)
            for column in COLUMNS:
                table.add_column(column, key=column)
            table.can_focus = False  # the filter keeps the focus; ↑ ↓ move the list from there
            yield table
            yield Static("looking for models…", id="picker-status")
            yield Static("", id="picker-path")
            yield Static("Enter pick · ↑↓ move · ctrl+r every kind · Esc cancel", id="picker-help")

    def on_mount(self) -> None:
        self.query_one("#picker-filter", Input).focus()
        self._scan()

    @work(thread=True, exclusive=True, group="model-scans", exit_on_error=False, description="looking for models")
    def _scan(self) -> None:
        from engine.model_catalog import scan

        self.post_message(self.Scanned(scan(self.folders)))

    def on_model_picker_modal_scanned(self, message: Scanned) -> None:
        self.catalog = message.catalog
        self._refill()

    @on(Input.Changed, "#picker-filter")
    def _filter_changed(self) -> None:
        self._refill()

    def _refill(self) -> None:
        if self.catalog is None:
            return
        query = self.query_one("#picker-filter", Input).value
        every = [m for m in self.catalog.models if matches(m, query)]
        self.shown = every if self.every_kind else [m for m in every if m.kind in self.kinds]
        table = self.query_one("#picker-list", DataTable)
        table.clear()
        for model in self.shown:
            size = format_bytes(model.size) if model.size else ""
            table.add_row(model.name, model.kind, size, model.note or model.source, key=model.path)
        current = next((n for n, m in enumerate(self.shown) if m.path == self.current), 0)
        if self.shown:
            table.move_cursor(row=current)
        hidden = len(every) - len(self.shown)
        status = f"{len(self.shown)} model(s)" + (f" ({len(self.catalog.models)} known)" if query else "")
        if hidden:
            status += f" · {hidden} of another kind hidden (ctrl+r shows them)"
        if not self.catalog.models:
            status = ("no models found in runs, chat history, the settings' [models] folders, "
                      "the HF and llama.cpp caches")
        if self.catalog.incomplete:
            status += " · incomplete: " + "; ".join(self.catalog.incomplete)
        self.query_one("#picker-status", Static).update(status)
        self._show_path()

    def _highlighted(self) -> FoundModel | None:
        table = self.query_one("#picker-list", DataTable)
        if not self.shown or not 0 <= table.cursor_row < len(self.shown):
            return None
        return self.shown[table.cursor_row]

    def _show_path(self) -> None:
        model = self._highlighted()
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(model.modified)) if model and model.modified else ""
        self.query_one("#picker-path", Static).update(f"{model.path}  {when}" if model else "")

    def action_move(self, rows: int) -> None:
        table = self.query_one("#picker-list", DataTable)
        if self.shown:
            table.move_cursor(row=max(0, min(len(self.shown) - 1, table.cursor_row + rows)))
            self._show_path()

    def action_every_kind(self) -> None:
        self.every_kind = not self.every_kind
        self._refill()

    def action_pick(self) -> None:
        model = self._highlighted()
        if model is not None:
            self.dismiss(model.path)

    def action_cancel(self) -> None:
        self.dismiss(None)
