"""Monitor mode: GPU cards with history, the GPU process table, and the host (with no GPU: the
host's busiest processes in place of the GPU process table).

Sampling happens in `engine.monitor.sampler_thread.SamplerThread` (a daemon thread that opens
NVML itself, so a slow driver never delays the first frame). Each sample crosses to the UI as
a `MonitorScreen.Sampled` message that replaces any unhandled one (latest wins); history lives in the
engine's ring buffer, so switching modes loses nothing. While another mode is shown the screen
keeps the newest sample and skips drawing; it draws once when it comes back.

Options from the app (`llmdeck monitor --replay/--record`): "replay" plays a recording (or the
NVML fixture form) instead of the hardware, "record" appends every sample to a JSONL file.
Signals are refused during a replay: its pids are not processes on this machine.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.message import Message
from textual.widgets import Input, Static

from engine.monitor import format as fmt
from engine.monitor.history import WINDOWS_S, History, window_label
from engine.monitor.nvml import nvidia_device_nodes
from engine.monitor.sample import MonitorSample, ProcessSample
from tui.screens.base import ModeScreen
from tui.widgets.gpu_card import CARD_HEIGHT, GpuCard
from tui.widgets.monitor_host import HostPanel
from tui.widgets.monitor_procs import ProcessTable
from tui.widgets.monitor_top import HostProcessTable


def describe_process(proc: ProcessSample) -> str:
    command = fmt.text(proc.command)
    if len(command) > 70:
        command = command[:67] + "…"
    lines = [f"pid {proc.pid}: {command}",
             f"user {fmt.text(proc.user)} · {fmt.size(proc.gpu_memory)} on GPU {proc.gpu_index}"]
    if proc.run is not None:
        lines.append(f"llmdeck run {proc.run.text}; `llmdeck runs cancel {proc.run.id}` stops it cleanly")
    return "\n".join(lines)


class MonitorScreen(ModeScreen):
    CSS_PATH = "monitor.tcss"
    MODE_KEY = "monitor"

    class Sampled(Message):
        """A new sample from the sampler thread; an unhandled older one is dropped."""

        def __init__(self, sample: MonitorSample) -> None:
            super().__init__()
            self.sample = sample

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, MonitorScreen.Sampled)

    class SamplingFailed(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text
    AUTO_FOCUS = "#mon-procs"
    BINDINGS = [
        Binding("w", "cycle_window", "window", tooltip="cycle the chart window: 1m, 5m, 10m, 1h, 6h"),
        Binding("s", "cycle_sort", "sort",
                tooltip="sort processes: GPU memory, SM%, CPU%, RSS (no GPU: CPU%, memory)"),
        Binding("slash", "filter", "filter", tooltip="filter processes by pid, user, command or run"),
        Binding("escape", "clear_filter", "clear filter", show=False),
        Binding("t", "signal('TERM')", "SIGTERM", tooltip="ask the selected process to stop (after a confirmation)"),
        Binding("K", "signal('KILL')", "SIGKILL", tooltip="kill the selected process (after a confirmation)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.latest: MonitorSample | None = None
        self.history: History | None = None
        self.window_index = 0
        self.failure = ""
        self.replaying = ""
        self._thread: Any = None
        self._gpu_count = -1
        self._dirty = False
        self._had_warnings = False
        self._status_text: str | None = None
        self._table_keys: list[tuple[int, int]] | None = None
        self._table_at = 0.0

    # -- layout ------------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        # The first frame comes before the first sample (the sampler starts after it): lay out what
        # that sample will most likely need, so the screen does not jump when it lands. No NVIDIA
        # device in /dev (and the live hardware, not a replay or a stand-in NVML): the host's
        # processes in place of the GPU table, empty until then. The first sample has the last word.
        host_only = not self.app.options.get("replay") and self.app.options.get("nvml") is None \
            and not nvidia_device_nodes()
        if host_only:
            self.AUTO_FOCUS = "#mon-top"
        yield Static("starting the monitor…", id="mon-status")
        yield Container(id="mon-gpus", classes="-none")
        with Vertical(id="mon-procs-box", classes="panel") as box:
            box.border_title = "GPU processes"
            box.display = not host_only
            box.disabled = host_only  # nothing hidden takes the focus
            yield Input(placeholder="filter: pid, user, command or run (Enter keeps, Esc clears)", id="mon-filter")
            yield ProcessTable(id="mon-procs")
        with Vertical(id="mon-top-box", classes="panel") as box:
            box.border_title = "host processes"
            box.display = host_only  # with a GPU, shown (in place of the GPU table) if a sample says there is none
            box.disabled = not host_only
            yield HostProcessTable(id="mon-top")
        host = HostPanel(id="mon-host")
        host.set_expanded(host_only)
        yield host

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only the keys of the table on screen: with no GPU the GPU process table is hidden (an
        invisible filter field would eat the keys typed after /) and the host process table, which
        only sorts, takes its place."""
        if action in ("filter", "clear_filter", "signal"):
            return self._shown("#mon-procs-box")
        if action == "cycle_sort":
            return self._shown("#mon-procs-box") or self._shown("#mon-top-box")
        return True

    def _shown(self, selector: str) -> bool:
        return bool(self.query(selector)) and bool(self.query_one(selector).display)

    @property
    def window_s(self) -> float:
        return WINDOWS_S[self.window_index]

    def on_mount(self) -> None:
        from engine.monitor.sampler_thread import LiveSource, ReplaySource, SamplerThread

        cfg = self.app.settings.monitor
        options = self.app.options
        self.history = History(fine_seconds=cfg.history_minutes * 60.0, interval=cfg.interval)
        self.query_one(HostPanel).set_history(self.history, self.window_s)
        replay = options.get("replay")
        self.replaying = str(replay or "")
        recorder = None
        if options.get("record"):
            from engine.monitor.record import Recorder

            try:
                recorder = Recorder(options["record"])
            except OSError as exc:
                self.notify(f"not recording: {exc}", severity="error", timeout=10)
        store = getattr(self.app, "store", None)
        nvml = options.get("nvml")  # a stand-in pynvml module (tests, demos); None = the real one

        def make_source() -> Any:
            if replay:
                return ReplaySource.from_file(replay)
            return LiveSource(slow_interval=cfg.slow_interval, stall_seconds=cfg.stall_seconds, store=store, nvml=nvml)

        self._thread = SamplerThread(
            make_source,
            lambda sample: self.post_message(self.Sampled(sample)),
            interval=cfg.interval,
            history=self.history,
            recorder=recorder,
            on_error=lambda exc: self.post_message(self.SamplingFailed(str(exc) or type(exc).__name__)),
        )
        # Start sampling once the first frame is on screen: NVML start-up and the first psutil
        # pass compete with the first paint for the GIL, and the user should see the app first.
        after_first_frame = getattr(self.app, "after_first_frame", self.call_after_refresh)
        after_first_frame(self._thread.start)
        self._update_host_title()

    def on_unmount(self) -> None:
        if self._thread is not None:
            self._thread.stop(timeout=0.5)

    def on_screen_resume(self) -> None:
        if self._dirty and self.latest is not None:
            self._draw(self.latest)

    def on_resize(self) -> None:
        self._apply_layout()

    def _apply_layout(self) -> None:
        cards = list(self.query(GpuCard))
        if not cards:
            return
        width, height = self.size
        columns = max(1, min(len(cards), width // 70)) if width >= 140 else 1
        rows = math.ceil(len(cards) / columns)
        status_lines = len(str(self.query_one("#mon-status", Static).content or "").splitlines()) if self.failure else 0
        budget = height - 2 - 4 - 6 - status_lines
        density = "line"
        for candidate in ("full", "brief", "line"):
            if rows * CARD_HEIGHT[candidate] <= budget:
                density = candidate
                break
        gpus = self.query_one("#mon-gpus", Container)
        gpus.styles.grid_size_columns = columns
        gpus.styles.grid_gutter_vertical = 0 if density == "line" else 1
        for card in cards:
            card.set_density(density)
        if self.latest is not None:
            self._draw_cards(self.latest)

    # -- samples -----------------------------------------------------------------------------
    def on_monitor_screen_sampled(self, message: Sampled) -> None:
        self.latest = message.sample
        if not self.is_current:
            self._dirty = True
            return
        self._draw(message.sample)

    def on_monitor_screen_sampling_failed(self, message: SamplingFailed) -> None:
        what = f"replay of {self.replaying} failed" if self.replaying else "the monitor stopped"
        self.failure = f"{what}: {message.text}"
        status = self.query_one("#mon-status", Static)
        status.update(self.failure)
        status.add_class("-warn")
        self.notify(self.failure, severity="error", timeout=10)

    def _draw(self, sample: MonitorSample) -> None:
        self._dirty = False
        self._draw_status(sample)
        if len(sample.gpus) != self._gpu_count:
            self._gpu_count = len(sample.gpus)
            gpus = self.query_one("#mon-gpus", Container)
            gpus.remove_children()
            gpus.set_class(not sample.gpus, "-none")
            # No GPU: the GPU process table has nothing to list; the host's processes take its place.
            for box, shown in (("#mon-procs-box", bool(sample.gpus)), ("#mon-top-box", not sample.gpus)):
                self.query_one(box).display = shown
                self.query_one(box).disabled = not shown  # nothing hidden takes the focus
            self.refresh_bindings()  # the footer offers only the keys of the table on screen
            # A hidden table must not keep (or, coming back from a dialog, get) the focus.
            self.AUTO_FOCUS = "#mon-procs" if sample.gpus else "#mon-top"
            hidden = HostProcessTable if sample.gpus else ProcessTable
            if isinstance(self.focused, hidden) or self.focused is None:
                self.set_focus(self.query_one(self.AUTO_FOCUS))
            self.query_one(HostPanel).set_expanded(not sample.gpus)
            if sample.gpus:
                gpus.mount_all([GpuCard(g.index) for g in sample.gpus])
                self.call_after_refresh(self._apply_layout)
        else:
            self._draw_cards(sample)
        table = self.query_one(ProcessTable)
        # Repainting a DataTable is the costliest part of a tick, and NVML's process list only
        # changes on the slow cadence anyway: redraw the table when its processes change, else
        # refresh its numbers (CPU%, RSS, SM%) every slow interval.
        keys = [(p.gpu_index, p.pid) for p in sample.processes]
        now = time.monotonic()
        if keys != self._table_keys or now - self._table_at >= self.app.settings.monitor.slow_interval:
            self._table_keys, self._table_at = keys, now
            table.set_processes(sample.processes)
            self._update_proc_title()
        if not sample.gpus:
            self.query_one(HostProcessTable).set_processes(sample.host_processes)
            self._update_top_title()
        host = self.query_one(HostPanel)
        host.set_history(self.history, self.window_s)
        host.set_host(sample.host)

    def _draw_status(self, sample: MonitorSample) -> None:
        if self.failure:
            return
        lines = []
        if sample.gpu_status:
            lines.append(sample.gpu_status)
        lines.extend(f"⚠ {w}" for w in sample.warnings)
        if self.replaying:
            lines.append(f"replaying {os.path.basename(self.replaying)} (signals disabled)")
        text = "\n".join(lines)
        if text != self._status_text:  # an unchanged line costs nothing (no layout pass)
            self._status_text = text
            status = self.query_one("#mon-status", Static)
            status.update(text)
            status.display = bool(lines)
            status.set_class(bool(sample.warnings), "-warn")
        if sample.warnings and not self._had_warnings:
            self.notify(sample.warnings[0], title="possible stall", severity="warning", timeout=15)
        self._had_warnings = bool(sample.warnings)

    def _draw_cards(self, sample: MonitorSample) -> None:
        by_index = {g.index: g for g in sample.gpus}
        stalled = {int(w.split(":", 1)[0].removeprefix("GPU ")) for w in sample.warnings if w.startswith("GPU ")}
        for card in self.query(GpuCard):
            gpu = by_index.get(card.index)
            if gpu is not None:
                card.update_sample(gpu, self.history, self.window_s)
                card.set_class(card.index in stalled, "-stalled")

    def _update_proc_title(self) -> None:
        table = self.query_one(ProcessTable)
        box = self.query_one("#mon-procs-box", Vertical)
        shown, total = len(table.shown), len(table.procs)
        count = f"{shown}/{total}" if table.needle else f"{total}"
        filt = f" · filter “{table.needle}”" if table.needle else ""
        title = f"GPU processes ({count}) · sort {table.sort_label}{filt}"
        if box.border_title != title:
            box.border_title = title
            box.border_subtitle = "s sort · / filter · t TERM · K KILL"

    def _update_top_title(self) -> None:
        table = self.query_one(HostProcessTable)
        box = self.query_one("#mon-top-box", Vertical)
        title = f"host processes (top {len(table.shown)} by {table.sort_label})"
        if box.border_title != title:
            box.border_title = title
            box.border_subtitle = "s sort: CPU% / memory"

    def _update_host_title(self) -> None:
        self.query_one(HostPanel).border_subtitle = f"charts {window_label(self.window_s)} (w)"

    # -- actions -----------------------------------------------------------------------------
    def action_cycle_window(self) -> None:
        span = self.history.span_seconds if self.history else WINDOWS_S[-1]
        usable = [w for w in WINDOWS_S if w <= span] or [WINDOWS_S[0]]
        self.window_index = (self.window_index + 1) % len(usable)
        self._update_host_title()
        self.notify(f"chart window: {window_label(self.window_s)}", timeout=2)
        if self.latest is not None:
            self._draw_cards(self.latest)
        host = self.query_one(HostPanel)
        host.set_history(self.history, self.window_s)
        host.refresh()

    def action_cycle_sort(self) -> None:
        if self._shown("#mon-top-box"):
            label = self.query_one(HostProcessTable).next_sort()
            self._update_top_title()
        else:
            label = self.query_one(ProcessTable).next_sort()
            self._update_proc_title()
        self.notify(f"processes sorted by {label}", timeout=2)

    def action_filter(self) -> None:
        field = self.query_one("#mon-filter", Input)
        field.add_class("-shown")
        field.focus()

    def action_clear_filter(self) -> None:
        field = self.query_one("#mon-filter", Input)
        field.value = ""
        field.remove_class("-shown")
        table = self.query_one(ProcessTable)
        table.set_filter("")
        table.focus()
        self._update_proc_title()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "mon-filter":
            self.query_one(ProcessTable).set_filter(event.value)
            self._update_proc_title()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "mon-filter":
            if not event.value.strip():
                event.input.remove_class("-shown")
            self.query_one(ProcessTable).focus()

    def action_signal(self, name: str) -> None:
        proc = self.query_one(ProcessTable).selected
        if self.replaying:
            self.notify(
                "this is a replay: its pids are not processes on this machine; no signal sent",
                severity="warning",
                timeout=6,
            )
            return
        if proc is None:
            self.notify("no GPU process selected", severity="warning", timeout=3)
            return
        from tui.screens.confirm import ConfirmModal

        def answered(ok: bool | None) -> None:
            if ok:
                self.send_signal(proc, name)

        self.app.push_screen(
            ConfirmModal(f"Send SIG{name} to pid {proc.pid}?", describe_process(proc), confirm_label=f"Send SIG{name}"),
            answered,
        )

    def send_signal(self, proc: ProcessSample, name: str, *, other_user_confirmed: bool = False) -> bool:
        """Signal the sampled process (engine.monitor.signals decides); another user's process
        first gets a second confirmation naming its owner. Returns whether it was sent."""
        from engine.monitor.signals import SignalRefused, inspect_target, send

        started = proc.started if isinstance(proc.started, float) else None
        try:
            if not other_user_confirmed:
                target = inspect_target(proc.pid, started)
                if target.foreign:
                    self._confirm_other_user(proc, name, target.owner)
                    return False
            send(proc.pid, name, started, other_user_confirmed=other_user_confirmed)
        except SignalRefused as exc:
            self.notify(str(exc), title="no signal sent", severity="error", timeout=10)
            return False
        self.notify(f"sent SIG{name} to pid {proc.pid} ({fmt.text(proc.name)})", timeout=5)
        return True

    def _confirm_other_user(self, proc: ProcessSample, name: str, owner: str) -> None:
        from tui.screens.confirm import ConfirmModal

        def answered(ok: bool | None) -> None:
            if ok:
                self.send_signal(proc, name, other_user_confirmed=True)

        self.app.push_screen(
            ConfirmModal(
                f"pid {proc.pid} belongs to {owner}, not you",
                f"{describe_process(proc)}\n\nSend SIG{name} to another user's process?",
                confirm_label=f"Signal {owner}'s process",
            ),
            answered,
        )
