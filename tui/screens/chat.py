"""Chat mode: stream answers from a GGUF, an HF folder or an OpenAI-compatible server.

The screen lays out the transcript, the input and the side panel, and keeps the session. The
model loads in a thread worker (the current one stays usable meanwhile); each answer streams
through an `AnswerView` (tui.widgets.answer_view: the generation thread, its buffer, the paced
draws, the timings), which posts `AnswerView.Finished` when it is complete; the screen then
saves it and shows its figures. Esc stops the answer within one token; the partial answer is
kept, saved and marked stopped. Sessions live in SQLite (`engine.chat.sessions`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from engine.chat.base import BackendError, ChatBackend
from engine.chat.loader import BackendSpec
from engine.chat.params import ParamError, SamplingParams
from engine.chat.sessions import SessionError, SessionStore, title_from
from engine.chat.templates import TemplateError
from tui.screens.base import ModeScreen
from tui.stream_pacer import StreamPacer
from tui.widgets.answer_view import AnswerView
from tui.widgets.chat_input import ChatInput
from tui.widgets.chat_message import ChatMessageView
from tui.widgets.chat_side import ChatSidePanel
from tui.widgets.chat_status import ChatStatus

_CODE_BLOCK = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)


class ChatScreen(ModeScreen):
    CSS_PATH = "chat.tcss"
    MODE_KEY = "chat"
    BINDINGS = [
        Binding("escape", "stop", "stop", id="chat.stop"),
        Binding("ctrl+r", "regenerate", "regenerate", id="chat.regenerate"),
        Binding("ctrl+g", "edit_last", "edit last", id="chat.edit"),
        Binding("ctrl+o", "sessions", "sessions", id="chat.sessions"),
        Binding("ctrl+n", "new_session", "new", id="chat.new"),
        Binding("ctrl+l", "clear", "clear", show=False, id="chat.clear"),
        Binding("ctrl+s", "export", "export", show=False, id="chat.export"),
        Binding("f2,ctrl+b", "toggle_side", "panel", id="chat.side"),
        Binding("f3", "copy_answer", "copy answer", show=False, id="chat.copy"),
        Binding("f4", "copy_code", "copy code", show=False, id="chat.copy_code"),
        Binding("f5", "compare", "compare", show=False, id="chat.compare"),
        Binding("ctrl+f,i", "focus_input", "focus input", show=False, id="chat.focus"),
    ]

    class ModelLoaded(Message):
        def __init__(self, backend: ChatBackend, spec: BackendSpec, seconds: float) -> None:
            super().__init__()
            self.backend = backend
            self.spec = spec
            self.seconds = seconds

    class ModelLoadFailed(Message):
        def __init__(self, message: str, spec: BackendSpec) -> None:
            super().__init__()
            self.message = message
            self.spec = spec

    def __init__(self, model: str | None = None) -> None:
        """`model`: load this one rather than the command line's or the settings' (open in Chat)."""
        super().__init__()
        self._model_arg = model
        self.backend: ChatBackend | None = None
        self.spec: BackendSpec | None = None
        self.params = SamplingParams()
        self.store: SessionStore | None = None
        self.session_id: int | None = None
        self.loading: BackendSpec | None = None
        self.answer: AnswerView | None = None
        """The answer being generated, if any."""
        self._load_started = 0.0
        self._load_worker: Worker | None = None
        self._retired: list[ChatBackend] = []
        self._load_timer: Timer | None = None

    # -- layout ------------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        settings = self.app.settings
        options = self.app.options
        self.spec = self._initial_spec(options)
        self.params = self._initial_params(options)
        with Horizontal(id="chat-main"):
            with Vertical(id="chat-left"):
                yield VerticalScroll(id="chat-transcript")
                yield ChatStatus(id="chat-status")
                yield ChatInput(newline_key=settings.ui.newline_key, id="chat-input")
            yield ChatSidePanel(self.params, model=self.spec.model, template=self.spec.template, id="chat-side")

    def _initial_spec(self, options: Mapping[str, Any]) -> BackendSpec:
        chat = self.app.settings.chat
        if options.get("chat_spec"):
            spec = BackendSpec.from_dict(options["chat_spec"])
        else:
            spec = BackendSpec(model=chat.model, backend=chat.backend or "auto")
            if spec.backend == "openai":
                spec.base_url, spec.model = chat.openai_base_url, chat.openai_model
        if self._model_arg or options.get("model"):
            spec.model = str(self._model_arg or options["model"])
        return spec

    def _initial_params(self, options: Mapping[str, Any]) -> SamplingParams:
        try:
            if options.get("chat_params"):
                return SamplingParams.from_dict(options["chat_params"])
            return SamplingParams(system_prompt=self.app.settings.chat.system_prompt)
        except (ParamError, TypeError) as exc:
            self.app.notify(f"sampling settings ignored: {exc}", severity="warning")
            return SamplingParams()

    @property
    def transcript(self) -> VerticalScroll:
        return self.query_one("#chat-transcript", VerticalScroll)

    @property
    def status(self) -> ChatStatus:
        return self.query_one("#chat-status", ChatStatus)

    @property
    def chat_input(self) -> ChatInput:
        return self.query_one("#chat-input", ChatInput)

    @property
    def side(self) -> ChatSidePanel:
        return self.query_one("#chat-side", ChatSidePanel)

    @property
    def generating(self) -> bool:
        return self.answer is not None

    def turns(self) -> list[ChatMessageView]:
        return [v for v in self.transcript.query(ChatMessageView) if v.role in ("user", "assistant", "system")]

    def on_mount(self) -> None:
        self.transcript.anchor()
        try:
            self.store = SessionStore()
        except (SessionError, OSError) as exc:
            self.app.notify(f"chat history is off: {exc}", severity="warning", timeout=10)
        injected = self.app.options.get("chat_backend")
        if injected is not None:
            self._use_backend(injected, 0.0)
        else:
            self.load_model(self.spec)

    # -- model loading -----------------------------------------------------------------------
    def open_model(self, path: str) -> None:
        """Load `path` unless it is the model loaded (or loading) already (open in Chat)."""
        if (self.loading or self.spec or BackendSpec()).model != path:
            self.load_model(BackendSpec(model=path))

    def load_model(self, spec: BackendSpec) -> None:
        """Load in a thread worker; the current model stays usable until the new one is ready."""
        self.loading = spec
        self._load_started = time.perf_counter()
        name = Path(spec.model).name if spec.model else (spec.base_url or "the bundled Gemma 3 270M")
        self._loading_name = name
        self._tick_loading()
        if self._load_timer is None:
            self._load_timer = self.set_interval(0.5, self._tick_loading)
        self._load_worker = self._load(spec)

    def _stop_load_timer(self) -> None:
        if self._load_timer is not None:
            self._load_timer.stop()
            self._load_timer = None

    def _tick_loading(self) -> None:
        if self.loading is not None:
            self.status.state = f"⏳ loading {self._loading_name}… {time.perf_counter() - self._load_started:.0f} s"

    @work(thread=True, group="chat-loads", exit_on_error=False, description="loading the chat model")
    def _load(self, spec: BackendSpec) -> None:
        from engine.chat.loader import load_backend

        started = time.perf_counter()
        try:
            backend = load_backend(spec)
        except (BackendError, TemplateError) as exc:
            self.post_message(self.ModelLoadFailed(str(exc), spec))
            return
        except MemoryError:
            self.post_message(self.ModelLoadFailed("out of memory loading the model; pick a smaller or quantized model",
                                                   spec))
            return
        self.post_message(self.ModelLoaded(backend, spec, time.perf_counter() - started))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # An unexpected load error: the app reports it; here the "loading…" state ends.
        if event.state is WorkerState.ERROR and event.worker is self._load_worker and self.loading is not None:
            self.on_chat_screen_model_load_failed(self.ModelLoadFailed("the model did not load", self.loading))

    def on_chat_screen_model_loaded(self, message: ModelLoaded) -> None:
        if message.spec is not self.loading:  # a newer load was asked for meanwhile
            message.backend.close()
            return
        self.loading = None
        self._stop_load_timer()
        self.spec = message.spec
        self._use_backend(message.backend, message.seconds)

    def _use_backend(self, backend: ChatBackend, seconds: float) -> None:
        old, self.backend = self.backend, backend
        if old is not None and old is not backend:
            if self.answer is not None and self.answer.backend is old:
                self._retired.append(old)
            else:
                old.close()
        info = backend.info
        self.status.state = f"● {backend.NAME} {Path(info.model).name or info.model}"
        self.status.context_size = info.context_size or 0
        took = f"loaded in {seconds:.1f} s" if seconds else ""
        self.side.show_info(info, took)
        if seconds:
            self.app.notify(f"{Path(info.model).name}: {info.template} template, {took}", title="model ready",
                            timeout=4)

    def on_chat_screen_model_load_failed(self, message: ModelLoadFailed) -> None:
        if message.spec is not self.loading:
            return
        self.loading = None
        self._stop_load_timer()
        if self.backend is not None:
            info = self.backend.info
            self.status.state = f"● {self.backend.NAME} {Path(info.model).name}"
            self.app.notify(f"{message.message}\nStill using {Path(info.model).name}.", title="model not loaded",
                            severity="error", timeout=12)
        else:
            self.status.state = "no model loaded"
            self.side.show_info(None, message.message)
            self._note(f"**No model loaded.** {message.message}\n\nPress F2 to open the panel and type a model path.")

    def _note(self, text: str) -> None:
        self.transcript.mount(ChatMessageView("note", text))

    # -- sending and streaming ---------------------------------------------------------------
    async def on_chat_input_submitted(self, event: ChatInput.Submitted) -> None:
        event.stop()
        await self.send(event.text)

    async def send(self, text: str) -> bool:
        """Send a user message and start the answer; False (with a notice) when not possible."""
        text = text.strip()
        if not text:
            return False
        if self.generating:
            self.app.notify("still answering: Esc stops it", timeout=3)
            return False
        if self.backend is None:
            self.app.notify("no model loaded yet"
                            + (" (loading…)" if self.loading else "; F2 opens the panel to pick one"),
                            severity="warning", timeout=4)
            return False
        sent_at = time.perf_counter()
        self.chat_input.clear()
        user_view = ChatMessageView("user", text)
        # The model starts first; drawing the message and saving it happen while it reads the prompt.
        await self._start_generation(sent_at, before=[user_view])
        user_view.record_id = self._persist_user(text)
        return True

    def _persist_user(self, text: str) -> int | None:
        if self.store is None:
            return None
        try:
            if self.session_id is None:
                info = self.backend.info if self.backend else None
                created = self.store.create(title_from(text), model=info.model if info else "",
                                            backend=info.backend if info else "", params=self.params.to_dict())
                self.session_id = created.id
            return self.store.add_message(self.session_id, "user", text).id
        except SessionError as exc:
            self.app.notify(f"not saved: {exc}", severity="warning")
            return None

    async def _start_generation(self, sent_at: float | None = None,
                                before: list[ChatMessageView] | None = None) -> None:
        assert self.backend is not None
        before = before or []
        messages = [{"role": v.role, "content": v.content} for v in [*self.turns(), *before]]
        shares_cpu = self.backend.shares_cpu
        answer = AnswerView(self.backend, StreamPacer.from_settings(self.app.settings.ui, shares_cpu), sent_at=sent_at)
        self.answer = answer
        answer.start(messages, self.params)  # the model starts reading the prompt while the views mount
        await self.transcript.mount_all([*before, answer])
        self.status.figures = "generating… (Esc stops)"
        # A blinking cursor repaints the input twice a second: CPU a CPU model would rather have.
        self.chat_input.cursor_blink = not shares_cpu

    async def on_answer_view_finished(self, message: AnswerView.Finished) -> None:
        answer = message.answer
        if answer is not self.answer:
            return
        self.answer = None
        self.chat_input.cursor_blink = True
        stats = message.stats
        if message.error and not answer.content:
            await answer.remove()
            self.app.notify(message.error, title="generation failed", severity="error", timeout=10)
        elif self.store is not None and self.session_id is not None:
            try:
                stopped = message.stopped or bool(message.error)
                answer.record_id = self.store.add_message(self.session_id, "assistant", answer.content,
                                                          stopped=stopped, stats=stats).id
            except SessionError as exc:
                self.app.notify(f"answer not saved: {exc}", severity="warning")
        if stats:
            from engine.chat.base import GenerationStats

            st = GenerationStats.from_dict(stats)
            self.status.figures = st.summary()
            self.status.context_used = st.context_used
        else:
            self.status.figures = message.error
        for old in self._retired:
            old.close()
        self._retired.clear()

    # -- actions -----------------------------------------------------------------------------
    def action_stop(self) -> None:
        """Esc: stop the answer; when idle, leave the input so number keys switch modes."""
        if self.answer is not None:
            self.answer.stop()
            self.status.figures = "stopping…"
        elif self.chat_input.has_focus or self.side.has_focus_within:
            self.transcript.focus()

    def action_focus_input(self) -> None:
        self.chat_input.focus()

    async def _drop_views(self, views: list[ChatMessageView]) -> None:
        for view in views:
            if self.store is not None and view.record_id is not None:
                self.store.delete_message(view.record_id)
            await view.remove()

    async def action_regenerate(self) -> None:
        if self.generating or self.backend is None:
            return
        turns = self.turns()
        if not turns or turns[-1].role != "assistant":
            self.app.notify("nothing to regenerate: the last message is not an answer", timeout=3)
            return
        await self._drop_views([turns[-1]])
        await self._start_generation()

    async def action_edit_last(self) -> None:
        if self.generating:
            return
        turns = self.turns()
        users = [i for i, v in enumerate(turns) if v.role == "user"]
        if not users:
            return
        last = users[-1]
        text = turns[last].content
        await self._drop_views(turns[last:])
        self.chat_input.text = text
        self.chat_input.move_cursor(self.chat_input.document.end)
        self.chat_input.focus()

    async def on_chat_input_edit_last_requested(self, event: ChatInput.EditLastRequested) -> None:
        event.stop()
        await self.action_edit_last()

    async def action_clear(self) -> None:
        if self.generating:
            return
        if self.store is not None and self.session_id is not None:
            self.store.clear(self.session_id)
        await self.transcript.remove_children()
        self.status.context_used = 0
        self.status.figures = ""

    async def action_new_session(self) -> None:
        if self.answer is not None:
            self.answer.stop()
            return self.app.notify("stopping the answer first; press again", timeout=3)
        self.session_id = None
        await self.transcript.remove_children()
        self.status.context_used = 0
        self.status.figures = "new session"
        self.chat_input.focus()

    def action_sessions(self) -> None:
        if self.store is None:
            self.app.notify("chat history is off", severity="warning")
            return
        from tui.screens.sessions import SessionsModal

        async def chosen(session_id: int | None) -> None:
            if session_id is not None:
                await self.open_session(session_id)
            elif self.session_id is not None and self.store is not None:
                try:
                    self.store.get(self.session_id)
                except SessionError:  # the open session was deleted in the browser
                    await self.action_new_session()

        self.app.push_screen(SessionsModal(self.store, self.session_id), chosen)

    async def open_session(self, session_id: int) -> None:
        if self.store is None:
            return
        if self.answer is not None:
            self.answer.stop()
            self.app.notify("stopping the answer first; open it again", timeout=3)
            return
        try:
            records = self.store.messages(session_id)
            info = self.store.get(session_id)
        except SessionError as exc:
            self.app.notify(str(exc), severity="error")
            return
        self.session_id = session_id
        await self.transcript.remove_children()
        views = [ChatMessageView(r.role, r.content, record_id=r.id, stats=r.stats, stopped=r.stopped) for r in records]
        if views:
            await self.transcript.mount_all(views)
        last = next((r.stats for r in reversed(records) if r.stats), None)
        from engine.chat.base import GenerationStats

        self.status.context_used = GenerationStats.from_dict(last).context_used if last else 0
        self.status.figures = f"session: {info.title}"
        self.transcript.scroll_end(animate=False)

    def action_export(self) -> None:
        if self.store is None or self.session_id is None:
            self.app.notify("nothing to export yet", timeout=3)
            return
        try:
            md, js = self.store.export(self.session_id)
        except (SessionError, OSError) as exc:
            self.app.notify(f"export failed: {exc}", severity="error")
            return
        self.app.notify(f"{md}\n{js}", title="exported", timeout=8)

    def _last_answer(self) -> str:
        answers = [v for v in self.turns() if v.role == "assistant" and v.content]
        return answers[-1].content if answers else ""

    def action_copy_answer(self) -> None:
        text = self._last_answer()
        if not text:
            self.app.notify("no answer to copy yet", timeout=3)
            return
        self.app.copy_to_clipboard(text)  # OSC 52: reaches the user's own clipboard over SSH
        self.app.notify(f"copied the last answer ({len(text)} characters)", timeout=3)

    def action_copy_code(self) -> None:
        blocks = [b for v in self.turns() if v.role == "assistant" for b in _CODE_BLOCK.findall(v.content)]
        if not blocks:
            self.app.notify("no code block in the answers", timeout=3)
            return
        self.app.copy_to_clipboard(blocks[-1])
        self.app.notify(f"copied the last code block ({len(blocks[-1].splitlines())} lines)", timeout=3)

    def action_compare(self) -> None:
        """Open compare mode: this model on the left, another on the right, same prompt."""
        if self.backend is None or self.generating:
            self.app.notify("compare needs a loaded model and no answer running", timeout=3)
            return
        from tui.screens.compare import CompareScreen

        self.app.push_screen(CompareScreen(self.backend, self.params, self.spec))

    def action_toggle_side(self) -> None:
        self.toggle_class("-side")
        if self.has_class("-side"):
            self.side.query_one("#side-model").focus()
        else:
            self.chat_input.focus()

    def on_chat_side_panel_params_changed(self, message: ChatSidePanel.ParamsChanged) -> None:
        self.params = message.params

    def on_chat_side_panel_load_requested(self, message: ChatSidePanel.LoadRequested) -> None:
        base = self.spec or BackendSpec()
        spec = BackendSpec.from_dict(base.to_dict() | {"model": message.model, "template": message.template})
        if message.model != base.model:
            spec.backend = "openai" if base.backend == "openai" else "auto"
        spec.api_key = base.api_key
        self.load_model(spec)

    def on_screen_resume(self) -> None:
        self.chat_input.focus()

    def on_unmount(self) -> None:
        if self.answer is not None:
            self.answer.stop()
