"""The chat input: a multi-line TextArea where Enter sends and Shift+Enter or Ctrl+J inserts a
newline (the newline key comes from `ui.newline_key` in the settings)."""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.message import Message
from textual.widgets import TextArea


class ChatInput(TextArea):
    DEFAULT_CSS = """
    ChatInput {
        height: auto; min-height: 3; max-height: 10; border: round $panel-lighten-2; border-title-color: $muted;
    }
    ChatInput:focus { border: round $primary; }
    """

    @dataclass
    class Submitted(Message):
        """Enter was pressed; `text` is what to send."""

        chat_input: ChatInput
        text: str

    @dataclass
    class EditLastRequested(Message):
        """Up was pressed in an empty input: the user wants their last message back."""

        chat_input: ChatInput

    def __init__(self, *, newline_key: str = "shift+enter", id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, soft_wrap=True, tab_behavior="focus", show_line_numbers=False, compact=False)
        self.newline_keys = {"ctrl+j", newline_key}
        newline = "Shift+Enter" if newline_key == "shift+enter" else newline_key
        self.border_title = f"message · Enter send · {newline}/Ctrl+J newline"

    async def _on_key(self, event: events.Key) -> None:
        if event.key in self.newline_keys:
            event.stop()
            event.prevent_default()
            start, end = self.selection
            self._replace_via_keyboard("\n", start, end)
            return
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.post_message(self.Submitted(self, self.text))
            return
        if event.key == "up" and not self.text:
            event.stop()
            event.prevent_default()
            self.post_message(self.EditLastRequested(self))
            return
        await super()._on_key(event)
