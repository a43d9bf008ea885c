"""The one run watcher: one reader for every screen, nothing read for hidden screens, cheap when
nothing changed, and follows that resume where they stopped."""

from __future__ import annotations

import json
import time

from textual.widgets import DataTable

from engine.events import Finished, Log, Progress
from engine.runs import RunStore
from tests.tui.pilot_wait import wait_until
from tui.app import LLMDeckApp
from tui.run_watcher import RunScanner, RunWatcher
from tui.widgets.run_view import RunView


def finished_run(store: RunStore, name: str, events: int = 3) -> str:
    info = store.create("selftest", {"steps": events}, name=name)
    lines = [Progress(phase="counting", done=i, total=events) for i in range(1, events + 1)]
    info.events_path.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in [*lines, Finished(summary={})]))
    store.update(info.id, status="succeeded", started=time.time() - 5, ended=time.time())
    return info.id


def count_parses(monkeypatch) -> list[str]:
    """Every run.json the store parses, by run folder name."""
    parsed: list[str] = []
    original = RunStore._read

    def counting(self, run_dir):
        parsed.append(run_dir.name)
        return original(self, run_dir)

    monkeypatch.setattr(RunStore, "_read", counting)
    return parsed


def test_scanner_reparses_only_what_changed(monkeypatch):
    store = RunStore()
    ids = [finished_run(store, f"run {i}") for i in range(5)]
    parsed = count_parses(monkeypatch)
    scanner = RunScanner(store)
    first = scanner.read([], want_runs=True).snapshot
    assert first is not None and [r.id for r in first.runs] == ids[::-1]  # newest first
    assert first.progress[ids[0]].done == 3
    assert sorted(parsed) == sorted(ids)
    parsed.clear()
    assert scanner.read([], want_runs=True).snapshot is None  # nothing changed: nothing to send
    assert parsed == []
    store.update(ids[2], name="renamed")
    parsed.clear()  # update() itself reads run.json
    changed = scanner.read([], want_runs=True).snapshot
    assert parsed == [ids[2]] and changed.get(ids[2]).name == "renamed"
    store.delete(ids[0])
    parsed.clear()
    after = scanner.read([], want_runs=True).snapshot
    assert [r.id for r in after.runs] == ids[1:][::-1] and parsed == []


async def test_hidden_screens_read_nothing_and_catch_up_when_shown(monkeypatch):
    store = RunStore()
    first = finished_run(store, "first")
    app = LLMDeckApp(start_mode="runs", store=store)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one("#runs-table", DataTable)
        await wait_until(pilot, lambda: first in table.rows)
        for mode in ("train", "serve", "bench", "convert"):  # every screen that shows runs is mounted
            await app.switch_mode(mode)
            await pilot.pause(0.3)
        await app.switch_mode("monitor")
        await pilot.pause(0.3)
        parsed = count_parses(monkeypatch)
        reads: list[int] = []
        original = app.run_watcher.scanner.read
        monkeypatch.setattr(app.run_watcher.scanner, "read", lambda *a: reads.append(1) or original(*a))
        second = finished_run(store, "second")  # made while nobody looks
        parsed.clear()
        await pilot.pause(1.5)  # three ticks on Monitor
        assert reads == [] and parsed == []
        await app.switch_mode("runs")
        await wait_until(pilot, lambda: second in table.rows, timeout=5)
        assert reads


async def test_one_read_serves_every_follower_and_a_refollow_replays():
    store = RunStore()
    info = store.create("selftest", {"steps": 2}, name="live")
    app = LLMDeckApp(start_mode="runs", store=store)
    got: list[RunWatcher.EventsRead] = []
    async with app.run_test(size=(100, 30), message_hook=lambda m: isinstance(m, RunWatcher.EventsRead)
                            and got.append(m)) as pilot:
        view = app.screen.query_one(RunView)
        await wait_until(pilot, lambda: view.run_id == info.id)
        with info.events_path.open("a") as handle:
            handle.write(json.dumps(Log(text="hello").to_dict()) + "\n")
        await wait_until(pilot, lambda: any("hello" in line for line in view.query_one("#run-tail").lines))
        assert got[-1].first and [e.text for e in got[-1].events] == ["hello"]
        with info.events_path.open("a") as handle:
            handle.write(json.dumps(Log(text="again").to_dict()) + "\n")
        await wait_until(pilot, lambda: len(got) == 2)
        assert not got[-1].first and [e.text for e in got[-1].events] == ["again"]
        view.show_log = True  # follows the run again: the history comes again, from the start
        view.show_log = False
        await wait_until(pilot, lambda: len(got) == 3)
        assert got[-1].first and [e.text for e in got[-1].events] == ["hello", "again"]
        lines = view.query_one("#run-tail").lines
        assert sum("hello" in line for line in lines) == 1 and sum("again" in line for line in lines) == 1


async def test_nobody_looking_stops_the_ticks_until_a_screen_that_shows_runs_is_back(monkeypatch):
    """bench/idle.py: on Monitor the watcher woke twice a second to find nobody looking (a tenth
    of the idle app's CPU). It stops ticking then, and a screen shown again starts it."""
    store = RunStore()
    first = finished_run(store, "first")
    app = LLMDeckApp(start_mode="runs", store=store)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one("#runs-table", DataTable)
        await wait_until(pilot, lambda: first in table.rows)
        await app.switch_mode("monitor")
        await pilot.pause(0.6)
        ticks: list[int] = []
        original = app.run_watcher._prune  # every tick starts there
        monkeypatch.setattr(app.run_watcher, "_prune", lambda: ticks.append(1) or original())
        await pilot.pause(1.6)  # three intervals on Monitor
        assert ticks == []
        second = finished_run(store, "second")
        await app.switch_mode("runs")
        await wait_until(pilot, lambda: second in table.rows, timeout=5)
        third = finished_run(store, "third")  # found by the ticks, with no poke
        await wait_until(pilot, lambda: third in table.rows, timeout=5)
