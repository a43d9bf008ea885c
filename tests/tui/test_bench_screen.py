"""Bench mode: kept results in tables, starting a real run from the form, using a sweep row."""

from __future__ import annotations

import time
from pathlib import Path

from textual.widgets import DataTable, Input, Select

from engine.evaluate import results
from engine.runs import RunStore
from tests.engine.evaluate_helpers import PROSE, tiny_gguf
from tests.helpers.requirements import require_module
from tests.tui.pilot_wait import wait_until
from tui.app import LLMDeckApp

require_module("llama_cpp")


def kept_sweep(store: RunStore, gguf: Path) -> str:
    """A finished sweep run as the job leaves it: run folder, out/result.json, succeeded."""
    info = store.create("bench.sweep", {"model": str(gguf), "types": "Q8_0"}, name="sweep tiny")
    row = {"path": str(gguf), "bytes": gguf.stat().st_size, "n_params": 1, "bpw": 16.0, "ppl": 400.0, "ppl_delta": 0.0,
           "ppl_delta_pct": 0.0, "prompt_tps": 900.0, "gen_tps": 300.0, "baseline": True}
    result = {"source": str(gguf), "baseline": "F32", "baseline_from": "gguf", "ppl_file": str(PROSE), "ctx": 64,
              "prompt_len": 16, "gen_len": 4, "reps": 1,
              "rows": [row | {"qtype": "F32"}, row | {"qtype": "Q8_0", "bpw": 8.5, "ppl": 401.0, "ppl_delta": 1.0,
                                                      "ppl_delta_pct": 0.25, "baseline": False}]}
    record = results.make_record("bench.sweep", result, model=str(gguf), backend="llama.cpp", run_id=info.id)
    results.save(record, info.out_dir)
    store.update(info.id, status="succeeded", ended=time.time())
    return info.id


async def test_results_table_and_serve_and_chat() -> None:
    store = RunStore()
    run_id = kept_sweep(store, tiny_gguf())
    app = LLMDeckApp(start_mode="bench")
    async with app.run_test(size=(100, 30)) as pilot:
        listing = app.screen.query_one("#bench-list", DataTable)
        await wait_until(pilot, lambda: run_id in listing.rows and "F32" in str(listing.get_cell(run_id, "result")))
        assert str(listing.get_cell(run_id, "status")) == "succeeded"  # the word Runs uses
        assert "F32 400.00 · Q8_0 401.00" in str(listing.get_cell(run_id, "result"))
        detail = app.screen.query_one("#bench-detail", DataTable)
        await wait_until(pilot, lambda: detail.row_count == 2)
        assert str(detail.get_row_at(0)[0]) == "F32 (base)" and str(detail.get_row_at(1)[5]) == "+0.25"

        await pilot.press("v")
        await pilot.pause()
        assert f"llmdeck serve {tiny_gguf()}" in str(app.screen.query_one("#bench-note").render())

        detail.focus()
        detail.move_cursor(row=1)
        await pilot.press("c")
        await wait_until(pilot, lambda: app.current_mode == "chat")
        chat = app.screen
        assert (chat.loading or chat.spec).model == str(tiny_gguf())


async def test_form_starts_a_real_run_and_checks_input() -> None:
    app = LLMDeckApp(start_mode="bench")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        screen.query_one("#bench-model", Input).value = "/no/such/model.gguf"
        screen.start_run()
        await pilot.pause()
        assert not list(app.store.list())  # refused before starting anything

        screen.query_one("#bench-kind", Select).value = "eval.ppl"
        screen.query_one("#bench-model", Input).value = str(tiny_gguf())
        screen.query_one("#bench-file", Input).value = str(PROSE)
        await pilot.click("#bench-start")
        await wait_until(pilot, lambda: len(app.store.list()) == 1)
        run = app.store.list()[0]
        assert run.kind == "eval.ppl" and run.spec["file"] == str(PROSE)
        listing = screen.query_one("#bench-list", DataTable)
        await wait_until(pilot,
                         lambda: run.id in listing.rows and str(listing.get_cell(run.id, "result")).startswith("PPL "),
                         timeout=90)
        assert str(listing.get_cell(run.id, "status")) == "succeeded"


async def test_serve_command_quotes_a_path_with_spaces(tmp_path: Path) -> None:
    import shlex
    import shutil

    spaced = tmp_path / "my models" / "tiny q8.gguf"
    spaced.parent.mkdir()
    shutil.copy(tiny_gguf(), spaced)
    store = RunStore()
    run_id = kept_sweep(store, spaced)
    app = LLMDeckApp(start_mode="bench")
    async with app.run_test(size=(100, 30)) as pilot:
        listing = app.screen.query_one("#bench-list", DataTable)
        await wait_until(pilot, lambda: run_id in listing.rows)
        detail = app.screen.query_one("#bench-detail", DataTable)
        await wait_until(pilot, lambda: detail.row_count == 2)
        await pilot.press("v")
        await pilot.pause()
        assert shlex.split(app.clipboard) == ["llmdeck", "serve", str(spaced)]
