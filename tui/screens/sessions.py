"""Sessions browser (a modal): type to search titles and messages, Enter opens, F2 renames,
Ctrl+D deletes (after a yes/no), Esc closes. Dismisses with the chosen session id or None."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from engine.chat.sessions import SessionError, SessionStore


class RenameModal(ModalScreen[str | None]):
    CSS_PATH = "modals.tcss"
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, title: str) -> None:
        super().__init__()
        self.current = title

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Rename session (Enter saves, Esc cancels)")
            yield Input(self.current, id="rename-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SessionsModal(ModalScreen[int | None]):
    CSS_PATH = "modals.tcss"
    BINDINGS = [
        Binding("escape", "close", "close"),
        Binding("f2", "rename", "rename"),
        Binding("ctrl+d", "delete", "delete", priority=True),
        Binding("down", "focus_list", "list", show=False),
    ]

    def __init__(self, store: SessionStore, current: int | None = None) -> None:
        super().__init__()
        self.store = store
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "chat sessions"
            yield Input(placeholder="search titles and messages", id="sessions-search")
            yield OptionList(id="sessions-list")
            yield Static("Enter open · F2 rename · Ctrl+D delete · Esc close", id="sessions-help")

    def on_mount(self) -> None:
        self.refresh_list()

    def refresh_list(self) -> None:
        query = self.query_one("#sessions-search", Input).value.strip()
        listing = self.query_one("#sessions-list", OptionList)
        listing.clear_options()
        try:
            sessions = self.store.list(query)
        except SessionError as exc:
            self.notify(str(exc), severity="error")
            return
        for info in sessions:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.updated))
            mark = "▶ " if info.id == self.current else "  "
            listing.add_option(Option(f"{mark}{info.title}  ({info.message_count} msgs, {when})", id=str(info.id)))
        if sessions:
            listing.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "sessions-search":
            self.refresh_list()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._open_highlighted()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id))

    def _highlighted_id(self) -> int | None:
        listing = self.query_one("#sessions-list", OptionList)
        if listing.highlighted is None or listing.option_count == 0:
            return None
        return int(listing.get_option_at_index(listing.highlighted).id)

    def _open_highlighted(self) -> None:
        session_id = self._highlighted_id()
        if session_id is not None:
            self.dismiss(session_id)

    def action_focus_list(self) -> None:
        self.query_one("#sessions-list", OptionList).focus()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_rename(self) -> None:
        session_id = self._highlighted_id()
        if session_id is None:
            return

        def renamed(title: str | None) -> None:
            if title is None:
                return
            try:
                self.store.rename(session_id, title)
            except SessionError as exc:
                self.notify(str(exc), severity="error")
            self.refresh_list()

        self.app.push_screen(RenameModal(self.store.get(session_id).title), renamed)

    def action_delete(self) -> None:
        from tui.screens.confirm import ConfirmModal

        session_id = self._highlighted_id()
        if session_id is None:
            return
        title = self.store.get(session_id).title

        def answered(yes: bool | None) -> None:
            if yes:
                self.store.delete(session_id)
                self.refresh_list()

        self.app.push_screen(ConfirmModal("Delete session?", f"“{title}” and all its messages will be deleted.",
                                          "Delete"), answered)
