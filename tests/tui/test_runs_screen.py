"""The Runs screen follows runs that other processes are progressing."""

from __future__ import annotations

import os
import subprocess
import sys

from textual.widgets import DataTable, Log, ProgressBar

from tests.tui.pilot_wait import wait_until
from tui.app import LLMDeckApp
from tui.screens.confirm import ConfirmModal
from tui.screens.runs import RunAttachScreen
from tui.widgets.run_view import RunView


def start_in_other_process(steps: int, delay: float) -> str:
    """Start a run from a separate `llmdeck` process, as a second terminal would."""
    out = subprocess.run(
        [sys.executable, "-m", "tui.cli", "runs", "selftest", "--steps", str(steps), "--delay", str(delay)],
        capture_output=True, text=True, check=True, env=os.environ.copy(),
    ).stdout
    return out.split()[2]


def cell(table: DataTable, row: str, column: str) -> str:
    return str(table.get_cell(row, column))


async def test_runs_screen_shows_live_progress_of_another_process():
    run_id = start_in_other_process(steps=12, delay=0.25)
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one("#runs-table", DataTable)
        await wait_until(pilot, lambda: run_id in table.rows)
        await wait_until(pilot, lambda: cell(table, run_id, "status") == "running" and "counting" in cell(table, run_id, "progress"))
        first = cell(table, run_id, "progress")
        await wait_until(pilot, lambda: cell(table, run_id, "progress") != first)
        await wait_until(pilot, lambda: cell(table, run_id, "status") == "succeeded", timeout=30)
        assert cell(table, run_id, "progress") == "counting 12/12 (100%)"
        view = app.screen.query_one(RunView)
        await wait_until(pilot, lambda: any("finished" in line for line in view.query_one(Log).lines))
        assert view.query_one(ProgressBar).percentage == 1.0


async def test_attach_replays_history_and_cancel_asks_first():
    run_id = start_in_other_process(steps=2000, delay=0.05)
    app = LLMDeckApp(start_mode="runs")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            table = app.screen.query_one("#runs-table", DataTable)
            await wait_until(pilot, lambda: run_id in table.rows and cell(table, run_id, "status") == "running")
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, RunAttachScreen))
            tail = app.screen.query_one(Log)
            await wait_until(pilot, lambda: any("counting to 2000" in line for line in tail.lines))
            await pilot.press("c")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            await pilot.press("n")  # declined: nothing happens
            await pilot.pause(0.3)
            assert app.store.get(run_id).status == "running"
            await pilot.press("c")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            await pilot.press("y")
            await wait_until(pilot, lambda: app.store.get(run_id).status == "cancelled", timeout=10)
            await wait_until(pilot, lambda: any("cancelled" in line for line in tail.lines))
            await pilot.press("escape")
            await wait_until(pilot, lambda: cell(table, run_id, "status") == "cancelled")
            # delete asks, then removes
            await pilot.press("d")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            await pilot.press("y")
            await wait_until(pilot, lambda: run_id not in table.rows)
            assert app.store.list() == []
    finally:
        if app.store.list() and app.store.get(run_id).active:
            app.store.cancel(run_id, force=True)


async def test_empty_runs_screen_explains_and_starts_a_selftest():
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        empty = app.screen.query_one("#runs-empty")
        await wait_until(pilot, lambda: "No runs yet" in str(empty.render()))
        await pilot.press("n")
        table = app.screen.query_one("#runs-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 1)
        run_id = app.screen.selected_run_id
        app.store.cancel(run_id, force=True)


async def test_a_damaged_run_and_a_bad_event_line_break_nothing():
    import json

    from engine.runs import RunStore
    from tests.helpers.waiting import wait_for

    store = RunStore()
    good = start_in_other_process(steps=2, delay=0.01)
    bad_events = start_in_other_process(steps=2, delay=0.01)
    broken = start_in_other_process(steps=2, delay=0.01)
    wait_for(lambda: all(store.get(r).status == "succeeded" for r in (good, bad_events, broken)), timeout=60)
    with open(store.root / bad_events / "events.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"type": "progress", "phase": "x", "done": "half", "total": 2, "at": 1.0}) + "\n")
        handle.write(json.dumps({"type": "metric", "step": "7", "values": {}, "at": 1.0}) + "\n")
    run_json = store.root / broken / "run.json"
    run_json.write_bytes(run_json.read_bytes()[:30])
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(100, 24)) as pilot:
        table = app.screen.query_one("#runs-table", DataTable)
        await wait_until(pilot, lambda: {good, bad_events, broken} <= set(table.rows))
        assert cell(table, broken, "status") == "damaged"
        assert cell(table, bad_events, "progress") == cell(table, good, "progress") == "counting 2/2 (100%)"
        table.move_cursor(row=table.get_row_index(bad_events))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunAttachScreen))
        await wait_until(pilot, lambda: any("finished" in line for line in app.screen.query_one(Log).lines))
        await pilot.press("escape")
        table = app.screen.query_one("#runs-table", DataTable)
        table.move_cursor(row=table.get_row_index(broken))
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_until(pilot, lambda: broken not in table.rows)
        assert not (store.root / broken).exists()
