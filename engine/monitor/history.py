"""Bounded per-metric history for sparklines: full resolution for a while, then coarse.

Each metric keeps two rings: every sample for `fine_seconds` (default 10 minutes at 1 s, from
settings), and one averaged point per `coarse_step` seconds for `coarse_seconds` (default 6 h
in 30 s buckets), so a long window costs a few hundred points, not tens of thousands. The
sampler thread writes and the UI thread reads, so access goes through one lock. NA readings
are stored as gaps (None) and charted as zero height, never as fake values.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Hashable, Iterable

from engine.monitor.sample import MonitorSample, num

WINDOWS_S: tuple[float, ...] = (60.0, 300.0, 600.0, 3600.0, 6 * 3600.0)


def window_label(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g}h"
    if seconds >= 60:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


class _Series:
    __slots__ = ("fine", "coarse", "_bucket", "_sum", "_n")

    def __init__(self, fine_len: int, coarse_len: int) -> None:
        self.fine: deque[tuple[float, float | None]] = deque(maxlen=fine_len)
        self.coarse: deque[tuple[float, float | None]] = deque(maxlen=coarse_len)
        self._bucket: float | None = None
        self._sum = 0.0
        self._n = 0


class History:
    """Ring buffers keyed by metric, e.g. ("gpu", 0, "util")."""

    def __init__(
        self,
        fine_seconds: float = 600.0,
        interval: float = 1.0,
        coarse_seconds: float = 6 * 3600.0,
        coarse_step: float = 30.0,
    ) -> None:
        self.interval = interval
        self.fine_seconds = fine_seconds
        self.coarse_step = coarse_step
        self.coarse_seconds = coarse_seconds
        self._fine_len = max(2, int(math.ceil(fine_seconds / interval)))
        self._coarse_len = max(2, int(math.ceil(coarse_seconds / coarse_step)))
        self._series: dict[Hashable, _Series] = {}
        self._lock = threading.Lock()

    @property
    def span_seconds(self) -> float:
        return max(self.fine_seconds, self.coarse_seconds)

    def add(self, key: Hashable, t: float, value: float | None) -> None:
        with self._lock:
            self._add(key, t, value)

    def _add(self, key: Hashable, t: float, value: float | None) -> None:
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self._fine_len, self._coarse_len)
        series.fine.append((t, value))
        bucket = t // self.coarse_step * self.coarse_step
        if series._bucket is not None and bucket != series._bucket:
            mean = series._sum / series._n if series._n else None
            series.coarse.append((series._bucket, mean))
            series._sum, series._n = 0.0, 0
        series._bucket = bucket
        if value is not None:
            series._sum += value
            series._n += 1

    def add_sample(self, sample: MonitorSample) -> None:
        """Record the charted metrics of one tick (per GPU: util, memory %, power; host CPU/RAM)."""
        t = sample.time
        with self._lock:
            for gpu in sample.gpus:
                frac = gpu.memory_fraction
                self._add(("gpu", gpu.index, "util"), t, num(gpu.util_gpu))
                self._add(("gpu", gpu.index, "mem"), t, None if frac is None else 100.0 * frac)
                self._add(("gpu", gpu.index, "power"), t, num(gpu.power_w))
            host = sample.host
            self._add(("host", "cpu"), t, num(host.cpu_percent))
            used, total = num(host.ram_used), num(host.ram_total)
            self._add(("host", "ram"), t, 100.0 * used / total if used is not None and total else None)

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._series)

    def points(self, key: Hashable, window_s: float, now: float | None = None) -> list[tuple[float, float | None]]:
        """(time, value) pairs of the last `window_s` seconds: fine ring when it covers the
        window, else the coarse ring plus the fine points newer than its last bucket."""
        with self._lock:
            series = self._series.get(key)
            if series is None or not series.fine:
                return []
            end = now if now is not None else series.fine[-1][0]
            start = end - window_s
            fine = list(series.fine)
            if window_s <= self.fine_seconds or not series.coarse:
                return [p for p in fine if p[0] > start]
            coarse = [p for p in series.coarse if p[0] > start]
            last = coarse[-1][0] + self.coarse_step if coarse else start
            return coarse + [p for p in fine if p[0] >= last]

    def series(self, key: Hashable, window_s: float, width: int, now: float | None = None) -> list[float]:
        """At most `width` values for a chart of the last `window_s` seconds (bucket means;
        gaps as 0.0). Fewer points than width are returned as they are."""
        pts = self.points(key, window_s, now)
        return downsample([v for _t, v in pts], width)

    def latest(self, key: Hashable) -> float | None:
        with self._lock:
            series = self._series.get(key)
            return series.fine[-1][1] if series and series.fine else None


def downsample(values: Iterable[float | None], width: int) -> list[float]:
    """Bucket means down to `width` points; None (NA) counts as 0 for charting."""
    vals = [0.0 if v is None else float(v) for v in values]
    if width <= 0:
        return []
    if len(vals) <= width:
        return vals
    out = []
    step = len(vals) / width
    for i in range(width):
        lo, hi = int(i * step), max(int((i + 1) * step), int(i * step) + 1)
        chunk = vals[lo:hi]
        out.append(sum(chunk) / len(chunk))
    return out
