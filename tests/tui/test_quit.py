"""Quitting (issue 17, item 12: quit under 0.5 s) loses nothing: what the user wrote, the answer
being streamed and the settings are on disk when the app has closed. How fast it quits is
measured by bench/latency.py (quit), not here."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

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


async def test_closing_restyles_none_of_the_screens_it_removes(monkeypatch):
    """Textual removes the screens one by one and moves each one's focus as it goes, which
    restyled whole screens about to be gone: most of a quit after a tour of the modes."""
    from textual.css.stylesheet import Stylesheet

    app = chat_app(ScriptedBackend())
    restyled_while_closing: list[int] = []
    update_nodes = Stylesheet.update_nodes

    def counting(self, nodes, animate=False):
        nodes = list(nodes)
        if app._exit:
            restyled_while_closing.append(len(nodes))
        return update_nodes(self, nodes, animate=animate)

    monkeypatch.setattr(Stylesheet, "update_nodes", counting)
    async with app.run_test(size=(80, 24)) as pilot:
        for number in "123456789":
            await pilot.press(number)
            await pilot.pause()
        focused = [key for key, screen in app.mode_screens.items() if screen.focused is not None]
        assert len(app.mode_screens) == 9 and len(focused) >= 5, focused  # focus to move on most screens
        await pilot.press("1", "q")
    assert app._exit and restyled_while_closing == []


QUIT_IN_A_TERMINAL = r"""
import json, sys, termios, threading
from tui.app import LLMDeckApp

class QuitsAtOnce(LLMDeckApp):
    def on_ready(self):
        self.set_timer(0.3, self.exit)  # the input thread is polling stdin by then

before = termios.tcgetattr(0)
app = QuitsAtOnce(start_mode="runs")
app.run()
readers = [t for t in threading.enumerate() if t.name == "textual-input"]
waited_for = not any(t.is_alive() for t in readers)
for t in readers:
    t.join(5)
with open(sys.argv[1], "w") as f:
    json.dump({"driver": app.driver_class.__name__, "terminal_restored": termios.tcgetattr(0) == before,
               "input_thread_waited_for": waited_for, "input_thread_ended": not any(t.is_alive() for t in readers)}, f)
"""


def test_quitting_in_a_terminal_restores_it_without_waiting_for_the_input_thread(tmp_path):
    """Textual joined its stdin-polling thread on the way out (0.1-0.2 s of every quit); the app
    now leaves it to end by itself. The terminal is still restored and the thread still ends."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))

    def drain() -> None:
        with contextlib.suppress(OSError):
            while os.read(master, 65536):
                pass

    threading.Thread(target=drain, daemon=True).start()
    found = tmp_path / "found.json"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "TERM": "xterm-256color"}
    child = subprocess.Popen([sys.executable, "-c", QUIT_IN_A_TERMINAL, str(found)], stdin=slave, stdout=slave,
                             stderr=slave, cwd=root, env=env, start_new_session=True)
    os.close(slave)
    try:
        assert child.wait(120) == 0
    finally:
        child.kill()
        child.wait()
        with contextlib.suppress(OSError):
            os.close(master)
    assert json.loads(found.read_text()) == {"driver": "ClosingLinuxDriver", "terminal_restored": True,
                                             "input_thread_waited_for": False, "input_thread_ended": True}
