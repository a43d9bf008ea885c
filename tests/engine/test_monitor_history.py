from __future__ import annotations

from engine.monitor.history import History, downsample, window_label
from engine.monitor.sample import NA, GpuSample, HostSample, MonitorSample


def test_fine_ring_is_bounded_and_windowed() -> None:
    h = History(fine_seconds=10, interval=1.0, coarse_seconds=100, coarse_step=5)
    for t in range(50):
        h.add("k", float(t), float(t))
    fine = h.points("k", 10)
    assert [v for _, v in fine] == [float(v) for v in range(40, 50)]
    assert len(h.points("k", 5)) == 5


def test_longer_windows_use_coarse_means() -> None:
    h = History(fine_seconds=10, interval=1.0, coarse_seconds=100, coarse_step=5)
    for t in range(60):
        h.add("k", float(t), float(t))
    pts = h.points("k", 60)
    coarse = [p for p in pts if p[0] % 5 == 0 and p[1] == p[0] + 2]
    assert coarse, "5 s bucket means (t, t+2) expected"
    assert pts[-1] == (59.0, 59.0)
    assert [p[0] for p in pts] == sorted(p[0] for p in pts)
    assert len(pts) < 30


def test_na_is_a_gap_charted_as_zero_and_downsample() -> None:
    assert downsample([1, None, 3], 10) == [1.0, 0.0, 3.0]
    assert downsample(list(range(100)), 10) == [4.5 + 10 * i for i in range(10)]
    assert downsample([1.0], 0) == []
    assert window_label(60) == "1m" and window_label(3600) == "1h" and window_label(30) == "30s"


def test_add_sample_records_gpu_and_host_metrics() -> None:
    h = History()
    gpu = GpuSample(index=0, memory_used=50, memory_total=200, util_gpu=40, power_w=NA)
    h.add_sample(MonitorSample(time=1.0, gpus=(gpu,), host=HostSample(cpu_percent=10.0, ram_used=1, ram_total=4)))
    assert h.latest(("gpu", 0, "util")) == 40.0
    assert h.latest(("gpu", 0, "mem")) == 25.0
    assert h.latest(("gpu", 0, "power")) is None
    assert h.latest(("host", "ram")) == 25.0
    assert h.series(("gpu", 0, "util"), 60, 20) == [40.0]
