"""One handler for failed workers: the user gets the one-line reason, the log gets the
traceback, and the screen that started the work is not left waiting."""

from __future__ import annotations

from textual.widgets import Input, Static

from engine import paths
from tests.tui.pilot_wait import wait_until
from tests.tui.test_chat_screen import ScriptedBackend, chat_app
from tui.app import LLMDeckApp
from tui.screens.convert import ConvertScreen


def notes(app: LLMDeckApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_a_check_that_breaks_is_reported_once_and_logged(tmp_path, monkeypatch):
    import engine.convert.preflight as preflight

    def broken(spec, **options):
        raise RuntimeError("the checker broke\nsecond line")

    monkeypatch.setattr(preflight, "check", broken)
    app = LLMDeckApp(start_mode="convert")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ConvertScreen))
        app.screen.query_one("#conv-input", Input).value = str(tmp_path / "model")
        await wait_until(pilot, lambda: any("the checker broke" in n for n in notes(app)), timeout=10)
        [note] = [n for n in notes(app) if "the checker broke" in n]
        assert note.splitlines()[0] == "pre-flight check: RuntimeError: the checker broke"
        verdict = str(app.screen.query_one("#conv-verdict", Static).render())
        assert "pre-flight check failed" in verdict
        log = (paths.data_dir() / "tui.log").read_text()
        assert "Traceback" in log and "in broken" in log and "second line" in log
        assert app.is_running


class Breaking(ScriptedBackend):
    """Says one word, then fails in a way no backend expects."""

    def _stream(self, messages, params, cancel, clock):
        yield from super()._stream(messages, params, cancel, clock)
        raise RuntimeError("kaboom")


async def test_an_answer_that_breaks_ends_and_is_reported():
    backend = Breaking(["partial"])
    app = chat_app(backend)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await pilot.press("x", "enter")
        await wait_until(pilot, lambda: any("kaboom" in n for n in notes(app)), timeout=10)
        await wait_until(pilot, lambda: not screen.generating)
        answer = screen.turns()[-1]
        assert answer.role == "assistant" and answer.content == "partial" and answer.has_class("-error")
        assert [n for n in notes(app) if "kaboom" in n][0].startswith("generating an answer: RuntimeError: kaboom")
        await pilot.press(*"again", "enter")  # the screen is not stuck in "generating"
        await wait_until(pilot, lambda: len([t for t in screen.turns() if t.role == "user"]) == 2)
