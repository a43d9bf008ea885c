"""One damaged file of one run never breaks the views of every run (real runs, real CLI)."""

from __future__ import annotations

import json

import pytest

from engine.events import Metric, Progress, event_from_dict
from engine.runs import RunStore
from tests.engine.test_cli import llmdeck
from tests.helpers.waiting import wait_for


def finished_run(store: RunStore, steps: int = 3) -> str:
    info = store.start("selftest", {"steps": steps, "delay": 0.01}, name="ok")
    wait_for(lambda: store.get(info.id).status == "succeeded", timeout=60, what="selftest finished")
    return info.id


def append_line(store: RunStore, run_id: str, line: str) -> None:
    with open(store.root / run_id / "events.jsonl", "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"type": "progress", "phase": "x", "done": "half", "total": 2}, "done"),
        ({"type": "progress", "done": 1, "total": "lots"}, "total"),
        ({"type": "metric", "step": "7", "values": {"loss": 1.0}}, "step"),
        ({"type": "metric", "step": 7, "values": {"loss": "low"}}, "values"),
        ({"type": "metric", "step": True}, "step"),
        ({"type": "log", "text": ["a"]}, "text"),
        ({"type": "finished", "summary": [1, 2]}, "summary"),
        ({"type": "log", "text": "x", "at": "noon"}, "at"),
    ],
)
def test_events_are_checked_against_their_field_types(data: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        event_from_dict(data)


def test_right_shaped_events_still_load() -> None:
    assert event_from_dict({"type": "progress", "done": 1, "total": None, "phase": "p", "at": 5}) == Progress(
        done=1, total=None, phase="p", at=5
    )
    metric = {"type": "metric", "step": 3, "values": {"loss": 2}, "extra": "ignored", "at": 1.5}
    assert event_from_dict(metric) == Metric(step=3, values={"loss": 2}, at=1.5)
    for not_an_object in ([1, 2], "text", 3, None):
        with pytest.raises(ValueError):
            event_from_dict(not_an_object)


def test_a_wrong_shaped_line_in_one_run_breaks_no_view() -> None:
    store = RunStore()
    good = finished_run(store)
    bad = finished_run(store)
    append_line(store, bad, json.dumps({"type": "progress", "phase": "x", "done": "half", "total": 2, "at": 1.0}))
    append_line(store, bad, json.dumps({"type": "metric", "step": "7", "values": {"loss": 1.0}, "at": 1.0}))
    append_line(store, bad, json.dumps([1, 2, 3]))
    append_line(store, bad, "{not json")

    listed = llmdeck("runs", "list")
    assert listed.returncode == 0, listed.stderr
    assert good in listed.stdout and bad in listed.stdout and "Traceback" not in listed.stderr
    rows = {r["id"]: r for r in json.loads(llmdeck("runs", "list", "--json").stdout)}
    assert rows[bad]["progress"] == rows[good]["progress"] == "counting 3/3 (100%)"

    followed = llmdeck("runs", "follow", bad)
    assert followed.returncode == 0, followed.stderr
    assert f"run {bad}: succeeded" in followed.stdout
    assert "skipped 4 line(s) that are not valid events" in followed.stderr

    events, _ = store.read_events(bad)
    assert [e.step for e in events if isinstance(e, Metric)] == [1, 2, 3]
    assert store.bad_event_lines(bad) == 4


def test_truncated_run_json_is_listed_damaged_and_can_be_deleted() -> None:
    store = RunStore()
    good = finished_run(store)
    broken = finished_run(store)
    run_json = store.root / broken / "run.json"
    run_json.write_bytes(run_json.read_bytes()[:40])

    listed = llmdeck("runs", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if row.startswith(broken))
    assert "damaged" in line and "run.json is unreadable" in line
    assert good in listed.stdout
    shown = llmdeck("runs", "show", broken)
    assert shown.returncode == 0 and "status: damaged" in shown.stdout

    deleted = llmdeck("runs", "delete", broken)
    assert deleted.returncode == 0, deleted.stderr
    assert not (store.root / broken).exists() and (store.root / good).exists()


def test_run_json_with_wrong_types_is_damaged_not_a_crash() -> None:
    store = RunStore()
    run_id = finished_run(store)
    run_json = store.root / run_id / "run.json"
    data = json.loads(run_json.read_text())
    data["created"] = "yesterday"
    run_json.write_text(json.dumps(data))
    (info,) = store.list()
    assert info.status == "damaged" and "created" in info.exit_reason
