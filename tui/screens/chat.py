"""Chat mode: stream answers from a GGUF, an HF folder or an OpenAI-compatible server.

The screen lays out the transcript, the input and the side panel, and keeps the session. The
model loads in a thread worker (the current one stays usable meanwhile); each answer streams
through an `AnswerView` (tui.widgets.answer_view: the generation thread, its buffer, the paced
draws, the timings), which posts `AnswerView.Finished` when it is complete; the screen then
saves it and shows its figures. Esc stops the answer within one token; the partial answer is
kept, saved and marked stopped. Sessions live in SQLite (`engine.chat.sessions`).

Nothing a key does loses a message. A session is a tree: regenerating adds another answer to
the same question, and an edited question (Up in the empty input, or ctrl+g) is sent as a new
version of it; the earlier ones stay in the session, shown as "◀ 2/3 ▶", and alt+left/right
(answers) and alt+up/down (your last question's versions) flip between them. Until the edited
question is sent nothing changes, and Esc puts the input back as it was. Clearing a session
asks first (the palette); ctrl+l redraws the screen, as in a shell.

The screen does not take the focus on show, so number keys switch modes; typing a letter (not a
digit, and not a key bound here) starts a message in the input. Sampling values are read from
the side panel's fields when a message is sent, never from an earlier Changed message.

A base model (no chat template, not instruction-tuned) runs as a plain completion: the text is
continued as written (`engine.chat.prompt_mode`). The screen says which mode and why; F6 (or
the side panel) switches.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, TextArea
from textual.worker import Worker, WorkerState

from engine import settings as settings_mod
from engine.chat.base import BackendError, ChatBackend
from engine.chat.loader import BackendSpec
from engine.chat.params import BUILTIN_PRESETS, PRESET_FIELDS, ParamError, SamplingParams
from engine.chat.sessions import LEAF, SessionError, SessionStore, title_from
from engine.chat.templates import TemplateError
from tui.screens.base import ModeScreen, PaletteCommand
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
    AUTO_FOCUS = ""  # nothing (not the input: digits switch modes until the user starts typing; the transcript,
    # focused before its first layout, passed the focus on to the input)
    BINDINGS = [
        Binding("escape", "stop", "stop", id="chat.stop"),
        Binding("ctrl+r", "regenerate", "regenerate", id="chat.regenerate"),
        Binding("ctrl+g", "edit_last", "edit last", id="chat.edit"),
        Binding("ctrl+o", "sessions", "sessions", id="chat.sessions"),
        Binding("ctrl+n", "new_session", "new", id="chat.new"),
        Binding("alt+left", "alternative('assistant', -1)", "previous answer", show=False, id="chat.answer_prev"),
        Binding("alt+right", "alternative('assistant', 1)", "next answer", show=False, id="chat.answer_next"),
        Binding("alt+up", "alternative('user', -1)", "previous version of the question", show=False,
                id="chat.question_prev"),
        Binding("alt+down", "alternative('user', 1)", "next version of the question", show=False,
                id="chat.question_next"),
        Binding("ctrl+s", "export", "export", show=False, id="chat.export"),
        Binding("f2,ctrl+b", "toggle_side", "panel", id="chat.side"),
        Binding("f3", "copy_answer", "copy answer", show=False, id="chat.copy"),
        Binding("f4", "copy_code", "copy code", show=False, id="chat.copy_code"),
        Binding("f5", "compare", "compare", show=False, id="chat.compare"),
        Binding("f8", "pick_model", "model", id="chat.model"),
        Binding("f6", "switch_prompt_mode", "chat/completion", show=False, id="chat.prompt_mode", priority=True),
        Binding("ctrl+f,enter", "focus_input", "write a message", show=False, id="chat.focus"),
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
        self.editing: ChatMessageView | None = None
        """Your question being edited in the input (Up/ctrl+g); sent, it becomes a new version."""
        self._draft = ""
        """What the input held before editing began (Esc puts it back)."""

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
            yield ChatSidePanel(self.params, model=self.spec.model, template=self.spec.template,
                                presets=self.presets(), prompt_mode=self.spec.prompt_mode, id="chat-side")

    def presets(self) -> dict[str, dict[str, Any]]:
        """The built-in sampler presets, then the user's own from the settings."""
        own = {name: {k: getattr(p, k) for k in PRESET_FIELDS} for name, p in self.app.settings.presets.items()}
        return {**BUILTIN_PRESETS, **own}

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
        self._show_state()
        self.status.context_size = info.context_size or 0
        took = f"loaded in {seconds:.1f} s" if seconds else ""
        self.side.show_info(info, took)
        self.side.show_prompt_mode(backend.prompt_mode.requested)
        if seconds:
            self.app.notify(f"{Path(info.model).name}: {info.template} template, {took}", title="model ready",
                            timeout=4)
        if backend.prompt_mode.completion:
            self._note_prompt_mode()

    def _show_state(self) -> None:
        backend = self.backend
        if backend is None:
            return
        info = backend.info
        mode = " · completion" if backend.prompt_mode.completion else ""
        self.status.state = f"● {backend.NAME} {Path(info.model).name or info.model}{mode}"

    def _note_prompt_mode(self) -> None:
        assert self.backend is not None
        mode = self.backend.prompt_mode
        if mode.completion:
            self._note(f"**Completion mode**: {mode.reason}. No chat template is used, and a repeated line ends "
                       "the answer. **F6** switches to chat.")
        else:
            self._note(f"**Chat mode**: {mode.reason}. **F6** switches to a plain completion.")

    def on_chat_screen_model_load_failed(self, message: ModelLoadFailed) -> None:
        if message.spec is not self.loading:
            return
        self.loading = None
        self._stop_load_timer()
        if self.backend is not None:
            info = self.backend.info
            self._show_state()
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
        # The text the input holds now, not the copy in the message: nothing typed is ever lost.
        await self.send(self.chat_input.text)

    def current_params(self) -> SamplingParams | None:
        """The sampling values in the side panel's fields right now; None (and a notice saying
        which value and why) when one does not parse."""
        params, problems = self.side.read_params()
        if params is None:
            self.app.notify(f"{problems[0]} (F2 opens the side panel)", title="not sent", severity="warning",
                            timeout=6)
            return None
        self.params = params
        return params

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
        if self.current_params() is None:
            return False
        sent_at = time.perf_counter()
        parent = await self._parent_for_new_question()
        self.chat_input.clear()
        user_view = ChatMessageView("user", text, parent_id=parent)
        # The model starts first; drawing the message and saving it happen while it reads the prompt.
        await self._start_generation(sent_at, before=[user_view], prompt=user_view)
        user_view.record_id = self._persist_user(text, parent)
        self._show_alternatives(user_view)
        return True

    async def _parent_for_new_question(self) -> int | None:
        """Where a new question goes: in place of the one being edited (a new version of it,
        the views from it on leave the screen and stay in the session), else after the last
        message shown."""
        turns = self.turns()
        if self.editing is not None and self.editing in turns:
            index = turns.index(self.editing)
            parent = self.editing.parent_id
            self._end_edit(restore=False)
            for view in turns[index:]:
                await view.remove()
            return parent
        self._end_edit(restore=False)
        return turns[-1].record_id if turns else None

    def _persist_user(self, text: str, parent_id: int | None) -> int | None:
        if self.store is None:
            return None
        try:
            if self.session_id is None:
                info = self.backend.info if self.backend else None
                created = self.store.create(title_from(text), model=info.model if info else "",
                                            backend=info.backend if info else "", params=self.params.to_dict())
                self.session_id = created.id
                parent_id = None
            return self.store.add_message(self.session_id, "user", text, parent_id=parent_id).id
        except SessionError as exc:
            self.app.notify(f"not saved: {exc}", severity="warning")
            return None

    def _show_alternatives(self, view: ChatMessageView) -> None:
        """Number a saved message among its alternatives ("2/3" in its title)."""
        if self.store is None or view.record_id is None:
            return
        try:
            alternatives = self.store.alternatives(view.record_id)
        except SessionError:
            return
        index = next((i for i, r in enumerate(alternatives, start=1) if r.id == view.record_id), 1)
        view.set_alternatives(index, len(alternatives))

    async def _start_generation(self, sent_at: float | None = None, before: list[ChatMessageView] | None = None,
                                prompt: ChatMessageView | None = None) -> None:
        assert self.backend is not None
        before = before or []
        messages = [{"role": v.role, "content": v.content} for v in [*self.turns(), *before]]
        shares_cpu = self.backend.shares_cpu
        answer = AnswerView(self.backend, StreamPacer.from_settings(self.app.settings.ui, shares_cpu), sent_at=sent_at)
        answer.prompt_view = prompt
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
        elif self._save_answer(answer, answer.content, stopped=message.stopped or bool(message.error), stats=stats):
            self._show_alternatives(answer)
        if stats:
            from engine.chat.base import GenerationStats

            st = GenerationStats.from_dict(stats)
            self.status.figures = st.brief()
            self.status.context_used = st.context_used
        else:
            self.status.figures = message.error
        for old in self._retired:
            old.close()
        self._retired.clear()

    def _save_answer(self, answer: AnswerView, content: str, *, stopped: bool, stats: dict[str, Any]) -> bool:
        """Add `answer` to the session (as the answer to its question); False when chat history
        is off. A failed save is said in a notification."""
        if self.store is None or self.session_id is None:
            return False
        prompt = answer.prompt_view
        parent = prompt.record_id if prompt is not None and prompt.record_id is not None else LEAF
        try:
            record = self.store.add_message(self.session_id, "assistant", content, parent_id=parent,
                                            stopped=stopped, stats=stats)
        except SessionError as exc:
            self.app.notify(f"answer not saved: {exc}", severity="warning")
        else:
            answer.record_id, answer.parent_id = record.id, record.parent_id
        return True

    # -- actions -----------------------------------------------------------------------------
    def action_stop(self) -> None:
        """Esc: stop the answer; else cancel an edit; else leave the input so number keys
        switch modes."""
        if self.answer is not None:
            self.answer.stop()
            self.status.figures = "stopping…"
        elif self.editing is not None:
            self._end_edit(restore=True)
            self.status.figures = "edit cancelled: nothing changed"
        elif self.chat_input.has_focus or self.side.has_focus_within:
            self.transcript.focus()

    def action_focus_input(self) -> None:
        self.chat_input.focus()

    LETTERS_WRITE = True
    """Read by the app: 'q' writes here instead of quitting (ctrl+q quits), see `on_key`."""

    def on_key(self, event: events.Key) -> None:
        """Type to write: a printable key (not a digit: digits switch modes; not '?': help)
        starts a message in the input when no text field has the focus. 'q' included: a
        question starting with q must not quit the app.

        The focus moves at once (`set_focus`, not `focus()`, which waits for the app's queue):
        the app hands each key to the widget focused when it takes the key from its queue, so
        the rest of a burst then goes to the input. Keys of the burst it had already handed to
        this screen arrive here with the input focused (the input takes every printable key and
        Enter itself, so nothing else brings one here): they are the message's too, digits
        included, and Enter sends it (issue 17 item 11: the digits were taken for mode keys, and
        Enter only focused the input)."""
        in_flight = self.focused is self.chat_input
        if in_flight and event.key == "enter":
            event.stop()
            event.prevent_default()
            self.chat_input.post_message(ChatInput.Submitted(self.chat_input, self.chat_input.text))
            return
        if not event.is_printable or not event.character:
            return
        if not in_flight and (event.character.isdigit() or event.character == "?"
                              or isinstance(self.focused, (Input, TextArea))):
            return
        event.stop()
        event.prevent_default()
        if not in_flight:
            self.set_focus(self.chat_input)
        self.chat_input.insert(event.character)

    def on_paste(self, event: events.Paste) -> None:
        if not isinstance(self.focused, (Input, TextArea)):
            event.stop()
            self.chat_input.focus()
            self.chat_input.insert(event.text)

    async def action_regenerate(self) -> None:
        """Another answer to the last question; the one shown stays in the session as an
        alternative (alt+left brings it back)."""
        if self.generating or self.backend is None:
            return
        turns = self.turns()
        if not turns or turns[-1].role != "assistant":
            self.app.notify("nothing to regenerate: the last message is not an answer", timeout=3)
            return
        if self.current_params() is None:
            return
        self._end_edit(restore=True)
        old = turns[-1]
        prompt = turns[-2] if len(turns) > 1 and turns[-2].role == "user" else None
        await old.remove()  # from the screen only: it stays saved, as an alternative
        await self._start_generation(prompt=prompt)

    def action_edit_last(self) -> None:
        """Put your last question into the input to edit. Nothing changes until it is sent
        (then as a new version, the old one kept); Esc cancels."""
        if self.generating:
            self.app.notify("still answering: Esc stops it first", timeout=3)
            return
        users = [v for v in self.turns() if v.role == "user"]
        if not users:
            self.app.notify("no question to edit yet", timeout=3)
            return
        if self.editing is None:
            self._draft = self.chat_input.text
        elif self.editing is not users[-1]:
            self.editing.remove_class("-editing")
        self.editing = users[-1]
        self.editing.add_class("-editing")
        self.chat_input.text = self.editing.content
        self.chat_input.move_cursor(self.chat_input.document.end)
        self.chat_input.focus()
        self.status.figures = "editing your last question: Enter sends it as a new version (the old one is kept) · " \
                              "Esc cancels"

    def _end_edit(self, *, restore: bool) -> None:
        if self.editing is None:
            return
        self.editing.remove_class("-editing")
        self.editing = None
        if restore:
            self.chat_input.text = self._draft
            self.chat_input.move_cursor(self.chat_input.document.end)
        self._draft = ""

    async def on_chat_input_edit_last_requested(self, event: ChatInput.EditLastRequested) -> None:
        event.stop()
        self.action_edit_last()

    async def action_alternative(self, role: str, step: int) -> None:
        """Show the previous/next answer to the last question (role 'assistant') or version of
        the last question ('user'), with the branch that follows it."""
        views = [v for v in self.turns() if v.role == role]
        what = "answer" if role == "assistant" else "question"
        if self.generating or self.editing is not None:
            self.app.notify("finish (or Esc) the answer or the edit first", timeout=3)
            return
        if not views:
            self.app.notify(f"no {what} to flip yet", timeout=3)
            return
        view = views[-1]
        if self.store is None or self.session_id is None or view.record_id is None:
            self.app.notify("alternatives live in the chat history, which is off", severity="warning", timeout=4)
            return
        try:
            alternatives = self.store.alternatives(view.record_id)
            index = next(i for i, r in enumerate(alternatives) if r.id == view.record_id)
            if not 0 <= index + step < len(alternatives):
                self.app.notify(f"this is the {'first' if step < 0 else 'last'} {what} of {len(alternatives)}",
                                timeout=3)
                return
            records = self.store.show(self.session_id, alternatives[index + step].id)
        except (SessionError, StopIteration) as exc:
            self.app.notify(f"cannot flip: {exc}", severity="error")
            return
        turns = self.turns()
        start = turns.index(view)
        for old in turns[start:]:
            await old.remove()
        await self.transcript.mount_all([ChatMessageView.from_record(r) for r in records[start:]])
        self._show_context(records)
        self.transcript.scroll_end(animate=False)

    def _show_context(self, records) -> None:  # records: list[ChatRecord]
        from engine.chat.base import GenerationStats

        last = next((r.stats for r in reversed(records) if r.stats), None)
        self.status.context_used = GenerationStats.from_dict(last).context_used if last else 0

    def action_clear(self) -> None:
        """Delete every message of this session, on every branch, after asking."""
        if self.generating:
            self.app.notify("still answering: Esc stops it first", timeout=3)
            return
        if self.store is None or self.session_id is None:
            self.app.notify("nothing to clear: this session is not saved yet", timeout=3)
            return
        from tui.screens.confirm import ConfirmModal

        count = self.store.get(self.session_id).message_count

        async def answered(yes: bool | None) -> None:
            if not yes or self.store is None or self.session_id is None:
                return
            self.store.clear(self.session_id)
            self._end_edit(restore=False)
            await self.transcript.remove_children()
            self.status.context_used = 0
            self.status.figures = "session cleared"

        self.app.push_screen(ConfirmModal("Clear this session?", f"All {count} messages of this session, every "
                                          "earlier answer and version included, will be deleted. ctrl+n starts a new "
                                          "session and keeps this one.", confirm_label="Delete messages"), answered)

    def action_switch_prompt_mode(self, mode: str = "") -> None:
        """F6: chat <-> plain completion for the model loaded (`mode` from the side panel or
        the palette: auto, chat or completion)."""
        if self.backend is None:
            self.app.notify("no model loaded yet", timeout=3)
            return
        if self.generating:
            self.app.notify("still answering: Esc stops it first", timeout=3)
            return
        mode = mode or ("chat" if self.backend.prompt_mode.completion else "completion")
        try:
            chosen = self.backend.set_prompt_mode(mode)
        except BackendError as exc:
            self.app.notify(str(exc), severity="error", timeout=8)
            self.side.show_prompt_mode(self.backend.prompt_mode.requested)
            return
        if self.spec is not None:
            self.spec.prompt_mode = mode  # a reload (side panel) keeps the choice
        self.side.show_prompt_mode(mode)
        self.side.show_info(self.backend.info)
        self._show_state()
        self._note_prompt_mode()
        self.app.notify(f"{chosen.mode} mode", timeout=3)

    def on_chat_side_panel_prompt_mode_requested(self, message: ChatSidePanel.PromptModeRequested) -> None:
        self.action_switch_prompt_mode(message.mode)

    def on_chat_side_panel_preset_save_requested(self, message: ChatSidePanel.PresetSaveRequested) -> None:
        settings = self.app.settings
        settings.presets[message.name] = settings_mod.SamplerPreset(**message.values)
        try:
            path = settings_mod.save(settings, self.app.settings_path)
        except OSError as exc:
            self.app.notify(f"preset not saved: {exc}", severity="error")
            return
        self.side.set_presets(self.presets())
        self.app.notify(f"preset {message.name!r} saved in {path}", timeout=5)

    def apply_preset(self, name: str) -> None:
        self.side.apply_preset(self.presets()[name])
        self.app.notify(f"sampler preset: {name}", timeout=3)

    def palette_commands(self) -> list[PaletteCommand]:
        commands = [PaletteCommand("Chat: clear this session…", "delete its messages (asks first)",
                                   self.action_clear),
                    PaletteCommand("Chat: chat / completion", "switch how the model reads your text (F6)",
                                   self.action_switch_prompt_mode)]
        commands += [PaletteCommand(f"Chat preset: {name}", ", ".join(f"{k} {v}" for k, v in values.items()),
                                    lambda n=name: self.apply_preset(n)) for name, values in self.presets().items()]
        return commands

    async def action_new_session(self) -> None:
        if self.answer is not None:
            self.answer.stop()
            return self.app.notify("stopping the answer first; press again", timeout=3)
        self._end_edit(restore=False)
        self.session_id = None
        await self.transcript.remove_children()
        self.status.context_used = 0
        self.status.figures = "new session"
        self.chat_input.focus()

    def action_pick_model(self) -> None:
        """The one model picker (tui.screens.model_picker, opened by the app); the chosen model loads."""
        from tui.messages import PickModel

        self.post_message(PickModel(self.open_model, ("gguf", "hf", "adapter"), (self.spec or BackendSpec()).model))

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
        self._end_edit(restore=False)
        await self.transcript.remove_children()
        views = [ChatMessageView.from_record(r) for r in records]
        if views:
            await self.transcript.mount_all(views)
        self._show_context(records)
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
        else:  # not the input: the user did not choose it, and digits switch modes
            self.transcript.focus()

    def on_chat_side_panel_params_changed(self, message: ChatSidePanel.ParamsChanged) -> None:
        self.params = message.params  # for what the screen shows; sending reads the fields again

    def on_chat_side_panel_load_requested(self, message: ChatSidePanel.LoadRequested) -> None:
        base = self.spec or BackendSpec()
        spec = BackendSpec.from_dict(base.to_dict() | {"model": message.model, "template": message.template})
        if message.model != base.model:
            spec.backend = "openai" if base.backend == "openai" else "auto"
        spec.api_key = base.api_key
        self.load_model(spec)

    def on_unmount(self) -> None:
        """The app is closing: an answer still streaming is stopped and saved as it is (marked
        stopped), since its `Finished` message would never be handled now. Nothing is lost."""
        answer, self.answer = self.answer, None
        if answer is None:
            return
        answer.stop()
        if answer.generating:  # no figures: the generation thread may not have filled them in yet
            self._save_answer(answer, answer.text_so_far(), stopped=True, stats={})
        else:  # complete, its Finished message not handled yet
            self._save_answer(answer, answer.content, stopped=answer.stopped, stats=answer.stats)
