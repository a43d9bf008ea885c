"""The events every job emits, and their JSON form.

Events are frozen dataclasses so they cross threads without locks and tests can compare lists
of them. The same objects are appended to a run's `events.jsonl` (one JSON object a line), which
is the source of truth for every curve: a TUI that reattaches replays the file through
`event_from_dict` and gets exactly the objects the job emitted.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar


@dataclass(frozen=True, kw_only=True)
class JobEvent:
    """Base of every event. `at` is wall-clock time so a replay can show real timestamps."""

    KIND: ClassVar[str] = "event"
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["type"] = self.KIND
        return data


@dataclass(frozen=True, kw_only=True)
class Progress(JobEvent):
    """How far a phase has come. `total` None means the amount of work is not known."""

    KIND: ClassVar[str] = "progress"
    phase: str = ""
    done: float = 0.0
    total: float | None = None
    unit: str = ""

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))


@dataclass(frozen=True, kw_only=True)
class Metric(JobEvent):
    """Named numbers at a step (loss, learning rate, tokens/s...)."""

    KIND: ClassVar[str] = "metric"
    step: int = 0
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Log(JobEvent):
    """One line for the run's log panel."""

    KIND: ClassVar[str] = "log"
    text: str = ""
    level: str = "info"


@dataclass(frozen=True, kw_only=True)
class Finished(JobEvent):
    """The job succeeded; `summary` is what the UI shows about the result (paths, figures)."""

    KIND: ClassVar[str] = "finished"
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Failed(JobEvent):
    """The job failed. `message` is for the user (what went wrong, what to do); the traceback
    goes to the run's log only, never to the screen."""

    KIND: ClassVar[str] = "failed"
    message: str = ""
    detail: str = ""


@dataclass(frozen=True, kw_only=True)
class Cancelled(JobEvent):
    """The job stopped because it was asked to, after cleaning up."""

    KIND: ClassVar[str] = "cancelled"
    reason: str = ""


EVENT_TYPES: dict[str, type[JobEvent]] = {
    cls.KIND: cls for cls in (Progress, Metric, Log, Finished, Failed, Cancelled)
}


def event_from_dict(data: dict[str, Any]) -> JobEvent:
    """Rebuild an event from its JSON form; unknown keys are ignored so old files still load."""
    cls = EVENT_TYPES.get(str(data.get("type")))
    if cls is None:
        raise ValueError(f"unknown event type {data.get('type')!r}")
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def is_terminal(event: JobEvent) -> bool:
    return isinstance(event, (Finished, Failed, Cancelled))


def read_events(path: Path, offset: int = 0) -> tuple[list[JobEvent], int]:
    """Events appended to the events file `path` since byte `offset`, and the offset to continue from.

    Only complete lines are read, so a line being written right now is picked up next time.
    Used for a run's events.jsonl (`RunStore.read_events`) and for any other file in that format
    (rank 0's events in a multi-process training run). It lives here, with the format, because
    jobs read such files too and a job must not import the run store that starts it.
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except FileNotFoundError:
        return [], offset
    end = chunk.rfind(b"\n")
    if end < 0:
        return [], offset
    events: list[JobEvent] = []
    for line in chunk[: end + 1].splitlines():
        if not line.strip():
            continue
        try:
            events.append(event_from_dict(json.loads(line)))
        except (ValueError, TypeError):
            continue  # a torn or foreign line must not stop a replay
    return events, offset + end + 1
