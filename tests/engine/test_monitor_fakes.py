"""A fake pynvml module (the layer below NvmlSampler) for monitor tests.

It answers like a 2-GPU box and raises the *real* pynvml error classes on request, so the
sampler's error handling is tested against what NVML actually throws.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pynvml

GB = 1_000_000_000


class FakeNvml:
    NVMLError = pynvml.NVMLError

    def __init__(
        self, count: int = 2, *, fail: dict[str, type[BaseException]] | None = None, missing: tuple[str, ...] = ()
    ) -> None:
        self.count = count
        self.fail = dict(fail or {})
        self.missing = set(missing)
        self.calls: dict[str, int] = {}
        self.util = [37] * count
        self.procs: list[list[dict[str, Any]]] = [
            [{"pid": 1000 + i, "usedGpuMemory": (i + 1) * GB}] for i in range(count)
        ]

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("nvml") and name in object.__getattribute__(self, "missing"):
            raise AttributeError(name)
        value = object.__getattribute__(self, name)
        if name.startswith("nvml") and callable(value):
            calls = object.__getattribute__(self, "calls")
            fail = object.__getattribute__(self, "fail")

            def wrapped(*args: Any) -> Any:
                calls[name] = calls.get(name, 0) + 1
                if name in fail:
                    raise fail[name]()
                return value(*args)

            return wrapped
        return value

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int:
        return self.count
    def nvmlSystemGetDriverVersion(self) -> str:
        return "580.159.04"
    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i
    def nvmlDeviceGetName(self, h: int) -> str:
        return "NVIDIA H200"
    def nvmlDeviceGetUUID(self, h: int) -> str:
        return f"GPU-{h}"
    def nvmlDeviceGetMaxClockInfo(self, h: int, clock: int) -> int:
        return 1980
    def nvmlDeviceGetMemoryInfo(self, h: int, version: Any = None) -> Any:
        if version:
            return SimpleNamespace(total=150 * GB, used=(h + 1) * GB, free=0, reserved=GB // 2)
        return SimpleNamespace(total=150 * GB, used=(h + 1) * GB, free=0)
    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        return SimpleNamespace(gpu=self.util[h], memory=20)
    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        return 301_498
    def nvmlDeviceGetCurrentClocksEventReasons(self, h: int) -> int:
        return 0x4 | 0x40
    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: int) -> int:
        return 0x4
    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        return 43
    def nvmlDeviceGetFanSpeed(self, h: int) -> int:
        return 30
    def nvmlDeviceGetClockInfo(self, h: int, clock: int) -> int:
        return 1980 if clock == 1 else 3201
    def nvmlDeviceGetPerformanceState(self, h: int) -> int:
        return 0
    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> int:
        return 700_000
    def nvmlDeviceGetPowerManagementLimit(self, h: int) -> int:
        return 650_000
    def nvmlDeviceGetEccMode(self, h: int) -> list[int]:
        return [1, 1]
    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        return 30_175_767
    def nvmlDeviceGetCurrPcieLinkGeneration(self, h: int) -> int:
        return 5
    def nvmlDeviceGetCurrPcieLinkWidth(self, h: int) -> int:
        return 16
    def nvmlDeviceGetPcieThroughput(self, h: int, counter: int) -> int:
        return 719 if counter == 0 else 1200
    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[Any]:
        return [SimpleNamespace(**p) for p in self.procs[h]]
    def nvmlDeviceGetComputeRunningProcesses_v2(self, h: int) -> list[Any]:
        return [SimpleNamespace(**p) for p in self.procs[h]]
    def nvmlDeviceGetGraphicsRunningProcesses(self, h: int) -> list[Any]:
        return []
    def nvmlDeviceGetProcessUtilization(self, h: int, ts: int) -> list[Any]:
        return [SimpleNamespace(pid=p["pid"], timeStamp=ts + 10, smUtil=57, memUtil=28) for p in self.procs[h]]
