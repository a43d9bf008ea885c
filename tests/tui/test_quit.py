"""Quitting (issue 17, item 12: quit under 0.5 s) loses nothing: what the user wrote, the answer
being streamed and the settings are on disk when the app has closed. How fast it quits is
measured by bench/latency.py (quit), not here."""

from __future__ import annotations

from engine import settings as settings_mod
from engine.chat.sessions import SessionStore
from tests.tui.pilot_wait import wait_until
from tests.tui.test_chat_screen import ScriptedBackend, chat_app
from tui.app import LLMDeckApp
from tui.screens.chat import ChatScreen


async def test_quitting_during_a_streaming_answer_saves_what_was_streamed():
    backend = ScriptedBackend([f"w{i} " for i in range(2000)], delay=0.01)
    app = chat_app(backend)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        await pilot.press(*"tell me", "enter")
        await wait_until(pilot, lambda: screen.generating and len(screen.turns()[-1].content.split()) >= 5,
                         what="the answer streaming")
        session_id = screen.session_id
        await pilot.press("ctrl+q")  # 'q' is text in Chat; ctrl+q quits
    assert app._exit and session_id is not None
    messages = SessionStore().messages(session_id)
    assert [m.role for m in messages] == ["user", "assistant"]
    question, answer = messages
    assert question.content == "tell me"
    # The partial answer is kept, marked stopped, and is the question's answer in the tree.
    words = answer.content.split()
    assert 5 <= len(words) < 2000 and words == [f"w{i}" for i in range(len(words))]
    assert answer.stopped and answer.parent_id == question.id


async def test_quitting_keeps_a_theme_chosen_just_before():
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        before = app.theme
        await pilot.press("ctrl+t")
        chosen = app.theme
        assert chosen != before
        await pilot.press("q")
    assert app._exit
    saved, problems = settings_mod.load(app.settings_path)
    assert not problems and saved.ui.theme == chosen
