"""Human formatting of monitor values, shared by the CLI lines and the TUI widgets.

Every function accepts NA (or None) and returns "n/a", so callers never branch on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.monitor.sample import NA, GpuSample, HostSample, ProcessSample, num

NA_TEXT = "n/a"


def size(value: Any, unit: str = "") -> str:
    """Bytes as GB/MB/KiB with 3 significant-ish digits; `unit` forces GB or MB."""
    v = num(value)
    if v is None:
        return NA_TEXT
    if unit == "GB" or (not unit and v >= 1e9):
        return f"{v / 1e9:.1f} GB" if v < 1e11 else f"{v / 1e9:.0f} GB"
    if unit == "MB" or (not unit and v >= 1e6):
        return f"{v / 1e6:.0f} MB"
    return f"{v / 1e3:.0f} kB"


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
    """gpustat-style: [0] NVIDIA H200 | 43°C  48% | 52.7 / 150.8 GB | 301 / 700 W | python/421(52.7 GB)"""
    mem = f"{size(gpu.memory_used, 'GB').removesuffix(' GB')} / {size(gpu.memory_total, 'GB')}"
    power = f"{unit(gpu.power_w, '')} / {unit(gpu.power_limit_w, ' W')}"
    who = " ".join(
        f"{p.name if isinstance(p.name, str) else 'pid'}/{p.pid}({size(p.gpu_memory)})" + (f"[{p.run.name or p.run.id}]" if p.run else "")
        for p in procs
    )
    return f"[{gpu.index}] {text(gpu.name)} | {unit(gpu.temperature, '°C')} {pct(gpu.util_gpu):>4} | {mem} | {power} | {who}".rstrip(" |")


def host_line(host: HostSample) -> str:
    load = host.load_avg
    load_text = " ".join(f"{v:.2f}" for v in load) if isinstance(load, tuple) else NA_TEXT
    return (
        f"host | cpu {pct(host.cpu_percent)} | ram {size(host.ram_used, 'GB').removesuffix(' GB')} / {size(host.ram_total, 'GB')}"
        f" | swap {size(host.swap_used, 'GB').removesuffix(' GB')} / {size(host.swap_total, 'GB')} | load {load_text}"
        f" | disk {size(host.disk_used, 'GB').removesuffix(' GB')} / {size(host.disk_total, 'GB')}"
    )
