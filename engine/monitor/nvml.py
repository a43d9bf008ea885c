"""NVML sampling through pynvml (nvidia-ml-py), with every failure turned into "n/a".

Why it is built this way:
- pynvml is imported in `open()`, not at module import, so `llmdeck --help` and the TUI start
  without it; a box with no driver or no pynvml gets `available = False` and one line in
  `reason` that the Monitor shows instead of the GPU panel.
- Device handles and static facts (name, UUID, max clock) are read once. NVML calls are
  serialising and some are slow (PCIe throughput about 20 ms on an H200, energy about 3 ms, the
  process list several ms), so fast fields are read every tick and slow ones on their own
  cadence, reusing the last value in between.
- Any call may fail (NotSupported, NotFound, NoPermission, FunctionNotFound on an old driver, a
  function missing from an old binding): that field becomes NA for that GPU. A field that fails
  for a reason that will not change (NotSupported, NoPermission, FunctionNotFound, missing
  function) is not asked again, so an H200's unsupported fan reading costs nothing per tick.
- `errors` keeps the error kind met per (gpu, field) for diagnostics and the bench report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.monitor.sample import NA, GpuSample, ProcessSample

# Stable NVML ABI values (nvml.h), kept here so decoding needs no pynvml (replay, tests).
CLOCK_SM = 1
CLOCK_MEM = 2
TEMPERATURE_GPU = 0
PCIE_TX = 0
PCIE_RX = 1
MEMORY_V2 = 0x02000028

THROTTLE_WORDS: tuple[tuple[int, str], ...] = (
    (0x001, "idle"),
    (0x002, "application clocks"),
    (0x004, "power cap"),
    (0x008, "hardware slowdown"),
    (0x010, "sync boost"),
    (0x020, "software thermal"),
    (0x040, "hardware thermal"),
    (0x080, "power brake"),
    (0x100, "display clocks"),
    (0x200, "board limit"),
    (0x400, "reliability"),
)

PERMANENT_ERRORS = ("NotSupported", "NoPermission", "FunctionNotFound", "missing")


def throttle_words(mask: int) -> tuple[str, ...]:
    """NVML clock-event bits in words ("power cap", "hardware thermal"); () when none."""
    return tuple(word for bit, word in THROTTLE_WORDS if mask & bit)


def error_kind(exc: BaseException) -> str:
    """'NotSupported' for pynvml.NVMLError_NotSupported, 'missing' for an absent function."""
    if isinstance(exc, AttributeError):
        return "missing"
    name = type(exc).__name__
    return name.split("_", 1)[1] if name.startswith("NVMLError_") else name


def nvidia_device_nodes() -> bool:
    """Whether /dev shows an NVIDIA GPU device (nvidia0, nvidia1...): a guess made in microseconds,
    without loading NVML, for the Monitor's first frame; NVML's first sample has the last word."""
    try:
        return any(name.startswith("nvidia") and name[6:].isdigit() for name in os.listdir("/dev"))
    except OSError:
        return False


def unavailable_reason(exc: BaseException) -> str:
    """Why NVML cannot start, as the one line the Monitor shows instead of the GPU panel."""
    kind = error_kind(exc)
    if kind == "LibraryNotFound":
        return "No GPU panel: no NVIDIA driver here (libnvidia-ml.so.1 not found)."
    if kind == "DriverNotLoaded":
        return "No GPU panel: the NVIDIA kernel driver is not loaded (nvidia-smi would fail too)."
    if kind == "NoPermission":
        return "No GPU panel: this user may not open the NVIDIA device (check /dev/nvidia* permissions)."
    if kind == "LibRmVersionMismatch":
        return "No GPU panel: the NVIDIA driver and NVML library versions differ; reboot or reload the driver."
    return f"No GPU panel: NVML could not start ({kind}: {exc})."


@dataclass
class _Gpu:
    index: int
    handle: Any
    name: Any = NA
    uuid: Any = NA
    clock_sm_max: Any = NA
    proc_util_ts: int = 0


class NvmlSampler:
    """Reads every GPU through NVML. Use from one thread (NVML is serialising anyway)."""

    def __init__(
        self, nvml: Any = None, *, slow_interval: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._nv = nvml
        self._injected = nvml is not None
        self.slow_interval = slow_interval
        self._clock = clock
        self._gpus: list[_Gpu] = []
        self._last_slow = float("-inf")
        self._slow: dict[int, dict[str, Any]] = {}
        self._procs: dict[int, tuple[ProcessSample, ...]] = {}
        self._skip: set[tuple[int, str]] = set()
        self.errors: dict[tuple[int, str], str] = {}
        self.available = False
        self.reason = "NVML not opened yet"
        self.driver: Any = NA
        self._opened = False
        self._error_base: type[BaseException] = Exception

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> bool:
        """Start NVML and cache handles; False (with `reason`) when there is no usable GPU."""
        if self._opened:
            return self.available
        self._opened = True
        if self._nv is None:
            try:
                import pynvml  # deferred: heavy-ish and absent on some boxes
            except ImportError:
                self.reason = "No GPU panel: the pynvml module (pip package nvidia-ml-py) is not installed."
                return False
            self._nv = pynvml
        self._error_base = getattr(self._nv, "NVMLError", Exception)
        try:
            self._nv.nvmlInit()
        except (self._error_base, OSError, AttributeError) as exc:
            self.reason = unavailable_reason(exc)
            return False
        try:
            count = int(self._nv.nvmlDeviceGetCount())
        except (self._error_base, AttributeError) as exc:
            self.reason = f"No GPU panel: NVML started but could not count GPUs ({error_kind(exc)})."
            self._shutdown()
            return False
        driver = (
            self._call(-1, "driver", self._nv.nvmlSystemGetDriverVersion)
            if hasattr(self._nv, "nvmlSystemGetDriverVersion")
            else NA
        )
        self.driver = _text(driver)
        for index in range(count):
            handle = self._call(index, "handle", self._nv.nvmlDeviceGetHandleByIndex, index)
            if handle is NA:
                continue
            gpu = _Gpu(index=index, handle=handle)
            gpu.name = _text(self._call(index, "name", self._fn("nvmlDeviceGetName"), handle))
            gpu.uuid = _text(self._call(index, "uuid", self._fn("nvmlDeviceGetUUID"), handle))
            gpu.clock_sm_max = self._call(
                index, "clock_sm_max", self._fn("nvmlDeviceGetMaxClockInfo"), handle, CLOCK_SM
            )
            self._gpus.append(gpu)
        if not self._gpus:
            self.reason = "No GPU panel: the NVIDIA driver is loaded but reports no GPU." if count == 0 else (
                "No GPU panel: NVML lists GPUs but none could be opened (see `nvidia-smi`)."
            )
            self._shutdown()
            return False
        self.available = True
        self.reason = ""
        return True

    def close(self) -> None:
        if self.available:
            self._shutdown()
        self.available = False

    def _shutdown(self) -> None:
        try:  # noqa: SIM105 - any error, not only NVMLError: shutting down must never raise
            self._nv.nvmlShutdown()
        except Exception:  # noqa: BLE001 - shutting down must never raise
            pass

    @property
    def gpu_count(self) -> int:
        return len(self._gpus)

    # -- calls -----------------------------------------------------------------------------
    def _fn(self, name: str) -> Callable[..., Any]:
        fn = getattr(self._nv, name, None)
        if fn is None:

            def missing(*_args: Any) -> Any:
                raise AttributeError(f"pynvml has no {name}")

            return missing
        return fn

    def _call(self, gpu: int, field: str, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args), or NA when NVML (or the binding) cannot give this field for this GPU."""
        key = (gpu, field)
        if key in self._skip:
            return NA
        try:
            return fn(*args)
        except (self._error_base, AttributeError) as exc:
            kind = error_kind(exc)
            self.errors[key] = kind
            if kind in PERMANENT_ERRORS:
                self._skip.add(key)
            return NA

    def _first(self, gpu: int, field: str, *attempts: tuple[str, tuple[Any, ...]]) -> Any:
        """The first of several equivalent calls that works (newer name, then older one)."""
        for name, args in attempts:
            value = self._call(gpu, f"{field}:{name}", self._fn(name), *args)
            if value is not NA:
                return value
        return NA

    # -- sampling --------------------------------------------------------------------------
    def sample(self) -> tuple[tuple[GpuSample, ...], tuple[ProcessSample, ...]]:
        """One pass over every GPU: fast fields now, slow fields when their cadence is due."""
        if not self.available:
            return (), ()
        now = self._clock()
        slow_due = now - self._last_slow >= self.slow_interval
        if slow_due:
            self._last_slow = now
        gpus = []
        for gpu in self._gpus:
            if slow_due:
                self._slow[gpu.index] = self._read_slow(gpu)
                self._procs[gpu.index] = self._read_processes(gpu)
            gpus.append(self._read_fast(gpu, self._slow.get(gpu.index, {}), self._procs.get(gpu.index)))
        procs = tuple(p for gpu in self._gpus for p in (self._procs.get(gpu.index) or ()))
        return tuple(gpus), procs

    def _read_fast(self, gpu: _Gpu, slow: dict[str, Any], procs: tuple[ProcessSample, ...] | None) -> GpuSample:
        h, i = gpu.handle, gpu.index
        used = total = reserved = NA
        mem = self._call(i, "memory_v2", self._fn("nvmlDeviceGetMemoryInfo"), h, MEMORY_V2)
        if mem is NA:
            mem = self._call(i, "memory", self._fn("nvmlDeviceGetMemoryInfo"), h)
        if mem is not NA:
            used, total = _int(getattr(mem, "used", NA)), _int(getattr(mem, "total", NA))
            reserved = _int(getattr(mem, "reserved", NA))
        util = self._call(i, "utilization", self._fn("nvmlDeviceGetUtilizationRates"), h)
        util_gpu = _int(getattr(util, "gpu", NA)) if util is not NA else NA
        util_mem = _int(getattr(util, "memory", NA)) if util is not NA else NA
        power = self._call(i, "power", self._fn("nvmlDeviceGetPowerUsage"), h)
        mask = self._first(
            i,
            "throttle",
            ("nvmlDeviceGetCurrentClocksEventReasons", (h,)),
            ("nvmlDeviceGetCurrentClocksThrottleReasons", (h,)),
        )
        return GpuSample(
            index=i,
            name=gpu.name,
            uuid=gpu.uuid,
            memory_used=used,
            memory_total=total,
            memory_reserved=reserved,
            util_gpu=util_gpu,
            util_memory=util_mem,
            temperature=_int(self._call(i, "temperature", self._fn("nvmlDeviceGetTemperature"), h, TEMPERATURE_GPU)),
            fan_percent=_int(self._call(i, "fan", self._fn("nvmlDeviceGetFanSpeed"), h)),
            power_w=_scale(power, 1e-3),
            power_limit_w=slow.get("power_limit_w", NA),
            energy_j=slow.get("energy_j", NA),
            clock_sm_mhz=_int(self._call(i, "clock_sm", self._fn("nvmlDeviceGetClockInfo"), h, CLOCK_SM)),
            clock_mem_mhz=_int(self._call(i, "clock_mem", self._fn("nvmlDeviceGetClockInfo"), h, CLOCK_MEM)),
            clock_sm_max_mhz=_int(gpu.clock_sm_max),
            pstate=_int(self._call(i, "pstate", self._fn("nvmlDeviceGetPerformanceState"), h)),
            throttle=throttle_words(int(mask)) if mask is not NA else NA,
            pcie_gen=slow.get("pcie_gen", NA),
            pcie_width=slow.get("pcie_width", NA),
            pcie_tx_kbs=slow.get("pcie_tx_kbs", NA),
            pcie_rx_kbs=slow.get("pcie_rx_kbs", NA),
            ecc_enabled=slow.get("ecc_enabled", NA),
            process_count=len(procs) if procs is not None else NA,
        )

    def _read_slow(self, gpu: _Gpu) -> dict[str, Any]:
        h, i = gpu.handle, gpu.index
        limit = self._first(
            i, "power_limit", ("nvmlDeviceGetEnforcedPowerLimit", (h,)), ("nvmlDeviceGetPowerManagementLimit", (h,))
        )
        ecc = self._call(i, "ecc_mode", self._fn("nvmlDeviceGetEccMode"), h)
        return {
            "power_limit_w": _scale(limit, 1e-3),
            "energy_j": _scale(self._call(i, "energy", self._fn("nvmlDeviceGetTotalEnergyConsumption"), h), 1e-3),
            "pcie_gen": _int(self._call(i, "pcie_gen", self._fn("nvmlDeviceGetCurrPcieLinkGeneration"), h)),
            "pcie_width": _int(self._call(i, "pcie_width", self._fn("nvmlDeviceGetCurrPcieLinkWidth"), h)),
            "pcie_tx_kbs": _int(self._call(i, "pcie_tx", self._fn("nvmlDeviceGetPcieThroughput"), h, PCIE_TX)),
            "pcie_rx_kbs": _int(self._call(i, "pcie_rx", self._fn("nvmlDeviceGetPcieThroughput"), h, PCIE_RX)),
            "ecc_enabled": bool(ecc[0]) if isinstance(ecc, (tuple, list)) and ecc else NA,
        }

    def _read_processes(self, gpu: _Gpu) -> tuple[ProcessSample, ...] | None:
        """Compute + graphics processes with their memory and, where reported, SM%.
        None when neither list could be read (the card then says n/a, not 0)."""
        h, i = gpu.handle, gpu.index
        compute = self._first(
            i,
            "procs_compute",
            ("nvmlDeviceGetComputeRunningProcesses", (h,)),
            ("nvmlDeviceGetComputeRunningProcesses_v2", (h,)),
        )
        graphics = self._first(
            i,
            "procs_graphics",
            ("nvmlDeviceGetGraphicsRunningProcesses", (h,)),
            ("nvmlDeviceGetGraphicsRunningProcesses_v2", (h,)),
        )
        if compute is NA and graphics is NA:
            return None
        found: dict[int, dict[str, Any]] = {}
        for kind, plist in (("C", compute), ("G", graphics)):
            for proc in plist if plist is not NA else ():
                pid = int(_get(proc, "pid", -1))
                if pid < 0:
                    continue
                mem = _get(proc, "usedGpuMemory", None)
                entry = found.setdefault(pid, {"type": kind, "mem": NA})
                if entry["type"] != kind:
                    entry["type"] = "C+G"
                if mem is not None and mem is not NA:
                    entry["mem"] = int(mem) if entry["mem"] is NA else max(entry["mem"], int(mem))
        sm = self._process_util(gpu) if found else {}
        return tuple(
            ProcessSample(pid=pid, gpu_index=i, type=e["type"], gpu_memory=e["mem"], sm_util=sm.get(pid, NA))
            for pid, e in sorted(found.items())
        )

    def _process_util(self, gpu: _Gpu) -> dict[int, int]:
        """Per-process SM% since the last read; NotFound (nothing ran in the window) -> {}."""
        samples = self._call(
            gpu.index, "process_util", self._fn("nvmlDeviceGetProcessUtilization"), gpu.handle, gpu.proc_util_ts
        )
        if samples is NA:
            return {}
        latest: dict[int, tuple[int, int]] = {}
        for s in samples:
            pid, ts, util = int(_get(s, "pid", -1)), int(_get(s, "timeStamp", 0)), _get(s, "smUtil", None)
            if util is None:
                continue
            if pid not in latest or ts >= latest[pid][0]:
                latest[pid] = (ts, int(util))
            gpu.proc_util_ts = max(gpu.proc_util_ts, ts)
        return {pid: util for pid, (_ts, util) in latest.items()}


def _get(obj: Any, name: str, default: Any) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _int(value: Any) -> Any:
    if value is NA or value is None:
        return NA
    try:
        return int(value)
    except (TypeError, ValueError):
        return NA


def _scale(value: Any, factor: float) -> Any:
    if value is NA or value is None:
        return NA
    try:
        return round(float(value) * factor, 3)
    except (TypeError, ValueError):
        return NA


def _text(value: Any) -> Any:
    if value is NA or value is None:
        return NA
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
