"""Join GPU processes to llmdeck runs, and notice runs that stall on the GPU.

A run's worker is started in its own session (`start_new_session`), so every process it
spawns (a training script, torchrun's ranks) has the worker's pid as its session id. A GPU pid
belongs to run R when it is R's worker or `os.getsid(pid) == R.pid`; a descendant check covers
children that started a session of their own. The run list is re-read on the slow cadence,
not every tick.

Stall: a GPU that holds memory at 0% utilisation for `stall_seconds` while a process of a
`running` run is on it. That is the "VRAM allocated, nothing computing" failure (a deadlocked
collective, a dataloader hang). The Monitor shows the warning; the run gets one warning line in
its events and log, once per stall episode.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from engine.formatting import format_bytes
from engine.monitor.sample import MonitorSample, ProcessSample, RunLabel, num


def _fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _step_text(store: Any, run_id: str) -> str:
    progress = store.last_progress(run_id)
    if progress is None:
        return ""
    unit = progress.unit.rstrip("s") if progress.unit else (progress.phase or "step")
    if progress.total:
        return f"{unit} {progress.done:g}/{progress.total:g}"
    return f"{unit} {progress.done:g}"


class RunLinker:
    """Labels GPU processes with the run they belong to."""

    def __init__(
        self, store: Any = None, *, refresh_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self.refresh_s = refresh_s
        self._clock = clock
        self._last = float("-inf")
        self._runs: dict[int, Any] = {}  # worker pid -> RunInfo
        self._labels: dict[str, RunLabel] = {}
        self._pid_map: dict[int, int | None] = {}

    @property
    def store(self) -> Any:
        if self._store is None:
            from engine.runs import RunStore

            self._store = RunStore()
        return self._store

    def refresh(self, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._last < self.refresh_s:
            return
        self._last = now
        self._pid_map.clear()
        try:
            runs = [r for r in self.store.list() if r.active and r.pid]
        except OSError:
            runs = []
        self._runs = {r.pid: r for r in runs}
        self._labels = {
            r.id: RunLabel(id=r.id, name=r.name, kind=r.kind, status=r.status, step=_step_text(self.store, r.id))
            for r in runs
        }

    def run_of(self, pid: int) -> Any:
        """The active RunInfo that `pid` belongs to, or None."""
        if not self._runs:
            return None
        if pid in self._pid_map:
            owner = self._pid_map[pid]
            return self._runs.get(owner) if owner is not None else None
        owner: int | None = None
        if pid in self._runs:
            owner = pid
        else:
            try:
                sid = os.getsid(pid)
                if sid in self._runs:
                    owner = sid
            except OSError:
                pass
            if owner is None:
                owner = _ancestor_in(pid, self._runs)
        self._pid_map[pid] = owner
        return self._runs.get(owner) if owner is not None else None

    def label(self, procs: tuple[ProcessSample, ...]) -> tuple[ProcessSample, ...]:
        self.refresh()
        if not self._runs:
            return procs
        out = []
        for proc in procs:
            run = self.run_of(proc.pid)
            out.append(replace(proc, run=self._labels.get(run.id)) if run is not None else proc)
        return tuple(out)


def _ancestor_in(pid: int, runs: dict[int, Any]) -> int | None:
    try:
        import psutil

        for parent in psutil.Process(pid).parents():
            if parent.pid in runs:
                return parent.pid
    except Exception:  # noqa: BLE001 - no such process / access denied: simply not ours
        return None
    return None


@dataclass
class _Stall:
    since: float
    warned: bool = False


class StallDetector:
    """Tracks (gpu, run) pairs at 0% utilisation with memory held; returns warning lines."""

    def __init__(self, stall_seconds: float = 120.0, *, store: Any = None, notify_runs: bool = True) -> None:
        self.stall_seconds = stall_seconds
        self._store = store
        self.notify_runs = notify_runs
        self._state: dict[tuple[int, str], _Stall] = {}

    def check(self, sample: MonitorSample) -> tuple[str, ...]:
        """Warnings for this tick (every tick while a stall lasts), keyed to sample.time."""
        now = sample.time
        by_gpu: dict[int, dict[str, RunLabel]] = {}
        held: dict[tuple[int, str], float] = {}
        for proc in sample.processes:
            if proc.run is None or proc.run.status != "running":
                continue
            by_gpu.setdefault(proc.gpu_index, {})[proc.run.id] = proc.run
            key = (proc.gpu_index, proc.run.id)
            held[key] = held.get(key, 0.0) + (num(proc.gpu_memory) or 0.0)
        seen = set()
        warnings = []
        for gpu in sample.gpus:
            util = num(gpu.util_gpu)
            mem = num(gpu.memory_used) or 0.0
            for run_id, label in by_gpu.get(gpu.index, {}).items():
                key = (gpu.index, run_id)
                if util is None or util > 0 or (mem <= 0 and held.get(key, 0.0) <= 0):
                    continue
                seen.add(key)
                state = self._state.setdefault(key, _Stall(since=now))
                idle = now - state.since
                if idle < self.stall_seconds:
                    continue
                held_bytes = max(held.get(key, 0.0), 0.0) or mem
                text = (
                    f"GPU {gpu.index}: run {label.name or label.id} ({label.kind}) holds "
                    f"{format_bytes(held_bytes, unit='GiB')} at 0% "
                    f"utilisation for {_fmt_duration(idle)}; it may be stalled"
                )
                warnings.append(text)
                if not state.warned:
                    state.warned = True
                    if self.notify_runs:
                        self._note_on_run(run_id, text)
        for key in list(self._state):
            if key not in seen:
                del self._state[key]
        return tuple(warnings)

    def _note_on_run(self, run_id: str, text: str) -> None:
        """Append one warning Log event (and log line) to the run, as its own writer would."""
        try:
            from engine.events import Log

            if self._store is None:
                from engine.runs import RunStore

                self._store = RunStore()
            run_dir = self._store.root / run_id
            line = json.dumps(Log(text=f"monitor: {text}", level="warning").to_dict()) + "\n"
            # One O_APPEND write of a short line: it lands whole, between the worker's lines.
            fd = os.open(run_dir / "events.jsonl", os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)
            with open(run_dir / "log.txt", "a", encoding="utf-8") as log:
                log.write(f"[monitor] warning: {text}\n")
        except OSError:
            pass
