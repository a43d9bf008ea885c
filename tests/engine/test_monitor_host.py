"""Host sampling (real psutil) and the host-only mode when NVML is unavailable."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pynvml

from engine.monitor.history import History
from engine.monitor.host import HostSampler
from engine.monitor.sample import NA, ProcessSample
from engine.monitor.sampler_thread import LiveSource, SamplerThread
from tests.engine.test_monitor_fakes import FakeNvml


def test_host_sample_is_real(tmp_path: Path) -> None:
    host = HostSampler(tmp_path / "not-yet" / "deeper")
    s = host.sample()
    assert s.disk_path == str(tmp_path.resolve())
    assert 0 < s.ram_used < s.ram_total and s.disk_total > 0
    assert len(s.per_core) == os.cpu_count() and 0.0 <= s.cpu_percent <= 100.0
    assert len(s.load_avg) == 3


def test_enrich_own_process_and_unknown_pid() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        host = HostSampler()
        procs = (ProcessSample(pid=child.pid, gpu_index=0), ProcessSample(pid=2**22 + 12345, gpu_index=0))
        first = host.enrich(procs)
        assert "time.sleep(30)" in first[0].command and first[0].rss > 0 and first[0].user
        assert first[1].command is NA and first[1].rss is NA  # not in our PID namespace: n/a, no error
        again = host.enrich(procs[:1])
        assert again[0].cpu_percent is not NA
    finally:
        child.kill()
        child.wait()


def test_host_only_when_no_driver() -> None:
    src = LiveSource(nvml=FakeNvml(fail={"nvmlInit": pynvml.NVMLError_LibraryNotFound}))
    sample = src.sample()
    assert sample.gpus == () and sample.processes == ()
    assert sample.gpu_status.startswith("No GPU panel:") and "libnvidia-ml" in sample.gpu_status
    assert sample.host.ram_total > 0


def test_live_source_with_fake_gpus_labels_nothing_without_runs() -> None:
    src = LiveSource(nvml=FakeNvml(count=2))
    sample = src.sample()
    assert len(sample.gpus) == 2 and sample.gpu_status == ""
    assert all(p.run is None for p in sample.processes)


def test_sampler_thread_feeds_history_and_stops_promptly() -> None:
    got = []
    history = History()
    thread = SamplerThread(
        lambda: LiveSource(nvml=FakeNvml(count=1)), got.append, interval=0.05, history=history
    ).start()
    deadline = time.monotonic() + 5
    while len(got) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    began = time.monotonic()
    thread.stop()
    assert not thread.running and time.monotonic() - began < 1.0
    assert len(got) >= 3 and history.latest(("gpu", 0, "util")) == 37.0


def test_sampler_thread_reports_errors() -> None:
    errors = []

    class Broken:
        def sample(self):
            raise RuntimeError("boom")

        def close(self):
            pass

    thread = SamplerThread(Broken(), lambda s: None, interval=0.01, on_error=errors.append).start()
    deadline = time.monotonic() + 5
    while not errors and time.monotonic() < deadline:
        time.sleep(0.01)
    thread.stop()
    assert isinstance(errors[0], RuntimeError)


def test_top_processes_rank_real_processes_by_cpu_and_memory_and_survive_round_trips() -> None:
    """Issue 17 item 15: the no-GPU Monitor's host process list, from real processes."""
    from engine.monitor.host import TopProcesses
    from engine.monitor.sample import MonitorSample, sample_from_dict

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    big = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(500_000_000); time.sleep(30)"])
    try:
        top = TopProcesses(top=10)
        ram = HostSampler().sample().ram_total
        deadline = time.monotonic() + 15
        while True:
            procs = top.sample(ram)  # the first pass of a new process reads 0% (two readings needed)
            by_pid = {p.pid: p for p in procs}
            if busy.pid in by_pid and by_pid[busy.pid].cpu_percent > 10 and by_pid.get(big.pid, busy).rss > 500e6:
                break
            assert time.monotonic() < deadline, f"busy/big child not listed: {procs}"
            time.sleep(0.5)
        assert len(procs) <= 20  # top 10 by CPU + top 10 by RSS, overlapping or not
        cpus = [p.cpu_percent for p in procs]
        assert cpus == sorted(cpus, reverse=True)
        spin, held = by_pid[busy.pid], by_pid[big.pid]
        assert "while True: pass" in spin.command and spin.user and spin.name
        assert held.rss > 500_000_000 and 0 < held.mem_percent == round(100 * held.rss / ram, 1)
        assert set(top._labels) == set(by_pid)  # labels only for what is listed
        sample = MonitorSample(time=1.0, host_processes=procs)
        assert sample_from_dict(sample.to_dict()) == sample  # --record / --replay keep them
    finally:
        busy.kill()
        big.kill()
        busy.wait()
        big.wait()
    time.sleep(0.1)
    after = {p.pid for p in top.sample(ram)}
    assert busy.pid not in after and big.pid not in after and busy.pid not in top._labels


def test_live_source_lists_host_processes_only_without_a_gpu() -> None:
    no_gpu = LiveSource(nvml=FakeNvml(fail={"nvmlInit": pynvml.NVMLError_LibraryNotFound}))
    with_gpu = LiveSource(nvml=FakeNvml(count=1))
    try:
        assert os.getpid() in {p.pid for p in no_gpu.sample().host_processes}
        assert with_gpu.sample().host_processes == ()
    finally:
        no_gpu.close()
        with_gpu.close()
