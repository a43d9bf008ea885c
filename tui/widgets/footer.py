"""The key footer of every mode: Textual's Footer, without its start-up restyling.

Why: each FooterKey Textual yields starts with `compact=True` (so its watcher adds the
`-compact` class, restyling the key) and is then data-bound to the footer's `compact=False`
(so the watcher removes the class again, restyling the key a second time). Each restyle walks
the whole stylesheet; with a mode's eight keys, built twice while the first screen appears (the
footer recomposes when the screen's bindings are ready), that was about a fifth of the time from
`App.run` to the first frame (bench/startup.py). Here each key is born with the footer's value,
so neither restyle happens; what is drawn, and every later change of `compact`, is Textual's own.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey  # not re-exported by textual.widgets


class KeyFooter(Footer):
    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if isinstance(widget, FooterKey) and "-command-palette" not in widget.classes:
                # The palette key is not bound to the footer: it keeps Textual's default.
                widget.set_reactive(FooterKey.compact, self.compact)
                widget.set_class(self.compact, "-compact", update=False)  # what its watcher would have done
            yield widget
