"""Train mode: start runs, watch them live, compare them, act on their checkpoints.

Everything shown comes from the runs' folders (run.json, events.jsonl, checkpoint folders),
read in thread workers every half second: a run started from the CLI, by another llmdeck, or
before this TUI was opened shows its whole curve and then continues live. Nothing here holds
the training: closing the TUI leaves the runs going.

Left: training runs (space marks runs for the compare overlay) and the selected run's
checkpoints. Right: the live dashboard (curve with EMA smoothing, stats, progress + ETA, log),
the new-run form, and the compare overlay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Log, ProgressBar, Static, TabbedContent, TabPane

from engine import paths
from engine.events import Cancelled, Failed, Finished, JobEvent, Log as LogEvent, Metric, Progress
from engine.formatting import format_duration
from engine.runs import RunError, RunInfo
from engine.train import launch
from engine.train.checkpoints import Checkpoint, human_size
from engine.filenames import slugify
from engine.train.experiments import colours_for
from engine.train.plots import RunCurves
from tui.screens.base import ModeScreen
from tui.screens.confirm import ConfirmModal
from tui.widgets.train_curve import TrainCurve
from tui.widgets.train_form import StartRun, TrainForm
from tui.widgets.train_stats import TrainStats

SMOOTHING_STEPS = (0.0, 0.3, 0.6, 0.8, 0.9, 0.95)


@dataclass
class TrainPolled(Message):
    runs: list[RunInfo]
    events: dict[str, tuple[int, int, list[JobEvent]]]  # run id -> (from offset, new offset, events)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    checkpoints_of: str | None = None
    error: str = ""


@dataclass
class _RunState:
    offset: int = 0
    curves: RunCurves | None = None
    latest: dict[str, float] = field(default_factory=dict)
    step: int = 0
    progress: Progress | None = None
    logs: list[str] = field(default_factory=list)
    final: str = ""


class TrainScreen(ModeScreen):
    MODE_KEY = "train"
    DEFAULT_CSS = """
    TrainScreen #train-left { width: 34; }
    TrainScreen #train-runs { height: 1fr; }
    TrainScreen #train-ckpts { height: 9; }
    TrainScreen #train-right { width: 1fr; }
    TrainScreen #train-status { height: auto; padding: 0 1; }
    TrainScreen #train-progress { height: 1; padding: 0 1; }
    TrainScreen #train-log { height: 5; border: none; }
    TrainScreen #compare-legend { height: auto; padding: 0 1; }
    TrainScreen TabPane { padding: 0; }
    """
    BINDINGS = [
        Binding("n", "new_run", "new run"),
        Binding("s", "stop_run", "stop"),
        Binding("r", "resume_run", "resume"),
        Binding("space", "toggle_compare", "compare mark"),
        Binding("left_square_bracket", "smooth(-1)", "less smoothing"),
        Binding("right_square_bracket", "smooth(1)", "more smoothing"),
        Binding("e", "export('png')", "export PNG"),
        Binding("x", "export('csv')", "export CSV"),
        Binding("E", "edit_spec", "edit & re-run"),
        Binding("c", "chat_checkpoint", "chat with checkpoint"),
        Binding("m", "merge_checkpoint", "merge LoRA"),
        Binding("g", "gguf_checkpoint", "export GGUF"),
        Binding("delete", "delete_checkpoint", "delete checkpoint"),
        Binding("v", "show_tab('live')", "live", show=False),
        Binding("o", "show_tab('compare')", "compare", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, RunInfo] = {}
        self.states: dict[str, _RunState] = {}
        self.selected: str | None = None
        self.compare: list[str] = []
        self.smoothing = 0.6
        self.checkpoints: list[Checkpoint] = []
        self._ckpt_poll = 0.0

    # -- layout --------------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="train-left"):
                runs: DataTable[str] = DataTable(id="train-runs", cursor_type="row", zebra_stripes=True, classes="panel")
                runs.border_title = "training runs"
                for col in ("", "run", "status", "step", "loss"):
                    runs.add_column(col, key=col or "mark")
                yield runs
                ckpts: DataTable[str] = DataTable(id="train-ckpts", cursor_type="row", classes="panel")
                ckpts.border_title = "checkpoints"
                for col in ("checkpoint", "loss", "size", "ok"):
                    ckpts.add_column(col, key=col)
                yield ckpts
            with TabbedContent(id="train-right", initial="live"):
                with TabPane("Live", id="live"):
                    yield Static("no run selected: press n to start one, or run `llmdeck train --demo`", id="train-status")
                    yield ProgressBar(total=None, show_eta=False, id="train-progress")
                    yield TrainCurve(id="train-curve")
                    yield TrainStats("", id="train-stats")
                    yield Log(max_lines=500, id="train-log", auto_scroll=True)
                with TabPane("New run", id="new"):
                    yield TrainForm(self._initial_spec(), id="train-form")
                with TabPane("Compare", id="compare"):
                    yield Static("mark runs with space in the list to overlay their curves", id="compare-legend")
                    yield TrainCurve(id="compare-curve")

    def _initial_spec(self):
        from engine.train.spec import TrainSpec

        options = getattr(self.app, "options", {}) or {}
        spec = TrainSpec()
        if options.get("model"):
            spec.model = str(options["model"])
        if options.get("data"):
            spec.dataset = str(options["data"])
        return spec

    def on_mount(self) -> None:
        self.set_interval(0.5, self.poll)
        self.poll()

    # -- polling -------------------------------------------------------------------------------
    def watched(self) -> list[str]:
        ids = [self.selected] if self.selected else []
        return ids + [r for r in self.compare if r not in ids]

    def poll(self) -> None:
        offsets = {rid: self.states.get(rid, _RunState()).offset for rid in self.watched()}
        want_ckpts = self.selected if time.monotonic() - self._ckpt_poll > 2.0 else None
        if want_ckpts:
            self._ckpt_poll = time.monotonic()
        self._read(offsets, want_ckpts)

    @work(thread=True, exclusive=True, group="train-poll", exit_on_error=False)
    def _read(self, offsets: dict[str, int], ckpts_of: str | None) -> None:
        store = self.app.store
        try:
            runs = [r for r in store.list() if r.kind in launch.TRAINING_KINDS]
            events = {}
            for run_id, offset in offsets.items():
                got, new_offset = store.read_events(run_id, offset)
                events[run_id] = (offset, new_offset, got)
            checkpoints = launch.checkpoints_of(store.get(ckpts_of)) if ckpts_of else []
            self.post_message(TrainPolled(runs, events, checkpoints, ckpts_of))
        except (RunError, OSError) as exc:
            self.post_message(TrainPolled([], {}, error=str(exc)))

    def on_train_polled(self, message: TrainPolled) -> None:
        if message.error:
            self.query_one("#train-status", Static).update(f"cannot read runs: {message.error}")
            return
        self.runs = {r.id: r for r in message.runs}
        changed = False
        for run_id, (start, end, events) in message.events.items():
            state = self.states.setdefault(run_id, _RunState())
            if start != state.offset:
                continue  # stale read (the run was reselected meanwhile)
            state.offset = end
            if state.curves is None:
                info = self.runs.get(run_id)
                state.curves = RunCurves(info.label if info else run_id)
            for event in events:
                self._apply(state, event)
            changed = changed or bool(events)
        self._fill_runs_table()
        if self.selected is None and self.runs:
            self._select(next(iter(self.runs)))
        if message.checkpoints_of and message.checkpoints_of == self.selected:
            self.checkpoints = message.checkpoints
            self._fill_checkpoints()
        self._refresh_live(changed)
        if changed and self.compare:
            self._refresh_compare()

    def _apply(self, state: _RunState, event: JobEvent) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
        if isinstance(event, Metric):
            assert state.curves is not None
            state.curves.add(event)
            if "loss" in event.values or "eval_loss" in event.values:
                if event.step >= state.step or "loss" in event.values:
                    state.step = event.step
                state.latest.update(event.values)
        elif isinstance(event, Progress):
            if event.phase == "train" or state.progress is None or state.progress.phase != "train":
                state.progress = event
        elif isinstance(event, LogEvent):
            state.logs.append(f"{stamp} {event.text}" if event.level == "info" else f"{stamp} {event.level}: {event.text}")
        elif isinstance(event, Finished):
            out = event.summary.get("output")
            state.final = str(out) if out else ""
            state.logs.append(f"{stamp} finished" + (f": {out}" if out else ""))
        elif isinstance(event, Failed):
            state.logs.append(f"{stamp} FAILED: {event.message}")
        elif isinstance(event, Cancelled):
            state.logs.append(f"{stamp} stopped: {event.reason}")
        del state.logs[:-200]

    # -- tables --------------------------------------------------------------------------------
    def _fill_runs_table(self) -> None:
        table = self.query_one("#train-runs", DataTable)
        for key in [row.value for row in list(table.rows) if row.value not in self.runs]:
            table.remove_row(key)
        for run in self.runs.values():
            state = self.states.get(run.id)
            loss = state.latest.get("loss") if state else None
            cells = (
                "●" if run.id in self.compare else "",
                run.label[:14],
                run.status,
                str(state.step) if state and state.step else "",
                f"{loss:.3f}" if loss is not None else "",
            )
            if run.id in table.rows:
                for col, value in zip(("mark", "run", "status", "step", "loss"), cells):
                    table.update_cell(run.id, col, value)
            else:
                table.add_row(*cells, key=run.id)

    def _fill_checkpoints(self) -> None:
        table = self.query_one("#train-ckpts", DataTable)
        table.clear()
        for c in self.checkpoints:
            table.add_row(c.name.replace("checkpoint-", "ckpt "), f"{c.loss:.3f}" if c.loss is not None else "-", human_size(c.size), "✓" if c.complete else "✗", key=str(c.path))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "train-runs" and event.row_key is not None and event.row_key.value != self.selected:
            self._select(event.row_key.value)

    def _select(self, run_id: str | None) -> None:
        self.selected = run_id
        self.checkpoints = []
        self._fill_checkpoints()
        self._ckpt_poll = 0.0
        log = self.query_one("#train-log", Log)
        log.clear()
        state = self.states.get(run_id or "")
        if state:
            log.write_lines(state.logs[-100:])
        self._refresh_live(True)
        self.poll()

    # -- live pane -----------------------------------------------------------------------------
    def _refresh_live(self, redraw: bool) -> None:
        status = self.query_one("#train-status", Static)
        run = self.runs.get(self.selected or "")
        if run is None:
            return
        state = self.states.get(run.id, _RunState())
        reason = f" — {run.exit_reason}" if run.exit_reason else ""
        status.update(
            f"[b]{run.label}[/b] · {run.status} · {format_duration(run.elapsed(time.time()))} · "
            f"smoothing {self.smoothing:.2f}{reason}"
        )
        bar = self.query_one("#train-progress", ProgressBar)
        if state.progress is not None:
            bar.update(total=state.progress.total, progress=state.progress.done)
        self.query_one("#train-stats", TrainStats).show(state.latest, state.step)
        if redraw and state.curves is not None:
            self.query_one("#train-curve", TrainCurve).show([state.curves], smoothing=self.smoothing)
        log = self.query_one("#train-log", Log)
        shown = log.line_count
        if len(state.logs) > shown:
            log.write_lines(state.logs[shown:])

    def _refresh_compare(self) -> None:
        curves = [self.states[r].curves for r in self.compare if r in self.states and self.states[r].curves]
        self.query_one("#compare-curve", TrainCurve).show(curves, smoothing=self.smoothing)
        colours = colours_for(c.experiment for c in curves)
        legend = "  ".join(f"[{colours[c.experiment]}]■[/] {c.name}" for c in curves) or "mark runs with space to overlay them"
        self.query_one("#compare-legend", Static).update(legend)

    # -- actions -------------------------------------------------------------------------------
    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_new_run(self) -> None:
        self.action_show_tab("new")
        self.query_one("#f-model").focus()

    def action_edit_spec(self) -> None:
        run = self.runs.get(self.selected or "")
        if run is None:
            return
        try:
            spec = launch.spec_of(run)
        except ValueError as exc:
            self.notify(f"cannot load its spec: {exc}", severity="error")
            return
        spec.name = ""
        self.query_one(TrainForm).load(spec)
        self.action_show_tab("new")

    def on_start_run(self, message: StartRun) -> None:
        try:
            info = launch.start(message.spec, self.app.store)
        except (ValueError, RunError, OSError) as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"started {info.label}")
        self.runs[info.id] = info
        self._select(info.id)
        self.action_show_tab("live")

    def action_toggle_compare(self) -> None:
        run_id = self._highlighted_run()
        if not run_id:
            return
        if run_id in self.compare:
            self.compare.remove(run_id)
        else:
            self.compare.append(run_id)
        self._fill_runs_table()
        self._refresh_compare()
        self.poll()

    def _highlighted_run(self) -> str | None:
        table = self.query_one("#train-runs", DataTable)
        if not table.row_count:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - cursor outside a changing table
            return None

    def action_smooth(self, direction: int) -> None:
        steps = SMOOTHING_STEPS
        index = min(range(len(steps)), key=lambda i: abs(steps[i] - self.smoothing))
        self.smoothing = steps[max(0, min(len(steps) - 1, index + direction))]
        self._refresh_live(True)
        self._refresh_compare()

    def action_stop_run(self) -> None:
        run = self.runs.get(self.selected or "")
        if run is None:
            return
        if not run.active:
            self.notify(f"{run.label} is {run.status}", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                try:
                    self.app.store.cancel(run.id)
                    self.notify(f"stopping {run.label}: it saves a checkpoint, then ends")
                except (RunError, OSError) as exc:
                    self.notify(str(exc), severity="error")

        self.app.push_screen(ConfirmModal("Stop run?", f"{run.label} saves a checkpoint and ends `cancelled`; r resumes it.", "Stop"), answered)

    def action_resume_run(self) -> None:
        run = self.runs.get(self.selected or "")
        if run is None:
            return
        try:
            launch.resume(run.id, self.app.store)
        except (RunError, OSError, ValueError) as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"resuming {run.label} from its newest complete checkpoint")

    def _export_runs(self) -> list[RunCurves]:
        ids = self.compare or ([self.selected] if self.selected else [])
        return [self.states[r].curves for r in ids if r in self.states and self.states[r].curves]

    def action_export(self, kind: str) -> None:
        curves = self._export_runs()
        if not curves:
            self.notify("select a run (or mark runs with space) to export", severity="warning")
            return
        folder = paths.data_dir() / "plots"
        name = slugify("-".join(c.name for c in curves), fallback="runs")
        out = folder / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.{kind}"
        self._write_export(curves, out, kind, self.smoothing)

    @work(thread=True, group="train-export", exit_on_error=False)
    def _write_export(self, curves: list[RunCurves], out: Path, kind: str, smoothing: float) -> None:
        from engine.train import plots

        try:
            if kind == "csv":
                plots.write_csv(curves, out, plots.present_metrics(curves), smooth=smoothing)
            else:
                plots.write_image(curves, out, plots.present_metrics(curves), smooth=smoothing)
        except (OSError, ValueError) as exc:
            self.app.call_from_thread(self.notify, f"export failed: {exc}", severity="error")
            return
        self.app.call_from_thread(self.notify, f"wrote {out}")
        self.last_export = out

    # -- checkpoint actions ----------------------------------------------------------------------
    def _highlighted_checkpoint(self) -> Checkpoint | None:
        table = self.query_one("#train-ckpts", DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001
            return None
        return next((c for c in self.checkpoints if str(c.path) == key), None)

    def _target(self) -> Path | None:
        """The highlighted complete checkpoint, else the run's final output."""
        ckpt = self._highlighted_checkpoint()
        if ckpt is not None:
            if not ckpt.complete:
                self.notify(f"{ckpt.name} is not complete ({ckpt.problem})", severity="warning")
                return None
            return ckpt.path
        run = self.runs.get(self.selected or "")
        out = launch.final_output(run) if run else None
        if out is None:
            self.notify("no checkpoint or output to use yet", severity="warning")
        return out

    async def action_chat_checkpoint(self) -> None:
        """Open Chat on the highlighted checkpoint (a LoRA adapter loads with its base)."""
        target = self._target()
        if target is None:
            return
        self.app.options["model"] = str(target)
        await self.app.switch_mode("chat")
        screen = self.app.screen
        current = getattr(getattr(screen, "spec", None), "model", None)
        if hasattr(screen, "load_model") and current != str(target):
            try:
                from engine.chat.loader import BackendSpec

                screen.load_model(BackendSpec(model=str(target)))
            except Exception as exc:  # noqa: BLE001 - chat reports its own load errors
                self.notify(f"chat: {exc}", severity="error")

    def _start_job(self, kind: str, spec: dict[str, Any], what: str) -> None:
        try:
            info = self.app.store.start(kind, spec, name=what)
        except (RunError, OSError) as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"started {what} ({info.id}); follow it in Runs mode")

    def action_merge_checkpoint(self) -> None:
        target = self._target()
        if target is None:
            return
        if not (target / "adapter_config.json").exists():
            self.notify("merge applies to LoRA adapters; this is a full model", severity="warning")
            return
        out = target.with_name(target.name + "-merged")
        self._start_job("train.merge", {"adapter": str(target), "output": str(out)}, f"merge {target.name}")

    def action_gguf_checkpoint(self) -> None:
        target = self._target()
        if target is None:
            return
        out = target.with_name(f"{target.name}-f16.gguf")
        self._start_job("train.gguf", {"model": str(target), "output": str(out), "outtype": "f16"}, f"gguf {target.name}")

    def action_delete_checkpoint(self) -> None:
        ckpt = self._highlighted_checkpoint()
        if ckpt is None:
            return
        run = self.runs.get(self.selected or "")
        if run is not None and run.active and ckpt == (self.checkpoints[-1] if self.checkpoints else None):
            self.notify("the newest checkpoint of a running run is kept", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            from engine.train.checkpoints import delete

            delete(ckpt.path)
            self.notify(f"deleted {ckpt.name}")
            self._ckpt_poll = 0.0
            self.poll()

        self.app.push_screen(ConfirmModal("Delete checkpoint?", f"{ckpt.path}\n({human_size(ckpt.size)})", "Delete"), answered)
