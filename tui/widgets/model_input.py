"""The model field of every form (Chat, Convert, Train, Bench, Serve): a path field whose
`ctrl+o` opens the model picker (tui/screens/model_picker.py, through the app: a widget never
opens a screen itself) and takes the chosen path."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding
from textual.message import Message

from tui.messages import PickModel
from tui.widgets.path_input import PathInput

PICK_KEY = "ctrl+o"
"""The one key that opens the model picker from a model field (no text field binds it)."""


class ModelInput(PathInput):
    """A PathInput for a model; `kinds` ("gguf", "hf", "adapter") are what the field takes."""

    BINDINGS = [Binding(PICK_KEY, "pick_model", "pick a model", id="model.pick")]

    @dataclass
    class Picked(Message):
        """A model was chosen in the picker; the field already holds its path."""

        input: ModelInput
        path: str

    def __init__(self, value: str = "", *, placeholder: str = "", id: str | None = None,  # noqa: A002
                 kinds: tuple[str, ...] = (), disabled: bool = False, compact: bool = False) -> None:
        super().__init__(value, placeholder=placeholder, id=id, disabled=disabled, compact=compact)
        self.kinds = kinds

    def action_pick_model(self) -> None:
        self.post_message(PickModel(self._picked, self.kinds, self.value.strip()))

    def _picked(self, path: str) -> None:
        self.value = path
        self.cursor_position = len(path)
        self.focus()
        self.post_message(self.Picked(self, path))
