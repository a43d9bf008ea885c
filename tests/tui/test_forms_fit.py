"""Every form and dialog at 80x24: each field, checkbox and button can be reached and seen whole
(scrolled into view when focused), and a refusal is shown next to the field it is about."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static

from tests.tui.pilot_wait import wait_until
from tests.tui.visible import fully_visible, unreachable
from tui.app import LLMDeckApp
from tui.screens.base import ModeScreen
from tui.screens.confirm import ConfirmModal
from tui.screens.serve import StartServerModal


async def opened(pilot, app) -> ModeScreen:
    await wait_until(pilot, lambda: isinstance(app.screen, ModeScreen))
    await pilot.pause(0.3)
    return app.screen


async def test_the_serve_form_fits_and_says_what_is_wrong_by_the_field(tmp_path) -> None:
    app = LLMDeckApp(start_mode="serve")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, app)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, StartServerModal))
        form = app.screen
        assert await unreachable(pilot, form) == []
        model = form.query_one("#serve-model", Input)
        model.focus()
        await pilot.press(*str(tmp_path / "missing.gguf"), "enter")
        error = form.query_one("#serve-model-error", Static)
        await wait_until(pilot, lambda: "model not found" in str(error.render()))
        await pilot.pause(0.2)
        assert fully_visible(error) and app.focused is model
        assert app.screen is form  # nothing started


async def test_the_train_form_fits_and_shows_a_problem_under_its_field() -> None:
    app = LLMDeckApp(start_mode="train")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await opened(pilot, app)
        await pilot.press("n")
        form = screen.query_one("#train-form")
        assert await unreachable(pilot, form) == []
        rate = screen.query_one("#f-learning_rate", Input)
        rate.focus()
        await pilot.press("ctrl+a", "ctrl+k", *"abc")
        error = screen.query_one("#e-learning_rate", Static)
        await wait_until(pilot, lambda: "learning_rate" in str(error.render()) or "valid" in str(error.render()))
        await pilot.pause(0.2)
        assert fully_visible(error) and fully_visible(rate)


async def test_the_bench_form_says_what_is_wrong_by_the_field(tmp_path) -> None:
    app = LLMDeckApp(start_mode="bench")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await opened(pilot, app)
        form = screen.query_one("#bench-form")
        assert await unreachable(pilot, form) == []
        screen.query_one("#bench-model", Input).focus()
        await pilot.press(*str(tmp_path / "missing.gguf"), "enter")
        error = screen.query_one("#bench-error", Static)
        await wait_until(pilot, lambda: "model not found" in str(error.render()))
        await pilot.pause(0.2)
        assert fully_visible(error)


@pytest.mark.parametrize("mode", ["convert", "estimate"])
async def test_the_form_fits(mode: str) -> None:
    app = LLMDeckApp(start_mode=mode)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await opened(pilot, app)
        assert await unreachable(pilot, screen) == []


async def test_a_dialog_with_a_long_body_keeps_its_buttons_in_view() -> None:
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, app)
        body = "\n".join(f"  • run {n} (train, running)" for n in range(40))
        app.push_screen(ConfirmModal("Quit llmdeck?", body, "Quit"))
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.pause(0.2)
        for button in app.screen.query("Button"):
            assert fully_visible(button), button


async def test_help_fits() -> None:
    app = LLMDeckApp(start_mode="train")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause(0.3)
        assert await unreachable(pilot, app.screen) == []
