"""Compare mode: one prompt, two models side by side, each with its own speed figures.

Left is the model loaded in Chat; right is any other model (a GGUF, an HF folder, the same
file with another template...) typed in the bottom field and loaded in the background. The
two answers run one after the other, so neither steals CPU/GPU time from the other and the
tokens/s shown are comparable. Esc stops the running answer, or closes the screen when idle.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from engine.chat.base import BackendError, ChatBackend
from engine.chat.loader import BackendSpec
from engine.chat.params import SamplingParams
from engine.chat.templates import TemplateError
from tui.stream_pacer import StreamPacer
from tui.widgets.chat_message import ChatMessageView


@dataclass
class _SideLoaded(Message):
    backend: ChatBackend | None
    error: str


class CompareScreen(Screen[None]):
    DEFAULT_CSS = """
    CompareScreen #cmp-cols { height: 1fr; }
    CompareScreen .cmp-col { width: 1fr; border: round $panel-lighten-2; }
    CompareScreen .cmp-col VerticalScroll { height: 1fr; }
    CompareScreen #cmp-help { height: 1; color: $text-muted; padding: 0 1; }
    CompareScreen Input { margin: 0 0; }
    """
    BINDINGS = [Binding("escape", "stop_or_close", "stop / close")]

    def __init__(self, left: ChatBackend, params: SamplingParams, right_spec: BackendSpec | None = None) -> None:
        super().__init__()
        self.backends: list[ChatBackend | None] = [left, None]
        self.params = params
        self.right_spec = right_spec or BackendSpec()
        self.cancel = threading.Event()
        self.running: int | None = None
        self.views: list[ChatMessageView | None] = [None, None]
        self.prompt = ""
        self.results: list[dict] = [{}, {}]

    def compose(self) -> ComposeResult:
        with Horizontal(id="cmp-cols"):
            for side in (0, 1):
                with Vertical(classes="cmp-col", id=f"cmp-col-{side}"):
                    yield VerticalScroll(id=f"cmp-scroll-{side}")
        yield Static("right model: type a path below and press Enter · then type a prompt", id="cmp-help")
        yield Input(placeholder="right model: .gguf file or HF folder (Enter loads)", id="cmp-model")
        yield Input(placeholder="prompt for both (Enter sends)", id="cmp-prompt")
        yield Footer()

    def on_mount(self) -> None:
        self._title(0)
        self._title(1)
        self.query_one("#cmp-model", Input).focus()

    def _title(self, side: int) -> None:
        backend = self.backends[side]
        col = self.query_one(f"#cmp-col-{side}")
        if backend is None:
            col.border_title = "right: no model yet"
        else:
            info = backend.info
            col.border_title = f"{'left' if side == 0 else 'right'}: {Path(info.model).name} ({info.backend}, {info.template})"

    # -- loading the right-hand model ---------------------------------------------------------
    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "cmp-model":
            spec = BackendSpec.from_dict(self.right_spec.to_dict() | {"model": event.value.strip(), "backend": "auto"})
            self.query_one("#cmp-help", Static).update(f"loading {event.value.strip() or 'the bundled Gemma'}…")
            self._load(spec)
        elif event.input.id == "cmp-prompt":
            self.start(event.value)

    @work(thread=True, exclusive=True, group="compare-load", exit_on_error=False)
    def _load(self, spec: BackendSpec) -> None:
        from engine.chat.loader import load_backend

        try:
            self.post_message(_SideLoaded(load_backend(spec), ""))
        except (BackendError, TemplateError) as exc:
            self.post_message(_SideLoaded(None, str(exc)))
        except Exception as exc:  # noqa: BLE001 - never crash the screen on a load
            self.post_message(_SideLoaded(None, f"{type(exc).__name__}: {exc}"))

    def on__side_loaded(self, message: _SideLoaded) -> None:
        help_line = self.query_one("#cmp-help", Static)
        if message.backend is None:
            help_line.update(f"not loaded: {message.error}")
            return
        old, self.backends[1] = self.backends[1], message.backend
        if old is not None and old is not self.backends[0]:
            old.close()
        self._title(1)
        help_line.update("ready: type a prompt and press Enter")
        self.query_one("#cmp-prompt", Input).focus()

    # -- running -----------------------------------------------------------------------------
    def start(self, prompt: str) -> bool:
        prompt = prompt.strip()
        if not prompt or self.running is not None:
            return False
        if self.backends[1] is None:
            self.query_one("#cmp-help", Static).update("load a right-hand model first")
            return False
        self.prompt = prompt
        self.results = [{}, {}]
        self.cancel = threading.Event()
        self.running = 0
        self.run_worker(self._run_both(), exclusive=True, group="compare-run")
        return True

    async def _run_both(self) -> None:
        try:
            for side in (0, 1):
                if self.cancel.is_set():
                    break
                self.running = side
                await self._run_side(side)
        finally:
            self.running = None
        self._summary()

    async def _run_side(self, side: int) -> None:
        scroll = self.query_one(f"#cmp-scroll-{side}", VerticalScroll)
        await scroll.remove_children()
        view = ChatMessageView("assistant")
        self.views[side] = view
        await scroll.mount_all([ChatMessageView("user", self.prompt), view])
        view.start_stream()
        backend = self.backends[side]
        buffer: list[str] = []
        lock = threading.Lock()
        outcome: dict = {"error": ""}

        def generate() -> None:
            try:
                for delta in backend.stream([{"role": "user", "content": self.prompt}], self.params, self.cancel):
                    with lock:
                        buffer.append(delta.text)
            except (BackendError, TemplateError) as exc:
                outcome["error"] = str(exc)
            except Exception as exc:  # noqa: BLE001 - shown in the column, never a crash
                outcome["error"] = f"{type(exc).__name__}: {exc}"

        thread = threading.Thread(target=generate, daemon=True, name=f"llmdeck-compare-{side}")
        thread.start()
        pacer = StreamPacer.from_settings(self.app.settings.ui, backend.shares_cpu)
        while thread.is_alive():
            await _drain(view, buffer, lock)
            await asyncio.to_thread(thread.join, pacer.drew())
        await _drain(view, buffer, lock)
        stats = backend.last_stats.to_dict() if backend.last_stats else {}
        self.results[side] = stats
        await view.finish(stats, stopped=stats.get("finish_reason") == "cancelled", error=outcome["error"])

    def _summary(self) -> None:
        a, b = self.results
        speeds = [r.get("tokens_per_s") for r in (a, b)]
        if all(speeds):
            ratio = speeds[1] / speeds[0]
            text = f"left {speeds[0]:.1f} tok/s · right {speeds[1]:.1f} tok/s · right/left {ratio:.2f}x"
        else:
            text = "stopped"
        self.query_one("#cmp-help", Static).update(text)

    def action_stop_or_close(self) -> None:
        if self.running is not None:
            self.cancel.set()
            return
        right = self.backends[1]
        if right is not None and right is not self.backends[0]:
            right.close()
        self.dismiss(None)


async def _drain(view: ChatMessageView, buffer: list[str], lock: threading.Lock) -> None:
    with lock:
        text = "".join(buffer)
        buffer.clear()
    if text:
        await view.append(text)




