"""Convert mode: the verdict follows typing, ctrl+s starts a detached run, the finished list
shows its verification figures."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Input, Select, Static

from tests.engine.test_convert_tiny import make_llama
from tests.helpers.requirements import require_module
from tests.tui.pilot_wait import wait_until
from tui.app import LLMDeckApp
from tui.screens.convert import ConvertScreen


def verdict_text(screen) -> str:
    return str(screen.query_one("#conv-verdict", Static).render())


async def test_verdict_follows_typing(tmp_path: Path) -> None:
    app = LLMDeckApp(start_mode="convert")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ConvertScreen))
        screen = app.screen
        screen.query_one("#conv-input", Input).value = str(tmp_path / "nothing-here")
        await wait_until(pilot, lambda: "does not exist" in verdict_text(screen))
        assert screen.query_one("#conv-verdict").has_class("-bad")
        screen.query_one("#conv-action", Select).value = "quantize"
        await pilot.pause(0.1)
        assert screen.query_one("#conv-type", Select).value == "Q4_K_M"
        assert not screen.query_one("#conv-extra", Input).disabled  # imatrix
        await pilot.press("ctrl+s")  # refused: nothing starts
        await pilot.pause(0.2)
        assert app.store.list() == []


async def test_start_watch_and_finished_figures(tmp_path: Path) -> None:
    require_module("llama_cpp")
    make_llama(tmp_path / "m", tokenizer="bpe", n_kv_heads=2)
    out = tmp_path / "m.gguf"
    app = LLMDeckApp(start_mode="convert")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ConvertScreen))
        screen = app.screen
        screen.query_one("#conv-input", Input).value = str(tmp_path / "m")
        screen.query_one("#conv-output", Input).value = str(out)
        await wait_until(pilot, lambda: "ready" in verdict_text(screen))
        assert "LlamaForCausalLM -> GGUF llama" in verdict_text(screen)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: screen.current_run is not None, 5)
        run_id = screen.current_run
        await wait_until(pilot, lambda: not app.store.get(run_id).active, 120)
        assert app.store.get(run_id).status == "succeeded", app.store.log_tail(run_id)
        assert out.is_file()
        screen.action_show_tab("finished")
        table = screen.query_one("#conv-finished", DataTable)
        await wait_until(pilot, lambda: table.row_count == 1 and "top-1" in str(table.get_row_at(0)[4]), 10)
        assert table.get_row_at(0)[2] == "succeeded"
