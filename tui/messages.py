"""Requests any screen may post to the app: navigation and actions that cross screens.

A screen never reaches into another screen (no `hasattr(screen, ...)`, no shared mutable
options): it posts one of these and the app, which owns the modes, carries it out. They are
named as requests (imperative), unlike the past-tense messages a widget sends about itself
(`TrainForm.Submitted`), which are nested in their sender.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from engine.runs import RunInfo


@dataclass
class OpenInChat(Message):
    """Open Chat mode on a model: a .gguf file, an HF folder or a LoRA adapter folder."""

    path: str


@dataclass
class StopRun(Message):
    """Stop a run: ask first in the one stop-run dialog (`confirm`), then cancel it."""

    run: RunInfo
    confirm: bool = True
    where: str = ""
    """Where the run is reachable, when that helps the user decide (a server's URL)."""
