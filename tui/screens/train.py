"""Train mode: start runs, watch them live, compare them, act on their checkpoints.

Everything shown comes from the runs' folders (run.json, events.jsonl, checkpoint folders),
read by the app's run watcher (the list, and the events of the selected and compared runs) and
a thread worker (checkpoints): a run started from the CLI, by another llmdeck, or before this
TUI was opened shows its whole curve and then continues live. Nothing here holds the
training: closing the TUI leaves the runs going.

Left: training runs (space marks runs for the compare overlay) and the selected run's
checkpoints. Right: the live dashboard (curve with EMA smoothing, stats, progress + ETA, log;
`t` steps through what the run's method logs: rewards of chosen and rejected, margins and
accuracy for DPO/ORPO/KTO, reward +- std per function, KL, completion length and clip ratio for
GRPO), the completions a GRPO run sampled at its latest step, the new-run form, and the compare
overlay, where marked runs are grouped into experiments (one colour each, seeds as their mean
with a min-max or +-std band, `b`), ordered by experiment name, line width `w`.
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
from engine.events import Cancelled, Failed, Finished, JobEvent, Metric, Progress, Samples
from engine.events import Log as LogEvent
from engine.filenames import slugify
from engine.formatting import format_bytes, format_duration
from engine.runs import RunError, RunInfo
from engine.train import launch
from engine.train.checkpoints import Checkpoint
from engine.train.experiments import colours_for
from engine.train.plots import RunCurves
from engine.train.rank_status import NodeRow
from engine.train.spec import TrainSpec
from tui.messages import OpenInChat, StopRun
from tui.run_watcher import RunWatcher
from tui.screens.base import ModeScreen
from tui.screens.confirm import ConfirmModal
from tui.widgets.run_nodes import RunNodes
from tui.widgets.tables import cursor_row_key
from tui.widgets.train_curve import LINE_WIDTHS, MARKERS, TrainCurve, View, views_for
from tui.widgets.train_form import TrainForm
from tui.widgets.train_samples import TrainSamples
from tui.widgets.train_stats import TrainStats

SMOOTHING_STEPS = (0.0, 0.3, 0.6, 0.8, 0.9, 0.95)
RUN_COLUMNS = ("state", "step", "loss", "run")
"""The run list's columns. The name goes last, where a narrow panel cuts it (as nvitop and htop
cut the command line), so the numbers always show; the status is a glyph (the word is in the
live pane's status line)."""
STATE_GLYPHS = {"created": "·", "starting": "…", "running": "▶", "succeeded": "✓", "failed": "✗",
                "cancelled": "■", "lost": "?", "damaged": "!"}
BANDS = ("minmax", "std", "none")
# What the compare overlay can draw, in order (the picture's metrics, then the usual ones).
COMPARE_METRICS: tuple[str, ...] = (
    "loss", "eval_loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected", "reward",
    "reward_std", "kl", "completions/mean_length", "clip_ratio/region_mean", "lr", "grad_norm", "tokens_per_s",
)


@dataclass
class _RunState:
    curves: RunCurves | None = None
    latest: dict[str, float] = field(default_factory=dict)
    step: int = 0
    progress: Progress | None = None
    logs: list[str] = field(default_factory=list)
    final: str = ""
    samples: Samples | None = None  # the completions a GRPO run sampled at its latest log


def newest_complete(checkpoints: list[Checkpoint]) -> Checkpoint | None:
    return max((c for c in checkpoints if c.complete), key=lambda c: c.step, default=None)


class TrainScreen(ModeScreen):
    CSS_PATH = "train.tcss"
    MODE_KEY = "train"

    class Exported(Message):
        """A curve export was written to `path` (or not: `error`)."""

        def __init__(self, path: Path, error: str) -> None:
            super().__init__()
            self.path = path
            self.error = error

    class CheckpointsListed(Message):
        """The selected run's checkpoints, listed in a thread worker."""

        def __init__(self, run_id: str, checkpoints: list[Checkpoint]) -> None:
            super().__init__()
            self.run_id = run_id
            self.checkpoints = checkpoints

    class NodesRead(Message):
        """The selected run's nodes (a multi-process run's rank files), read in a thread worker."""

        def __init__(self, run_id: str, rows: list[NodeRow]) -> None:
            super().__init__()
            self.run_id = run_id
            self.rows = rows

    BINDINGS = [
        Binding("n", "new_run", "new run"),
        Binding("s", "stop_run", "stop"),
        Binding("r", "resume_run", "resume"),
        Binding("space", "toggle_compare", "compare mark"),
        Binding("left_square_bracket", "smooth(-1)", "less smoothing"),
        Binding("right_square_bracket", "smooth(1)", "more smoothing"),
        Binding("t", "cycle_view(1)", "next curve"),
        Binding("T", "cycle_view(-1)", "previous curve", show=False),
        Binding("b", "cycle_band", "band (compare)"),
        Binding("w", "line_width", "line width"),
        Binding("e", "export('png')", "export PNG"),
        Binding("x", "export('csv')", "export CSV"),
        Binding("E", "edit_spec", "edit & re-run"),
        Binding("c", "chat_checkpoint", "chat with checkpoint"),
        Binding("m", "merge_checkpoint", "merge LoRA"),
        Binding("g", "gguf_checkpoint", "export GGUF"),
        Binding("d", "delete_checkpoint", "delete checkpoint"),
        Binding("v", "show_tab('live')", "live", show=False),
        Binding("o", "show_tab('compare')", "compare", show=False),
        Binding("a", "show_tab('samples')", "samples", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, RunInfo] = {}
        self.states: dict[str, _RunState] = {}
        self.selected: str | None = None
        self.compare: list[str] = []
        self.smoothing = 0.6
        self.view_title = "loss"  # the live curve's view (kept across runs when the next has it too)
        self.compare_metric = "loss"
        self.band = "minmax"
        self.width_step = 0  # index into the curve's MARKERS / LINE_WIDTHS
        self.checkpoints: list[Checkpoint] = []
        self._checkpoints_read = 0.0
        self._chosen_checkpoint: str | None = None
        """The checkpoint the user moved to in the list; None: the newest complete one."""
        self._nodes_of: str | None = None  # the run whose nodes were last read (an ended run: once)

    # -- layout --------------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="train-left"):
                runs: DataTable[str] = DataTable(id="train-runs", cursor_type="row", zebra_stripes=True,
                                                 classes="panel")
                runs.border_title = "training runs"
                for col in RUN_COLUMNS:
                    runs.add_column("" if col == "state" else col, key=col)
                yield runs
                ckpts: DataTable[str] = DataTable(id="train-ckpts", cursor_type="row", classes="panel")
                ckpts.border_title = "checkpoints"
                for col in ("checkpoint", "loss", "size", "ok"):
                    ckpts.add_column(col, key=col)
                yield ckpts
            with TabbedContent(id="train-right", initial="live"):
                with TabPane("Live", id="live"):
                    yield Static("no run selected: press n to start one, or run `llmdeck train --demo`",
                                 id="train-status")
                    yield ProgressBar(total=None, show_eta=False, id="train-progress")
                    yield TrainCurve(id="train-curve")
                    yield TrainStats("", id="train-stats")
                    yield RunNodes(id="train-nodes")
                    yield Log(max_lines=500, id="train-log", auto_scroll=True)
                with TabPane("Samples", id="samples"):
                    yield TrainSamples(id="train-samples")
                with TabPane("New run", id="new"):
                    yield TrainForm(self._initial_spec(), id="train-form")
                with TabPane("Compare", id="compare"):
                    yield Static("mark runs with space in the list to overlay their curves", id="compare-legend")
                    yield TrainCurve(id="compare-curve")

    def _initial_spec(self):
        from engine.train.spec import TrainSpec

        options = self.app.options
        spec = TrainSpec()
        if options.get("model"):
            spec.model = str(options["model"])
        if options.get("data"):
            spec.dataset = str(options["data"])
        return spec

    def on_mount(self) -> None:
        self.app.run_watcher.watch_runs(self)

    def on_screen_resume(self) -> None:
        self._read_checkpoints_soon()

    # -- from the run watcher --------------------------------------------------------------------
    def on_run_watcher_runs_changed(self, message: RunWatcher.RunsChanged) -> None:
        snapshot = message.snapshot
        if snapshot.error:
            self.query_one("#train-status", Static).update(f"cannot read runs: {snapshot.error}")
            return
        self.runs = {r.id: r for r in snapshot.runs if r.kind in launch.TRAINING_KINDS}
        self._fill_runs_table()
        if self.selected is None and self.runs:
            self._select(next(iter(self.runs)))
        self._refresh_live(False)
        self._read_checkpoints_soon()
        self._read_nodes_soon()

    def on_run_watcher_events_read(self, message: RunWatcher.EventsRead) -> None:
        run_id = message.run_id
        state = self.states.get(run_id)
        if state is None or message.first:
            info = self.runs.get(run_id)
            experiment = str((info.spec or {}).get("experiment") or "") if info else ""
            curves = RunCurves(info.label if info else run_id, experiment=experiment)
            state = self.states[run_id] = _RunState(curves=curves)
        for event in message.events:
            self._apply(state, event)
        self._fill_runs_table()
        if run_id == self.selected:
            self._refresh_live(True)
        if run_id in self.compare:
            self._refresh_compare()

    def _follow_runs(self) -> None:
        """Follow the selected and the compared runs. A run once followed stays followed (its
        curve is kept, and continues from where it was), unless it left the run store."""
        watcher = self.app.run_watcher
        following = watcher.following(self)
        for run_id in [self.selected, *self.compare]:
            if run_id and run_id not in following:
                watcher.follow(self, run_id)
        for run_id in following - set(self.runs):
            if run_id != self.selected and run_id not in self.compare:
                watcher.unfollow(self, run_id)
                self.states.pop(run_id, None)

    def _read_checkpoints_soon(self) -> None:
        """The selected run's checkpoints, at most every two seconds (they are folders to list)."""
        run = self.runs.get(self.selected or "")
        if run is not None and time.monotonic() - self._checkpoints_read > 2.0:
            self._checkpoints_read = time.monotonic()
            self._list_checkpoints(run)

    @work(thread=True, exclusive=True, group="train-checkpoints", exit_on_error=False,
          description="listing checkpoints")
    def _list_checkpoints(self, run: RunInfo) -> None:
        self.post_message(self.CheckpointsListed(run.id, launch.checkpoints_of(run)))

    def on_train_screen_checkpoints_listed(self, message: CheckpointsListed) -> None:
        if message.run_id == self.selected:
            self.checkpoints = message.checkpoints
            self._fill_checkpoints()

    def _read_nodes_soon(self) -> None:
        """The selected run's nodes: at every change while it is active, once when it has ended."""
        run = self.runs.get(self.selected or "")
        if run is not None and (run.active or self._nodes_of != run.id):
            self._nodes_of = run.id
            self._list_nodes(run)

    @work(thread=True, exclusive=True, group="train-nodes", exit_on_error=False,
          description="reading the run's nodes")
    def _list_nodes(self, run: RunInfo) -> None:
        self.post_message(self.NodesRead(run.id, launch.nodes_of(run)))

    def on_train_screen_nodes_read(self, message: NodesRead) -> None:
        if message.run_id == self.selected:
            self.query_one("#train-nodes", RunNodes).show(message.rows)

    def _apply(self, state: _RunState, event: JobEvent) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
        if isinstance(event, Metric):
            assert state.curves is not None
            state.curves.add(event)
            if "loss" in event.values or "eval_loss" in event.values:
                if event.step >= state.step or "loss" in event.values:
                    state.step = event.step
                state.latest.update(event.values)
        elif isinstance(event, Samples):
            state.samples = event
        elif isinstance(event, Progress):
            if event.phase == "train" or state.progress is None or state.progress.phase != "train":
                state.progress = event
        elif isinstance(event, LogEvent):
            level = "" if event.level == "info" else f" {event.level}:"
            state.logs.append(f"{stamp}{level} {event.text}")
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
                STATE_GLYPHS.get(run.status, "?") + ("●" if run.id in self.compare else ""),
                str(state.step) if state and state.step else "",
                f"{loss:.3f}" if loss is not None else "",
                run.label,
            )
            if run.id in table.rows:
                for col, value in zip(RUN_COLUMNS, cells, strict=True):
                    table.update_cell(run.id, col, value, update_width=True)
            else:
                table.add_row(*cells, key=run.id)

    def _fill_checkpoints(self) -> None:
        """The list, with the cursor on the user's choice, else on the newest complete checkpoint
        (what c, m and g use): the oldest, first in the list, is rarely the one wanted."""
        table = self.query_one("#train-ckpts", DataTable)
        table.clear()
        for c in self.checkpoints:
            table.add_row(c.name.replace("checkpoint-", "ckpt "), f"{c.loss:.3f}" if c.loss is not None else "-",
                          format_bytes(c.size), "✓" if c.complete else "✗", key=str(c.path))
        paths_listed = [str(c.path) for c in self.checkpoints]
        target = self._chosen_checkpoint if self._chosen_checkpoint in paths_listed else None
        newest = newest_complete(self.checkpoints)
        if target is None and newest is not None:
            target = str(newest.path)
        if target is not None:
            with table.prevent(DataTable.RowHighlighted):
                table.move_cursor(row=paths_listed.index(target), animate=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "train-ckpts" and event.data_table.has_focus and event.row_key is not None:
            self._chosen_checkpoint = event.row_key.value  # moved there by the user
        if event.data_table.id == "train-runs" and event.row_key is not None and event.row_key.value != self.selected:
            self._select(event.row_key.value)

    def _select(self, run_id: str | None) -> None:
        self.selected = run_id
        self.checkpoints = []
        self._chosen_checkpoint = None
        self._fill_checkpoints()
        self._checkpoints_read = 0.0
        self._nodes_of = None
        self.query_one("#train-nodes", RunNodes).show([])
        log = self.query_one("#train-log", Log)
        log.clear()
        state = self.states.get(run_id or "")
        if state:
            log.write_lines(state.logs[-100:])
        self._refresh_live(True)
        self._follow_runs()
        self._read_checkpoints_soon()
        self._read_nodes_soon()

    # -- live pane -----------------------------------------------------------------------------
    def _refresh_live(self, redraw: bool) -> None:
        status = self.query_one("#train-status", Static)
        run = self.runs.get(self.selected or "")
        if run is None:
            return
        state = self.states.get(run.id, _RunState())
        why = run.exit_reason or run.status_detail  # the end, or why a queued run waits
        reason = f" — {why}" if why else ""
        view = self._live_view(state)
        status.update(
            f"[b]{run.label}[/b] · {run.status} · {format_duration(run.elapsed(time.time()))} · "
            f"[b]{view.title}[/b] (t) · smoothing {self.smoothing:.2f}{reason}"
        )
        bar = self.query_one("#train-progress", ProgressBar)
        if state.progress is not None:
            bar.update(total=state.progress.total, progress=state.progress.done)
        self.query_one("#train-stats", TrainStats).show(state.latest, state.step)
        if redraw and state.curves is not None:
            self.query_one("#train-curve", TrainCurve).show_run(state.curves, view, smoothing=self.smoothing,
                                                                width_step=self.width_step)
        self.query_one("#train-samples", TrainSamples).show(state.samples)
        log = self.query_one("#train-log", Log)
        shown = log.line_count
        if len(state.logs) > shown:
            log.write_lines(state.logs[shown:])

    def _live_view(self, state: _RunState) -> View:
        views = views_for(state.curves)
        return next((v for v in views if v.title == self.view_title), views[0])

    def _compare_metrics(self, curves: list[RunCurves]) -> list[str]:
        return [m for m in COMPARE_METRICS if any(c.series.get(m) for c in curves)] or ["loss"]

    def _refresh_compare(self) -> None:
        curves = [self.states[r].curves for r in self.compare if r in self.states and self.states[r].curves]
        metrics = self._compare_metrics(curves)
        metric = self.compare_metric if self.compare_metric in metrics else metrics[0]
        self.query_one("#compare-curve", TrainCurve).show_experiments(
            curves, metric, smoothing=self.smoothing, band=self.band, width_step=self.width_step)
        self.query_one("#compare-legend", Static).update(experiments_legend(curves, metric, self.band))

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

    def on_train_form_submitted(self, message: TrainForm.Submitted) -> None:
        self.notify("checking the tokenizer, chat template and data …")
        self._check_and_start(message.spec)

    @work(thread=True, group="train-start", exclusive=True, exit_on_error=False)
    def _check_and_start(self, spec: TrainSpec) -> None:
        """What the run would fail on in its first seconds is found here, before it starts
        (loading a tokenizer takes seconds, hence the thread)."""
        try:
            template = launch.data_check(spec.validate())
            info = launch.start(spec, self.app.store, check_data=False)
        except (ValueError, RunError, OSError) as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error", timeout=15)
            return
        self.app.call_from_thread(self._started, info, template)

    def _started(self, info: RunInfo, template: str) -> None:
        self.notify(f"started {info.label}; chat template: {template}")
        self.runs[info.id] = info
        self._select(info.id)
        self.action_show_tab("live")
        self.app.run_watcher.poke()

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
        self._follow_runs()

    def _highlighted_run(self) -> str | None:
        return cursor_row_key(self.query_one("#train-runs", DataTable))

    def action_cycle_view(self, direction: int) -> None:
        """The next (or previous) curve: a view of the selected run, or the compared metric."""
        if self.query_one(TabbedContent).active == "compare":
            curves = [self.states[r].curves for r in self.compare if r in self.states and self.states[r].curves]
            metrics = self._compare_metrics(curves)
            at = metrics.index(self.compare_metric) if self.compare_metric in metrics else 0
            self.compare_metric = metrics[(at + direction) % len(metrics)]
            self._refresh_compare()
            return
        state = self.states.get(self.selected or "", _RunState())
        views = views_for(state.curves)
        titles = [v.title for v in views]
        at = titles.index(self.view_title) if self.view_title in titles else 0
        self.view_title = titles[(at + direction) % len(titles)]
        self._refresh_live(True)

    def action_cycle_band(self) -> None:
        self.band = BANDS[(BANDS.index(self.band) + 1) % len(BANDS)]
        self.notify(f"seeds band: {self.band}")
        self._refresh_compare()

    def action_line_width(self) -> None:
        self.width_step = (self.width_step + 1) % len(MARKERS)
        self.notify(f"line width {LINE_WIDTHS[self.width_step]:g}")
        self._refresh_live(True)
        self._refresh_compare()

    def action_smooth(self, direction: int) -> None:
        steps = SMOOTHING_STEPS
        index = min(range(len(steps)), key=lambda i: abs(steps[i] - self.smoothing))
        self.smoothing = steps[max(0, min(len(steps) - 1, index + direction))]
        self._refresh_live(True)
        self._refresh_compare()

    def action_stop_run(self) -> None:
        run = self.runs.get(self.selected or "")
        if run is not None:
            self.post_message(StopRun(run))

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
        self._write_export(curves, out, kind, self.smoothing, self.band, LINE_WIDTHS[self.width_step])

    @work(thread=True, group="train-exports", exit_on_error=False, description="exporting the curves")
    def _write_export(self, curves: list[RunCurves], out: Path, kind: str, smoothing: float, band: str,
                      line_width: float) -> None:
        from engine.train import plots

        try:
            metrics = plots.present_metrics(curves)
            if kind == "csv":
                plots.write_csv(curves, out, metrics, smooth=smoothing, band=band)
            else:
                plots.write_image(curves, out, metrics, smooth=smoothing, band=band, line_width=line_width)
        except (OSError, ValueError) as exc:
            self.post_message(self.Exported(out, f"export failed: {exc}"))
            return
        self.post_message(self.Exported(out, ""))

    def on_train_screen_exported(self, message: Exported) -> None:
        if message.error:
            self.notify(message.error, severity="error")
        else:
            self.notify(f"wrote {message.path}")

    # -- checkpoint actions ----------------------------------------------------------------------
    def _highlighted_checkpoint(self) -> Checkpoint | None:
        key = cursor_row_key(self.query_one("#train-ckpts", DataTable))
        return next((c for c in self.checkpoints if str(c.path) == key), None)

    def _target(self) -> tuple[Path, str] | None:
        """What c, m and g act on, and how to name it: the highlighted checkpoint (the newest
        complete one unless the user moved), else the run's final output."""
        ckpt = self._highlighted_checkpoint()
        if ckpt is not None:
            if not ckpt.complete:
                self.notify(f"{ckpt.name} is not complete ({ckpt.problem})", severity="warning")
                return None
            return ckpt.path, f"{ckpt.name} · step {ckpt.step} · {format_bytes(ckpt.size)}"
        run = self.runs.get(self.selected or "")
        out = launch.final_output(run) if run else None
        if out is None:
            self.notify("no checkpoint or output to use yet", severity="warning")
            return None
        return out, f"final output {out.name}"

    def action_chat_checkpoint(self) -> None:
        """Open Chat on the highlighted checkpoint (a LoRA adapter loads with its base)."""
        target = self._target()
        if target is not None:
            self.post_message(OpenInChat(str(target[0])))

    def _confirm_job(self, kind: str, spec: dict[str, Any], what: str, title: str, button: str,
                     described: str, out: Path) -> None:
        """One dialog naming the checkpoint (step, size) and the output, then the detached job."""
        if out.exists():
            self.notify(f"{out} already exists: delete it or pick another checkpoint", severity="error")
            return
        run = self.runs.get(self.selected or "")
        body = f"{described}\nof run {run.label if run else '?'}\n\nwrites {out}"

        def answered(yes: bool | None) -> None:
            if yes:
                self._start_job(kind, spec, what)

        self.app.push_screen(ConfirmModal(title, body, button), answered)

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
        path, described = target
        if not (path / "adapter_config.json").exists():
            self.notify("merge applies to LoRA adapters; this is a full model", severity="warning")
            return
        out = path.with_name(path.name + "-merged")
        self._confirm_job("train.merge", {"adapter": str(path), "output": str(out)}, f"merge {path.name}",
                          "Merge this LoRA into its base?", "Merge", described, out)

    def action_gguf_checkpoint(self) -> None:
        target = self._target()
        if target is None:
            return
        path, described = target
        out = path.with_name(f"{path.name}-f16.gguf")
        spec = {"model": str(path), "output": str(out), "outtype": "f16"}
        self._confirm_job("train.gguf", spec, f"gguf {path.name}", "Export to GGUF (f16)?", "Export",
                          described, out)

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
            self._checkpoints_read = 0.0
            self._read_checkpoints_soon()

        self.app.push_screen(ConfirmModal("Delete checkpoint?", f"{ckpt.path}\n({format_bytes(ckpt.size)})", "Delete",
                                          "Keep it"), answered)



def experiments_legend(curves: list[RunCurves], metric: str, band: str) -> str:
    """The compared runs by experiment (sorted by name), each in its colour, with its seeds."""
    if not curves:
        return "mark runs with space to overlay them"
    groups: dict[str, list[str]] = {}
    for c in curves:
        groups.setdefault(c.experiment, []).append(c.name)
    colours = colours_for(groups)
    parts = []
    for name in sorted(groups):
        runs = groups[name]
        seeds = f" ({len(runs)} seeds: {', '.join(sorted(runs))})" if len(runs) > 1 else ""
        parts.append(f"[{colours[name]}]■[/] {name}{seeds}")
    shown_band = f" · band {band} (b)" if any(len(r) > 1 for r in groups.values()) else ""
    return f"[b]{metric}[/b] (t){shown_band}  " + "  ".join(parts)
