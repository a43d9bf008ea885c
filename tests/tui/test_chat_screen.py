"""Chat mode through Textual's Pilot.

Key handling uses a scripted backend (the layer below the screen); one test talks to the real
bundled Gemma GGUF through llama.cpp.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Input

from engine.chat.base import BackendInfo, ChatBackend, Delta, StatsClock
from engine.chat.params import SamplingParams
from engine.chat.sessions import SessionStore
from tests.helpers.requirements import require_module
from tests.tui.pilot_wait import wait_until as wait_for
from tui.app import LLMDeckApp
from tui.screens.chat import ChatScreen
from tui.screens.confirm import ConfirmModal
from tui.widgets.answer_view import AnswerView
from tui.widgets.chat_input import ChatInput
from tui.widgets.chat_message import ChatMessageView


class ScriptedBackend(ChatBackend):
    """Answers with `words` (one token each, `delay` apart), honouring the cancel event."""

    NAME = "scripted"

    def __init__(self, words: list[str] | None = None, delay: float = 0.0) -> None:
        super().__init__()
        self.words = words or ["Hello", " there", "!"]
        self.delay = delay
        self.calls: list[list[dict]] = []
        self.params: list[SamplingParams] = []
        self.closed = False

    @property
    def info(self) -> BackendInfo:
        return BackendInfo("scripted", "scripted-model", "none", 1000)

    def _stream(self, messages, params: SamplingParams, cancel: threading.Event, clock: StatsClock) -> Iterator[Delta]:
        self.calls.append([dict(m) for m in messages])
        self.params.append(params)
        clock.stats.prompt_tokens = sum(len(m["content"].split()) for m in messages)
        for word in self.words:
            if self.delay and cancel.wait(self.delay):
                return
            clock.token(1)
            yield Delta(word)

    def close(self) -> None:
        self.closed = True


def chat_app(backend: ChatBackend | None = None, **options) -> LLMDeckApp:
    opts = dict(options)
    if backend is not None:
        opts["chat_backend"] = backend
    return LLMDeckApp(start_mode="chat", options=opts)


def views(screen: ChatScreen) -> list[tuple[str, str]]:
    return [(v.role, v.content) for v in screen.turns()]


class Answers(list):
    """Every `AnswerView.Finished` the app handled (pass as `run_test(message_hook=...)`)."""

    def __call__(self, message) -> None:
        if isinstance(message, AnswerView.Finished) and all(m is not message for m in self):
            self.append(message)


async def test_enter_sends_and_answer_streams_with_stats():
    backend = ScriptedBackend()
    app = chat_app(backend)
    answers = Answers()
    async with app.run_test(size=(80, 24), message_hook=answers) as pilot:
        screen = app.screen
        # Not the input: number keys switch modes until the user starts typing, which writes.
        assert isinstance(screen, ChatScreen) and not isinstance(app.focused, ChatInput)
        await pilot.press(*"hi there")
        assert isinstance(app.focused, ChatInput)
        await pilot.press("enter")
        await wait_for(pilot, lambda: answers and not screen.generating)
        [done] = answers
        assert done.stats["generated_tokens"] == 3 and not done.error and not done.stopped
        timings = done.timings
        assert timings.sent <= timings.first_shown <= timings.last_shown <= timings.done and timings.draws >= 1
        assert views(screen) == [("user", "hi there"), ("assistant", "Hello there!")]
        assert backend.calls == [[{"role": "user", "content": "hi there"}]]
        assert screen.chat_input.text == ""
        answer = screen.turns()[-1]
        assert answer.stats["generated_tokens"] == 3 and not answer.stopped
        assert "tok/s" in str(answer.query_one(".chat-title").render())
        assert screen.status.context_used == answer.stats["prompt_tokens"] + 3
        # persisted
        store = SessionStore()
        [info] = store.list()
        assert info.title == "hi there" and [m.role for m in store.messages(info.id)] == ["user", "assistant"]


async def test_shift_enter_and_ctrl_j_insert_newlines_not_send():
    backend = ScriptedBackend()
    app = chat_app(backend)
    answers = Answers()
    async with app.run_test(size=(80, 24), message_hook=answers) as pilot:
        screen = app.screen
        await pilot.press("a", "shift+enter", "b", "ctrl+j", "c")
        await pilot.pause()
        assert screen.chat_input.text == "a\nb\nc"
        assert backend.calls == []
        await pilot.press("enter")
        await wait_for(pilot, lambda: answers)
        assert backend.calls[0][-1]["content"] == "a\nb\nc"


async def test_escape_stops_and_keeps_partial_marked_stopped():
    backend = ScriptedBackend([f"w{i} " for i in range(500)], delay=0.01)
    app = chat_app(backend)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await pilot.press("x", "enter")
        await wait_for(pilot, lambda: screen.generating and screen.turns() and screen.turns()[-1].content)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not screen.generating)
        answer = screen.turns()[-1]
        assert answer.stopped and answer.stats["finish_reason"] == "cancelled"
        assert 0 < len(answer.content.split()) < 500
        assert "stopped" in str(answer.query_one(".chat-title").render())
        # issue 17 item 10: at 80 columns the context fill stays on the line, the figures give way
        line = screen.status.render().plain
        assert len(line) <= screen.status.size.width and "ctx" in line and "%" in line.split("ctx")[1]
        [rec] = [m for m in SessionStore().messages(screen.session_id) if m.role == "assistant"]
        assert rec.stopped and rec.content == answer.content
        # Esc when idle leaves the input, so number keys switch modes again
        await pilot.press("escape")
        assert not screen.chat_input.has_focus
        await pilot.press("1")
        assert app.current_mode == "monitor"


class CpuBackend(ScriptedBackend):
    @property
    def shares_cpu(self) -> bool:
        return True


@pytest.mark.parametrize("backend_cls", [ScriptedBackend, CpuBackend])
async def test_a_model_on_this_cpu_gets_paced_draws_and_no_blinking_cursor(backend_cls):
    backend = backend_cls([f"w{i} " for i in range(300)], delay=0.005)
    app = chat_app(backend)
    answers = Answers()
    async with app.run_test(size=(80, 24), message_hook=answers) as pilot:
        screen = app.screen
        cpu = backend.shares_cpu
        await pilot.press("x", "enter")
        await wait_for(pilot, lambda: screen.generating and screen.turns()[-1].content)
        assert screen.answer.pacer.share == (app.settings.ui.stream_cpu_percent / 100 if cpu else None)
        assert screen.answer.pacer.min_interval == app.settings.ui.stream_interval_ms / 1000
        assert screen.chat_input.cursor_blink is not cpu
        await wait_for(pilot, lambda: not screen.generating, timeout=30)
        assert screen.chat_input.cursor_blink
        answer = screen.turns()[-1]
        assert answer.content == "".join(backend.words) and answer.stats["generated_tokens"] == 300
        assert answers[-1].timings.draws >= 2


def stored(screen: ChatScreen) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in SessionStore().all_messages(screen.session_id)]


async def test_regenerate_keeps_the_earlier_answer_to_flip_back_to():
    backend = ScriptedBackend(["one"])
    app = chat_app(backend)
    answers = Answers()
    async with app.run_test(size=(80, 24), message_hook=answers) as pilot:
        screen = app.screen
        await pilot.press(*"first", "enter")
        await wait_for(pilot, lambda: len(answers) == 1 and not screen.generating)
        backend.words = ["two"]
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(answers) == 2 and not screen.generating)
        assert views(screen) == [("user", "first"), ("assistant", "two")]
        assert backend.calls[1] == [{"role": "user", "content": "first"}]
        assert stored(screen) == [("user", "first"), ("assistant", "one"), ("assistant", "two")]
        assert "◀ 2/2 ▶" in str(screen.turns()[-1].query_one(".chat-title").render())
        await pilot.press("escape", "alt+left")  # out of the input, then the earlier answer
        await wait_for(pilot, lambda: views(screen) == [("user", "first"), ("assistant", "one")])
        assert "◀ 1/2 ▶" in str(screen.turns()[-1].query_one(".chat-title").render())
        await pilot.press("alt+right")
        await wait_for(pilot, lambda: views(screen) == [("user", "first"), ("assistant", "two")])


async def test_up_and_ctrl_g_edit_without_deleting_and_esc_restores():
    """Issue 17 item 2: Up in an empty input (and ctrl+g) deleted the last question and answer
    from the screen and chat.sqlite3; ctrl+l cleared a session without asking."""
    backend = ScriptedBackend(["one"])
    app = chat_app(backend)
    answers = Answers()
    async with app.run_test(size=(80, 24), message_hook=answers) as pilot:
        screen = app.screen
        await pilot.press(*"first", "enter")
        await wait_for(pilot, lambda: len(answers) == 1 and not screen.generating)
        before = [("user", "first"), ("assistant", "one")]
        await pilot.press("up")  # empty input
        await pilot.pause()
        assert screen.chat_input.text == "first" and views(screen) == before and stored(screen) == before
        await pilot.press("escape")
        await pilot.pause()
        assert screen.chat_input.text == "" and views(screen) == before and stored(screen) == before
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert screen.chat_input.text == "first" and stored(screen) == before
        await pilot.press(*["backspace"] * 5, *"second")
        await pilot.press("escape")  # Esc again: nothing changed, the draft is back
        await pilot.pause()
        assert screen.chat_input.text == "" and views(screen) == before and stored(screen) == before
        # ctrl+l redraws the screen (as in a shell), it does not clear the session
        await pilot.press("escape", "ctrl+l")
        await pilot.pause()
        assert views(screen) == before and stored(screen) == before
        # an edit sent becomes a new version of the question; the old one stays, to flip back to
        backend.words = ["two"]
        await pilot.press("ctrl+g", *["backspace"] * 5, *"second", "enter")
        await wait_for(pilot, lambda: len(answers) == 2 and not screen.generating)
        assert views(screen) == [("user", "second"), ("assistant", "two")]
        assert stored(screen) == [*before, ("user", "second"), ("assistant", "two")]
        assert "◀ 2/2 ▶" in str(screen.turns()[0].query_one(".chat-title").render())
        await pilot.press("escape", "alt+up")
        await wait_for(pilot, lambda: views(screen) == before)


async def test_digits_switch_modes_from_chat_until_the_user_writes():
    """Issue 17 item 7: number keys typed into a field the user never chose."""
    app = chat_app(ScriptedBackend())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        assert app.current_mode == "data" and not isinstance(app.focused, (ChatInput, Input))
        await pilot.press("2")
        await pilot.pause()
        screen = app.screen
        assert app.current_mode == "chat"
        await pilot.press(*"q2")  # a letter (even q) starts a message; then digits are text
        await pilot.pause()
        assert app.current_mode == "chat" and screen.chat_input.text == "q2"


def burst(app: LLMDeckApp, text: str, *then: str) -> None:
    """`text` and then keys `then` as a terminal delivers a fast typist's or tmux send-keys'
    burst: every key event handed to the app at once (Pilot's `press` waits after each key)."""
    import unicodedata

    from textual import events
    from textual.keys import _character_to_key

    for char in text:
        key = char if char.isalnum() else _character_to_key(char)
        app._driver.send_message(events.Key(key, char))
    for key in then:
        app._driver.send_message(events.Key(key, unicodedata.lookup("CARRIAGE RETURN") if key == "enter" else None))


async def test_a_burst_typed_with_no_field_focused_is_sent_whole():
    """Issue 17 item 11: typing starts a message when no text field has the focus; in a burst
    the app had routed the keys after the first to the screen before the focus moved, where the
    digits were taken for mode keys and Enter only focused the input (bench/key_burst.py
    --mode chat --unfocused: 26 mismatches in 10 tries)."""
    backend = ScriptedBackend(["ok"])
    app = chat_app(backend)
    answers = Answers()
    async with app.run_test(size=(80, 24), message_hook=answers) as pilot:
        screen = app.screen
        assert not isinstance(app.focused, (ChatInput, Input))
        for n in range(3):
            text = f"The capital of Italy is Rome, try {n:04d} ok"
            burst(app, text, "enter")
            await wait_for(pilot, lambda n=n: len(answers) == n + 1 and not screen.generating, 10)
            assert app.current_mode == "chat"
            assert backend.calls[-1][-1]["content"] == text
            assert screen.chat_input.text == ""
            screen.set_focus(None)  # as on the screen's first show: the next burst starts a message
            await pilot.pause()


async def test_sessions_switch_new_clear_and_export():
    backend = ScriptedBackend(["ok"])
    app = chat_app(backend)
    answers = Answers()
    async with app.run_test(size=(100, 30), message_hook=answers) as pilot:
        screen = app.screen
        await pilot.press(*"alpha question", "enter")
        await wait_for(pilot, lambda: len(answers) == 1 and not screen.generating)
        first = screen.session_id
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert views(screen) == [] and screen.session_id is None
        await pilot.press(*"beta question", "enter")
        await wait_for(pilot, lambda: len(answers) == 2 and not screen.generating)
        second = screen.session_id
        assert second != first
        # the browser: search, open
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press(*"alpha")
        await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.session_id == first and views(screen))
        assert views(screen) == [("user", "alpha question"), ("assistant", "ok")]
        assert screen.turns()[-1].stats["generated_tokens"] == 1  # stats came back from SQLite
        # export: the notification names the two files
        await pilot.press("ctrl+s")
        await pilot.pause()
        [note] = [n for n in app._notifications if n.title == "exported"]
        md, js = (Path(line) for line in note.message.splitlines())
        assert "alpha question" in md.read_text() and json.loads(js.read_text())["messages"][1]["content"] == "ok"
        # clear (the palette) asks first; n keeps everything, y deletes
        for answer in ("n", "y"):
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"Chat: clear")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), what="the question")
            await pilot.press(answer)
            await pilot.pause()
            if answer == "n":
                assert views(screen) and SessionStore().messages(first)
        assert views(screen) == [] and SessionStore().messages(first) == []


async def test_sessions_browser_renames_and_deletes():
    store = SessionStore()
    a = store.create("keep me")
    b = store.create("delete me")
    store.add_message(a.id, "user", "hello")
    app = chat_app(ScriptedBackend())
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press(*"delete")  # search narrows to one
        await pilot.pause()
        await pilot.press("ctrl+d")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert [s.id for s in store.list()] == [a.id]
        search = app.screen.query_one("#sessions-search")
        search.value = ""
        await pilot.pause()
        await pilot.press("f2")
        await pilot.pause()
        app.screen.query_one("#rename-input").value = "renamed"
        await pilot.press("enter")
        await pilot.pause()
        assert store.get(a.id).title == "renamed"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ChatScreen)
        _ = b


async def test_copy_answer_and_code_block_use_osc52_clipboard():
    backend = ScriptedBackend(["Here:\n", "```python\n", "print('hi')\n", "```\n", "done"])
    app = chat_app(backend)
    answers = Answers()
    async with app.run_test(size=(80, 24), message_hook=answers) as pilot:
        screen = app.screen
        await pilot.press("q", "enter")  # 'q' is text here, not quit
        await wait_for(pilot, lambda: answers and not screen.generating)
        await pilot.press("f3")
        assert app.clipboard == "Here:\n```python\nprint('hi')\n```\ndone"
        await pilot.press("f4")
        assert app.clipboard == "print('hi')\n"


async def test_side_panel_changes_sampling_and_bad_model_keeps_previous():
    backend = ScriptedBackend()
    app = chat_app(backend)
    answers = Answers()
    async with app.run_test(size=(120, 40), message_hook=answers) as pilot:
        screen = app.screen
        await pilot.press("f2")
        await pilot.pause()
        assert screen.has_class("-side")
        temp = screen.query_one("#p-temperature")
        temp.value = "0.1"
        await pilot.pause()
        assert screen.params.temperature == 0.1
        temp.value = "hot"
        await pilot.pause()
        # the text stays, and the reason is on the line under it (item 9), not in a tooltip
        assert screen.params.temperature == 0.1 and temp.has_class("-invalid") and temp.value == "hot"
        error = temp.parent.query_one(".field-error")
        assert error.display and "temperature" in str(error.render())
        model = screen.query_one("#side-model")
        model.value = "/nowhere/model.gguf"
        model.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.loading is None)
        assert screen.backend is backend  # the previous model stays usable
        assert not backend.closed
        await pilot.press("f2")
        await pilot.press(*"refused", "enter")  # a value that does not parse: not sent, says why
        await pilot.pause()
        assert backend.calls == [] and screen.chat_input.text == "refused"
        assert any(n.title == "not sent" for n in app._notifications)
        # the value is read from the field when sent, not from an Input.Changed still on its way
        with temp.prevent(Input.Changed):
            temp.value = "0.2"
        screen.chat_input.text = "still works"
        await pilot.press("enter")
        await wait_for(pilot, lambda: answers and not screen.generating)
        assert screen.turns()[-1].content == "Hello there!" and backend.params[-1].temperature == 0.2


async def test_no_model_available_says_how_to_pick(monkeypatch):
    import engine.chat.default_model as dm

    monkeypatch.setattr(dm, "installed", lambda: False)
    app = LLMDeckApp(start_mode="chat")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.loading is None)
        notes = [v.content for v in screen.transcript.query(ChatMessageView) if v.role == "note"]
        assert notes and "pip install llmdeck[demo]" in notes[0] and "llmdeck chat path/to/model.gguf" in notes[0]
        await pilot.press(*"hello", "enter")  # refused politely, nothing crashes
        await pilot.pause()
        assert screen.turns() == []


async def test_real_bundled_gemma_answers_and_stops(tmp_path):
    require_module("llama_cpp")
    from engine.chat.default_model import default_model_path

    path = default_model_path(tmp_path)
    params = {"temperature": 0, "max_new_tokens": 400}
    app = LLMDeckApp(start_mode="chat", options={"model": str(path), "chat_params": params})
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.backend is not None, timeout=60)
        assert screen.backend.NAME == "llama.cpp" and screen.backend.template.name == "gemma"
        # A base model: completion mode is chosen, and its repeat guard may end a continuation by
        # itself before Esc; in chat mode this model writes on to the token limit, so Esc is what stops it.
        assert screen.backend.prompt_mode.completion
        await pilot.press("f6")
        await wait_for(pilot, lambda: not screen.backend.prompt_mode.completion, timeout=10)
        await pilot.press(*"Write a long story about a cat.", "enter")
        await wait_for(pilot, lambda: screen.turns() and screen.turns()[-1].role == "assistant"
                       and len(screen.turns()[-1].content) > 20, timeout=60)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not screen.generating, timeout=30)
        answer = screen.turns()[-1]
        assert answer.stopped and answer.stats["finish_reason"] == "cancelled"
        assert answer.stats["prompt_tokens"] > 5 and answer.stats["ttft_s"] is not None
        assert answer.stats["generated_tokens"] < 400


async def test_compare_mode_runs_both_models_side_by_side():
    from tui.screens.compare import CompareScreen

    left = ScriptedBackend(["left ", "answer"])
    right = ScriptedBackend(["right ", "side ", "answer"])
    app = chat_app(left)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f5")
        await pilot.pause()
        cmp = app.screen
        assert isinstance(cmp, CompareScreen)
        # a bad path for the right side is reported, nothing crashes
        cmp.query_one("#cmp-model").value = "/nowhere/x.gguf"
        cmp.query_one("#cmp-model").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: "not loaded" in str(cmp.query_one("#cmp-help").render()))
        cmp.post_message(CompareScreen.RightLoaded(right, ""))
        await wait_for(pilot, lambda: cmp.backends[1] is right)
        await pilot.press(*"same prompt", "enter")
        await wait_for(pilot, lambda: cmp.running is None and all(cmp.results))
        assert [v.content for v in cmp.views] == ["left answer", "right side answer"]
        assert left.calls[-1] == right.calls[-1] == [{"role": "user", "content": "same prompt"}]
        assert "right/left" in str(cmp.query_one("#cmp-help").render())
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ChatScreen) and right.closed and not left.closed
