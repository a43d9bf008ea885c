"""The host side of a monitor tick, from psutil: CPU, load, RAM, swap, disk, GPU processes.

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

from engine.monitor.sample import NA, HostSample, ProcessSample


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
