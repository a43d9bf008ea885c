"""Keys and text fields, on every screen at 80x24: a screen's key works from any field, because no
text field on that screen takes it (Input and TextArea bind ctrl+k, ctrl+u, ctrl+w, ctrl+a, ctrl+e,
ctrl+d, home, end, delete...), and no screen binds a key the app takes first (the palette's ctrl+p)."""

from __future__ import annotations

import pytest
from textual.widgets import Input, TextArea

from tests.tui.pilot_wait import wait_until
from tui.app import LLMDeckApp
from tui.modes import MODES
from tui.screens.base import ModeScreen

APP_PRIORITY = {"ctrl+p", "ctrl+q", "ctrl+c"}
"""Keys the app takes before any screen (the palette, quit, copy): a screen binding them is dead."""


FIELD_OWN = {"escape", "enter"}
"""Keys every field takes by design (leave it, submit it): a screen binds them for when no field
has focus (Esc leaves a field, Enter goes to Chat's input)."""


def own_bindings(screen) -> list:
    """The bindings llmdeck's classes give the screen (not Textual's own tab, copy...)."""
    from textual.binding import Binding

    found = []
    for cls in type(screen).__mro__:
        if cls.__module__.startswith("tui.") and "BINDINGS" in cls.__dict__:
            for item in cls.__dict__["BINDINGS"]:
                assert isinstance(item, Binding)
                found.extend(Binding(key.strip(), item.action, item.description, priority=item.priority)
                             for key in item.key.split(","))
    return found


def field_keys(widget) -> set[str]:
    return {binding.key for bindings in widget._bindings.key_to_bindings.values() for binding in bindings}


@pytest.mark.parametrize("mode", [m.key for m in MODES])
async def test_no_screen_key_is_taken_by_its_text_fields(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.chat.default_model as dm

    monkeypatch.setattr(dm, "installed", lambda: False)  # Chat: no model to load
    app = LLMDeckApp(start_mode=mode)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ModeScreen))
        screen = app.screen
        fields = list(screen.query(Input)) + list(screen.query(TextArea))
        taken: dict[str, str] = {}
        for field in fields:
            for key in field_keys(field):
                taken.setdefault(key, type(field).__name__)
        problems = []
        for binding in own_bindings(screen):
            if binding.key in APP_PRIORITY:
                problems.append(f"{binding.key} ({binding.description}): the app takes it first")
            elif binding.key in taken and not binding.priority and binding.key not in FIELD_OWN:
                problems.append(f"{binding.key} ({binding.description}): {taken[binding.key]} takes it")
        assert problems == [], f"{type(screen).__name__}: {problems}"
