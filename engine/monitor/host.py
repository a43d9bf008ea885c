"""The host side of a monitor tick, from psutil: CPU, load, RAM, swap, disk, GPU processes,
and (with no GPU) the host's busiest processes.

psutil's CPU percentages are "since the previous call", so the sampler keeps one
`psutil.Process` object per GPU pid across ticks (and primes the system counter at start);
a fresh object every tick would always say 0%. A pid we may not inspect (another user, another
PID namespace in a container) gives NA fields, never an exception.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.monitor.sample import NA, HostProcess, HostSample, ProcessSample

TOP_PROCESSES = 20
"""How many processes the no-GPU Monitor lists, by CPU and by memory (a screen's worth)."""


def _existing(path: Path) -> Path:
    """The nearest existing folder at or above `path` (the data dir may not exist yet)."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


class HostSampler:
    def __init__(self, disk_path: Path | None = None) -> None:
        import psutil

        self._ps = psutil
        if disk_path is None:
            from engine import paths

            disk_path = paths.data_dir()
        self.disk_path = _existing(Path(disk_path))
        self._procs: dict[int, Any] = {}
        psutil.cpu_percent(percpu=True)  # prime: the next call measures from here

    def sample(self) -> HostSample:
        ps = self._ps
        try:
            per_core = tuple(float(v) for v in ps.cpu_percent(percpu=True))
            total: Any = round(sum(per_core) / len(per_core), 1) if per_core else NA
        except (OSError, RuntimeError):
            per_core, total = NA, NA
        try:
            load: Any = tuple(round(v, 2) for v in os.getloadavg())
        except OSError:
            load = NA
        vm = ps.virtual_memory()
        sw = ps.swap_memory()
        try:
            du = ps.disk_usage(str(self.disk_path))
            disk_used, disk_total = int(du.used), int(du.total)
        except OSError:
            disk_used = disk_total = NA
        return HostSample(
            cpu_percent=total,
            per_core=per_core,
            load_avg=load,
            ram_used=int(vm.total - vm.available),
            ram_total=int(vm.total),
            swap_used=int(sw.used),
            swap_total=int(sw.total),
            disk_path=str(self.disk_path),
            disk_used=disk_used,
            disk_total=disk_total,
        )

    def enrich(self, procs: tuple[ProcessSample, ...]) -> tuple[ProcessSample, ...]:
        """Add user, name, command line, CPU% and RSS to each GPU process we may inspect."""
        ps = self._ps
        live = {p.pid for p in procs}
        for pid in list(self._procs):
            if pid not in live:
                del self._procs[pid]
        out = []
        for proc in procs:
            handle = self._procs.get(proc.pid)
            try:
                if handle is None:
                    handle = ps.Process(proc.pid)
                    handle.cpu_percent(None)  # prime; the first reading is 0 by definition
                    self._procs[proc.pid] = handle
                with handle.oneshot():
                    info = _process_info(handle, ps)
            except (ps.NoSuchProcess, ps.ZombieProcess, ProcessLookupError):
                self._procs.pop(proc.pid, None)
                out.append(proc)
                continue
            except ps.AccessDenied:
                out.append(proc)
                continue
            out.append(replace(proc, **info))
        return tuple(out)


def _process_info(handle: Any, ps: Any) -> dict[str, Any]:
    def field(getter: Any) -> Any:
        try:
            return getter()
        except ps.AccessDenied:
            return NA

    cmdline = field(handle.cmdline)
    return {
        "user": field(handle.username),
        "name": field(handle.name),
        "command": " ".join(cmdline) if cmdline and cmdline is not NA else field(handle.name),
        "cpu_percent": field(lambda: round(handle.cpu_percent(None), 1)),
        "rss": field(lambda: int(handle.memory_info().rss)),
        "started": field(handle.create_time),
    }


class TopProcesses:
    """The host's top processes by CPU and by resident memory, for a Monitor with no GPU.

    A pass reads each process's /proc/<pid>/stat directly: that one small file holds the two
    numbers ranked on (CPU ticks and resident pages) and the start time that tells a reused pid
    from the process it had before. Why not `psutil.process_iter`, as elsewhere: it read stat and
    statm through a Process object per pid, 5-10 ms a pass for ~100 processes on a 2-core box,
    every slow tick of a Monitor left open all day (bench/idle.py); this is about 2 ms. CPU% is
    measured between passes, as htop does (the first pass of a process reads 0%). User, name and
    command line are read (by psutil) only for the processes that make the list, once per
    process: they do not change. Where there is no /proc (not Linux), psutil reads everything.
    """

    def __init__(self, top: int = TOP_PROCESSES, proc: Path = Path("/proc")) -> None:
        import psutil

        self._ps = psutil
        self.top = top
        self._proc = proc
        self._linux = (proc / "self" / "stat").exists()
        if self._linux:
            self._hz = os.sysconf("SC_CLK_TCK")
            self._page = os.sysconf("SC_PAGE_SIZE")
        self._ticks: dict[int, tuple[int, int]] = {}
        """pid -> (its start time, its CPU ticks) at the last pass."""
        self._at = 0.0
        self._labels: dict[int, tuple[Any, dict[str, Any]]] = {}
        """pid -> (what identifies that process: its start time, or psutil's Process; its labels)."""

    def sample(self, ram_total: Any) -> tuple[HostProcess, ...]:
        """The union of the `top` busiest by CPU and the `top` largest by RSS, busiest first."""
        rows = self._read_proc() if self._linux else self._read_psutil()
        by_cpu = sorted(rows, key=lambda r: (-r[2], -r[3], r[0]))[: self.top]
        by_rss = sorted(rows, key=lambda r: (-r[3], -r[2], r[0]))[: self.top]
        chosen = {r[0]: r for r in by_cpu + by_rss}
        total = ram_total if isinstance(ram_total, int) and ram_total > 0 else None
        out = []
        for pid, identity, cpu, rss in sorted(chosen.values(), key=lambda r: (-r[2], -r[3], r[0])):
            label = self._label(pid, identity)
            if label is None:
                continue  # it ended between the two reads
            out.append(HostProcess(
                pid=pid,
                cpu_percent=round(cpu, 1),
                rss=rss,
                mem_percent=round(100.0 * rss / total, 1) if total else NA,
                **label,
            ))
        for pid in [pid for pid in self._labels if pid not in chosen]:
            del self._labels[pid]
        return tuple(out)

    def _read_proc(self) -> list[tuple[int, Any, float, int]]:
        """(pid, start time, CPU% since the last pass, RSS bytes) of every process we may read."""
        now = time.monotonic()
        elapsed, self._at = now - self._at, now
        before, ticks = self._ticks, {}
        rows = []
        for name in os.listdir(self._proc):
            if not name.isdigit():
                continue
            try:
                with open(self._proc / name / "stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue  # ended, or not ours to read (hidepid, another PID namespace)
            # The command name (2nd field) is in parentheses and may hold spaces or ")": the
            # fields that follow come after its last ")". man 5 proc: utime 14, stime 15,
            # starttime 22, rss 24, counted from 1, so 11, 12, 19 and 21 after the state (3).
            fields = stat[stat.rindex(b")") + 2:].split()
            pid, started, used = int(name), int(fields[19]), int(fields[11]) + int(fields[12])
            ticks[pid] = (started, used)
            last = before.get(pid)
            cpu = 100.0 * (used - last[1]) / self._hz / elapsed if last and last[0] == started and elapsed > 0 else 0.0
            rows.append((pid, started, max(0.0, cpu), int(fields[21]) * self._page))
        self._ticks = ticks
        return rows

    def _read_psutil(self) -> list[tuple[int, Any, float, int]]:
        """The same through psutil (a Process object per pid, kept between calls so
        `cpu_percent(None)` measures since the previous pass)."""
        rows = []
        for proc in self._ps.process_iter(["cpu_percent", "memory_info"], ad_value=None):
            cpu, mem = proc.info["cpu_percent"], proc.info["memory_info"]
            if mem is None and cpu is None:
                continue  # not ours to inspect at all (another PID namespace, a hardened /proc)
            rows.append((proc.pid, proc, float(cpu or 0.0), int(mem.rss) if mem is not None else 0))
        return rows

    def _label(self, pid: int, identity: Any) -> dict[str, Any] | None:
        cached = self._labels.get(pid)
        if cached is not None and cached[0] == identity:  # a reused pid is another process: read again
            return cached[1]
        ps = self._ps

        def field(getter: Any) -> Any:
            try:
                return getter()
            except ps.AccessDenied:
                return NA

        try:
            proc = identity if isinstance(identity, ps.Process) else ps.Process(pid)
            with proc.oneshot():
                name = field(proc.name)
                cmdline = field(proc.cmdline)
                label = {"user": field(proc.username), "name": name,
                         "command": " ".join(cmdline) if cmdline else name}
        except (ps.NoSuchProcess, ps.ZombieProcess, ProcessLookupError):
            return None
        self._labels[pid] = (identity, label)
        return label
