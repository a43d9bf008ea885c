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
