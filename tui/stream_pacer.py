"""When to draw the next batch of streamed text.

Every draw of a streaming answer costs the UI thread a few milliseconds of CPU (Markdown parse,
layout, render). With a model on a GPU or a remote server that is free, and batches are drawn
every `ui.stream_interval_ms`. A model on this machine's CPU runs one thread per core, so each of
those milliseconds preempts one of its threads, and the others wait for it at the next barrier:
on 2 cores, drawing every 50 ms cost llama.cpp 7% of its tokens/s. While such a model streams,
the pacer spaces draws so the UI thread uses at most `cpu_percent` of one core, measured on the
UI thread itself (everything it did since the last draw counts, typing included), never closer
than the configured interval and never further apart than `MAX_INTERVAL`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from engine.settings import UISettings

MAX_INTERVAL = 0.4
"""Seconds; even on a loaded box the answer visibly moves."""
SMOOTHING = 0.3


class StreamPacer:
    def __init__(self, min_interval: float, cpu_percent: float | None = None,
                 cpu_clock: Callable[[], float] = time.thread_time) -> None:
        """`cpu_percent=None`: the model does not share the CPU; always `min_interval`.
        `cpu_clock`: the UI thread's CPU seconds (tests pass their own)."""
        self.min_interval = min_interval
        self.cpu_clock = cpu_clock
        self.share = cpu_percent / 100 if cpu_percent else None
        self.cost: float | None = None
        """Smoothed UI-thread CPU seconds per draw cycle."""
        self._cpu: float | None = None

    @classmethod
    def from_settings(cls, ui: UISettings, shares_cpu: bool) -> StreamPacer:
        """The pacer for one answer: `ui.stream_interval_ms`, and the CPU share only when the
        model runs on this machine's CPU."""
        return cls(ui.stream_interval_ms / 1000, ui.stream_cpu_percent if shares_cpu else None)

    @property
    def interval(self) -> float:
        if self.share is None or self.cost is None:
            return self.min_interval
        return min(MAX_INTERVAL, max(self.min_interval, self.cost / self.share))

    def drew(self) -> float:
        """Call on the UI thread after each draw; returns the seconds until the next one. The
        first call only starts the measurement: before it the UI was mounting the answer."""
        cpu, last = self.cpu_clock(), self._cpu
        self._cpu = cpu
        if last is None:
            return self.interval
        spent = cpu - last
        self.cost = spent if self.cost is None else self.cost + SMOOTHING * (spent - self.cost)
        return self.interval
