"""GPU pids -> llmdeck runs (real RunStore on disk), and stall detection."""

from __future__ import annotations

import json
import os
import time

import psutil

from engine.events import Progress
from engine.monitor.jobs_link import RunLinker, StallDetector
from engine.monitor.sample import GpuSample, MonitorSample, ProcessSample, RunLabel
from engine.runs import RunStore

GB = 1_000_000_000


def _running_run(store: RunStore, name: str = "qwen-lora") -> str:
    """A run whose worker pid is this test process (alive, so the store keeps it running)."""
    info = store.create("train", {}, name=name)
    store.update(info.id, status="running", pid=os.getpid(), pid_started=psutil.Process().create_time(), started=time.time())
    with open(info.events_path, "a") as fh:
        fh.write(json.dumps(Progress(phase="train", done=1200, total=3000, unit="steps").to_dict()) + "\n")
    return info.id


def test_pid_of_a_run_is_labelled_with_name_kind_step() -> None:
    store = RunStore()
    run_id = _running_run(store)
    linker = RunLinker(store)
    procs = linker.label((ProcessSample(pid=os.getpid(), gpu_index=0), ProcessSample(pid=1, gpu_index=0)))
    assert procs[0].run == RunLabel(run_id, "qwen-lora", "train", "running", "step 1200/3000")
    assert procs[0].run.text == "qwen-lora (train, step 1200/3000)"
    assert procs[1].run is None


def test_child_in_the_run_session_is_labelled() -> None:
    store = RunStore()
    info = store.create("train", {}, name="child")
    sid = os.getsid(os.getpid())
    # A process whose session leader is the "worker": make the session leader the run's pid.
    proc = psutil.Process(sid) if psutil.pid_exists(sid) else None
    if proc is None:
        return
    store.update(info.id, status="running", pid=sid, pid_started=proc.create_time())
    linker = RunLinker(store)
    (labelled,) = linker.label((ProcessSample(pid=os.getpid(), gpu_index=0),))
    assert labelled.run is not None and labelled.run.name == "child"


def _tick(t: float, util: int, run: RunLabel | None) -> MonitorSample:
    gpu = GpuSample(index=0, memory_used=50 * GB, memory_total=150 * GB, util_gpu=util)
    proc = ProcessSample(pid=42, gpu_index=0, gpu_memory=50 * GB, run=run)
    return MonitorSample(time=t, gpus=(gpu,), processes=(proc,))


def test_stall_after_configured_time_warns_monitor_and_run_once() -> None:
    store = RunStore()
    run_id = _running_run(store)
    label = RunLabel(run_id, "qwen-lora", "train", "running", "")
    det = StallDetector(stall_seconds=120, store=store)
    assert det.check(_tick(0, 0, label)) == ()
    assert det.check(_tick(119, 0, label)) == ()
    (warning,) = det.check(_tick(121, 0, label))
    assert "GPU 0" in warning and "qwen-lora" in warning and "46.6 GiB" in warning and "2m01s" in warning
    assert det.check(_tick(130, 0, label))  # still shown while it lasts
    events = [json.loads(line) for line in (store.root / run_id / "events.jsonl").read_text().splitlines()]
    warned = [e for e in events if e["type"] == "log" and e["level"] == "warning"]
    assert len(warned) == 1 and "may be stalled" in warned[0]["text"]
    assert "[monitor] warning" in (store.root / run_id / "log.txt").read_text()
    events, _ = store.read_events(run_id)
    assert any(getattr(e, "level", "") == "warning" for e in events)


def test_no_stall_when_busy_or_not_running_or_not_a_run() -> None:
    det = StallDetector(stall_seconds=10, notify_runs=False)
    label = RunLabel("r", "x", "train", "running", "")
    det.check(_tick(0, 0, label))
    assert det.check(_tick(5, 30, label)) == ()  # utilisation came back: the clock restarts
    assert det.check(_tick(14, 0, label)) == ()
    assert det.check(_tick(30, 0, label))
    det2 = StallDetector(stall_seconds=10, notify_runs=False)
    for t in (0, 50):
        assert det2.check(_tick(t, 0, None)) == ()
        assert det2.check(_tick(t, 0, RunLabel("r", "x", "train", "starting", ""))) == ()
