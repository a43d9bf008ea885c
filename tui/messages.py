"""Messages that belong to no one sender.

Requests to the app: a screen never reaches into another screen (no `hasattr(screen, ...)`, no
shared mutable options); it posts `OpenInChat`, `StopRun` or `PickModel` and the app, which owns
the modes and the modals, carries it out. They are named as requests (imperative), unlike the
past-tense messages a widget sends about itself (`TrainForm.Submitted`), which are nested in their sender.

`EstimateReady`: a memory estimate computed in a thread worker, for whichever form asked (the
Estimate screen, the Train form).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

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


@dataclass
class PickModel(Message):
    """Open the model picker (every model llmdeck knows of); `done` gets the chosen path."""

    done: Callable[[str], None]
    kinds: tuple[str, ...] = ()
    """The kinds the field takes ("gguf", "hf", "adapter"); () for any. The picker starts on them."""
    current: str = ""
    """What the field holds now: the picker highlights it."""


@dataclass
class EstimateReady(Message):
    """An estimate for the form state `key` (a newer key means this one is stale: drop it)."""

    key: Hashable
    result: Any = None
    """What the estimator returned: an `engine.estimate.report.Report`, or a one-line summary."""
    error: str = ""
    """Why there is no estimate (the form shows it instead)."""
    command: str = ""
    """The `llmdeck estimate ...` command that gives the same figures."""
