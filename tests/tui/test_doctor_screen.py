"""The doctor one key away: F9 from any screen (even while typing in Chat), the palette's "Doctor"."""

from __future__ import annotations

from textual.widgets import DataTable, Static, TextArea

from tests.tui.pilot_wait import wait_until
from tui.app import LLMDeckApp
from tui.screens.doctor import DoctorScreen


def done(app: LLMDeckApp) -> bool:
    return isinstance(app.screen, DoctorScreen) and app.screen.report is not None


async def test_f9_from_the_chat_input_opens_the_report_and_escape_closes_it():
    app = LLMDeckApp(start_mode="chat")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.screen.query(TextArea), what="chat input shown")
        await pilot.press("h")  # a letter starts a message: the focus is now in the input, holding "h"
        await wait_until(pilot, lambda: isinstance(app.focused, TextArea), what="chat input focused")
        await pilot.press("f9")
        await wait_until(pilot, lambda: done(app), timeout=90, what="doctor report")
        screen = app.screen
        table = screen.query_one(DataTable)
        assert table.row_count == len(screen.report.checks) == 12
        assert [str(table.get_row_at(i)[1]) for i in range(3)] == ["python", "nvidia-driver", "cuda-toolkit"]
        title = str(screen.query_one("#doctor-title", Static).content)
        assert title.startswith(f"Doctor: {screen.report.summary()['ok']} ok")
        for _ in range(4):
            await pilot.press("down")
        await pilot.pause()
        detail = str(screen.query_one("#doctor-detail", Static).content)
        assert detail.startswith("llama-cpp (") and screen.report.get("llama-cpp").detail in detail
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, DoctorScreen) and app.current_mode == "chat"


async def test_palette_command_opens_the_doctor():
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Doctor")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(pilot, lambda: done(app), timeout=90, what="doctor report from the palette")
