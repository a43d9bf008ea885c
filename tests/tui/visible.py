"""Whether a widget can be seen whole on the screen: not cut by the terminal's edge, and not
cut by a container it overflows (Textual clips it there)."""

from __future__ import annotations

from textual.errors import NoWidget
from textual.widget import Widget


def fully_visible(widget: Widget) -> bool:
    screen = widget.screen
    try:
        geometry = screen.find_widget(widget)
    except NoWidget:
        return False
    region = geometry.region
    return bool(region.area) and geometry.clip.contains_region(region) and screen.region.contains_region(region)


def shown(widget: Widget) -> bool:
    """Displayed, and so are all its containers (a hidden row hides its field)."""
    return all(node.display for node in widget.ancestors_with_self if isinstance(node, Widget))


async def unreachable(pilot, root: Widget) -> list[str]:
    """The focusable widgets under `root` that cannot be seen whole even once focused (Textual
    scrolls a focused widget into view): what a user at this terminal size could not reach."""
    cut = []
    for widget in list(root.query("*")):
        if widget.focusable and shown(widget):
            widget.focus()
            for _ in range(20):  # scrolling into view takes a refresh or two; longer on a loaded box
                await pilot.pause(0.1)
                if fully_visible(widget):
                    break
            else:
                cut.append(widget.id or repr(widget))
    return cut
