"""The app shell through Textual's Pilot: modes, help, themes, quitting, bad settings."""

from __future__ import annotations

from textual.widgets import Input, TextArea

from engine import paths
from engine import settings as settings_mod
from tests.tui.pilot_wait import wait_until
from tui.app import LLMDeckApp
from tui.modes import MODES
from tui.screens.confirm import ConfirmModal
from tui.screens.help import HelpScreen
from tui.widgets.mode_bar import ModeBar


async def test_number_keys_switch_every_mode():
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        for number, mode in enumerate(MODES, start=1):
            await pilot.press(str(number))
            await pilot.pause()
            assert app.current_mode == mode.key
            assert app.screen.query_one(ModeBar).current == mode.key
            # Issue 17 item 7: no mode puts the focus in a text field the user did not choose
            # (it would take the next digit as text).
            assert not isinstance(app.focused, (Input, TextArea)), f"{mode.key}: {app.focused}"


async def test_command_palette_switches_mode():
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Mode: Estimate")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert app.current_mode == "estimate"


async def test_help_lists_the_keys_of_the_current_screen():
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        keys = app.screen.keys
        actions = {key: action for key, action, _ in keys}
        assert actions["c"] == "stop run" and actions["d"] == "delete run"
        assert actions["q"] == "quit" and actions["?"] == "help"
        assert keys[0][2] == "screen"  # the screen's own keys come first
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_theme_switch_is_remembered_across_restarts():
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.theme == "llmdeck-dark"
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert app.theme == "llmdeck-light"
    assert settings_mod.load()[0].ui.theme == "llmdeck-light"
    again = LLMDeckApp(start_mode="runs")
    async with again.run_test(size=(80, 24)) as pilot:
        assert again.theme == "llmdeck-light"
        await pilot.press("ctrl+t")
        await pilot.pause()
    assert settings_mod.load()[0].ui.theme == "llmdeck-contrast"


async def test_corrupt_settings_are_reported_not_fatal():
    path = paths.settings_file()
    path.parent.mkdir(parents=True)
    path.write_text("this is [not toml")
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any("not valid TOML" in m and "using defaults" in m for m in messages)
        assert app.current_mode == "runs"


async def test_unwritable_data_dir_is_reported(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("LLMDECK_HOME", str(blocker / "home"))
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        messages = [n.message for n in app._notifications]
        assert any("cannot write to" in m for m in messages)


async def test_quit_with_active_run_says_it_keeps_running():
    app = LLMDeckApp(start_mode="runs")
    run = app.store.start("selftest", {"steps": 1000, "delay": 0.05}, name="long-one")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("q")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmModal)
            assert "keep running in the background" in app.screen.body and "long-one" in app.screen.body
            assert not app._exit
            await pilot.press("y")
            await pilot.pause()
            assert app._exit
        assert app.store.get(run.id).status == "running"
    finally:
        app.store.cancel(run.id, force=True)


async def test_quit_without_runs_exits_at_once():
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert app._exit and not isinstance(app.screen, ConfirmModal)


def running_timers(screen) -> list[str]:
    return [f"{type(node).__name__}:{timer.name}" for node in (screen, *screen.walk_children())
            for timer in node._timers if timer._active.is_set()]


async def test_hidden_modes_pause_their_timers_until_shown_again():
    app = LLMDeckApp(start_mode="data")
    async with app.run_test(size=(80, 24)) as pilot:
        data = app.screen
        data.query_one("#data-file").focus()  # the user chose the dataset field: its cursor blinks
        await pilot.pause()
        blinking = running_timers(data)
        assert blinking
        await app.switch_mode("runs")  # no run selected: an indeterminate progress bar animates
        await pilot.pause()
        runs = app.screen
        assert running_timers(runs)
        await app.switch_mode("monitor")
        await pilot.pause(0.3)
        assert running_timers(data) == [] and running_timers(runs) == []
        await app.switch_mode("data")
        await pilot.pause()
        assert running_timers(data) == blinking


async def test_a_mode_shown_again_has_the_theme_chosen_while_it_was_hidden():
    """A mode screen shown again skips Textual's second restyle (tui/screens/base.py), so a
    theme chosen while it was hidden must still reach it."""
    app = LLMDeckApp(start_mode="monitor")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        monitor = app.screen
        await app.switch_mode("runs")
        await pilot.pause(0.3)
        dark = monitor.styles.background
        app.theme = "llmdeck-light"
        await pilot.pause(0.3)
        await app.switch_mode("monitor")
        await pilot.pause(0.3)
        assert monitor.styles.background != dark
        await app.switch_mode("runs")
        await pilot.pause(0.3)
        assert app.screen.styles.background == monitor.styles.background  # the one seen when switched: too
async def test_palette_screenshot_goes_into_the_data_folder_and_says_where(tmp_path, monkeypatch):
    """Issue 17 item 8: on a headless box (no ~/Downloads) the palette's Screenshot failed."""
    monkeypatch.setenv("HOME", str(tmp_path / "bare-home"))  # no Downloads folder there
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Screenshot")
        await pilot.pause(0.3)
        await pilot.press("enter")
        folder = paths.data_dir() / "screenshots"
        await wait_until(pilot, lambda: list(folder.glob("*.svg")), timeout=20, what="the screenshot file")
        [shot] = folder.glob("*.svg")
        await wait_until(pilot, lambda: any(str(folder) in n.message for n in app._notifications), timeout=10,
                         what="a notice naming the folder")
        assert "<svg" in shot.read_text()


async def test_help_names_keys_as_the_footer_does():
    """Issue 17 item 8: help showed `Left_square_bracket` for `[`."""
    app = LLMDeckApp(start_mode="train")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        keys = [key for key, _, _ in app.screen.keys]
        assert "[" in keys and "]" in keys and not [k for k in keys if "square" in k.lower()]


async def test_start_up_and_first_visits_parse_the_stylesheets_once(monkeypatch):
    """bench/startup.py: Textual re-parsed every stylesheet three times before the first frame (the
    theme set after `App.__init__`, the first screen seen as out of date, its own file read as it
    mounted) and three times on each mode's first visit, where one is enough. Styled the same, from
    the chosen theme."""
    from textual.color import Color
    from textual.css.stylesheet import Stylesheet

    import themes

    reparsed = []
    original = Stylesheet.reparse
    monkeypatch.setattr(Stylesheet, "reparse", lambda sheet: (reparsed.append(1), original(sheet))[1])
    settings = settings_mod.Settings()
    settings.ui.theme = "llmdeck-light"
    app = LLMDeckApp(settings=settings, start_mode="monitor")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert app.theme == "llmdeck-light" and app.has_class("-light-mode", "-theme-llmdeck-light")
        assert not app.has_class("-dark-mode")
        assert app.screen.styles.background == Color.parse(themes.LIGHT.background)
        # once, for the first screen's own file read as it mounts: the pass that also styles the
        # widgets first seen there (test_theme_contrast.py::test_each_mode_opened_first_is_styled_as_when_switched_to)
        assert reparsed == [1]
        reparsed.clear()
        await app.switch_mode("runs")
        await pilot.pause(0.2)
        assert app.screen.styles.background == Color.parse(themes.LIGHT.background)
        assert reparsed == [1]  # for its own stylesheet, read as it mounts
        reparsed.clear()
        app.theme = "llmdeck-dark"  # a switch still re-parses, and reaches every screen
        await pilot.pause(0.2)
        assert reparsed and app.screen.styles.background == Color.parse(themes.DARK.background)
        assert app.has_class("-dark-mode", "-theme-llmdeck-dark") and not app.has_class("-theme-llmdeck-light")


async def test_a_theme_given_for_one_session_is_not_saved_but_a_switch_is():
    app = LLMDeckApp(start_mode="runs", options={"theme": "llmdeck-contrast"})
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.theme == "llmdeck-contrast"
        await pilot.pause(0.2)
    assert not paths.settings_file().exists() or settings_mod.load()[0].ui.theme == "llmdeck-dark"
    again = LLMDeckApp(start_mode="runs", options={"theme": "llmdeck-contrast"})
    async with again.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert again.theme == "llmdeck-dark"
        await pilot.press("ctrl+t")
        await pilot.pause()
    assert settings_mod.load()[0].ui.theme == "llmdeck-light"


async def test_an_unknown_theme_is_reported_and_the_default_used():
    settings = settings_mod.Settings()
    settings.ui.theme = "no-such-theme"
    app = LLMDeckApp(settings=settings, start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert app.theme == "llmdeck-dark"
        assert any("unknown theme 'no-such-theme'" in str(n.message) for n in app._notifications)


async def test_a_mode_screen_built_is_kept_out_of_full_collections():
    """bench/idle.py: after a tour of the modes, one full collection traversed every screen and
    module they brought (0.2 s of an idle half-minute). A built mode screen is frozen (gc.freeze),
    as start-up freezes the modules it imported."""
    import gc

    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        gc.unfreeze()  # what start-up or another test froze: back in view
        await app.switch_mode("estimate")
        await pilot.pause(0.2)
        estimate = app.mode_screens["estimate"]
        assert gc.get_freeze_count() > 0 and not any(o is estimate for o in gc.get_objects())
