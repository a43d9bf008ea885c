"""What a command can end with besides an exit code: an error to print, or a request for the TUI.

These live apart from `engine.cli` so that the command modules, which `engine.cli` imports,
do not import it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OpenTUI:
    """Ask the launcher to open the TUI on `mode` with these options."""

    mode: str = "monitor"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OpenWeb:
    """Ask the launcher to serve the TUI to a browser (`llmdeck web`, tui.web) on host:port."""

    host: str = "127.0.0.1"
    port: int = 8566
    mode: str = "monitor"


class CommandError(Exception):
    """A command cannot do what was asked; its text is printed as is (no traceback)."""
