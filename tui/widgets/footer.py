"""The key footer of every mode: Textual's Footer, without the rebuilds that change nothing.

Why (bench/startup.py, to the first frame):
- The screen publishes "bindings updated" for every focus change, mount and stack change, and
  Textual's Footer rebuilds all its keys after each one: eight rebuilds while a mode screen
  appears, all but one or two showing the same keys. Here requests are coalesced into one
  pending rebuild, and a rebuild happens only when the keys it would show changed.
- Each FooterKey Textual yields starts with `compact=True` (its watcher adds the `-compact`
  class: a restyle) and is then data-bound to the footer's `compact=False` (the watcher removes
  the class: a second restyle), each restyle walking the stylesheet. Here each key is born with
  the footer's value, so neither happens.
Together they were about a third of the time from `App.run` to the first frame. What is drawn,
and when it changes, stays Textual's own: `compose` is Textual's.
"""

from __future__ import annotations

from collections.abc import Hashable

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey  # not re-exported by textual.widgets


class KeyFooter(Footer):
    _composed: Hashable = None
    """What the keys on show were built from (`_keys_shown()` at the last compose)."""
    _rebuild_pending = False

    def compose(self) -> ComposeResult:
        self._composed = self._keys_shown()
        for widget in super().compose():
            if isinstance(widget, FooterKey) and "-command-palette" not in widget.classes:
                # The palette key is not bound to the footer's `compact`: it keeps Textual's default.
                widget.set_reactive(FooterKey.compact, self.compact)
                widget.set_class(self.compact, "-compact", update=False)  # what its watcher would have done
            yield widget

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen and not self._rebuild_pending and self._on_show(screen):
            self._rebuild_pending = True
            self.call_after_refresh(self._rebuild)

    async def _rebuild(self) -> None:
        self._rebuild_pending = False
        if self._on_show(self.screen) and self._keys_shown() != self._composed:
            await self.recompose()

    def _on_show(self, screen: Screen) -> bool:
        """Whether `screen` is in the mode on show. The keys of a mode switched away from are
        not rebuilt (a hidden screen's bindings differ: it was rebuilt for the hidden state and
        again when shown, two recomposes and a full layout per switch, bench/latency.py switch);
        a screen shown again publishes "bindings updated" (Textual: stack_updates), so its keys
        are compared then."""
        return screen in self.app.screen_stack

    def _keys_shown(self) -> Hashable:
        """Everything `Footer.compose` reads to build the keys (bindings are frozen dataclasses)."""
        if not self._bindings_ready:
            return None
        palette = self.app.COMMAND_PALETTE_BINDING
        return (
            self.show_command_palette,
            self.app.ENABLE_COMMAND_PALETTE,
            tuple(
                (key, binding, enabled, tooltip)
                for key, (_node, binding, enabled, tooltip) in self.screen.active_bindings.items()
                if binding.show or key == palette
            ),
        )
