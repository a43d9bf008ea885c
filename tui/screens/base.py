"""Base class for mode screens: the mode bar on top, the footer at the bottom.

A mode screen subclasses `ModeScreen`, sets `MODE_KEY`, and yields its body from
`compose_body()`. Its `BINDINGS` (with descriptions) are what the help screen lists.

Keys and text fields: a screen's action must work from any field, so its key is one a text
field does not take (tests/tui/test_keys.py checks every screen against the keys Input and
TextArea bind: ctrl+k, ctrl+u, ctrl+w, ctrl+a, ctrl+e, ctrl+d, home, end...). A plain letter is
text while a field has focus; Textual then leaves it out of the footer (the field consumes it),
so letters suit keys that act on lists, and Esc leaves the field.
`compose_body()`. Its `BINDINGS` (with descriptions) are what the help screen lists; actions
that need no key of their own can be offered in the command palette (`palette_commands`).

Focus: a mode screen never puts the focus in a text field when it is shown. Number keys switch
modes, and a focused text field takes them as text, so only a field the user chose (Tab, a
click, a key that opens it, typing into it) may take them. `AUTO_FOCUS` picks the first list,
table or choice on the screen; Esc leaves a text field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.geometry import Size
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input

from tui.widgets.footer import KeyFooter
from tui.widgets.mode_bar import ModeBar
from tui.workers import ReportsWorkerErrors


@dataclass(frozen=True)
class PaletteCommand:
    """A command a mode screen offers in the command palette (ctrl+p) while it is shown."""

    title: str
    help: str
    callback: Callable[[], Any]


class ModeScreen(ReportsWorkerErrors, Screen):
    MODE_KEY: str = ""
    AUTO_FOCUS = "DataTable, OptionList, Select, Checkbox"
    """Never a text field: see the module docstring (tests/tui/test_app_shell.py::test_number_keys_switch_every_mode
    holds every mode to it)."""
    _paused_timers: list[Timer] = []
    # Number keys switch modes, but a focused text field takes them as text: Esc leaves the
    # field first. Screens that give Esc another meaning override this binding.
    BINDINGS = [Binding("escape", "leave_input", "leave the text field", show=False)]

    def action_leave_input(self) -> None:
        from textual.widgets import TextArea  # here, not at import: it loads the document model (start-up)

        if isinstance(self.focused, (Input, TextArea)):
            self.set_focus(None)

    def on_mount(self) -> None:
        # Styled just now, with the app's stylesheet as it is (this screen's CSS_PATH included):
        # say so. Textual's switch_mode compares this count with the app's before showing a
        # screen and reparses every stylesheet and restyles the screen when they differ; it only
        # records the count for a screen that was already mounted, so without this the second
        # visit to each mode paid a full reparse (0.1-0.3 s under a training load, bench/latency.py
        # switch, cProfile: switch_mode -> refresh_css -> reparse). Screen CSS does not reach
        # other screens (every rule of a screen's .tcss starts with its class; see
        # tests/tui/test_tui_structure.py), so nothing else needs restyling for it either.
        self._css_update_count = self.app._css_update_count  # noqa: SLF001

    def on_screen_suspend(self) -> None:
        # Hidden behind another mode or a full screen. Textual keeps a mode's screen mounted and
        # its widgets' timers running: a focused field's blinking cursor, an indeterminate
        # progress bar redrawing 15 times a second. Nobody sees them, and on a small box a model
        # on the CPU pays for them, so they wait until the screen is shown again. (Textual has no
        # public "timers of this node"; `_timers` and `_active` have been there since 0.1.)
        if self.is_current:  # a modal on top: this screen is still seen
            return
        nodes = (self, *self.walk_children())
        self._paused_timers = [t for node in nodes for t in node._timers if t._active.is_set()]  # noqa: SLF001
        for timer in self._paused_timers:
            timer.pause()

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        # Textual restyles every node of a screen each time it is shown again: 30-60% of a mode
        # switch on a loaded 2-core box (bench/latency.py switch; cProfile: stylesheet.apply and
        # the footer's keys). Its switch_mode already refreshes the CSS of a screen that missed a
        # change (a theme switched while it was hidden: the app's `_css_update_count` moved on),
        # and a node whose classes change while hidden is restyled then; so a screen styled at
        # the app's current CSS generation skips the second pass. This handler runs before
        # Screen's own (_on_screen_resume), which reads the flag. Private names, Textual 0.x-8.x.
        if self._css_update_count == self.app._css_update_count:  # noqa: SLF001
            event.refresh_styles = False
        for timer in self._paused_timers:
            timer.resume()
        self._paused_timers = []
        # Shown again: screens that show runs get the newest list now, not at the next tick.
        self.app.run_watcher.poke()

    def _screen_resized(self, size: Size) -> None:
        # Textual's switch_mode lays the screen it shows out again from scratch (a reflow of every
        # widget) even when the terminal kept its size and nothing on the screen asked for a new
        # layout while it was hidden: the largest part of a switch to Chat or Monitor under a
        # training load (bench/latency.py switch, cProfile: switch_mode -> _screen_resized ->
        # _refresh_layout). A layout a widget asked for while hidden, or a new terminal size, is
        # still laid out (here, or at the next update); the resume repaints the screen either way.
        laid_out = self._compositor.size
        if laid_out and laid_out == size and not self._layout_required and not self._layout_widgets:
            return
        super()._screen_resized(size)

    def _update_focus_styles(self, focused: Widget | None = None, blurred: Widget | None = None) -> None:
        # Not while the app is closing: the focus moves as Textual removes each screen's widgets,
        # and restyling what is about to go was most of a quit (LLMDeckApp.update_styles).
        # Private in Textual (0.x-8.x), like the names in on_screen_resume.
        if not getattr(self.app, "closing", False):
            super()._update_focus_styles(focused, blurred)

    def palette_commands(self) -> list[PaletteCommand]:
        """Commands for the palette while this screen is shown (none by default)."""
        return []

    def compose(self) -> ComposeResult:
        yield ModeBar(self.MODE_KEY)
        yield from self.compose_body()
        yield KeyFooter()

    def compose_body(self) -> ComposeResult:
        yield from ()
