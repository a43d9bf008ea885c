"""The events every job emits, and their JSON form.

Events are frozen dataclasses so they cross threads without locks and tests can compare lists
of them. The same objects are appended to a run's `events.jsonl` (one JSON object a line), which
is the source of truth for every curve: a TUI that reattaches replays the file through
`event_from_dict` and gets exactly the objects the job emitted.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
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
class TokenDelta(JobEvent):
    """A piece of generated text (chat, serve logs)."""

    KIND: ClassVar[str] = "token"
    text: str = ""
    n_tokens: int = 1


@dataclass(frozen=True, kw_only=True)
class Samples(JobEvent):
    """Completions an RL run sampled at a step, with their rewards (GRPO): `rows` are
    {"prompt", "completion", "rewards": {function: value}, "advantage"}."""

    KIND: ClassVar[str] = "samples"
    step: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)


EVENT_TYPES: dict[str, type[JobEvent]] = {
    cls.KIND: cls for cls in (Progress, Metric, Log, Finished, Failed, Cancelled, TokenDelta, Samples)
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
