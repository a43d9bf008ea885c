"""A form field: its label, its control, and under it the line that says why a value is refused.

The one pattern for every form (the Chat side panel, Estimate...): a value that does not parse
keeps its text visible and gets the reason on the line below, in words, not only a red border
or a tooltip that needs a mouse. The line takes no room while there is nothing to say.

    yield FormField("temperature", Input("0.7", id="p-temperature"))
    ...
    field = self.query_one("#p-temperature", Input).parent   # or FormField.of(widget)
    field.set_error("temperature must be between 0 and 5, got 7.0")
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Label, Static


class FormField(Vertical):
    """`label` over (or, `inline`, beside) `control`, then the error line."""

    DEFAULT_CSS = """
    FormField { height: auto; }
    FormField > .field-row { height: auto; }
    FormField .field-label { color: $text-muted; }
    FormField.-inline .field-label { width: 12; }
    FormField.-inline .field-row > Widget { width: 1fr; }
    FormField > .field-error { color: $text-error; display: none; height: auto; }
    FormField.-invalid > .field-error { display: block; }
    FormField.-invalid .field-label { color: $text-error; }
    """

    def __init__(self, label: str, control: Widget, *, inline: bool = False, id: str | None = None,  # noqa: A002
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.label = label
        self.control = control
        self.error = ""
        self.set_class(inline, "-inline")

    @staticmethod
    def of(widget: Widget) -> FormField | None:
        """The field a control sits in, if any."""
        node = widget.parent
        while node is not None and not isinstance(node, FormField):
            node = node.parent
        return node

    def compose(self) -> ComposeResult:
        if self.has_class("-inline"):
            with Horizontal(classes="field-row"):
                yield Label(self.label, classes="field-label")
                yield self.control
        else:
            yield Label(self.label, classes="field-label")
            yield self.control
        yield Static(f"↳ {self.error}" if self.error else "", classes="field-error", markup=False)

    def set_error(self, text: str | None) -> None:
        """Show why the value is refused ('' or None: it is fine)."""
        text = text or ""
        if text == self.error:
            return
        self.error = text
        self.set_class(bool(text), "-invalid")
        self.control.set_class(bool(text), "-invalid")
        if self.is_mounted and self.query(".field-error"):
            self.query_one(".field-error", Static).update(f"↳ {text}" if text else "")
