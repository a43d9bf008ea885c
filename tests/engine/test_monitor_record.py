"""Record -> replay round trip, the real H200 fixture through the live NVML code, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.monitor.nvml import NvmlSampler
from engine.monitor.record import Recorder, ReplayError, load_samples
from engine.monitor.sample import (
    NA,
    HostSample,
    MonitorSample,
    ProcessSample,
    RunLabel,
    sample_from_dict,
)
from engine.monitor.sampler_thread import ReplaySource
from tests.engine.test_monitor_fakes import FakeNvml
from tests.helpers.fixtures import NVML_H200


def _samples() -> list[MonitorSample]:
    sampler = NvmlSampler(FakeNvml(), slow_interval=0.0)
    sampler.open()
    out = []
    for t in range(3):
        gpus, procs = sampler.sample()
        procs = procs[:1] + tuple(
            ProcessSample(pid=p.pid, gpu_index=p.gpu_index, gpu_memory=p.gpu_memory, sm_util=p.sm_util, user="ann",
                          command="python train.py", cpu_percent=99.5, rss=123,
                          run=RunLabel("r1", "lora", "train", "running", "step 3/10"))
            for p in procs[1:]
        )
        host = HostSample(cpu_percent=12.5, per_core=(10.0, 15.0), load_avg=(0.5, 0.4, 0.3), ram_used=1, ram_total=2,
                          swap_used=0, swap_total=0, disk_path="/d", disk_used=NA, disk_total=NA)
        out.append(MonitorSample(time=1000.0 + t, gpus=gpus, processes=procs, host=host, driver="580",
                                 warnings=("w",) if t else ()))
    return out


def test_record_replay_round_trip_identical(tmp_path: Path) -> None:
    samples = _samples()
    rec = Recorder(tmp_path / "m.jsonl")
    for s in samples:
        rec.write(s)
    rec.close()
    assert load_samples(tmp_path / "m.jsonl") == samples
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["format"] == "llmdeck-monitor/1"
    assert sample_from_dict(json.loads(json.dumps(samples[1].to_dict()))) == samples[1]


def test_torn_last_line_is_skipped_but_bad_middle_line_is_reported(tmp_path: Path) -> None:
    samples = _samples()
    path = tmp_path / "m.jsonl"
    text = "".join(json.dumps(s.to_dict()) + "\n" for s in samples)
    path.write_text(text + '{"format": "llmdeck-mon')
    assert load_samples(path) == samples
    path.write_text("not json\n" + text)
    with pytest.raises(ReplayError, match=r"m.jsonl:1: not a monitor sample"):
        load_samples(path)
    with pytest.raises(ReplayError, match="does not exist"):
        load_samples(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ReplayError, match="no monitor samples"):
        load_samples(tmp_path / "empty.jsonl")


def test_h200_fixture_through_the_nvml_code_path() -> None:
    idle, busy = load_samples(NVML_H200)
    g = busy.gpus[0]
    assert (g.name, g.uuid) == ("NVIDIA H200", "GPU-6deba50d-02ba-223d-da5e-005df5ea7760")
    assert (g.memory_used, g.memory_total, g.memory_reserved) == (52689698816, 150754820096, 644939776)
    assert (g.util_gpu, g.util_memory, g.temperature) == (48, 33, 43)
    assert (g.power_w, g.power_limit_w, g.energy_j) == (301.498, 700.0, 30175.767)
    assert (g.clock_sm_mhz, g.clock_mem_mhz, g.clock_sm_max_mhz, g.pstate) == (1980, 3201, 1980, 0)
    assert (g.pcie_gen, g.pcie_width, g.pcie_tx_kbs, g.ecc_enabled) == (5, 16, 719, True)
    assert g.fan_percent is NA  # NotSupported on an H200
    assert g.throttle == () and idle.gpus[0].throttle == ("idle",)
    assert busy.driver == "580.159.04"
    (proc,) = busy.processes
    assert (proc.pid, proc.gpu_memory, proc.sm_util) == (421, 52680458240, 57)
    assert idle.processes == () and idle.gpus[0].process_count == 0


def test_fixture_replays_through_record_unchanged(tmp_path: Path) -> None:
    samples = load_samples(NVML_H200)
    rec = Recorder(tmp_path / "h200.jsonl")
    for s in samples:
        rec.write(s)
    rec.close()
    assert load_samples(tmp_path / "h200.jsonl") == samples


def test_replay_source_loops_with_increasing_time() -> None:
    src = ReplaySource(load_samples(NVML_H200))
    times = [src.sample().time for _ in range(5)]
    assert times == sorted(times) and len(set(times)) == 5
    once = ReplaySource(load_samples(NVML_H200), loop=False)
    once.sample(), once.sample(), once.sample()
    assert once.finished


def test_recorder_refuses_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="does not exist"):
        Recorder(tmp_path / "nope" / "m.jsonl")
