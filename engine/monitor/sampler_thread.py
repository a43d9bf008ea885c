"""Where samples come from (live NVML + psutil, or a replay) and the thread that takes them.

The Monitor never samples on the UI thread: `SamplerThread` loops in a daemon thread with an
interruptible wait, adds each sample to the History, writes it to the recording if any, and
hands it to `on_sample` (the TUI posts a latest-wins Message; the CLI prints). Stopping sets an
Event, so the thread ends within one NVML pass, not one interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from engine.monitor.history import History
from engine.monitor.sample import MonitorSample


class Source(Protocol):
    def sample(self) -> MonitorSample: ...

    def close(self) -> None: ...


class LiveSource:
    """NVML (when there is a GPU) + host + run labels + stall warnings, one tick at a time; with no
    GPU, the host's top processes too."""

    def __init__(
        self,
        *,
        slow_interval: float = 5.0,
        stall_seconds: float = 120.0,
        store: Any = None,
        nvml: Any = None,
        disk_path: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from engine.monitor.host import HostSampler, TopProcesses
        from engine.monitor.jobs_link import RunLinker, StallDetector
        from engine.monitor.nvml import NvmlSampler

        self._clock = clock
        self.nvml = NvmlSampler(nvml, slow_interval=slow_interval)
        self.nvml.open()
        self.host = HostSampler(disk_path)
        self.top = TopProcesses()
        self._slow_interval = slow_interval
        self._top: tuple = ()
        self._top_at = -float("inf")
        self.linker = RunLinker(store, refresh_s=slow_interval)
        self.stalls = StallDetector(stall_seconds, store=store)

    @property
    def gpu_status(self) -> str:
        return self.nvml.reason

    def sample(self) -> MonitorSample:
        gpus, procs = self.nvml.sample()
        host = self.host.sample()
        if procs:
            procs = self.linker.label(self.host.enrich(procs))
        # With no GPU the Monitor lists the host's busiest processes instead (a GPU box has its
        # GPU process table, and the pass over every process is then not paid). Like NVML's process
        # list, on the slow cadence: a pass over /proc costs ~8 ms with 100 processes, and each new
        # ranking repaints the table; at 1 s that made the idle Monitor 5.6% of a core (bench/monitor.py).
        # CPU% is then the average since the previous pass, as htop's is over its refresh interval.
        if gpus:
            self._top, self._top_at = (), -float("inf")
        elif time.monotonic() - self._top_at >= self._slow_interval:
            self._top, self._top_at = self.top.sample(host.ram_total), time.monotonic()
        host_procs = self._top
        sample = MonitorSample(
            time=round(self._clock(), 3),
            gpus=gpus,
            processes=procs,
            host=host,
            gpu_status=self.nvml.reason,
            driver=self.nvml.driver,
            host_processes=host_procs,
        )
        warnings = self.stalls.check(sample)
        return replace(sample, warnings=warnings) if warnings else sample

    def close(self) -> None:
        self.nvml.close()


class ReplaySource:
    """Plays recorded samples in order, then loops (times shifted so they keep increasing)."""

    def __init__(self, samples: list[MonitorSample], *, loop: bool = True) -> None:
        if not samples:
            raise ValueError("nothing to replay")
        self.samples = samples
        self.loop = loop
        self._i = 0
        self._lap = 0
        first, last = samples[0].time, samples[-1].time
        step = (last - first) / (len(samples) - 1) if len(samples) > 1 else 1.0
        self._span = (last - first) + (step or 1.0)
        self.finished = False

    @classmethod
    def from_file(cls, path: str | Path, *, loop: bool = True) -> ReplaySource:
        from engine.monitor.record import load_samples

        return cls(load_samples(path), loop=loop)

    @property
    def gpu_status(self) -> str:
        return self.samples[0].gpu_status

    def sample(self) -> MonitorSample:
        if self._i >= len(self.samples):
            if not self.loop:
                self.finished = True
                return self.samples[-1]
            self._i = 0
            self._lap += 1
        sample = self.samples[self._i]
        self._i += 1
        if self._lap:
            sample = replace(sample, time=round(sample.time + self._lap * self._span, 3))
        return sample

    def close(self) -> None:
        return None


def make_source(
    *, replay: str | Path | None = None, slow_interval: float = 5.0, stall_seconds: float = 120.0, store: Any = None
) -> Source:
    """A ReplaySource for `replay`, else the live one (raises ReplayError for a bad file)."""
    if replay:
        return ReplaySource.from_file(replay)
    return LiveSource(slow_interval=slow_interval, stall_seconds=stall_seconds, store=store)


class SamplerThread:
    """Samples every `interval` seconds in a daemon thread until `stop()`."""

    def __init__(
        self,
        source: Source | Callable[[], Source],
        on_sample: Callable[[MonitorSample], None],
        *,
        interval: float = 1.0,
        history: History | None = None,
        recorder: Any = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._source_arg = source
        self.source: Source | None = None
        self.on_sample = on_sample
        self.interval = interval
        self.history = history
        self.recorder = recorder
        self.on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmdeck-monitor", daemon=True)
        self.last_cost_s = 0.0

    def start(self) -> SamplerThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            # Opening NVML can take a moment on a cold driver: do it here, off the UI thread.
            arg = self._source_arg
            opens_source = callable(arg) and not hasattr(arg, "sample")
            self.source = arg() if opens_source else arg  # type: ignore[assignment]
            while not self._stop.is_set():
                began = time.perf_counter()
                sample = self.source.sample()  # type: ignore[union-attr]
                self.last_cost_s = time.perf_counter() - began
                if self.history is not None:
                    self.history.add_sample(sample)
                if self.recorder is not None:
                    self.recorder.write(sample)
                self.on_sample(sample)
                if getattr(self.source, "finished", False):
                    break
                self._stop.wait(max(0.0, self.interval - (time.perf_counter() - began)))
        except BaseException as exc:  # noqa: BLE001 - report, never kill the app from a thread
            if self.on_error is not None:
                self.on_error(exc)
        finally:
            if self.source is not None:
                try:  # noqa: SIM105 - any error of any source: the recorder below must still be closed
                    self.source.close()
                except Exception:  # noqa: BLE001
                    pass
            if self.recorder is not None:
                self.recorder.close()
