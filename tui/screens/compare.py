"""Compare mode: one prompt, two models side by side, each with its own speed figures.

Left is the model loaded in Chat; right is any other model (a GGUF, an HF folder, the same
file with another template...) typed in the bottom field and loaded in the background. The
two answers run one after the other, so neither steals CPU/GPU time from the other and the
tokens/s shown are comparable. Esc stops the running answer, or closes the screen when idle.
"""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Static
from textual.worker import Worker, WorkerState

from engine.chat.base import BackendError, ChatBackend
from engine.chat.loader import BackendSpec
from engine.chat.params import SamplingParams
from engine.chat.templates import TemplateError
from tui.stream_pacer import StreamPacer
from tui.widgets.answer_view import AnswerView
from tui.widgets.chat_message import ChatMessageView
from tui.workers import ReportsWorkerErrors


class CompareScreen(ReportsWorkerErrors, Screen[None]):
    CSS_PATH = "chat.tcss"
    BINDINGS = [Binding("escape", "stop_or_close", "stop / close")]

    class RightLoaded(Message):
        """The right-hand model loaded (`backend`), or did not (`error`)."""

        def __init__(self, backend: ChatBackend | None, error: str) -> None:
            super().__init__()
            self.backend = backend
            self.error = error

    def __init__(self, left: ChatBackend, params: SamplingParams, right_spec: BackendSpec | None = None) -> None:
        super().__init__()
        self.backends: list[ChatBackend | None] = [left, None]
        self.params = params
        self.right_spec = right_spec or BackendSpec()
        self.running: int | None = None
        self.views: list[ChatMessageView | None] = [None, None]
        self.prompt = ""
        self.results: list[dict] = [{}, {}]
        self._load_worker: Worker | None = None

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
            where = "left" if side == 0 else "right"
            col.border_title = f"{where}: {Path(info.model).name} ({info.backend}, {info.template})"

    # -- loading the right-hand model ---------------------------------------------------------
    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "cmp-model":
            spec = BackendSpec.from_dict(self.right_spec.to_dict() | {"model": event.value.strip(), "backend": "auto"})
            self.query_one("#cmp-help", Static).update(f"loading {event.value.strip() or 'the bundled Gemma'}…")
            self._load_worker = self._load(spec)
        elif event.input.id == "cmp-prompt":
            self.start(event.value)

    @work(thread=True, exclusive=True, group="chat-loads", exit_on_error=False, description="loading the right model")
    def _load(self, spec: BackendSpec) -> None:
        from engine.chat.loader import load_backend

        try:
            self.post_message(self.RightLoaded(load_backend(spec), ""))
        except (BackendError, TemplateError) as exc:
            self.post_message(self.RightLoaded(None, str(exc)))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker is self._load_worker:
            self.query_one("#cmp-help", Static).update("not loaded (see the notification)")

    def on_compare_screen_right_loaded(self, message: RightLoaded) -> None:
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

    # -- running: the left answer, then the right one (so neither takes the other's CPU) -------
    def start(self, prompt: str) -> bool:
        prompt = prompt.strip()
        if not prompt or self.running is not None:
            return False
        if self.backends[1] is None:
            self.query_one("#cmp-help", Static).update("load a right-hand model first")
            return False
        self.prompt = prompt
        self.results = [{}, {}]
        self.call_later(self._run_side, 0)
        return True

    async def _run_side(self, side: int) -> None:
        self.running = side
        backend = self.backends[side]
        assert backend is not None
        scroll = self.query_one(f"#cmp-scroll-{side}", VerticalScroll)
        await scroll.remove_children()
        view = AnswerView(backend, StreamPacer.from_settings(self.app.settings.ui, backend.shares_cpu))
        self.views[side] = view
        view.start([{"role": "user", "content": self.prompt}], self.params)
        await scroll.mount_all([ChatMessageView("user", self.prompt), view])

    async def on_answer_view_finished(self, message: AnswerView.Finished) -> None:
        side = self.running
        if side is None or message.answer is not self.views[side]:
            return
        self.results[side] = message.stats
        if side == 0 and not message.stopped:
            await self._run_side(1)
            return
        self.running = None
        self._summary()

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
            view = self.views[self.running]
            if isinstance(view, AnswerView):
                view.stop()
            return
        right = self.backends[1]
        if right is not None and right is not self.backends[0]:
            right.close()
        self.dismiss(None)
