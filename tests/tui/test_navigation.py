"""Screens ask the app, by message, to move between modes and to stop runs; `app.options` is
what the command line said, read-only."""

from __future__ import annotations

import pytest

from engine.runs import RunStore
from tests.tui.pilot_wait import wait_until
from tui.app import LLMDeckApp
from tui.messages import OpenInChat, StopRun
from tui.screens.chat import ChatScreen
from tui.screens.stop_run import StopRunModal


class Loads(list):
    """The models Chat tried to load, in order (each ends in ModelLoaded or ModelLoadFailed)."""

    def __call__(self, message) -> None:
        if isinstance(message, (ChatScreen.ModelLoaded, ChatScreen.ModelLoadFailed)) and all(
                m is not message for m in self):
            self.append(message)


async def test_open_in_chat_builds_chat_on_that_model_or_switches_it(tmp_path):
    first, second = str(tmp_path / "first.gguf"), str(tmp_path / "second.gguf")
    loads = Loads()
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(100, 30), message_hook=loads) as pilot:
        app.screen.post_message(OpenInChat(first))
        await wait_until(pilot, lambda: app.current_mode == "chat" and loads)
        chat = app.screen
        assert isinstance(chat, ChatScreen)
        await pilot.pause(0.3)
        assert [m.spec.model for m in loads] == [first]  # built on it: no load of the default model first
        await app.switch_mode("runs")
        app.screen.post_message(OpenInChat(second))
        await wait_until(pilot, lambda: len(loads) == 2)
        assert app.screen is chat and loads[-1].spec.model == second
        assert app.mode_screens["runs"].query("#runs-table")  # the Runs screen was not rebuilt
    with pytest.raises(TypeError):
        app.options["model"] = "x"  # type: ignore[index]


async def test_one_stop_dialog_whatever_the_screen_says_what_the_kind_does():
    store = RunStore()
    train = store.create("train", {"model": "/m"}, name="tune")
    store.update(train.id, status="running", pid=1)  # pid 1 is alive; the cancel itself is refused
    app = LLMDeckApp(start_mode="runs", store=store)
    async with app.run_test(size=(100, 30)) as pilot:
        app.screen.post_message(StopRun(store.get(train.id)))
        await wait_until(pilot, lambda: isinstance(app.screen, StopRunModal))
        assert app.screen.title_text == "Stop run?" and "saves a checkpoint" in app.screen.body
        await pilot.press("n")
        await wait_until(pilot, lambda: not isinstance(app.screen, StopRunModal))
        assert store.get(train.id).status == "running"


async def test_convert_stops_its_conversion_through_the_one_stop_dialog():
    store = RunStore()
    run = store.start("selftest", {"steps": 1000, "delay": 0.05}, name="long")
    app = LLMDeckApp(start_mode="convert", store=store)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            app.screen.current_run = run.id
            await pilot.press("ctrl+g")  # from wherever the focus is: no text field takes it
            await wait_until(pilot, lambda: isinstance(app.screen, StopRunModal))
            assert store.get(run.id).active  # nothing stops before the answer
            await pilot.press("y")
            await wait_until(pilot, lambda: store.get(run.id).status == "cancelled", timeout=20)
    finally:
        if store.get(run.id).active:
            store.cancel(run.id, force=True)
