"""Awaiting a condition in a Pilot test: poll with a deadline instead of sleeping blindly."""

from __future__ import annotations

import time
from collections.abc import Callable


async def wait_until(pilot, predicate: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met in {timeout:g} s")
        await pilot.pause(0.05)


def screen_text(app) -> str:
    """What the terminal shows now, as plain text (the same render `export_screenshot` makes):
    a Pilot test can check what a user sees without reaching into a screen's attributes."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True, legacy_windows=False, color_system=None)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()
