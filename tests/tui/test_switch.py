"""Mode switches (issue 17, item 12: p95 under 150 ms while a training run uses both cores) do
no work a screen did not ask for: a mode shown again is not laid out from scratch, and the keys
of a mode switched away from are not rebuilt for the hidden state and back. How fast a switch
is gets measured by bench/latency.py (switch), not here."""

from __future__ import annotations

from textual.screen import Screen

from tests.tui.pilot_wait import screen_text, wait_until
from tests.tui.test_chat_screen import ScriptedBackend, chat_app
from tests.tui.test_footer import descriptions
from tui.app import LLMDeckApp
from tui.widgets.footer import KeyFooter


async def test_keys_of_a_hidden_mode_are_not_rebuilt_and_are_right_when_it_is_shown_again(monkeypatch) -> None:
    # Chat hides 'q' (letters write there) by asking the app, which answers for the screen on
    # show: seen from a hidden Chat the keys differ, and were rebuilt at every switch away and back.
    app = chat_app(ScriptedBackend())
    rebuilt: list[str] = []
    recompose = KeyFooter.recompose

    async def counting(self):
        rebuilt.append(type(self.screen).__name__)
        await recompose(self)

    async with app.run_test(size=(80, 24)) as pilot:
        keys: dict[str, list[str]] = {}
        for mode in ("data", "chat", "data", "chat"):  # both built, and shown again once
            await app.switch_mode(mode)
            await pilot.pause(0.3)
            keys[mode] = descriptions(app)
        monkeypatch.setattr(KeyFooter, "recompose", counting)
        for mode in ("data", "chat", "data", "chat"):
            await app.switch_mode(mode)
            await pilot.pause(0.3)
            assert descriptions(app) == keys[mode]
        assert rebuilt == []  # neither for the hidden state nor back: the same keys

        await app.switch_mode("data")
        data = app.screen
        await app.switch_mode("chat")
        await pilot.pause(0.1)
        data._bindings.bind("f12", "app.bell", "ring")  # a key appears while Data is hidden ...
        await app.switch_mode("data")  # ... and is in the footer when Data is shown again
        await wait_until(pilot, lambda: "ring" in descriptions(app), what="Data's keys as they are now")
        assert rebuilt == ["DataScreen"]


async def test_a_mode_shown_again_unchanged_is_not_laid_out_again(monkeypatch) -> None:
    app = LLMDeckApp(start_mode="data")
    layouts: list[str] = []
    refresh_layout = Screen._refresh_layout

    def counting(self, *args, **kwargs):
        layouts.append(type(self).__name__)
        return refresh_layout(self, *args, **kwargs)

    async with app.run_test(size=(80, 24)) as pilot:
        for mode in ("estimate", "data", "estimate", "data"):  # both built, and shown again once
            await app.switch_mode(mode)
            await pilot.pause(0.3)
        shown = screen_text(app)
        monkeypatch.setattr(Screen, "_refresh_layout", counting)
        for mode in ("estimate", "data", "estimate", "data"):
            await app.switch_mode(mode)
            await pilot.pause(0.3)
        assert layouts == []
        assert screen_text(app) == shown  # drawn as it was
        app.screen.styles.height = 20  # a layout a screen asks for is still done
        await pilot.pause(0.3)
        assert layouts
        await app.switch_mode("estimate")
        await pilot.resize_terminal(100, 30)  # and a terminal resized while a mode was hidden
        await pilot.pause(0.3)
        layouts.clear()
        await app.switch_mode("data")
        await pilot.pause(0.3)
        assert "DataScreen" in layouts and app.screen.size.width == 100


async def test_the_second_visit_to_a_mode_does_not_reparse_the_stylesheets(monkeypatch) -> None:
    """Textual only recorded the CSS generation of a screen already mounted when shown, so each
    mode's second visit reparsed every stylesheet and restyled the screen (0.1-0.3 s under load)."""
    from textual.css.stylesheet import Stylesheet

    app = LLMDeckApp(start_mode="data")
    reparsed: list[str] = []
    reparse = Stylesheet.reparse

    def counting(self) -> None:
        reparsed.append(app.current_mode)
        reparse(self)

    async with app.run_test(size=(80, 24)) as pilot:
        for mode in ("estimate", "runs", "data"):  # first visits: each loads its own CSS
            await app.switch_mode(mode)
            await pilot.pause(0.3)
        monkeypatch.setattr(Stylesheet, "reparse", counting)
        for mode in ("estimate", "runs", "data", "estimate"):
            await app.switch_mode(mode)
            await pilot.pause(0.3)
        assert reparsed == []
        assert app.screen.query_one("#est-form").outer_size.width == 32  # estimate.tcss: styled all along
        app.action_next_theme()  # a theme chosen while modes are hidden still reaches them
        await pilot.pause(0.3)
        await app.switch_mode("runs")
        await pilot.pause(0.3)
        assert app.screen._css_update_count == app._css_update_count and "runs" in reparsed
