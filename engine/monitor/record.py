"""Record samples as JSON lines and replay them, or replay a raw NVML fixture.

`--record FILE` appends one `MonitorSample.to_dict()` per line (flushed each tick, so a killed
monitor leaves every complete line readable). `--replay FILE` reads them back; a torn last line
is skipped. Replay also accepts the form of `tests/fixtures/nvml_h200.json` (raw NVML call results
from a real GPU): each reading is fed through `NvmlSampler` via a stand-in pynvml module that
returns the recorded values and raises the real pynvml error classes for the recorded errors,
so the screen and tests see exactly what the live code path makes of a real H200.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import IO, Any

from engine.monitor.sample import HostSample, MonitorSample, sample_from_dict


class ReplayError(ValueError):
    """The replay file cannot be used; the text says why and where."""


class Recorder:
    """Appends samples to a JSONL file. Opening fails early with a clear OSError."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            raise OSError(f"cannot record to {self.path}: folder {self.path.parent} does not exist")
        self._fh: IO[str] | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, sample: MonitorSample) -> None:
        if self._fh is None:
            return
        self._fh.write(json.dumps(sample.to_dict(), separators=(",", ":")) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def load_samples(path: str | Path) -> list[MonitorSample]:
    """Samples from a recording (JSONL) or an NVML fixture (JSON with "readings")."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReplayError(f"replay file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayError(f"cannot read replay file {path} ({exc})") from None
    stripped = text.lstrip()
    if stripped.startswith("{") and '"readings"' in text[:4096]:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("readings"), dict):
            samples = fixture_samples(data)
            if not samples:
                raise ReplayError(f"{path} has no readings to replay")
            return samples
    samples = []
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            samples.append(sample_from_dict(json.loads(line)))
        except (ValueError, TypeError, KeyError) as exc:
            if number == len(lines):
                break  # a torn last line from a monitor that was killed mid-write
            raise ReplayError(
                f"{path}:{number}: not a monitor sample ({exc}); record with `llmdeck monitor --record`"
            ) from None
    if not samples:
        raise ReplayError(f"{path} holds no monitor samples; record some with `llmdeck monitor --record FILE`")
    return samples


# -- the NVML fixture form ------------------------------------------------------------------

_FIELD_RE = re.compile(r"(\w+): (-?\d+)")


def _struct(text: str) -> Any:
    """'c_nvmlMemory_v2_t(total: 1 B, used: 2 B)' -> an object with .total, .used."""
    from types import SimpleNamespace

    return SimpleNamespace(**{k: int(v) for k, v in _FIELD_RE.findall(text)})


class FixtureNvml:
    """Stands in for the pynvml module, answering from one fixture reading."""

    _CALLS = {
        "nvmlDeviceGetName": "name",
        "nvmlDeviceGetUUID": "uuid",
        "nvmlDeviceGetUtilizationRates": "utilization",
        "nvmlDeviceGetPowerUsage": "power_mw",
        "nvmlDeviceGetEnforcedPowerLimit": "power_limit_mw",
        "nvmlDeviceGetPowerManagementLimit": "power_limit_mw",
        "nvmlDeviceGetTotalEnergyConsumption": "energy_mj",
        "nvmlDeviceGetFanSpeed": "fan",
        "nvmlDeviceGetPerformanceState": "pstate",
        "nvmlDeviceGetCurrentClocksEventReasons": "throttle",
        "nvmlDeviceGetCurrentClocksThrottleReasons": "throttle",
        "nvmlDeviceGetCurrPcieLinkGeneration": "pcie_gen",
        "nvmlDeviceGetCurrPcieLinkWidth": "pcie_width",
        "nvmlDeviceGetEccMode": "ecc_mode",
        "nvmlDeviceGetComputeRunningProcesses": "procs_compute",
        "nvmlDeviceGetGraphicsRunningProcesses": "procs_graphics",
        "nvmlDeviceGetProcessUtilization": "process_util",
    }

    def __init__(self, reading: dict[str, Any]) -> None:
        import pynvml  # the real error classes, so NvmlSampler sees what a real GPU raises

        self._pynvml = pynvml
        self.NVMLError = pynvml.NVMLError
        self._reading = reading
        self._calls: dict[str, Any] = reading.get("calls", {})

    def __getattr__(self, name: str) -> Any:
        key = self._CALLS.get(name)
        if key is None:
            raise AttributeError(name)
        return lambda *args: self._answer(key, *args)

    def _value(self, key: str) -> Any:
        call = self._calls.get(key)
        if call is None:
            raise self._pynvml.NVMLError_FunctionNotFound()
        if not call.get("ok"):
            cls_name = str(call.get("value", "")).split(":", 1)[0]
            raise getattr(self._pynvml, cls_name, self._pynvml.NVMLError_Unknown)()
        return call.get("value")

    def _answer(self, key: str, *args: Any) -> Any:
        value = self._value(key)
        if key == "utilization":
            return _struct(value)
        if key in ("procs_compute", "procs_graphics"):
            return [ast.literal_eval(v) if isinstance(v, str) else v for v in value]
        if key == "process_util":
            return [_struct(v) for v in value]
        return value

    # calls that take an extra argument or need a different key
    def nvmlInit(self) -> None:
        return None

    def nvmlShutdown(self) -> None:
        return None

    def nvmlDeviceGetCount(self) -> int:
        return int(self._reading.get("count", 1))

    def nvmlSystemGetDriverVersion(self) -> str:
        return str(self._reading.get("driver", ""))

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        if "cuda" not in self._reading:
            raise self._pynvml.NVMLError_NotSupported()
        return int(self._reading["cuda"])

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: Any = None) -> Any:
        return _struct(self._value("memory_v2"))

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> Any:
        return self._value("temperature")

    def nvmlDeviceGetClockInfo(self, handle: Any, clock: int) -> Any:
        return self._value("clock_sm" if clock == 1 else "clock_mem")

    def nvmlDeviceGetMaxClockInfo(self, handle: Any, clock: int) -> Any:
        return self._value("max_clock_sm" if clock == 1 else "max_clock_mem")

    def nvmlDeviceGetPcieThroughput(self, handle: Any, counter: int) -> Any:
        return self._value("pcie_tx" if counter == 0 else "pcie_rx")


def fixture_samples(data: dict[str, Any], start_time: float = 0.0) -> list[MonitorSample]:
    """One MonitorSample per fixture reading (in file order), through the live NVML code."""
    from engine.monitor.nvml import NvmlSampler

    samples = []
    for offset, (label, reading) in enumerate(data["readings"].items()):
        sampler = NvmlSampler(FixtureNvml(reading), slow_interval=0.0)
        if not sampler.open():
            samples.append(MonitorSample(time=start_time + offset, gpu_status=sampler.reason))
            continue
        gpus, procs = sampler.sample()
        sampler.close()
        samples.append(
            MonitorSample(
                time=start_time + offset,
                gpus=gpus,
                processes=procs,
                host=HostSample(),
                driver=sampler.driver,
                warnings=(),
            )
        )
        del label
    return samples


__all__ = ["FixtureNvml", "Recorder", "ReplayError", "fixture_samples", "load_samples"]
