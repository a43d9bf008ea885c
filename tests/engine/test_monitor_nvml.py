"""NvmlSampler against a fake pynvml that raises each real NVML error kind on each call."""

from __future__ import annotations

import sys

import pynvml
import pytest

from engine.monitor.nvml import NvmlSampler, throttle_words, unavailable_reason
from engine.monitor.sample import NA
from tests.engine.test_monitor_fakes import GB, FakeNvml

ERRORS = [
    pynvml.NVMLError_NotSupported,
    pynvml.NVMLError_NotFound,
    pynvml.NVMLError_NoPermission,
    pynvml.NVMLError_FunctionNotFound,
    pynvml.NVMLError_GpuIsLost,
    pynvml.NVMLError_Unknown,
]

# call -> the GpuSample fields that must become n/a when it fails (other fields must not)
CALL_FIELDS = {
    "nvmlDeviceGetUtilizationRates": ("util_gpu", "util_memory"),
    "nvmlDeviceGetPowerUsage": ("power_w",),
    "nvmlDeviceGetTemperature": ("temperature",),
    "nvmlDeviceGetFanSpeed": ("fan_percent",),
    "nvmlDeviceGetPerformanceState": ("pstate",),
    "nvmlDeviceGetTotalEnergyConsumption": ("energy_j",),
    "nvmlDeviceGetCurrPcieLinkGeneration": ("pcie_gen",),
    "nvmlDeviceGetCurrPcieLinkWidth": ("pcie_width",),
    "nvmlDeviceGetPcieThroughput": ("pcie_tx_kbs", "pcie_rx_kbs"),
    "nvmlDeviceGetEccMode": ("ecc_enabled",),
    "nvmlDeviceGetMaxClockInfo": ("clock_sm_max_mhz",),
    "nvmlDeviceGetClockInfo": ("clock_sm_mhz", "clock_mem_mhz"),
    "nvmlDeviceGetName": ("name",),
    "nvmlDeviceGetUUID": ("uuid",),
    "nvmlDeviceGetMemoryInfo": ("memory_used", "memory_total", "memory_reserved"),
}


def _sample(fake: FakeNvml):
    sampler = NvmlSampler(fake, slow_interval=0.0)
    assert sampler.open(), sampler.reason
    return sampler, *sampler.sample()


def test_all_fields_when_nothing_fails() -> None:
    _, gpus, procs = _sample(FakeNvml())
    assert len(gpus) == 2
    g = gpus[1]
    assert (g.name, g.uuid, g.memory_used, g.memory_total, g.memory_reserved) == (
        "NVIDIA H200", "GPU-1", 2 * GB, 150 * GB, GB // 2
    )
    assert (g.util_gpu, g.temperature, g.power_w, g.power_limit_w, g.energy_j) == (37, 43, 301.498, 700.0, 30175.767)
    assert (g.clock_sm_mhz, g.clock_mem_mhz, g.clock_sm_max_mhz, g.pstate) == (1980, 3201, 1980, 0)
    assert g.throttle == ("power cap", "hardware thermal")
    assert (g.pcie_gen, g.pcie_width, g.pcie_tx_kbs, g.pcie_rx_kbs, g.ecc_enabled) == (5, 16, 719, 1200, True)
    assert [(p.pid, p.gpu_index, p.gpu_memory, p.sm_util) for p in procs] == [(1000, 0, GB, 57), (1001, 1, 2 * GB, 57)]
    assert all(v is not NA for v in vars(g).values())


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("call", sorted(CALL_FIELDS))
def test_each_error_on_each_call_becomes_na(call: str, error: type) -> None:
    _, gpus, _ = _sample(FakeNvml(fail={call: error}))
    for gpu in gpus:
        for name, value in vars(gpu).items():
            if name in CALL_FIELDS[call]:
                assert value is NA, f"{name} should be n/a when {call} raises {error.__name__}"
            elif name != "index":
                assert value is not NA, f"{name} became n/a although only {call} failed"


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: e.__name__)
def test_process_calls_failing(error: type) -> None:
    fake = FakeNvml(fail={
        "nvmlDeviceGetComputeRunningProcesses": error,
        "nvmlDeviceGetComputeRunningProcesses_v2": error,
        "nvmlDeviceGetGraphicsRunningProcesses": error,
    })
    _, gpus, procs = _sample(fake)
    assert procs == ()
    assert all(g.process_count is NA for g in gpus)
    fake = FakeNvml(fail={"nvmlDeviceGetProcessUtilization": error})
    _, gpus, procs = _sample(fake)
    assert [p.sm_util for p in procs] == [NA, NA] and [p.gpu_memory for p in procs] == [GB, 2 * GB]


def test_missing_functions_fall_back_or_na() -> None:
    fake = FakeNvml(missing=("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetEnforcedPowerLimit",
                             "nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetFanSpeed"))
    sampler, gpus, procs = _sample(fake)
    assert gpus[0].throttle == ("power cap",)  # older ThrottleReasons name
    assert gpus[0].power_limit_w == 650.0  # PowerManagementLimit
    assert len(procs) == 2  # _v2 process list
    assert gpus[0].fan_percent is NA
    assert sampler.errors[(0, "fan")] == "missing"


def test_old_driver_function_not_found_memory_v2_falls_back() -> None:
    class OldDriver(FakeNvml):
        def nvmlDeviceGetMemoryInfo(self, h, version=None):
            if version:
                raise pynvml.NVMLError_FunctionNotFound()
            return super().nvmlDeviceGetMemoryInfo(h)

    _, gpus, _ = _sample(OldDriver())
    assert gpus[0].memory_used == GB and gpus[0].memory_reserved is NA


def test_permanent_errors_not_retried_transient_are() -> None:
    fake = FakeNvml(fail={"nvmlDeviceGetFanSpeed": pynvml.NVMLError_NotSupported,
                          "nvmlDeviceGetProcessUtilization": pynvml.NVMLError_NotFound})
    sampler = NvmlSampler(fake, slow_interval=0.0)
    sampler.open()
    for _ in range(3):
        sampler.sample()
    assert fake.calls["nvmlDeviceGetFanSpeed"] == 2  # once per GPU, then never again
    assert fake.calls["nvmlDeviceGetProcessUtilization"] == 6  # NotFound just means "nothing ran": ask again
    assert sampler.errors[(0, "fan")] == "NotSupported"


def test_slow_fields_on_their_own_cadence_and_handles_cached() -> None:
    now = [100.0]
    fake = FakeNvml(count=1)
    sampler = NvmlSampler(fake, slow_interval=5.0, clock=lambda: now[0])
    sampler.open()
    for _ in range(5):
        gpus, _ = sampler.sample()
        now[0] += 1.0
    assert fake.calls["nvmlDeviceGetUtilizationRates"] == 5
    assert fake.calls["nvmlDeviceGetPcieThroughput"] == 2  # tx + rx, once
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses"] == 1
    assert fake.calls["nvmlDeviceGetHandleByIndex"] == 1
    assert gpus[0].pcie_tx_kbs == 719  # reused between slow reads
    sampler.sample()
    assert fake.calls["nvmlDeviceGetPcieThroughput"] == 4


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (pynvml.NVMLError_LibraryNotFound, "libnvidia-ml.so.1"),
        (pynvml.NVMLError_DriverNotLoaded, "driver is not loaded"),
        (pynvml.NVMLError_NoPermission, "permissions"),
    ],
)
def test_init_failure_gives_one_clear_line(error: type, words: str) -> None:
    sampler = NvmlSampler(FakeNvml(fail={"nvmlInit": error}))
    assert sampler.open() is False
    assert words in sampler.reason and sampler.reason.startswith("No GPU panel:")
    assert "\n" not in sampler.reason
    assert sampler.sample() == ((), ())
    assert unavailable_reason(error()).startswith("No GPU panel")


def test_no_gpus_and_no_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    sampler = NvmlSampler(FakeNvml(count=0))
    assert not sampler.open() and "reports no GPU" in sampler.reason
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    sampler = NvmlSampler()
    assert not sampler.open() and "nvidia-ml-py" in sampler.reason


def test_real_pynvml_on_this_machine_degrades() -> None:
    """Here there is no NVIDIA driver: the real module must say so, not raise."""
    sampler = NvmlSampler()
    ok = sampler.open()
    if ok:  # a GPU box: the real thing works
        gpus, _ = sampler.sample()
        assert gpus and gpus[0].name is not NA
        sampler.close()
    else:
        assert sampler.reason.startswith("No GPU panel:")


def test_throttle_words() -> None:
    assert throttle_words(0) == ()
    assert throttle_words(1) == ("idle",)
    assert throttle_words(0x4 | 0x20) == ("power cap", "software thermal")
