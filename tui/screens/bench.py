"""Bench mode: kept perplexity, speed and quant-sweep results; start new runs; use a result.

The upper table lists every evaluation run on this box (eval.ppl, bench.speed, bench.sweep),
from the app's run watcher, so runs started from the CLI show up too; a finished run's result
record is read once, in a thread worker. The lower table shows the highlighted run's result (a sweep: one row per quant
type). From a sweep row, `c` opens Chat mode on that GGUF and `v` shows (and copies) the
command that serves it. The form starts a run: kind, model, text file, quant types.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Input, Select, Static

from engine.evaluate import results
from engine.formatting import progress_text
from engine.runs import RunError, RunInfo
from tui.messages import OpenInChat
from tui.run_watcher import RunWatcher
from tui.screens.base import ModeScreen
from tui.widgets.model_input import ModelInput
from tui.widgets.path_input import PathInput
from tui.widgets.tables import cursor_row_key, sync_rows

KIND_LABELS = {"eval.ppl": "perplexity", "bench.speed": "speed", "bench.sweep": "quant sweep"}
LIST_COLUMNS = ("when", "kind", "model", "status", "result")


def headline(record: dict[str, Any]) -> str:
    """One cell summing up a result."""
    r = record.get("result", {})
    kind = record.get("kind")
    if kind == "eval.ppl":
        return f"PPL {r.get('ppl', 0):.3f} on {r.get('tokens_evaluated', 0)} tokens"
    if kind == "bench.speed":
        return (f"pp {r['prompt_tps']['median']:.1f} · tg {r['gen_tps']['median']:.1f} tok/s · "
                f"TTFT {r['ttft_s']['median'] * 1000:.0f} ms")
    if kind == "bench.sweep":
        rows = r.get("rows", [])
        return " · ".join(f"{row['qtype']} {row['ppl']:.2f}" for row in rows if row.get("ppl") is not None)
    return ""


class BenchScreen(ModeScreen):
    CSS_PATH = "bench.tcss"
    MODE_KEY = "bench"
    BINDINGS = [
        Binding("n", "new_run", "new run"),
        Binding("c", "chat", "chat with it"),
        Binding("v", "serve", "serve command"),
        Binding("r", "refresh", "refresh", show=False),
        Binding("escape", "focus_list", "results", show=False),
    ]

    class RecordsRead(Message):
        """Result records of finished runs (None: the run left none)."""

        def __init__(self, records: dict[str, dict[str, Any] | None]) -> None:
            super().__init__()
            self.records = records

    def __init__(self) -> None:
        super().__init__()
        self._runs: dict[str, RunInfo] = {}
        self._listed: list[RunInfo] = []
        self._progress: dict[str, str] = {}
        self._records: dict[str, dict[str, Any] | None] = {}
        self._reading: set[str] = set()
        self._shown_cells: dict[str, tuple[str, ...]] = {}
        self._shown: str | None = None

    # -- layout ------------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        with Horizontal(id="bench-form"):
            yield Select([(label, kind) for kind, label in KIND_LABELS.items()], value="eval.ppl", allow_blank=False,
                         id="bench-kind")
            yield ModelInput(placeholder="model (ctrl+o picks)", id="bench-model", kinds=("gguf", "hf"))
            yield PathInput(placeholder="text file (perplexity, sweep)", id="bench-file")
            yield Input(placeholder="types: Q4_K_M,Q8_0", id="bench-types")
            yield Button("Start", id="bench-start", variant="primary")
        yield Static("", id="bench-error")
        list_table: DataTable[str] = DataTable(id="bench-list", cursor_type="row", zebra_stripes=True)
        for column in LIST_COLUMNS:
            list_table.add_column(column, key=column)
        yield list_table
        with Vertical(id="bench-detail-box"):
            yield Static("", id="bench-note")
            yield DataTable(id="bench-detail", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#bench-list", DataTable).focus()
        model = self.app.options.get("model")
        if model:
            self.query_one("#bench-model", Input).value = str(model)
        self.app.run_watcher.watch_runs(self)

    # -- from the run watcher ------------------------------------------------------------------
    def action_refresh(self) -> None:
        self.app.run_watcher.poke()

    def on_run_watcher_runs_changed(self, message: RunWatcher.RunsChanged) -> None:
        snapshot = message.snapshot
        if snapshot.error:
            self._note(f"cannot read runs: {snapshot.error}")
            return
        self._listed = [r for r in snapshot.runs if r.kind in results.RESULT_KINDS]
        self._progress = {r.id: progress_text(snapshot.progress.get(r.id)) for r in self._listed if r.active}
        unread = [r for r in self._listed if r.status == "succeeded" and r.id not in self._records
                  and r.id not in self._reading]
        if unread:
            self._reading.update(r.id for r in unread)
            self._read_records(unread)
        self._fill_list()

    @work(thread=True, group="bench-records", exit_on_error=False, description="reading result records")
    def _read_records(self, runs: list[RunInfo]) -> None:
        store = self.app.store
        self.post_message(self.RecordsRead({run.id: results.load_run_record(run, store) for run in runs}))

    def on_bench_screen_records_read(self, message: RecordsRead) -> None:
        self._records.update(message.records)
        self._reading.difference_update(message.records)
        self._fill_list()

    def _fill_list(self) -> None:
        table = self.query_one("#bench-list", DataTable)
        sync_rows(table, LIST_COLUMNS, ((run.id, self._cells(run)) for run in self._listed), self._shown_cells)
        wanted = {run.id: run for run in self._listed}
        self._runs = wanted
        if not self._listed:
            self._note("No results yet. Press n, pick a kind, give a model (and a text file), and Start.")
        self._show_selected()

    def _cells(self, run: RunInfo) -> tuple[str, ...]:
        record = self._records.get(run.id)
        # the status word is the run's own, as Runs and `llmdeck runs list` show it
        if run.active:
            summary = self._progress.get(run.id, "")
        elif record is not None:
            summary = headline(record)
        else:
            summary = run.exit_reason
        model = Path(str(run.spec.get("model", ""))).name
        return results.when_text(run.created), KIND_LABELS.get(run.kind, run.kind), model, run.status, summary

    # -- detail ------------------------------------------------------------------------------
    @property
    def selected_run_id(self) -> str | None:
        return cursor_row_key(self.query_one("#bench-list", DataTable))

    @on(DataTable.RowHighlighted, "#bench-list")
    def _highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_selected()

    def _show_selected(self) -> None:
        run_id = self.selected_run_id
        record = self._records.get(run_id or "")
        key = f"{run_id}:{bool(record)}"
        if key == self._shown:
            return
        self._shown = key
        detail = self.query_one("#bench-detail", DataTable)
        detail.clear(columns=True)
        if record is None:
            run = self._runs.get(run_id or "")
            self._note(f"{run.label}: {run.status} {run.exit_reason}".strip() if run else "")
            return
        kind = record["kind"]
        if kind == "bench.sweep":
            headers, rows = results.SWEEP_HEADERS, results.sweep_rows(record)
            r = record["result"]
            self._note(f"sweep of {Path(record['model']).name}, baseline {r['baseline']} ({r['baseline_from']}); "
                       "c: chat with the highlighted row · v: its serve command")
        elif kind == "bench.speed":
            headers, rows = results.SPEED_HEADERS, [results.speed_row(record)]
            self._note(f"{record['model']} · {record['machine'].get('cpu', '')}")
        else:
            headers, rows = results.PPL_HEADERS, [results.ppl_row(record)]
            self._note(f"{record['model']} on {Path(record['result']['file']).name}")
        for i, header in enumerate(headers):
            width = max([len(header), *(len(row[i]) for row in rows)])
            detail.add_column(header, key=header, width=width)
        for i, row in enumerate(rows):
            detail.add_row(*row, key=str(i))

    def _note(self, text: str) -> None:
        self.query_one("#bench-note", Static).update(text)

    def selected_model_path(self) -> str | None:
        """The GGUF of the highlighted sweep row, else the model of the highlighted result."""
        record = self._records.get(self.selected_run_id or "")
        if record is None:
            return None
        if record["kind"] == "bench.sweep":
            rows = record["result"].get("rows", [])
            detail = self.query_one("#bench-detail", DataTable)
            index = detail.cursor_row if detail.row_count else 0
            if 0 <= index < len(rows):
                return str(rows[index]["path"])
        return str(record["model"])

    # -- actions -----------------------------------------------------------------------------
    def action_focus_list(self) -> None:
        self.query_one("#bench-list", DataTable).focus()

    def action_new_run(self) -> None:
        self.query_one("#bench-model", Input).focus()

    def action_chat(self) -> None:
        path = self.selected_model_path()
        if not path:
            self.notify("highlight a finished result first", severity="warning")
            return
        if not Path(path).exists():
            self.notify(f"{path} no longer exists", severity="error")
            return
        self.post_message(OpenInChat(path))

    def action_serve(self) -> None:
        path = self.selected_model_path()
        if not path:
            self.notify("highlight a finished result first", severity="warning")
            return
        command = f"llmdeck serve {shlex.quote(str(path))}"
        self.app.copy_to_clipboard(command)
        self._note(f"serve it: {command}   (copied)")
        self.notify(command, title="serve command (copied)", timeout=8)

    @on(Button.Pressed, "#bench-start")
    @on(Input.Submitted)
    def start_run(self) -> None:
        kind = str(self.query_one("#bench-kind", Select).value)
        model = self.query_one("#bench-model", Input).value.strip()
        text = self.query_one("#bench-file", Input).value.strip()
        types = self.query_one("#bench-types", Input).value.strip()
        problem = self._check_form(kind, model, text, types)
        error = self.query_one("#bench-error", Static)
        error.update(problem[1] if problem else "")
        error.display = problem is not None
        if problem is not None:
            self.query_one(f"#bench-{problem[0]}").focus()  # the field at fault, the reason under it
            return
        spec: dict[str, Any] = {"model": str(Path(model).expanduser().resolve())}
        if kind == "eval.ppl":
            spec["file"] = str(Path(text).expanduser().resolve())
        elif kind == "bench.sweep":
            spec |= {"types": types, "ppl_file": str(Path(text).expanduser().resolve()), "reps": 2}
            spec["allow_requantize"] = _is_quantized(Path(spec["model"]))
        try:
            info = self.app.store.start(kind, spec, name=f"{KIND_LABELS[kind]} {Path(model).name}")
        except (RunError, OSError) as exc:
            self.notify(f"could not start the run: {exc}", severity="error")
            return
        self.notify(f"started {KIND_LABELS[kind]} run {info.id}", timeout=4)
        self.action_refresh()
        self.action_focus_list()

    @staticmethod
    def _check_form(kind: str, model: str, text: str, types: str) -> tuple[str, str] | None:
        """The first field at fault ("model", "file", "types") and why; None when it can start."""
        if not model:
            return "model", "give a model: a .gguf file or an HF model folder (ctrl+o picks one)"
        if not Path(model).expanduser().exists():
            return "model", f"model not found: {model}"
        if kind in ("eval.ppl", "bench.sweep"):
            if not text:
                return "file", "give a text file for perplexity"
            if not Path(text).expanduser().is_file():
                return "file", f"text file not found: {text}"
        if kind == "bench.sweep":
            from engine.evaluate.models import EvalError
            from engine.evaluate.sweep import parse_types

            try:
                parse_types(types)
            except EvalError as exc:
                return "types", str(exc)
        return None


def _is_quantized(path: Path) -> bool:
    """A quantized GGUF is swept from an F16 copy (the form has no separate switch)."""
    if path.is_dir() or path.suffix.lower() != ".gguf":
        return False
    from engine.evaluate.models import EvalError
    from engine.evaluate.sweep import _gguf_type

    try:
        return not _gguf_type(path)[1]
    except EvalError:  # not a GGUF, truncated: the run itself reports the bad file
        return False
