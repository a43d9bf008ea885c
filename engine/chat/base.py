"""The one interface every chat backend implements, plus timing and stop-string helpers.

`ChatBackend.stream(messages, params, cancel)` yields `Delta`s (text plus how many tokens it
covers) and, when the iterator ends for any reason, leaves `last_stats` filled in. The caller
(a TUI worker thread, `llmdeck generate`, a bench) never needs to know which library is behind
it. Capability flags say what a backend can honour, so the UI only shows what works.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, TypedDict

from engine.chat.params import SamplingParams
from engine.chat.prompt_mode import PromptMode, RepeatGuard, choose_prompt_mode, completion_text


class Message(TypedDict):
    role: str  # "system", "user" or "assistant"
    content: str


class BackendError(Exception):
    """Loading or running a model failed in a way the user can act on; the text says how."""


@dataclass(frozen=True)
class Delta:
    text: str
    n_tokens: int = 1


@dataclass
class GenerationStats:
    """Figures for one answer. `finish_reason`: stop, length, repeat (a completion started to
    repeat itself), cancelled or error."""

    prompt_tokens: int = 0
    generated_tokens: int = 0
    ttft_s: float | None = None
    total_s: float = 0.0
    context_size: int | None = None
    finish_reason: str = "stop"
    error: str = ""
    decode_s: float = 0.0

    @property
    def tokens_per_s(self) -> float | None:
        """Decode speed: tokens after the first over the time after the first (llama.cpp's
        definition), so a slow prompt does not hide a fast decoder."""
        if self.generated_tokens > 1 and self.decode_s > 0:
            return (self.generated_tokens - 1) / self.decode_s
        if self.generated_tokens and self.total_s > 0:
            return self.generated_tokens / self.total_s
        return None

    @property
    def context_used(self) -> int:
        return self.prompt_tokens + self.generated_tokens

    @property
    def context_fill(self) -> float | None:
        if not self.context_size:
            return None
        return min(1.0, self.context_used / self.context_size)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tokens_per_s"] = self.tokens_per_s
        data["context_fill"] = self.context_fill
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationStats:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})

    def summary(self) -> str:
        """One line for a status bar or stderr: 'TTFT 0.31 s · 52.3 tok/s · 12 → 64 tokens'."""
        parts = []
        if self.ttft_s is not None:
            parts.append(f"TTFT {self.ttft_s:.2f} s")
        if self.tokens_per_s is not None:
            parts.append(f"{self.tokens_per_s:.1f} tok/s")
        parts.append(f"{self.prompt_tokens} prompt + {self.generated_tokens} generated tokens")
        if self.finish_reason != "stop":
            parts.append(self.finish_reason)
        return " · ".join(parts)

    def brief(self) -> str:
        """A shorter line for a narrow screen, how it ended first: 'cut: it repeated itself ·
        TTFT 0.31 s · 52 tok/s · 64 tok'."""
        parts = [ENDINGS[self.finish_reason]] if self.finish_reason in ENDINGS else []
        if self.ttft_s is not None:
            parts.append(f"TTFT {self.ttft_s:.2f} s")
        if self.tokens_per_s is not None:
            parts.append(f"{self.tokens_per_s:.0f} tok/s")
        parts.append(f"{self.generated_tokens} tok")
        return " · ".join(parts)


ENDINGS = {"cancelled": "■ stopped", "length": "token limit", "repeat": "cut: it repeated itself", "error": "error"}
"""How an answer ended, in words, for each finish reason other than 'stop'."""


class StatsClock:
    """Measures TTFT and decode time around a stream, in one place for every backend."""

    def __init__(self, stats: GenerationStats) -> None:
        self.stats = stats
        self.start = time.perf_counter()
        self.first: float | None = None

    def token(self, n: int = 1) -> None:
        now = time.perf_counter()
        if self.first is None and n > 0:
            self.first = now
            self.stats.ttft_s = now - self.start
        self.stats.generated_tokens += n
        self._update(now)

    def _update(self, now: float) -> None:
        self.stats.total_s = now - self.start
        if self.first is not None:
            self.stats.decode_s = now - self.first

    def finish(self, reason: str) -> GenerationStats:
        self._update(time.perf_counter())
        self.stats.finish_reason = reason
        return self.stats


class StopFilter:
    """Cuts streamed text at the first stop string, holding back text that could still turn
    into one (a stop string split across two tokens must never reach the screen)."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        if not self.stops:
            return text
        buf = self.held + text
        cut = min((i for i in (buf.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self.held = ""
            return buf[:cut]
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(buf)), 0, -1):
                if buf.endswith(stop[:n]):
                    keep = max(keep, n)
                    break
        self.held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep]

    def flush(self) -> str:
        out, self.held = ("" if self.stopped else self.held), ""
        return out


@dataclass
class BackendInfo:
    """What the side panel shows about the loaded model."""

    backend: str
    model: str
    template: str = ""
    context_size: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    prompt_mode: str = "chat"
    """chat (messages through the template) or completion (the text continued as written)."""
    prompt_mode_reason: str = ""


class ChatBackend(ABC):
    """A loaded model that streams answers. Subclasses load in `__init__` (raising
    BackendError with an actionable text) and implement `_stream`."""

    NAME: ClassVar[str] = ""
    SUPPORTS_CANCEL: ClassVar[bool] = True
    SUPPORTS_SYSTEM_PROMPT: ClassVar[bool] = True
    SUPPORTS_SEED: ClassVar[bool] = True
    SUPPORTS_TOP_K: ClassVar[bool] = True
    SUPPORTS_MIN_P: ClassVar[bool] = True
    SUPPORTS_REPETITION_PENALTY: ClassVar[bool] = True
    COUNTS_PROMPT_TOKENS: ClassVar[bool] = True
    """True when prompt tokens are counted locally before generating (context gauge)."""

    def __init__(self) -> None:
        self.last_stats: GenerationStats | None = None
        self._lock = threading.Lock()
        self.prompt_mode = PromptMode("chat", "")
        self._has_template = True
        self._names: tuple[Any, ...] = ()

    # -- chat or completion ---------------------------------------------------------------------
    def _choose_prompt_mode(self, requested: str | None, *, has_template: bool, names: Sequence[Any]) -> None:
        """Called by a backend once loaded, with what decides auto: whether the model has a
        template of its own, and its names (file, metadata) that may say it was tuned.
        Backends built directly (the server, benches) default to chat; `load_backend` passes
        the user's choice, auto unless they chose."""
        self._has_template, self._names = has_template, tuple(names)
        self.set_prompt_mode(requested or "auto")

    def set_prompt_mode(self, requested: str) -> PromptMode:
        """Chat, completion or auto (chosen from the model); takes effect on the next answer.
        Raises BackendError for a mode this backend cannot run."""
        try:
            self.prompt_mode = choose_prompt_mode(requested, has_template=self._has_template, names=self._names)
        except ValueError as exc:
            raise BackendError(str(exc)) from None
        return self.prompt_mode

    def render_prompt(self, messages: list[Message], template: Any) -> str:
        """The text the model continues: the template's rendering, or in completion mode the
        conversation as one plain document."""
        if self.prompt_mode.completion:
            return completion_text(messages)
        return template.render(messages)

    # -- to implement ---------------------------------------------------------------------
    @property
    @abstractmethod
    def info(self) -> BackendInfo: ...

    @abstractmethod
    def _stream(
        self, messages: list[Message], params: SamplingParams, cancel: threading.Event, clock: StatsClock
    ) -> Iterator[Delta]:
        """Yield deltas; call `clock.token(n)` for generated tokens and set
        `clock.stats.prompt_tokens`; return normally at the end ('stop' or 'length' is set
        by raising nothing: set `clock.stats.finish_reason` to 'length' when the cap hit)."""

    def count_tokens(self, messages: list[Message], params: SamplingParams | None = None) -> int | None:
        """Prompt tokens the conversation would take (None if the backend cannot tell)."""
        return None

    def close(self) -> None:
        """Free the model (memory, GPU)."""

    @property
    def shares_cpu(self) -> bool:
        """True when generating runs on this machine's CPU cores, so whatever else this
        process does while it streams (drawing the answer) is taken from the model's speed."""
        return False

    # -- shared -----------------------------------------------------------------------------
    @property
    def context_size(self) -> int | None:
        return self.info.context_size

    def stream(
        self, messages: Sequence[Message], params: SamplingParams | None = None, cancel: threading.Event | None = None
    ) -> Iterator[Delta]:
        """Stream one answer. Setting `cancel` ends the stream within one token; the text
        already yielded is the partial answer and `last_stats.finish_reason` is 'cancelled'.
        One generation at a time per backend (a second caller waits)."""
        params = params or SamplingParams()
        cancel = cancel or threading.Event()
        msgs = with_system_prompt(list(messages), params.system_prompt)
        stats = GenerationStats(context_size=self.context_size)
        clock = StatsClock(stats)
        self.last_stats = stats
        guard = RepeatGuard() if self.prompt_mode.completion else None
        with self._lock:
            inner = self._stream(msgs, params, cancel, clock)
            try:
                for delta in inner:
                    if guard is not None:
                        delta = Delta(guard.feed(delta.text), delta.n_tokens)
                    if delta.text:
                        yield delta
                    if guard is not None and guard.stopped:
                        stats.finish_reason = "repeat"
                        break
                    if cancel.is_set():
                        break
                if guard is not None and (tail := guard.flush()) and not cancel.is_set():
                    yield Delta(tail, 0)
            except BackendError as exc:
                stats.error = str(exc)
                clock.finish("error")
                raise
            finally:
                inner.close()  # stops the library's own loop now, not at garbage collection
                if cancel.is_set():
                    clock.finish("cancelled")
                elif stats.finish_reason not in ("length", "error", "repeat"):
                    clock.finish("stop")
                else:
                    clock.finish(stats.finish_reason)

    def generate(self, messages: Sequence[Message], params: SamplingParams | None = None) -> str:
        """The whole answer as one string (tests, scripts)."""
        return "".join(d.text for d in self.stream(messages, params))


def with_system_prompt(messages: list[Message], system_prompt: str) -> list[Message]:
    """Put the sampling system prompt first unless the conversation already has one."""
    if system_prompt and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": system_prompt}, *messages]
    return messages
