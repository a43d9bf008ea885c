"""The job contract: events, throttling, cancellation, failures without tracebacks."""

from __future__ import annotations

import threading
import time

from engine.events import (
    Cancelled,
    Failed,
    Finished,
    Log,
    Metric,
    Progress,
    event_from_dict,
)
from engine.jobs import JobContext, JobError, execute


def test_events_round_trip_through_json():
    events = [
        Progress(phase="tensors", done=3, total=10, unit="tensors"),
        Metric(step=7, values={"loss": 1.25}),
        Log(text="hello", level="warning"),
        Finished(summary={"path": "/x"}),
        Failed(message="bad", detail="tb"),
        Cancelled(reason="asked"),
    ]
    assert [event_from_dict(e.to_dict()) for e in events] == events
    assert Progress(done=5, total=10).fraction == 0.5
    assert Progress(done=5).fraction is None


def test_progress_is_throttled_but_first_and_last_always_emitted():
    got: list = []
    ctx = JobContext(got.append, min_interval=10.0)
    for i in range(1, 1001):
        ctx.progress(i, 1000, "loop")
    dones = [e.done for e in got]
    assert dones == [1.0, 1000.0]
    ctx.progress(1, None, "other")  # a new phase always goes out
    assert got[-1].phase == "other"
    ctx.progress(5, None, "other")  # suppressed ...
    assert got[-1].done == 1.0
    ctx.flush()  # ... until the job ends
    assert got[-1] == Progress(phase="other", done=5.0, at=got[-1].at)
    ctx.flush()
    assert len(got) == 4


def test_execute_flushes_the_last_progress_before_the_end():
    got: list = []

    def stops_midway(spec, ctx):
        for i in range(1, 8):
            ctx.progress(i, 10, "work")
        raise JobError("stopped at 7")

    execute(stops_midway, {}, JobContext(got.append, min_interval=10.0))
    assert [e.done for e in got if isinstance(e, Progress)] == [1.0, 7.0]
    assert isinstance(got[-1], Failed)


def test_execute_turns_outcomes_into_one_terminal_event():
    got: list = []

    def ok(spec, ctx):
        ctx.metric(1, loss=2.0)
        return {"answer": spec["x"] * 2}

    assert execute(ok, {"x": 21}, JobContext(got.append)) == Finished(summary={"answer": 42}, at=got[-1].at)

    def user_error(spec, ctx):
        raise JobError("file foo.gguf is truncated; re-download it")

    event = execute(user_error, {}, JobContext(got.append))
    assert isinstance(event, Failed) and event.message == "file foo.gguf is truncated; re-download it"

    def bug(spec, ctx):
        return 1 / 0

    event = execute(bug, {}, JobContext(got.append))
    assert isinstance(event, Failed)
    assert event.message.startswith("ZeroDivisionError") and "Traceback" in event.detail


def test_cancel_wakes_a_waiting_job_promptly():
    got: list = []
    seen = threading.Event()

    def sleeper(spec, ctx):
        while ctx.wait(30):
            pass
        seen.set()
        ctx.raise_if_cancelled()

    ctx = JobContext(got.append)
    results: list = []
    worker = threading.Thread(target=lambda: results.append(execute(sleeper, {}, ctx)), daemon=True)
    worker.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    ctx.cancel()
    worker.join(5)
    result = results[0]
    assert time.monotonic() - t0 < 1.0
    assert seen.is_set() and isinstance(result, Cancelled)
