"""One generation on a backend thread, handed to the event loop token by token.

The backends are blocking iterators; the HTTP side is asyncio. A `Generation` runs
`backend.stream()` in its own thread and posts each piece of text to an asyncio queue. Setting
`cancel` (a client went away, the server stops) ends the backend's loop within one token, and
the thread gives the queue slot back only when the backend has really stopped.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from engine.chat.base import BackendError, ChatBackend, GenerationStats
from engine.chat.templates import ChatTemplate, TemplateError
from engine.serve.protocol import GenerationRequest

RAW_TEMPLATE = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"

_END = object()
_live: set[Generation] = set()
_live_lock = threading.Lock()


def cancel_all() -> None:
    """Ask every running generation to stop (server shutdown)."""
    with _live_lock:
        for gen in _live:
            gen.cancel.set()


def wait_idle(timeout: float) -> bool:
    """Wait until no generation thread runs (so the model can be freed safely); False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _live_lock:
            if not _live:
                return True
        time.sleep(0.02)
    return False


@contextmanager
def prompt_template(backend: ChatBackend, req: GenerationRequest) -> Iterator[None]:
    """For /v1/completions, feed the prompt as is (BOS + text) instead of through the chat template.

    The backends render every prompt through `backend.template`; there is no raw-prompt entry
    point yet, so the template is swapped for the duration of one generation. That is safe only
    because the queue runs one generation at a time per backend.
    """
    original: ChatTemplate | None = getattr(backend, "template", None)
    if req.kind != "completion" or original is None:
        yield
        return
    eos = original.eos_token
    backend.template = ChatTemplate("raw", "text", RAW_TEMPLATE, original.bos_token, eos, (eos,) if eos else ())
    try:
        yield
    finally:
        backend.template = original


class Generation:
    def __init__(self, backend: ChatBackend, req: GenerationRequest, on_end: Callable[[], None]) -> None:
        self.backend = backend
        self.req = req
        self.cancel = threading.Event()
        self.stats: GenerationStats | None = None
        self.error: str = ""
        self.first_text_at: float | None = None
        self._on_end = on_end
        self._loop = asyncio.get_running_loop()
        self._items: asyncio.Queue[object] = asyncio.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True, name="llmdeck-serve-gen")
        self.finished = threading.Event()

    def start(self) -> Generation:
        with _live_lock:
            _live.add(self)
        self._thread.start()
        return self

    def _post(self, item: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)
        except RuntimeError:  # the loop is closed: the server is gone, nobody is listening
            self.cancel.set()

    def _run(self) -> None:
        try:
            with prompt_template(self.backend, self.req):
                for delta in self.backend.stream(self.req.messages, self.req.params, self.cancel):
                    self._post(delta.text)
        except (BackendError, TemplateError) as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported to the client as a 500, logged by the caller
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.stats = self.backend.last_stats
            self.finished.set()
            with _live_lock:
                _live.discard(self)
            try:
                self._on_end()
            finally:
                self._post(_END)

    async def pieces(self, is_disconnected: Callable[[], object] | None = None, poll_s: float = 0.5):
        """Yield text pieces until the generation ends. With `is_disconnected` (an async
        callable), a client that goes away while we wait cancels the generation."""
        while True:
            try:
                item = await asyncio.wait_for(self._items.get(), poll_s)
            except TimeoutError:
                if is_disconnected is not None and await is_disconnected():  # type: ignore[misc]
                    self.cancel.set()
                continue
            if item is _END:
                return
            if self.first_text_at is None:
                self.first_text_at = time.perf_counter()
            yield item

    @property
    def finish_reason(self) -> str:
        reason = self.stats.finish_reason if self.stats else "stop"
        return "length" if reason == "length" else ("cancelled" if reason == "cancelled" else "stop")
