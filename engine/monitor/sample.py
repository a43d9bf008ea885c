"""What one monitor tick saw: frozen samples of the GPUs, their processes and the host.

Samples are frozen dataclasses so they cross from the sampler thread to the UI without locks,
and tests can compare them. A value the hardware or driver would not give (NotSupported, no
permission, a function missing on an old driver, a process in another PID namespace) is the
sentinel `NA`, never None or an exception: a reader formats it as "n/a" and moves on.

`to_dict`/`sample_from_dict` are the JSON form used by `--once --json`, `--record` and
`--replay`; NA is written as the string "n/a" and read back as NA, so a record -> replay round
trip gives back equal samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

FORMAT = "llmdeck-monitor/1"


class _NotAvailable:
    """The one "no value" marker: falsy, prints as n/a, equal only to itself."""

    _instance: _NotAvailable | None = None

    def __new__(cls) -> _NotAvailable:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NA"

    def __str__(self) -> str:
        return "n/a"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "NA"


NA: Any = _NotAvailable()
NA_TEXT = "n/a"


def num(value: Any) -> float | None:
    """The value as a float, or None when it is NA (for arithmetic and charts)."""
    if value is NA or value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RunLabel:
    """The llmdeck run a GPU process belongs to."""

    id: str
    name: str
    kind: str
    status: str
    step: str = ""

    @property
    def text(self) -> str:
        label = self.name or self.id
        return f"{label} ({self.kind}{', ' + self.step if self.step else ''})"


@dataclass(frozen=True)
class ProcessSample:
    """A process holding memory on a GPU, with what the host knows about it."""

    pid: int
    gpu_index: int
    type: str = "C"  # C compute, G graphics, C+G both
    gpu_memory: Any = NA  # bytes
    sm_util: Any = NA  # percent, where NVML reports per-process utilisation
    user: Any = NA
    name: Any = NA
    command: Any = NA
    cpu_percent: Any = NA
    rss: Any = NA  # bytes
    run: RunLabel | None = None
    started: Any = NA  # process start time (psutil create_time): a signal goes only to this process


@dataclass(frozen=True)
class HostProcess:
    """One of the host's busiest processes (shown when there is no GPU, as htop shows them)."""

    pid: int
    user: Any = NA
    name: Any = NA
    command: Any = NA
    cpu_percent: Any = NA  # percent of one core, since the previous tick (htop's CPU%)
    rss: Any = NA  # bytes
    mem_percent: Any = NA  # rss as a percent of the host's RAM


@dataclass(frozen=True)
class GpuSample:
    index: int
    name: Any = NA
    uuid: Any = NA
    memory_used: Any = NA  # bytes
    memory_total: Any = NA
    memory_reserved: Any = NA
    util_gpu: Any = NA  # percent
    util_memory: Any = NA
    temperature: Any = NA  # deg C
    fan_percent: Any = NA
    power_w: Any = NA
    power_limit_w: Any = NA
    energy_j: Any = NA  # since the driver loaded
    clock_sm_mhz: Any = NA
    clock_mem_mhz: Any = NA
    clock_sm_max_mhz: Any = NA
    pstate: Any = NA  # 0 = P0 (max performance)
    throttle: Any = NA  # tuple of reasons in words; () when none
    pcie_gen: Any = NA
    pcie_width: Any = NA
    pcie_tx_kbs: Any = NA
    pcie_rx_kbs: Any = NA
    ecc_enabled: Any = NA
    process_count: Any = NA  # NA when the process list itself could not be read

    @property
    def memory_fraction(self) -> float | None:
        used, total = num(self.memory_used), num(self.memory_total)
        if used is None or not total:
            return None
        return max(0.0, min(1.0, used / total))


@dataclass(frozen=True)
class HostSample:
    cpu_percent: Any = NA
    per_core: Any = NA  # tuple of percents
    load_avg: Any = NA  # (1, 5, 15 min)
    ram_used: Any = NA
    ram_total: Any = NA
    swap_used: Any = NA
    swap_total: Any = NA
    disk_path: Any = NA
    disk_used: Any = NA
    disk_total: Any = NA


@dataclass(frozen=True)
class MonitorSample:
    """Everything one tick saw. `gpu_status` is "" when NVML works, else the one line that says
    why there is no GPU panel (no driver, no pynvml, no GPU)."""

    time: float
    gpus: tuple[GpuSample, ...] = ()
    processes: tuple[ProcessSample, ...] = ()
    host: HostSample = field(default_factory=HostSample)
    gpu_status: str = ""
    driver: Any = NA
    warnings: tuple[str, ...] = ()
    host_processes: tuple[HostProcess, ...] = ()  # only sampled when there is no GPU

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **_encode(self)}


def _encode(obj: Any) -> Any:
    if obj is NA:
        return NA_TEXT
    if hasattr(obj, "__dataclass_fields__"):
        return {f.name: _encode(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [_encode(v) for v in obj]
    return obj


def _decode_value(value: Any) -> Any:
    if value == NA_TEXT:
        return NA
    if isinstance(value, list):
        return tuple(_decode_value(v) for v in value)
    return value


def _build(cls: type, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    return cls(**{k: _decode_value(v) for k, v in data.items() if k in known})


def sample_from_dict(data: dict[str, Any]) -> MonitorSample:
    """The inverse of `MonitorSample.to_dict`; unknown keys are ignored (newer writers)."""
    if not isinstance(data, dict) or "time" not in data:
        raise ValueError("not a monitor sample (no 'time' field)")
    gpus = tuple(_build(GpuSample, g) for g in data.get("gpus") or ())
    procs = []
    for p in data.get("processes") or ():
        run = p.get("run")
        proc = _build(ProcessSample, {k: v for k, v in p.items() if k != "run"})
        if isinstance(run, dict):
            proc = _replace(proc, run=RunLabel(**{k: run.get(k, "") for k in ("id", "name", "kind", "status", "step")}))
        procs.append(proc)
    host = _build(HostSample, data.get("host") or {})
    host_procs = tuple(_build(HostProcess, p) for p in data.get("host_processes") or () if isinstance(p, dict))
    return MonitorSample(
        time=float(data["time"]),
        gpus=gpus,
        processes=tuple(procs),
        host=host,
        gpu_status=str(data.get("gpu_status") or ""),
        driver=_decode_value(data.get("driver", NA_TEXT)),
        warnings=tuple(data.get("warnings") or ()),
        host_processes=host_procs,
    )


def _replace(obj: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(obj, **changes)
