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


def _stat(pid: int, comm: str, ticks: int, started: int, pages: int) -> str:
    """A /proc/<pid>/stat line (man 5 proc): utime is field 14, starttime 22, rss 24."""
    return f"{pid} ({comm}) S 1 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 1 0 {started} 1000 {pages} 0\n"


def test_top_processes_read_proc_and_relabel_a_reused_pid(tmp_path: Path, monkeypatch) -> None:
    """The no-GPU list reads /proc/<pid>/stat itself (bench/idle.py: psutil's pass cost 5-10 ms a
    tick) and reads user and command line once per process: a pid reused by a new process (another
    start time) is read again, and its CPU% is not a difference against the old process's ticks."""
    import psutil

    from engine.monitor import host as host_mod

    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "stat").write_text(_stat(1, "me", 0, 1, 1))
    (proc / "4242").mkdir()
    (proc / "notapid").mkdir()
    read_labels = []

    class Labels:  # psutil.Process for the labels only (pid 4242 is not a process here)
        def __init__(self, pid: int) -> None:
            read_labels.append(pid)
            self.generation = len(read_labels)

        def oneshot(self):
            import contextlib

            return contextlib.nullcontext()

        def name(self) -> str:
            return f"gen{self.generation}"

        def cmdline(self) -> list[str]:
            return [f"gen{self.generation}", "--serve"]

        def username(self) -> str:
            return "alice"

    clock = iter([100.0, 102.0, 104.0])
    monkeypatch.setattr(host_mod.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(psutil, "Process", Labels)
    top = host_mod.TopProcesses(top=5, proc=proc)
    hz, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")

    def pass_with(ticks: int, started: int) -> dict[int, object]:
        (proc / "4242" / "stat").write_text(_stat(4242, "odd (name) x", ticks, started, 300))
        return {p.pid: p for p in top.sample(2**40)}

    first = pass_with(ticks=1000, started=5000)
    assert first[4242].cpu_percent == 0.0 and first[4242].rss == 300 * page  # one reading: no rate yet
    assert first[4242].command == "gen1 --serve" and first[4242].user == "alice" and first[4242].name == "gen1"
    busy = pass_with(ticks=1000 + hz, started=5000)  # a second of CPU in two seconds
    assert busy[4242].cpu_percent == 50.0 and busy[4242].command == "gen1 --serve" and read_labels == [4242]
    reused = pass_with(ticks=10, started=9000)  # the pid now belongs to a process started later
    assert reused[4242].command == "gen2 --serve" and reused[4242].cpu_percent == 0.0
    assert read_labels == [4242, 4242]
