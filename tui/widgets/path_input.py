"""A text field for a file or folder path: it suggests the rest of the name from the file
system, and Tab accepts the suggestion (as → and End do) or, with none shown or once the text
names a path that exists, moves on."""

from __future__ import annotations

import os
from pathlib import Path

from textual.binding import Binding
from textual.suggester import Suggester
from textual.widgets import Input


class PathSuggester(Suggester):
    """Completes the last path component from the file system (the first match, sorted)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        path = Path(os.path.expanduser(value))
        folder, prefix = (path, "") if value.endswith("/") else (path.parent, path.name)
        try:
            names = sorted(n for n in os.listdir(folder) if n.startswith(prefix) and not n.startswith("."))
        except OSError:
            return None
        if not names:
            return None
        choice = names[0]
        suffix = "/" if (folder / choice).is_dir() else ""
        head = value[: len(value) - len(prefix)]
        return head + choice + suffix


class PathInput(Input):
    """An Input with path completion; Tab completes, as a shell does."""

    BINDINGS = [Binding("tab", "complete_or_next", "complete path", show=False)]

    def __init__(self, value: str = "", *, placeholder: str = "", id: str | None = None,  # noqa: A002
                 disabled: bool = False, compact: bool = False) -> None:
        super().__init__(value, placeholder=placeholder, suggester=PathSuggester(), id=id, disabled=disabled,
                         compact=compact)

    @property
    def suggestion(self) -> str:
        """The completion shown after the cursor ("" for none). Textual keeps it in the private
        `_suggestion` reactive that its own → key reads (Input.action_cursor_right)."""
        suggestion = self._suggestion
        return suggestion if len(suggestion) > len(self.value) and self.cursor_at_end else ""

    def action_complete_or_next(self) -> None:
        """Accept the suggestion while the text is not yet a path that exists; once it names a
        file or folder, Tab moves on (→ still goes into a folder): typing a model folder and
        pressing Tab must not wander into its files."""
        if self.suggestion and not Path(os.path.expanduser(self.value)).exists():
            self.action_cursor_right()  # Textual's own accept: value <- suggestion, cursor at the end
        else:
            self.screen.focus_next()
