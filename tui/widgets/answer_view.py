"""An answer being generated: the generation thread, its buffer, the draw pacing, the timings.

The model generates in a thread worker owned by this widget; that thread only appends text to
a buffer (under a lock) and posts `TextArrived` for the first token, so the first words show at
once. From then on the UI thread drains the buffer into the Markdown stream when the pacer says
(`tui.stream_pacer`: every `ui.stream_interval_ms`, further apart while a model on this
machine's CPU streams). So a 1000 token/s model costs the UI 20 draws a second and typing never
waits on the stream. The widget's own message queue runs only once it is mounted, so a model
that finishes before the answer is on screen simply has its `Produced` handled after mounting.

When the answer is complete on screen the widget posts `AnswerView.Finished` (it bubbles to
the screen, which saves it and shows the figures): the timings there are what bench/chat.py
and the tests read. Chat mode and its compare screen both stream through this one widget.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from textual import work
from textual.message import Message
from textual.timer import Timer

from engine.chat.base import BackendError, ChatBackend
from engine.chat.params import SamplingParams
from engine.chat.templates import TemplateError
from tui.stream_pacer import StreamPacer
from tui.widgets.chat_message import ChatMessageView
from tui.workers import ReportsWorkerErrors

GENERATION_SWITCH_INTERVAL = 0.0005
"""Seconds; see AnswerView._produce."""


@dataclass
class AnswerTimings:
    """perf_counter seconds: Enter handled, first and last text on screen, answer complete."""

    sent: float
    first_shown: float | None = None
    last_shown: float | None = None
    done: float | None = None
    draws: int = 0


class AnswerView(ReportsWorkerErrors, ChatMessageView):
    """An assistant message that streams itself from `backend` (call `start` once mounted or
    before: the thread starts at once and the drawing when the widget is on screen)."""

    class TextArrived(Message, bubble=False):
        """The first text is in the buffer: draw it now rather than at the next paced draw."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, AnswerView.TextArrived)

    class Produced(Message, bubble=False):
        """The generation thread ended (finished, stopped or failed)."""

        def __init__(self, stats: dict[str, Any], error: str) -> None:
            super().__init__()
            self.stats = stats
            self.error = error

    @dataclass
    class Finished(Message):
        """The whole answer is on screen. `error`: why it ended early (empty when it did not)."""

        answer: AnswerView
        stats: dict[str, Any]
        error: str
        stopped: bool
        timings: AnswerTimings = field(repr=False)

    def __init__(self, backend: ChatBackend, pacer: StreamPacer, *, sent_at: float | None = None) -> None:
        super().__init__("assistant")
        self.backend = backend
        self.pacer = pacer
        """When to draw the next batch; `pacer.share` is set while a CPU model streams."""
        self.cancel = threading.Event()
        self.timings = AnswerTimings(sent=sent_at if sent_at is not None else time.perf_counter())
        self.generating = True
        """False once `Finished` was posted."""
        self._buffer: list[str] = []
        self._lock = threading.Lock()
        self._timer: Timer | None = None
        self.prompt_view: ChatMessageView | None = None
        """The question this answers (its saved id is the answer's parent in the session)."""

    def start(self, messages: list[dict[str, str]], params: SamplingParams) -> None:
        self._produce(messages, params)

    def stop(self) -> None:
        """Ask the backend to stop within one token; the partial answer is kept."""
        self.cancel.set()

    def text_so_far(self) -> str:
        """Everything generated until now: what is on screen and what waits for the next draw
        (what a quit in the middle of an answer saves; the screen is not drawn again then)."""
        with self._lock:
            return self.content + "".join(self._buffer)

    # -- the generation thread -----------------------------------------------------------------
    @work(thread=True, group="chat-answers", exit_on_error=False, description="generating an answer")
    def _produce(self, messages: list[dict[str, str]], params: SamplingParams) -> None:
        error = "the answer stopped on an unexpected error"
        first = True
        # The backend's per-token Python code needs the GIL between native decode calls; with
        # the default 5 ms switch interval, a redraw on the UI thread can hold it for a whole
        # switch interval (bench/chat.py on 2 cores, draws paced the same: 0.968 of bare
        # llama.cpp's tokens/s at 5 ms, 0.99 at 0.5 ms). A shorter interval while generating
        # hands the GIL back within half a millisecond.
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, GENERATION_SWITCH_INTERVAL))
        try:
            for delta in self.backend.stream(messages, params, self.cancel):
                with self._lock:
                    self._buffer.append(delta.text)
                if first:
                    first = False
                    self.post_message(self.TextArrived())
            error = ""
        except (BackendError, TemplateError) as exc:
            error = str(exc)
        finally:
            # Also on an unexpected error (the app's worker handler reports that one): the
            # answer must end, or the screen would wait for it forever.
            sys.setswitchinterval(switch)
            stats = self.backend.last_stats.to_dict() if self.backend.last_stats else {}
            self.post_message(self.Produced(stats, error))

    # -- drawing (UI thread) -------------------------------------------------------------------
    async def on_mount(self) -> None:
        self.start_stream()
        await self._draw()
        self._schedule()

    def _schedule(self) -> None:
        """Draw the buffer when the pacer says; one-shot timers, so the spacing can change."""
        self._timer = self.set_timer(self.pacer.drew(), self._tick, name="answer-draw")

    async def _tick(self) -> None:
        if self.generating:
            await self._draw()
            self._schedule()

    async def _draw(self) -> None:
        with self._lock:
            if not self._buffer:
                return
            text = "".join(self._buffer)
            self._buffer.clear()
        now = time.perf_counter()
        timings = self.timings
        if timings.first_shown is None:
            timings.first_shown = now
        timings.last_shown = now
        timings.draws += 1
        await self.append(text)

    async def on_answer_view_text_arrived(self, _message: TextArrived) -> None:
        await self._draw()

    async def on_answer_view_produced(self, message: Produced) -> None:
        if not self.generating:
            return
        await self._draw()
        self.timings.done = time.perf_counter()
        self.generating = False
        if self._timer is not None:
            self._timer.stop()
        stopped = message.stats.get("finish_reason") == "cancelled"
        await self.finish(message.stats, stopped=stopped, error=message.error)
        self.post_message(self.Finished(self, message.stats, message.error, stopped, self.timings))
