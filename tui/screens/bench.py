"""Bench mode: kept perplexity, speed and quant-sweep results; start new runs; use a result.

The upper table lists every evaluation run on this box (eval.ppl, bench.speed, bench.sweep),
re-read from the run store every two seconds in a thread worker, so runs started from the CLI
show up too. The lower table shows the highlighted run's result (a sweep: one row per quant
type). From a sweep row, `c` opens Chat mode on that GGUF and `v` shows (and copies) the
command that serves it. The form starts a run: kind, model, text file, quant types.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
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
from engine.runs import RunInfo
from tui.screens.base import ModeScreen

KIND_LABELS = {"eval.ppl": "perplexity", "bench.speed": "speed", "bench.sweep": "quant sweep"}
LIST_COLUMNS = ("when", "kind", "model", "status", "result")


@dataclass
class BenchListed(Message):
    runs: list[RunInfo]
    records: dict[str, dict[str, Any]]
    progress: dict[str, str] = field(default_factory=dict)
    error: str = ""


def headline(record: dict[str, Any]) -> str:
    """One cell summing up a result."""
    r = record.get("result", {})
    kind = record.get("kind")
    if kind == "eval.ppl":
        return f"PPL {r.get('ppl', 0):.3f} on {r.get('tokens_evaluated', 0)} tokens"
    if kind == "bench.speed":
        return f"pp {r['prompt_tps']['median']:.1f} · tg {r['gen_tps']['median']:.1f} tok/s · TTFT {r['ttft_s']['median'] * 1000:.0f} ms"
    if kind == "bench.sweep":
        rows = r.get("rows", [])
        return " · ".join(f"{row['qtype']} {row['ppl']:.2f}" for row in rows if row.get("ppl") is not None)
    return ""


class BenchScreen(ModeScreen):
    MODE_KEY = "bench"
    DEFAULT_CSS = """
    BenchScreen #bench-form { height: auto; padding: 0 1; }
    BenchScreen #bench-form Select { width: 18; }
    BenchScreen #bench-form Input { width: 1fr; }
    BenchScreen #bench-form #bench-types { width: 22; }
    BenchScreen #bench-form Button { min-width: 9; }
    BenchScreen #bench-list { height: 1fr; min-height: 4; }
    BenchScreen #bench-detail-box { height: 1fr; min-height: 4; border-top: solid $primary; }
    BenchScreen #bench-detail { height: 1fr; }
    BenchScreen #bench-note { height: auto; color: $text-muted; padding: 0 1; }
    """
    BINDINGS = [
        Binding("n", "new_run", "new run"),
        Binding("c", "chat", "chat with it"),
        Binding("v", "serve", "serve command"),
        Binding("r", "refresh", "refresh", show=False),
        Binding("escape", "focus_list", "results", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._runs: dict[str, RunInfo] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._shown: str | None = None

    # -- layout ------------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        with Horizontal(id="bench-form"):
            yield Select([(label, kind) for kind, label in KIND_LABELS.items()], value="eval.ppl", allow_blank=False, id="bench-kind")
            yield Input(placeholder="model: .gguf or HF folder", id="bench-model")
            yield Input(placeholder="text file (perplexity, sweep)", id="bench-file")
            yield Input(placeholder="types: Q4_K_M,Q8_0", id="bench-types")
            yield Button("Start", id="bench-start", variant="primary")
        list_table: DataTable[str] = DataTable(id="bench-list", cursor_type="row", zebra_stripes=True)
        for column in LIST_COLUMNS:
            list_table.add_column(column, key=column)
        yield list_table
        with Vertical(id="bench-detail-box"):
            yield Static("", id="bench-note")
            yield DataTable(id="bench-detail", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#bench-list", DataTable).focus()
        model = (getattr(self.app, "options", {}) or {}).get("model")
        if model:
            self.query_one("#bench-model", Input).value = str(model)
        self.set_interval(2.0, self.action_refresh)
        self.action_refresh()

    # -- polling -----------------------------------------------------------------------------
    def action_refresh(self) -> None:
        self._list_runs()

    @work(thread=True, exclusive=True, group="bench-list", exit_on_error=False)
    def _list_runs(self) -> None:
        store = self.app.store
        try:
            runs = [r for r in store.list() if r.kind in results.RESULT_KINDS]
            records = {}
            progress = {}
            for run in runs:
                if run.status == "succeeded":
                    record = self._records.get(run.id) or results.load_run_record(run, store)
                    if record is not None:
                        records[run.id] = record
                elif run.active:
                    progress[run.id] = progress_text(store.last_progress(run.id))
            self.post_message(BenchListed(runs, records, progress))
        except OSError as exc:
            self.post_message(BenchListed([], {}, error=str(exc)))

    def on_bench_listed(self, message: BenchListed) -> None:
        table = self.query_one("#bench-list", DataTable)
        if message.error:
            self._note(f"cannot read runs: {message.error}")
            return
        self._records.update(message.records)
        wanted = {run.id: run for run in message.runs}
        for key in [row.value for row in list(table.rows) if row.value not in wanted]:
            table.remove_row(key)
        for run in message.runs:
            record = self._records.get(run.id)
            if run.active:
                status, summary = run.status, message.progress.get(run.id, "")
            elif record is not None:
                status, summary = "done", headline(record)
            else:
                status, summary = run.status, run.exit_reason
            model = Path(str(run.spec.get("model", ""))).name
            cells = (results.when_text(run.created), KIND_LABELS.get(run.kind, run.kind), model, status, summary)
            if run.id in table.rows:
                for column, value in zip(LIST_COLUMNS, cells, strict=True):
                    table.update_cell(run.id, column, value, update_width=True)
            else:
                table.add_row(*cells, key=run.id)
        self._runs = wanted
        if not message.runs:
            self._note("No results yet. Press n, pick a kind, give a model (and a text file), and Start.")
        self._show_selected()

    # -- detail ------------------------------------------------------------------------------
    @property
    def selected_run_id(self) -> str | None:
        table = self.query_one("#bench-list", DataTable)
        if not table.row_count:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - cursor outside the (changing) table
            return None

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

    async def action_chat(self) -> None:
        path = self.selected_model_path()
        if not path:
            self.notify("highlight a finished result first", severity="warning")
            return
        if not Path(path).exists():
            self.notify(f"{path} no longer exists", severity="error")
            return
        self.app.options["model"] = path
        await self.app.switch_mode("chat")
        screen = self.app.screen
        spec = getattr(screen, "spec", None)
        if spec is not None and getattr(spec, "model", None) != path and hasattr(screen, "load_model"):
            from engine.chat.loader import BackendSpec

            screen.load_model(BackendSpec(model=path))  # Chat was open already: switch its model

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
        if problem:
            self.notify(problem, severity="error")
            return
        spec: dict[str, Any] = {"model": str(Path(model).expanduser().resolve())}
        if kind == "eval.ppl":
            spec["file"] = str(Path(text).expanduser().resolve())
        elif kind == "bench.sweep":
            spec |= {"types": types, "ppl_file": str(Path(text).expanduser().resolve()), "reps": 2}
            spec["allow_requantize"] = _is_quantized(Path(spec["model"]))
        try:
            info = self.app.store.start(kind, spec, name=f"{KIND_LABELS[kind]} {Path(model).name}")
        except Exception as exc:  # noqa: BLE001 - shown, never raised into the UI
            self.notify(f"could not start the run: {exc}", severity="error")
            return
        self.notify(f"started {KIND_LABELS[kind]} run {info.id}", timeout=4)
        self.action_refresh()
        self.action_focus_list()

    @staticmethod
    def _check_form(kind: str, model: str, text: str, types: str) -> str:
        if not model:
            return "give a model: a .gguf file or an HF model folder"
        if not Path(model).expanduser().exists():
            return f"model not found: {model}"
        if kind in ("eval.ppl", "bench.sweep"):
            if not text:
                return "give a text file for perplexity"
            if not Path(text).expanduser().is_file():
                return f"text file not found: {text}"
        if kind == "bench.sweep":
            from engine.evaluate.models import EvalError
            from engine.evaluate.sweep import parse_types

            try:
                parse_types(types)
            except EvalError as exc:
                return str(exc)
        return ""


def _is_quantized(path: Path) -> bool:
    """A quantized GGUF is swept from an F16 copy (the form has no separate switch)."""
    if path.is_dir() or path.suffix.lower() != ".gguf":
        return False
    try:
        from engine.evaluate.sweep import _gguf_type

        return not _gguf_type(path)[1]
    except Exception:  # noqa: BLE001 - the run itself reports a bad file
        return False
