"""The host side of a monitor tick, from psutil: CPU, load, RAM, swap, disk, GPU processes,
and (with no GPU) the host's busiest processes.

psutil's CPU percentages are "since the previous call", so the sampler keeps one
`psutil.Process` object per GPU pid across ticks (and primes the system counter at start);
a fresh object every tick would always say 0%. A pid we may not inspect (another user, another
PID namespace in a container) gives NA fields, never an exception.
"""

from __future__ import annotations

import os
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

    Cheap enough for every tick: `psutil.process_iter` keeps one Process object per pid between
    calls (so `cpu_percent(None)` measures since the previous tick, as htop does) and reads only
    each process's stat/statm for the two numbers ranked on; user, name and command line are read
    only for the processes that make the list, once per process (they do not change).
    """

    def __init__(self, top: int = TOP_PROCESSES) -> None:
        import psutil

        self._ps = psutil
        self.top = top
        self._labels: dict[int, tuple[Any, dict[str, Any]]] = {}

    def sample(self, ram_total: Any) -> tuple[HostProcess, ...]:
        """The union of the `top` busiest by CPU and the `top` largest by RSS, busiest first.

        The first call after a process appears gives it 0% CPU (psutil needs two readings)."""
        ps = self._ps
        rows: list[tuple[Any, float, int]] = []
        for proc in ps.process_iter(["cpu_percent", "memory_info"], ad_value=None):
            cpu, mem = proc.info["cpu_percent"], proc.info["memory_info"]
            if mem is None and cpu is None:
                continue  # not ours to inspect at all (another PID namespace, a hardened /proc)
            rows.append((proc, float(cpu or 0.0), int(mem.rss) if mem is not None else 0))
        by_cpu = sorted(rows, key=lambda r: (-r[1], -r[2], r[0].pid))[: self.top]
        by_rss = sorted(rows, key=lambda r: (-r[2], -r[1], r[0].pid))[: self.top]
        chosen = {r[0].pid: r for r in by_cpu + by_rss}
        total = ram_total if isinstance(ram_total, int) and ram_total > 0 else None
        out = []
        for proc, cpu, rss in sorted(chosen.values(), key=lambda r: (-r[1], -r[2], r[0].pid)):
            label = self._label(proc)
            if label is None:
                continue  # it ended between the two reads
            out.append(HostProcess(
                pid=proc.pid,
                cpu_percent=round(cpu, 1),
                rss=rss,
                mem_percent=round(100.0 * rss / total, 1) if total else NA,
                **label,
            ))
        for pid in [pid for pid in self._labels if pid not in chosen]:
            del self._labels[pid]
        return tuple(out)

    def _label(self, proc: Any) -> dict[str, Any] | None:
        cached = self._labels.get(proc.pid)
        if cached is not None and cached[0] is proc:  # process_iter gives a new object to a reused pid
            return cached[1]
        ps = self._ps

        def field(getter: Any) -> Any:
            try:
                return getter()
            except ps.AccessDenied:
                return NA

        try:
            with proc.oneshot():
                name = field(proc.name)
                cmdline = field(proc.cmdline)
                label = {"user": field(proc.username), "name": name,
                         "command": " ".join(cmdline) if cmdline else name}
        except (ps.NoSuchProcess, ps.ZombieProcess, ProcessLookupError):
            return None
        self._labels[proc.pid] = (proc, label)
        return label
