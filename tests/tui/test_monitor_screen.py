"""Monitor mode through Textual's Pilot: replayed H200 data, host-only, sorting, filtering,
signals with confirmation (real child processes), permission refusal, layouts 1..8 GPUs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.settings import Settings
from tests.engine.test_monitor_fakes import GB, FakeNvml
from tests.helpers.fixtures import NVML_H200
from tui.app import LLMDeckApp
from tui.screens.confirm import ConfirmModal
from tui.widgets.gpu_card import GpuCard, GpuCardText
from tui.widgets.monitor_host import HostPanel
from tui.widgets.monitor_procs import ProcessTable
from tui.widgets.monitor_top import HostProcessTable


def fast_settings() -> Settings:
    settings = Settings()
    settings.monitor.interval = 0.1
    settings.monitor.slow_interval = 0.1
    return settings


async def until(pilot, condition: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)


def notes(app) -> str:
    return "\n".join(str(n.message) for n in app._notifications)


def card_text(app, index: int = 0) -> str:
    texts = app.screen.query_one(f"#gpu-card-{index}", GpuCard).query(GpuCardText)
    return str(texts.first().render()) if texts else ""  # "" while a new card is still composing


def proc_pids(app) -> list[int]:
    return [p.pid for p in app.screen.query_one(ProcessTable).shown]


async def test_h200_replay_cards_processes_and_host_at_80x24() -> None:
    app = LLMDeckApp(settings=fast_settings(), start_mode="monitor", options={"replay": str(NVML_H200)})
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: bool(app.screen.query(GpuCard)) and "49.1/140 GiB" in card_text(app))
        text = card_text(app)
        assert "util  48%" in text and "43°C" in text and "301/700W" in text and "fan n/a" in text
        assert "SM 1980/1980 MHz" in text and "PCIe 5x16" in text
        card = app.screen.query_one(GpuCard)
        assert card.density == "full" and "H200" in str(card.border_title)
        await until(pilot, lambda: proc_pids(app) == [421])
        assert "replaying nvml_h200.json" in str(app.screen.query_one("#mon-status").content)
        host = str(app.screen.query_one(HostPanel).render())
        assert "RAM" in host and "n/a" in host
        await until(pilot, lambda: "throttle: idle" in card_text(app))  # the idle reading comes round
        await pilot.press("t")  # a replay's pids are not ours: refuse, never signal
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmModal)
        assert "this is a replay" in notes(app)


async def test_host_only_shows_one_line_why(monkeypatch: pytest.MonkeyPatch) -> None:
    import pynvml

    app = LLMDeckApp(settings=fast_settings(), start_mode="monitor",
                     options={"nvml": FakeNvml(fail={"nvmlInit": pynvml.NVMLError_LibraryNotFound})})
    async with app.run_test(size=(80, 24)) as pilot:
        status = app.screen.query_one("#mon-status")
        await until(pilot, lambda: "No GPU panel" in str(status.content))
        assert status.size.height == 1 and "libnvidia-ml.so.1" in str(status.content)
        assert not app.screen.query(GpuCard)
        await until(pilot, lambda: "GiB" in str(app.screen.query_one(HostPanel).render()))
        host = str(app.screen.query_one(HostPanel).render())
        assert "load" in host and "cpu0" in host and "\nram " in host  # per-core bars and CPU/RAM charts
        assert not app.screen.query_one("#mon-procs-box").display  # no empty GPU process table


async def test_host_only_offers_no_process_keys_and_slash_eats_nothing() -> None:
    """Issue 17 item 7: with no GPU, / focused an invisible filter that took the next keys, and
    the footer offered s / t K for a table that is not there."""
    import pynvml

    app = LLMDeckApp(settings=fast_settings(), start_mode="monitor",
                     options={"nvml": FakeNvml(fail={"nvmlInit": pynvml.NVMLError_LibraryNotFound})})
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await until(pilot, lambda: not screen.query_one("#mon-procs-box").display)
        shown = {key for key, active in screen.active_bindings.items() if active.binding.show and active.enabled}
        assert not shown & {"slash", "t", "K"} and {"w", "s"} <= shown  # s sorts the host processes
        await pilot.press("question_mark")
        await pilot.pause()
        await pilot.press("escape")  # back from the help: the hidden table does not get the focus
        await pilot.pause()
        assert app.screen is screen and app.focused is screen.query_one(HostProcessTable)
        await pilot.press("slash", "4")
        await pilot.pause()
        assert app.current_mode == "data" and screen.query_one("#mon-filter").value == ""


@pytest.fixture
def busy_and_big():
    """A child spinning one core and a child holding 600 MB (real processes for the host table)."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    big = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(600_000_000); time.sleep(60)"])
    import psutil

    deadline = time.monotonic() + 15  # filling 600 MB is busy work: let it settle into its sleep
    while psutil.Process(big.pid).memory_info().rss < 600_000_000 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    yield busy, big
    for proc in (busy, big):
        proc.kill()
        proc.wait()


async def test_host_only_lists_the_hosts_busiest_processes_and_sorts_by_memory(busy_and_big) -> None:
    """Issue 17 item 15: with no GPU the Monitor lists the host's top processes (as htop does),
    busiest first, and `s` sorts them by memory; not 14 empty rows."""
    import pynvml

    busy, big = busy_and_big
    app = LLMDeckApp(settings=fast_settings(), start_mode="monitor",
                     options={"nvml": FakeNvml(fail={"nvmlInit": pynvml.NVMLError_LibraryNotFound})})
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one(HostProcessTable)
        box = app.screen.query_one("#mon-top-box")

        def cpu_of(pid: int) -> float:
            return next((p.cpu_percent for p in table.shown if p.pid == pid), 0.0)

        def pids() -> list[int]:
            return [p.pid for p in table.shown]

        # The spinning child is listed, busy, above the sleeping one (on a 2-core box shared with
        # other jobs its share of a core varies, and busier processes may rank above it).
        await until(pilot, lambda: busy.pid in pids() and cpu_of(busy.pid) > 10, 15)
        assert box.display and box.region.height >= 5 and not app.screen.query_one("#mon-procs-box").display
        assert big.pid not in pids() or pids().index(busy.pid) < pids().index(big.pid)
        cpus = [p.cpu_percent for p in table.shown]
        assert cpus == sorted(cpus, reverse=True) and "by CPU%" in str(box.border_title)
        row = table.row_cells(pids().index(busy.pid))
        assert row[0] == str(busy.pid) and "while True: pass" in row[-1] and row[1] not in ("", "n/a")
        await pilot.press("s")
        await until(pilot, lambda: big.pid in pids())
        assert busy.pid not in pids() or pids().index(big.pid) < pids().index(busy.pid)
        rss = [p.rss for p in table.shown]
        assert rss == sorted(rss, reverse=True) and "by memory" in str(box.border_title)
        assert next(p for p in table.shown if p.pid == big.pid).rss > 600_000_000
        await pilot.press("s")  # and back to CPU%
        assert table.sort_label == "CPU%"


async def test_real_machine_without_driver_degrades() -> None:
    app = LLMDeckApp(settings=fast_settings(), start_mode="monitor")
    async with app.run_test(size=(80, 24)) as pilot:
        status = app.screen.query_one("#mon-status")
        await until(pilot, lambda: "No GPU panel" in str(status.content) or bool(app.screen.query(GpuCard)))


@pytest.fixture
def children():
    small = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    big = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(80_000_000); time.sleep(60)"])
    yield small, big
    for proc in (small, big):
        proc.kill()
        proc.wait()


def fake_with(pids: list[tuple[int, int]]) -> FakeNvml:
    fake = FakeNvml(count=2)
    fake.procs = [[{"pid": pid, "usedGpuMemory": mem}] for pid, mem in pids]
    return fake


async def test_sort_filter_and_sigterm_after_confirmation(children) -> None:
    small, big = children
    app = LLMDeckApp(settings=fast_settings(), start_mode="monitor",
                     options={"nvml": fake_with([(small.pid, 5 * GB), (big.pid, 1 * GB)])})
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one(ProcessTable)
        await until(pilot, lambda: proc_pids(app) == [small.pid, big.pid] and all(p.rss for p in table.shown))
        for _ in range(3):  # GPU mem -> SM% -> CPU% -> RSS
            await pilot.press("s")
        assert table.sort_label == "RSS"
        await until(pilot, lambda: proc_pids(app) == [big.pid, small.pid])
        await pilot.press("slash")
        await pilot.press(*"bytearray")
        await until(pilot, lambda: proc_pids(app) == [big.pid])
        assert "filter “bytearray”" in str(app.screen.query_one("#mon-procs-box").border_title)
        await pilot.press("escape")
        await until(pilot, lambda: sorted(proc_pids(app)) == sorted([big.pid, small.pid]))
        await pilot.press("s")  # back to GPU memory: small first
        await until(pilot, lambda: proc_pids(app) == [small.pid, big.pid])
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        body = str(app.screen.query_one("#confirm-body").content)
        assert f"pid {small.pid}" in body and "time.sleep(60)" in body and "4.7 GiB on GPU 0" in body
        await pilot.press("n")  # declined: nothing sent
        await pilot.pause(0.2)
        assert small.poll() is None
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await until(pilot, lambda: small.poll() is not None)
        assert small.returncode == -15
        assert f"sent SIGTERM to pid {small.pid}" in notes(app)


async def test_sigkill_after_confirmation(children) -> None:
    small, big = children
    app = LLMDeckApp(settings=fast_settings(), start_mode="monitor",
                     options={"nvml": fake_with([(small.pid, 5 * GB), (big.pid, 1 * GB)])})
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: proc_pids(app) == [small.pid, big.pid])
        app.screen.query_one(ProcessTable).move_cursor(row=1)
        await pilot.press("K")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert f"Send SIGKILL to pid {big.pid}?" in str(app.screen.query_one("#confirm-title").content)
        await pilot.press("y")
        await until(pilot, lambda: big.poll() is not None)
        assert big.returncode == -9


def asks_about(app, owner: str) -> bool:
    return isinstance(app.screen, ConfirmModal) and owner in str(app.screen.query_one("#confirm-title").content)


@pytest.fixture
def other_users_process():
    """As root: a child run as `nobody`. Otherwise pid 1 (root's): only ever declined."""
    if os.geteuid() == 0:
        proc = subprocess.Popen(["sleep", "60"], user=65534, group=65534)  # nobody may not run our python
        yield proc.pid, proc
        proc.kill()
        proc.wait()
    else:
        yield 1, None


async def test_another_users_process_needs_a_second_confirmation_naming_the_owner(other_users_process) -> None:
    import psutil

    pid, proc = other_users_process
    owner = psutil.Process(pid).username()
    fake = FakeNvml(count=1)
    fake.procs = [[{"pid": pid, "usedGpuMemory": 5 * GB}]]
    app = LLMDeckApp(settings=fast_settings(), start_mode="monitor", options={"nvml": fake})
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(ProcessTable)
        await until(pilot, lambda: proc_pids(app) == [pid] and all(p.user == owner for p in table.shown))
        await pilot.press("K")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")  # the first confirmation is not enough for someone else's job
        await until(pilot, lambda: asks_about(app, owner))
        await pilot.pause(0.2)
        assert psutil.pid_exists(pid) and (proc is None or proc.poll() is None)
        await pilot.press("n")
        await pilot.pause(0.2)
        assert psutil.pid_exists(pid) and (proc is None or proc.poll() is None)
        if proc is not None:
            await pilot.press("K")
            await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            await pilot.press("y")
            await until(pilot, lambda: asks_about(app, owner))
            await pilot.press("y")
            await until(pilot, lambda: proc.poll() is not None)
            assert proc.returncode == -9


@pytest.mark.parametrize(("count", "size", "density"),
                         [(1, (80, 24), "full"), (2, (80, 24), "brief"), (8, (80, 24), "line"), (8, (200, 60), "full")])
async def test_layout_adapts_to_gpu_count_and_size(count: int, size: tuple[int, int], density: str) -> None:
    app = LLMDeckApp(settings=fast_settings(), start_mode="monitor", options={"nvml": FakeNvml(count=count)})
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: len(app.screen.query(GpuCard)) == count and "GiB" in card_text(app, count - 1))
        await until(pilot, lambda: all(c.density == density for c in app.screen.query(GpuCard)))
        for card in app.screen.query(GpuCard):
            assert card.region.bottom <= size[1] - 1, "cards must fit on screen above the footer"
        assert app.screen.query_one(ProcessTable).region.height >= 4


async def test_resize_to_80x24_and_window_key() -> None:
    app = LLMDeckApp(settings=fast_settings(), start_mode="monitor", options={"nvml": FakeNvml(count=8)})
    async with app.run_test(size=(200, 60)) as pilot:
        await until(pilot, lambda: len(app.screen.query(GpuCard)) == 8)
        await until(pilot, lambda: all(c.density == "full" for c in app.screen.query(GpuCard)))
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: all(c.density == "line" for c in app.screen.query(GpuCard)))
        assert "charts 1m" in str(app.screen.query_one(HostPanel).border_subtitle)
        await pilot.press("w")
        assert "charts 5m" in str(app.screen.query_one(HostPanel).border_subtitle)


async def test_switching_modes_keeps_sampling_and_history() -> None:
    app = LLMDeckApp(settings=fast_settings(), start_mode="monitor", options={"nvml": FakeNvml(count=1)})
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.latest is not None)
        await pilot.press("9")
        await pilot.pause(0.3)
        before = len(screen.history.points(("gpu", 0, "util"), 60))
        await pilot.pause(0.4)
        assert len(screen.history.points(("gpu", 0, "util"), 60)) > before
        await pilot.press("1")
        await until(pilot, lambda: app.screen is screen and not screen._dirty)


async def test_run_label_and_stall_warning_from_a_recording(tmp_path: Path) -> None:
    from engine.monitor.record import Recorder
    from engine.monitor.sample import GpuSample, MonitorSample, ProcessSample, RunLabel

    label = RunLabel("20261128-0930-train-ab12", "qwen-lora", "train", "running", "step 1200/3000")
    warning = "GPU 0: run qwen-lora (train) holds 46.6 GiB at 0% utilisation for 2m10s; it may be stalled"
    rec = Recorder(tmp_path / "stall.jsonl")
    for t in range(3):
        rec.write(MonitorSample(
            time=1000.0 + t,
            gpus=(GpuSample(index=0, name="NVIDIA H200", memory_used=50 * GB, memory_total=150 * GB, util_gpu=0),),
            processes=(ProcessSample(pid=4242, gpu_index=0, gpu_memory=50 * GB, sm_util=0, command="python train.py",
                                     run=label),),
            warnings=(warning,),
        ))
    rec.close()
    app = LLMDeckApp(settings=fast_settings(), start_mode="monitor", options={"replay": str(tmp_path / "stall.jsonl")})
    async with app.run_test(size=(100, 30)) as pilot:
        status = app.screen.query_one("#mon-status")
        await until(pilot, lambda: "may be stalled" in str(status.content))
        assert status.has_class("-warn")
        await until(pilot, lambda: app.screen.query(GpuCard) and app.screen.query_one(GpuCard).has_class("-stalled"))
        assert "possible stall" in "\n".join(str(n.title) for n in app._notifications)
        table = app.screen.query_one(ProcessTable)
        await until(pilot, lambda: table.row_count == 1)
        assert "qwen-lora (train, step 1200/3000)" in [str(c) for c in table.get_row_at(0)]


async def test_process_of_a_live_run_is_labelled(tmp_path: Path) -> None:
    import os

    import psutil

    from engine.runs import RunStore

    store = RunStore()
    info = store.create("train", {}, name="my-lora")
    store.update(info.id, status="running", pid=os.getpid(), pid_started=psutil.Process().create_time())
    fake = FakeNvml(count=1)
    fake.procs = [[{"pid": os.getpid(), "usedGpuMemory": 3 * GB}]]
    app = LLMDeckApp(settings=fast_settings(), store=store, start_mode="monitor", options={"nvml": fake})
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.screen.query_one(ProcessTable)
        await until(pilot, lambda: bool(table.shown) and table.shown[0].run is not None)
        assert table.shown[0].run.name == "my-lora"
        assert any("my-lora (train" in str(c) for c in table.get_row_at(0))


async def test_non_finite_numbers_in_settings_are_reported_and_monitor_runs(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[monitor]\nhistory_minutes = inf\ninterval = 1e-300\n")
    app = LLMDeckApp(start_mode="monitor", settings_path=path, options={"nvml": FakeNvml(count=1)})
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: bool(app.screen.query(GpuCard)) and "GiB" in card_text(app))
        assert "monitor.history_minutes: expected a number from 1 to 240, got inf" in notes(app)
        assert "monitor.interval: expected a number from 0.1 to 60, got 1e-300" in notes(app)
        assert (app.settings.monitor.history_minutes, app.settings.monitor.interval) == (10.0, 1.0)


async def test_no_gpu_first_frame_has_the_host_table_and_sampling_starts_after_it(monkeypatch) -> None:
    """bench/startup.py: the sampler thread (NVML start-up, a pass over every process) started
    before the first frame and competed with it; and with no GPU the first sample swapped the GPU
    table for the host's, so the screen jumped. Now the first frame already has the host table,
    empty, and it is filled after that frame, busiest first."""
    from engine.monitor import nvml as nvml_mod

    monkeypatch.setattr(nvml_mod, "nvidia_device_nodes", lambda: False)  # this box, whatever CI runs on
    seen = {}

    class Probe(LLMDeckApp):
        def on_ready(self) -> None:  # runs before LLMDeckApp.on_ready (Textual calls both)
            screen = self.screen
            seen.update(
                host_box=screen.query_one("#mon-top-box").display,
                gpu_box=screen.query_one("#mon-procs-box").display,
                header=screen.query_one(HostProcessTable).render_line(0).text.split(),
                rows=screen.query_one(HostProcessTable).row_count,
                sampling=screen._thread.running,
            )

    app = Probe(settings=fast_settings(), start_mode="monitor")
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(HostProcessTable)
        await until(pilot, lambda: table.row_count > 0)
        assert seen == {"host_box": True, "gpu_box": False, "header": ["PID", "user", "CPU%", "RSS", "MEM%", "command"],
                        "rows": 0, "sampling": False}
        assert app.focused is table and not app.screen.query_one("#mon-procs-box").display
        cpus = [p.cpu_percent for p in table.shown]
        assert cpus == sorted(cpus, reverse=True)
