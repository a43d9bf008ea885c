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
from engine.serve.protocol import ApiError, GenerationRequest

RAW_TEMPLATE = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"

_END = object()
_live: set[Generation] = set()
_live_lock = threading.Lock()


SHUTTING_DOWN = "the server is shutting down"


def cancel_all(reason: str = SHUTTING_DOWN) -> None:
    """Stop every running generation (server shutdown); each answers its client with `reason`."""
    with _live_lock:
        for gen in _live:
            gen.interrupt(reason)


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


def check_context(backend: ChatBackend, req: GenerationRequest) -> None:
    """Refuse (400) a prompt that does not fit the model's context, naming both lengths.

    Run while holding the queue slot: counting a completion's prompt swaps the backend's
    template for a moment (see `prompt_template`), which only one request at a time may do.
    """
    size = backend.context_size
    try:
        with prompt_template(backend, req):
            tokens = backend.count_tokens(req.messages, req.params)
    except (BackendError, TemplateError):
        return  # the generation meets the same problem and reports it in full
    if size and tokens is not None and tokens >= size:
        field = "messages" if req.kind == "chat" else "prompt"
        raise ApiError(400, f"the prompt is {tokens} tokens, and this model's context is {size} tokens: "
                            "shorten it (or start the server with a larger --n-ctx)", param=field,
                       code="context_length_exceeded")


class Generation:
    def __init__(self, backend: ChatBackend, req: GenerationRequest, on_end: Callable[[], None]) -> None:
        self.backend = backend
        self.req = req
        self.cancel = threading.Event()
        self.stats: GenerationStats | None = None
        self.error: str = ""
        self.interrupted: str = ""
        """Why the server (not the client) stopped this generation; answered as a 503 error."""
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

    def interrupt(self, reason: str) -> None:
        """Stop for a server-side reason: the client gets `reason` as an error, not a cut answer."""
        if not self.finished.is_set():
            self.interrupted = reason
        self.cancel.set()

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
