"""The events every job emits, and their JSON form.

Events are frozen dataclasses so they cross threads without locks and tests can compare lists
of them. The same objects are appended to a run's `events.jsonl` (one JSON object a line), which
is the source of truth for every curve: a TUI that reattaches replays the file through
`event_from_dict` and gets exactly the objects the job emitted.
"""

from __future__ import annotations

import json
import math
import time
import types
import typing
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


@dataclass(frozen=True, kw_only=True)
class Samples(JobEvent):
    """Completions an RL run sampled at a step, with their rewards (GRPO): `rows` are
    {"prompt", "completion", "rewards": {function: value}, "advantage"}."""

    KIND: ClassVar[str] = "samples"
    step: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)


EVENT_TYPES: dict[str, type[JobEvent]] = {
    cls.KIND: cls for cls in (Progress, Metric, Log, Finished, Failed, Cancelled, Samples)
}


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a field annotation (the few shapes events and runs use)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            return False
        args = typing.get_args(hint)
        return not args or all(_matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items())
    if origin is list or hint is list:
        args = typing.get_args(hint)
        return isinstance(value, list) and (not args or all(_matches(v, args[0]) for v in value))
    return isinstance(value, hint) if isinstance(hint, type) else False


def checked_fields(cls: type, data: Any) -> dict[str, Any]:
    """The items of `data` that name fields of dataclass `cls`, each checked against the field's
    annotation. Files on disk are read by every view of every run, so one wrong-shaped line (a
    string where a number belongs) must be refused here, once, not crash each consumer later.
    Raises ValueError naming the first field that does not fit; unknown keys are dropped so
    files written by other versions still load."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")  # noqa: TRY004 - bad data, as bad JSON
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if not _matches(value, hints[f.name]):
            raise ValueError(f"field {f.name!r} should be {_hint_name(hints[f.name])}, not {value!r:.40}")
        out[f.name] = value
    return out


def _hint_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def event_from_dict(data: Any) -> JobEvent:
    """Rebuild an event from its JSON form. Unknown keys are ignored so old files still load; a
    value of the wrong type (or a line that is not an object) raises ValueError."""
    if not isinstance(data, dict):
        # Bad data in a file, reported like bad JSON (callers catch ValueError), not a TypeError.
        raise ValueError(f"an event is a JSON object, not {type(data).__name__}")  # noqa: TRY004
    cls = EVENT_TYPES.get(str(data.get("type")))
    if cls is None:
        raise ValueError(f"unknown event type {data.get('type')!r}")
    values = checked_fields(cls, data)
    if not math.isfinite(values.get("at", 0.0)):
        raise ValueError(f"event time {values['at']!r} is not a finite number")
    return cls(**values)


def parse_event_lines(chunk: bytes) -> tuple[list[JobEvent], int]:
    """Events from complete JSON lines, and how many non-blank lines were not valid events
    (torn, foreign or wrong-shaped): those are skipped, never fatal."""
    events: list[JobEvent] = []
    bad = 0
    for line in chunk.splitlines():
        if not line.strip():
            continue
        try:
            events.append(event_from_dict(json.loads(line)))
        except (ValueError, TypeError, RecursionError):
            bad += 1
    return events, bad


def is_terminal(event: JobEvent) -> bool:
    return isinstance(event, (Finished, Failed, Cancelled))


def read_event_chunk(path: Path, offset: int = 0) -> tuple[list[JobEvent], int, int]:
    """Events appended to the events file `path` since byte `offset`, how many lines were skipped
    as bad (see `parse_event_lines`), and the offset to continue from.

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
        return [], 0, offset
    end = chunk.rfind(b"\n")
    if end < 0:
        return [], 0, offset
    events, bad = parse_event_lines(chunk[: end + 1])
    return events, bad, offset + end + 1


def read_events(path: Path, offset: int = 0) -> tuple[list[JobEvent], int]:
    """`read_event_chunk` for readers that do not count bad lines."""
    events, _bad, offset = read_event_chunk(path, offset)
    return events, offset
