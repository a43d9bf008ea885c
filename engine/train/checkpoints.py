"""Checkpoints: which ones are complete, how big, at what loss; which one to resume from.

The Trainer writes `checkpoint-N/` file by file, so a run killed mid-save leaves a folder that
looks like a checkpoint but is not. A checkpoint counts as complete only once
`llmdeck-checkpoint.json` sits in it: written atomically (tmp + fsync + rename) by the run's
callback *after* the Trainer finished the folder, it records the step, the loss and every
file's size. A folder without it, or whose files no longer have the recorded sizes (truncated,
deleted), is corrupt and skipped; resume takes the newest complete one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.atomic import follow_umask, write_json

MARKER = "llmdeck-checkpoint.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    loss: float | None
    size: int  # bytes on disk
    complete: bool
    problem: str = ""  # why it is not complete

    @property
    def name(self) -> str:
        return self.path.name

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "step": self.step, "loss": self.loss, "size": self.size, "complete": self.complete, "problem": self.problem}


def _files(folder: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for root, _dirs, names in os.walk(folder):
        for name in names:
            if name == MARKER or name.startswith("."):
                continue
            full = Path(root) / name
            try:
                out[str(full.relative_to(folder))] = full.stat().st_size
            except OSError:
                continue
    return out


def mark_complete(folder: Path, *, step: int, loss: float | None, extra: dict[str, Any] | None = None) -> None:
    """Seal a finished checkpoint folder (call after every file in it is written)."""
    folder = Path(folder)
    follow_umask(folder)  # the Trainer's safetensors files are written 0600
    # fsync the files so the marker never outlives their contents after a power cut
    for rel in _files(folder):
        try:
            fd = os.open(folder / rel, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    write_json(folder / MARKER, {"step": int(step), "loss": loss, "files": _files(folder), **(extra or {})})


def inspect(folder: Path) -> Checkpoint:
    folder = Path(folder)
    match = _NAME.match(folder.name)
    step = int(match.group(1)) if match else -1
    files = _files(folder)
    size = sum(files.values())
    marker = folder / MARKER
    if not marker.exists():
        return Checkpoint(folder, step, None, size, False, "incomplete: no completion marker (killed while saving?)")
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
        recorded: dict[str, int] = data["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return Checkpoint(folder, step, None, size, False, "corrupt: the completion marker is unreadable")
    loss = data.get("loss")
    for rel, expected in recorded.items():
        actual = files.get(rel)
        if actual is None:
            return Checkpoint(folder, step, loss, size, False, f"corrupt: {rel} is missing")
        if actual != expected:
            return Checkpoint(folder, step, loss, size, False, f"corrupt: {rel} has {actual} bytes, expected {expected}")
    if not (folder / "trainer_state.json").exists():
        return Checkpoint(folder, step, loss, size, False, "corrupt: trainer_state.json is missing")
    return Checkpoint(folder, int(data.get("step", step)), loss, size, True)


def list_checkpoints(root: Path) -> list[Checkpoint]:
    """Every `checkpoint-N` folder under `root`, oldest step first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [inspect(d) for d in root.iterdir() if d.is_dir() and _NAME.match(d.name)]
    return sorted(found, key=lambda c: c.step)


def latest_complete(root: Path) -> Checkpoint | None:
    complete = [c for c in list_checkpoints(root) if c.complete]
    return complete[-1] if complete else None


def delete(checkpoint: Path) -> None:
    """Remove a checkpoint: the marker goes first, so a half-deleted folder is never 'complete'."""
    checkpoint = Path(checkpoint)
    if not _NAME.match(checkpoint.name):
        raise ValueError(f"{checkpoint} is not a checkpoint folder")
    try:
        (checkpoint / MARKER).unlink()
    except FileNotFoundError:
        pass
    shutil.rmtree(checkpoint, ignore_errors=True)


def first_loss(log_history: list[dict[str, Any]], logged: dict[int, float]) -> float | None:
    """The run's first training loss. A resumed Trainer restores `state.log_history` from the
    checkpoint, so it starts at step 1 even when this process only logged from the resume point
    (`logged`, step -> loss, is the fallback)."""
    for entry in log_history:
        if "loss" in entry and "eval_loss" not in entry:
            try:
                return float(entry["loss"])
            except (TypeError, ValueError):
                continue
    return next(iter(logged.values()), None)
