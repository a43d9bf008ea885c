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


def recorded(store, kind: str, events: list, status: str, *, name: str = "", **changes) -> str:
    """A run folder as a worker leaves it: run.json and events.jsonl, written straight."""
    import json
    import time

    info = store.create(kind, {}, name=name or kind)
    info.events_path.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in events))
    store.update(info.id, status=status, started=changes.pop("started", time.time() - 30),
                 ended=changes.pop("ended", time.time()), **changes)
    return info.id


async def test_a_run_started_while_the_list_is_open_lands_on_top():
    first = start_in_other_process(steps=2, delay=0.01)
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one("#runs-table", DataTable)
        await wait_until(pilot, lambda: first in table.rows)
        await pilot.press("n")  # a self-test run, started now
        await wait_until(pilot, lambda: table.row_count == 2)
        newest = next(r.id for r in app.store.list() if r.id != first)
        assert [row.key.value for row in table.ordered_rows] == [newest, first]
        assert app.screen.selected_run_id == first  # the cursor stays on the row it was on
        app.store.cancel(newest, force=True)


async def test_a_failed_run_shows_where_it_stopped_not_a_full_bar():
    from engine.events import Failed, Progress
    from engine.runs import RunStore

    store = RunStore()
    events = [Progress(phase="write", done=236, total=236, unit="tensors"), Failed(message="verification failed")]
    run_id = recorded(store, "convert.quantize", events, "failed", exit_reason="verification failed")
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one("#runs-table", DataTable)
        await wait_until(pilot, lambda: run_id in table.rows)
        assert cell(table, run_id, "progress") == "stopped at write 236/236 tensors"
        view = app.screen.query_one(RunView)
        text = view.query_one("#run-progress-text")
        await wait_until(pilot, lambda: "stopped at write 236/236" in str(text.render()))
        assert not view.query_one(ProgressBar).display


async def test_convert_progress_reads_as_a_sentence():
    from engine.events import Metric, Progress
    from engine.runs import RunStore

    store = RunStore()
    gib = 1024**3
    events = [Metric(step=1, values={"tensors_done": 120, "tensors_total": 291, "bytes_done": 3.1 * gib,
                                     "bytes_total": 7 * gib, "bytes_per_s": 210 * 1024**2, "eta_s": 19}),
              Progress(phase="write", done=120, total=291, unit="tensors")]
    run_id = recorded(store, "convert.hf-to-gguf", events, "running", pid=os.getpid(), ended=None)
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.screen.query_one(RunView)
        await wait_until(pilot, lambda: view.run_id == run_id and view.query_one(Log).lines)
        text = view.query_one("#run-progress-text")
        await wait_until(pilot, lambda: "write 120/291" in str(text.render()))
        assert str(text.render()) == "write 120/291 tensors · 3.1/7.0 GiB · 210 MiB/s · ETA 19s"
        shown = "\n".join(view.query_one(Log).lines) + str(view.query_one("#run-metrics").render())
        assert "tensors_done" not in shown and "bytes_done" not in shown


async def test_a_resumed_run_counts_every_segment():
    from engine.runs import RunStore

    store = RunStore()
    run_id = start_in_other_process(steps=2, delay=0.01)
    from tests.helpers.waiting import wait_for

    wait_for(lambda: store.get(run_id).status == "succeeded", timeout=60)
    store.update(run_id, started=1000.0, ended=1000.0 + 600)  # a first stretch of ten minutes
    info = store.update(run_id, **store.get(run_id).relaunch_changes())
    store.launch(info)  # relaunched: the worker counts again
    wait_for(lambda: store.get(run_id).status == "succeeded", timeout=60)
    app = LLMDeckApp(start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one("#runs-table", DataTable)
        await wait_until(pilot, lambda: run_id in table.rows)
        assert cell(table, run_id, "elapsed").startswith("10m")


async def test_the_stop_dialog_buttons_say_what_they_do():
    run_id = start_in_other_process(steps=2000, delay=0.05)
    app = LLMDeckApp(start_mode="runs")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            table = app.screen.query_one("#runs-table", DataTable)
            await wait_until(pilot, lambda: run_id in table.rows and cell(table, run_id, "status") == "running")
            await pilot.press("c")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            labels = [str(b.label) for b in app.screen.query("Button")]
            assert labels == ["Keep running", "Stop run"]
            await pilot.press("escape")
    finally:
        app.store.cancel(run_id, force=True)
