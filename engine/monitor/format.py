"""Human formatting of monitor values, shared by the CLI lines and the TUI widgets.

Every function accepts NA (or None) and returns "n/a", so callers never branch on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.formatting import format_bytes
from engine.monitor.sample import NA, GpuSample, HostSample, ProcessSample, num

NA_TEXT = "n/a"


def size(value: Any, unit: str = "") -> str:
    """Bytes in binary units (`engine.formatting.format_bytes`, like every size llmdeck shows);
    `unit` forces one, e.g. GiB."""
    v = num(value)
    if v is None:
        return NA_TEXT
    return format_bytes(v, unit=unit)


def pct(value: Any) -> str:
    v = num(value)
    return NA_TEXT if v is None else f"{v:.0f}%"


def unit(value: Any, suffix: str, digits: int = 0) -> str:
    v = num(value)
    return NA_TEXT if v is None else f"{v:.{digits}f}{suffix}"


def throttle_text(gpu: GpuSample) -> str:
    if gpu.throttle is None or not isinstance(gpu.throttle, tuple):
        return NA_TEXT
    return ", ".join(gpu.throttle) if gpu.throttle else "none"


def pstate(value: Any) -> str:
    v = num(value)
    return NA_TEXT if v is None else f"P{int(v)}"


def text(value: Any) -> str:
    return NA_TEXT if value is None or value is NA else str(value)


def gpu_line(gpu: GpuSample, procs: Iterable[ProcessSample] = ()) -> str:
    """gpustat-style: [0] NVIDIA H200 | 43°C  48% | 49.1 / 140 GiB | 301 / 700 W | python/421(49.1 GiB)"""
    mem = f"{size(gpu.memory_used, 'GiB').removesuffix(' GiB')} / {size(gpu.memory_total, 'GiB')}"
    power = f"{unit(gpu.power_w, '')} / {unit(gpu.power_limit_w, ' W')}"
    who = " ".join(
        f"{p.name if isinstance(p.name, str) else 'pid'}/{p.pid}({size(p.gpu_memory)})"
        + (f"[{p.run.name or p.run.id}]" if p.run else "")
        for p in procs
    )
    head = f"[{gpu.index}] {text(gpu.name)} | {unit(gpu.temperature, '°C')} {pct(gpu.util_gpu):>4}"
    return f"{head} | {mem} | {power} | {who}".rstrip(" |")


def host_line(host: HostSample) -> str:
    load = host.load_avg
    load_text = " ".join(f"{v:.2f}" for v in load) if isinstance(load, tuple) else NA_TEXT
    return (
        f"host | cpu {pct(host.cpu_percent)}"
        f" | ram {size(host.ram_used, 'GiB').removesuffix(' GiB')} / {size(host.ram_total, 'GiB')}"
        f" | swap {size(host.swap_used, 'GiB').removesuffix(' GiB')} / {size(host.swap_total, 'GiB')}"
        f" | load {load_text}"
        f" | disk {size(host.disk_used, 'GiB').removesuffix(' GiB')} / {size(host.disk_total, 'GiB')}"
    )
