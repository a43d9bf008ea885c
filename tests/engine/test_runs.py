"""Detached runs, for real: separate worker processes, signals, files on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from engine.events import Finished, Log, Metric, Progress
from engine.runs import RunError, RunStore
from tests.helpers.waiting import wait_for


def status(store: RunStore, run_id: str) -> str:
    return store.get(run_id).status


def test_run_finishes_and_history_replays_from_any_offset():
    store = RunStore()
    info = store.start("selftest", {"steps": 5, "delay": 0.01}, name="five")
    wait_for(lambda: status(store, info.id) == "succeeded")
    # run.json gets the final status just before the last event line is written: wait for it
    wait_for(lambda: isinstance(last_event(store, info.id), Finished))
    events, end = store.read_events(info.id)
    assert [e.step for e in events if isinstance(e, Metric)] == [1, 2, 3, 4, 5]
    assert isinstance(events[-1], Finished) and events[-1].summary == {"steps": 5}
    # Continuing from the middle gives exactly the rest, and nothing after the end.
    half = len(events) // 2
    tail, tail_end = store.read_events(info.id, _offset_after(store, info.id, half))
    assert events[:half] + tail == events and tail_end == end
    assert store.read_events(info.id, end) == ([], end)
    assert list(store.follow(info.id)) == events
    assert store.get("five").id == info.id  # by name
    assert store.last_progress(info.id) == [e for e in events if isinstance(e, Progress)][-1]


def last_event(store: RunStore, run_id: str) -> object:
    events, _ = store.read_events(run_id)
    return events[-1] if events else None


def _offset_after(store: RunStore, run_id: str, n_lines: int) -> int:
    data = (store.root / run_id / "events.jsonl").read_bytes()
    offset = 0
    for _ in range(n_lines):
        offset = data.index(b"\n", offset) + 1
    return offset


def test_run_survives_its_parent_being_killed(tmp_path):
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from engine.runs import RunStore;"
            "info = RunStore().start('selftest', {'steps': 8, 'delay': 0.25});"
            "print(info.id, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    run_id = parent.stdout.readline().strip()
    assert run_id
    parent.kill()
    parent.wait(10)
    store = RunStore()
    assert store.get(run_id).status in ("starting", "running")
    wait_for(lambda: status(store, run_id) == "succeeded", timeout=60)


def test_worker_ignores_sighup_and_sigkill_is_reported_lost():
    store = RunStore()
    info = store.start("selftest", {"steps": 1000, "delay": 0.05})
    wait_for(lambda: store.get(info.id).status == "running" and store.last_progress(info.id) is not None)
    pid = store.get(info.id).pid
    os.kill(pid, signal.SIGHUP)  # the terminal closing
    time.sleep(0.3)
    assert status(store, info.id) == "running"
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: status(store, info.id) == "lost", timeout=10)
    assert "ended without recording a result" in store.get(info.id).exit_reason


def test_cancel_ends_cancelled_within_a_second_and_job_saw_the_flag():
    store = RunStore()
    info = store.start("selftest", {"steps": 1000, "delay": 0.05})
    wait_for(lambda: store.last_progress(info.id) is not None)
    t0 = time.monotonic()
    store.cancel(info.id)
    wait_for(lambda: status(store, info.id) == "cancelled", timeout=5, step=0.02)
    assert time.monotonic() - t0 < 1.0
    events, _ = store.read_events(info.id)
    assert any(isinstance(e, Log) and e.text.startswith("cancel seen at step") for e in events)
    with pytest.raises(RunError, match="only a running run can be cancelled"):
        store.cancel(info.id)


def test_failed_run_keeps_its_log_and_reason():
    store = RunStore()
    info = store.start("selftest", {"steps": 5, "delay": 0.01, "fail_at": 3})
    wait_for(lambda: status(store, info.id) == "failed")
    final = store.get(info.id)
    assert final.exit_reason == "selftest asked to fail at step 3"
    assert "FAILED: selftest asked to fail at step 3" in "\n".join(store.log_tail(info.id))


def test_delete_refuses_active_runs_and_removes_finished_ones():
    store = RunStore()
    info = store.start("selftest", {"steps": 1000, "delay": 0.05})
    with pytest.raises(RunError, match="cancel it before deleting"):
        store.delete(info.id)
    store.cancel(info.id, force=True)
    assert status(store, info.id) == "cancelled"
    store.delete(info.id)
    assert not info.dir.exists()
    with pytest.raises(RunError, match="no run matching"):
        store.get(info.id)


def test_unknown_kind_is_refused_before_anything_is_written():
    store = RunStore()
    from engine.kinds import UnknownKind

    with pytest.raises(UnknownKind, match="unknown run kind 'nope'"):
        store.start("nope", {})
    assert store.list() == []


def test_ids_drawn_in_the_same_second_never_collide(tmp_path, monkeypatch):
    """Run ids end in 4 random hex digits after the second: a second's worth of runs can draw one
    twice. A taken id is drawn again, so every create gets its own folder."""
    from types import SimpleNamespace

    store = RunStore(tmp_path / "runs")
    draws = iter(["abcd", "abcd", "abcd", "ef01"])
    monkeypatch.setattr("engine.runs.secrets", SimpleNamespace(token_hex=lambda n: next(draws)))
    monkeypatch.setattr("engine.runs.time.strftime", lambda fmt: "20261202-120000")
    first, second = store.create("selftest", {}), store.create("selftest", {})
    assert first.id.endswith("-abcd") and second.id.endswith("-ef01")
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {first.id, second.id}
