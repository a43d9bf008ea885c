"""A yes/no question as a modal screen: Enter or y confirms, Esc or n declines.

Both buttons say what they do ("Keep running" / "Stop run", "Keep it" / "Delete"): a dialog
about cancelling must never offer a "Cancel" that means the opposite of its other button."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmModal(ModalScreen[bool]):
    CSS_PATH = "modals.tcss"

    BINDINGS = [
        Binding("y", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, title: str, body: str, confirm_label: str = "Yes", decline_label: str = "Cancel") -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.confirm_label = confirm_label
        self.decline_label = decline_label

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, id="confirm-title")
            with VerticalScroll(id="confirm-scroll"):  # a long list (runs that keep running) scrolls;
                yield Static(self.body, id="confirm-body")  # the buttons stay in view
            with Horizontal():
                yield Button(self.decline_label, id="no")
                yield Button(self.confirm_label, id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)
