"""Convert mode: pick a conversion, paths and options, read the pre-flight verdict, start it as a
detached run and watch it; finished conversions list their verification figures.

The pre-flight check (`engine.convert.preflight.check`) runs in a thread worker a moment after
the last keystroke, so typing never waits on reading a GGUF header or memory-mapping a Meta
shard. Conversions run as detached runs (`RunStore.start`): leaving the screen or closing the
TUI does not stop them, and reopening shows them again.

ctrl+s starts exactly what is on screen: the values are read from the fields at that moment,
and the run starts only with a verdict for those very values. Pressed while they are still
being checked (or before the check began), the start waits for that check and goes ahead only
if it passes; an edit in the meantime drops the pending start.

A quantize's first verdict comes from the GGUF header within a second, its size an estimate;
the exact size (llama.cpp's quantizer planning every tensor in a dry run) replaces it a few
seconds later. A start before then checks the disk against an upper bound of the output (every
tensor at the wider of its own type and F16) and, when that does not fit, waits for the exact
verdict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Checkbox, DataTable, Input, Select, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from engine.convert import ACTIONS
from engine.runs import RunError, RunInfo
from tui.messages import StopRun
from tui.run_watcher import RunWatcher
from tui.screens.base import ModeScreen
from tui.widgets.model_input import ModelInput
from tui.widgets.path_input import PathInput
from tui.widgets.run_view import RunView
from tui.widgets.tables import sync_rows

TYPE_CHOICES: dict[str, tuple[str, tuple[str, ...]]] = {
    "hf-to-gguf": ("outtype", ("f16", "bf16", "f32", "q8_0")),
    "quantize": ("qtype", ("Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "Q4_0")),
    "gguf-to-hf": ("dtype", ("f32", "bf16", "f16")),
    "meta-to-hf": ("dtype", ("auto", "bf16", "f16", "f32")),
    "merge-lora": ("dtype", ("f32", "bf16", "f16")),
}
EXTRA: dict[str, tuple[str, str]] = {
    "hf-to-gguf": ("", "(no extra input for this conversion)"),
    "quantize": ("imatrix", "importance matrix file (optional)"),
    "gguf-to-hf": ("", "(no extra input for this conversion)"),
    "meta-to-hf": ("tokenizer", "tokenizer.model (default: beside the shards or one folder up)"),
    "merge-lora": ("base", "base model folder (default: the adapter's base_model_name_or_path)"),
}
FINISHED_COLUMNS = ("when", "conversion", "status", "output", "verification")
INPUT_KINDS: dict[str, tuple[str, ...]] = {
    "hf-to-gguf": ("hf",), "quantize": ("gguf",), "gguf-to-hf": ("gguf",), "meta-to-hf": ("meta",),
    "merge-lora": ("adapter",),
}
INPUT_HINT = {
    "hf-to-gguf": "HF model folder (config.json + *.safetensors)",
    "quantize": "float GGUF file (f16/bf16/f32)",
    "gguf-to-hf": "GGUF file",
    "meta-to-hf": "Meta folder (params.json + consolidated.*.pth)",
    "merge-lora": "LoRA adapter folder (adapter_config.json)",
}


def spec_key(spec: dict[str, Any]) -> tuple:
    """The form's values as a key: a verdict belongs to exactly one."""
    return tuple(sorted((k, str(v)) for k, v in spec.items()))


def verify_figures(verify: Any) -> str:
    if not isinstance(verify, dict):
        return str(verify or "")
    text = (f"top-1 {100 * float(verify.get('top1_agreement', 0)):.0f}%  "
            f"Δmax {float(verify.get('max_abs_diff', 0)):.3g}")
    text += f"  r {float(verify.get('correlation', 0)):.4f}"
    if verify.get("tokenizer_match"):
        text += f"  tok {verify['tokenizer_match']}"
    return text


class ConvertScreen(ModeScreen):
    CSS_PATH = "convert.tcss"
    MODE_KEY = "convert"

    @dataclass
    class PreflightChecked(Message):
        """The pre-flight verdict for the form state `key`."""

        key: tuple
        verdict: Any
    # Keys a text field does not take (tui/screens/base.py), so each works from any field.
    BINDINGS = [
        Binding("ctrl+s", "start", "start", id="convert.start"),
        Binding("ctrl+g", "cancel_run", "stop conversion", id="convert.cancel"),
        Binding("ctrl+r", "recheck", "re-check", id="convert.check"),
        Binding("ctrl+f", "toggle_tab", "finished/progress", id="convert.finished"),
    ]

    class FiguresRead(Message):
        """Verification figures (or the failure) of finished conversions, from their events."""

        def __init__(self, figures: dict[str, str]) -> None:
            super().__init__()
            self.figures = figures

    def __init__(self) -> None:
        super().__init__()
        self._figures: dict[str, str] = {}
        self._reading: set[str] = set()
        self._finished_cells: dict[str, tuple[str, ...]] = {}
        self._checked: tuple[tuple, Any] | None = None
        """The newest verdict, with the exact form values it is for."""
        self._checking: tuple | None = None
        self._start_when_checked: tuple | None = None
        """Form values ctrl+s was pressed on before their check came back."""
        self._check_worker: Worker | None = None
        self._timer: Any = None
        self.current_run: str | None = None
        self._runs: list[RunInfo] = []

    # -- layout ------------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="conv-row"):
            yield Select([(a, a) for a in ACTIONS], value="hf-to-gguf", allow_blank=False, id="conv-action")
            yield ModelInput(placeholder=INPUT_HINT["hf-to-gguf"], id="conv-input", kinds=INPUT_KINDS["hf-to-gguf"])
        with Horizontal(classes="conv-row"):
            yield Select([(t, t) for t in TYPE_CHOICES["hf-to-gguf"][1]], value="f16", allow_blank=False,
                         id="conv-type")
            yield PathInput(placeholder="output (default: next to the input)", id="conv-output")
        with Horizontal(classes="conv-row"):
            yield PathInput(placeholder=EXTRA["hf-to-gguf"][1], id="conv-extra", disabled=True)
            yield Checkbox("verify", value=True, id="conv-verify")
            yield Checkbox("force", value=False, id="conv-force")
        yield Static("type an input path; the pre-flight verdict appears here", id="conv-verdict")
        with TabbedContent(id="conv-tabs", initial="progress"):
            with TabPane("Progress", id="progress"):
                yield RunView(self.app.run_watcher, id="conv-run")
            with TabPane("Finished", id="finished"):
                yield DataTable(id="conv-finished", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one("#conv-finished", DataTable)
        for column in FINISHED_COLUMNS:
            table.add_column(column, key=column)
        options = self.app.options
        if options.get("action") in ACTIONS:
            self.query_one("#conv-action", Select).value = options["action"]
        if options.get("input"):
            self.query_one("#conv-input", Input).value = str(options["input"])
        self.app.run_watcher.watch_runs(self)

    # -- the form ----------------------------------------------------------------------------
    @property
    def action(self) -> str:
        return str(self.query_one("#conv-action", Select).value)

    def spec(self) -> dict[str, Any]:
        action = self.action
        key, _ = TYPE_CHOICES[action]
        spec: dict[str, Any] = {
            "action": action,
            "input": self.query_one("#conv-input", Input).value.strip(),
            "output": self.query_one("#conv-output", Input).value.strip(),
            "verify": self.query_one("#conv-verify", Checkbox).value,
            "force": self.query_one("#conv-force", Checkbox).value,
            key: str(self.query_one("#conv-type", Select).value),
        }
        extra_key = EXTRA[action][0]
        if extra_key:
            spec[extra_key] = self.query_one("#conv-extra", Input).value.strip()
        return spec

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "conv-action":
            action = self.action
            _, choices = TYPE_CHOICES[action]
            self.query_one("#conv-type", Select).set_options([(c, c) for c in choices])
            self.query_one("#conv-type", Select).value = choices[0]
            field = self.query_one("#conv-input", ModelInput)
            field.placeholder = INPUT_HINT[action]
            field.kinds = INPUT_KINDS[action]
            extra = self.query_one("#conv-extra", Input)
            extra.placeholder = EXTRA[action][1]
            extra.disabled = not EXTRA[action][0]
        self._schedule_check()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._schedule_check()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._schedule_check()

    @property
    def verdict(self) -> Any:
        """The verdict for what the form holds now, or None (not checked yet, or a check of
        newer values is on its way)."""
        if self._checked is not None and self._checked[0] == spec_key(self.spec()):
            return self._checked[1]
        return None

    def _schedule_check(self) -> None:
        if self._start_when_checked is not None and self._start_when_checked != spec_key(self.spec()):
            self._start_when_checked = None
            self.notify("the form changed before its check came back: nothing started; ctrl+s starts it",
                        severity="warning")
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(0.3, self.action_recheck)

    def action_recheck(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        spec = self.spec()
        if not spec["input"]:
            self._show_verdict_text("type an input path; the pre-flight verdict appears here", "")
            self._checking = None
            return
        key = spec_key(spec)
        self._checking = key
        self._show_verdict_text(self._checking_text(), "")
        self._check_worker = self._check(key, spec)

    def _checking_text(self) -> str:
        if self._start_when_checked is not None:
            return "checking… the conversion starts when the check passes"
        return "checking…"

    @work(thread=True, exclusive=True, group="convert-checks", exit_on_error=False, description="pre-flight check")
    def _check(self, key: tuple, spec: dict[str, Any]) -> None:
        """Two stages where the exact verdict takes longer (a quantize's size, planned by a dry
        run of llama.cpp's quantizer): the header's verdict at once, marked as an estimate, then
        the exact one. A newer check makes this one's second stage moot."""
        from textual.worker import get_current_worker

        from engine.convert import preflight

        verdict = preflight.check(spec, exact=False)
        self.post_message(self.PreflightChecked(key, verdict))
        if verdict.estimated and not get_current_worker().is_cancelled:
            self.post_message(self.PreflightChecked(key, preflight.check(spec)))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The check itself broke (the app reports why): say so where the verdict goes.
        if event.state is WorkerState.ERROR and event.worker is self._check_worker:
            self._checking = None
            self._start_when_checked = None
            self._show_verdict_text("the pre-flight check failed (see the notification); ctrl+r re-checks", "-bad")

    def on_convert_screen_preflight_checked(self, message: PreflightChecked) -> None:
        spec = self.spec()
        if message.key != spec_key(spec):
            return  # the form changed since; a newer check is coming
        verdict = message.verdict
        if verdict.estimated and self._checked is not None and self._checked[0] == message.key \
                and not self._checked[1].estimated:
            return  # an older check's exact verdict is already in
        self._checked = (message.key, verdict)
        self._checking = None
        self._show_verdict(verdict, bool(spec["force"]))
        if self._start_when_checked == message.key and not verdict.may_pass_when_exact(spec["force"]):
            self._start_when_checked = None
            self._start(spec, verdict)

    def _show_verdict(self, verdict: Any, force: bool) -> None:
        """What to do first (ready, refused, waiting), then the problems and warnings, then the
        facts: at 80x24 the verdict has six lines, and what is cut must be the facts."""
        ok = verdict.ok(force)
        pending = verdict.may_pass_when_exact(force)
        forcible = " (tick force to go on)" if verdict.ok(True) else ""
        if ok:
            head = "ready: ctrl+s starts it"
        elif pending:
            head = ("waiting for the exact size: ctrl+s starts it if that fits" if self._start_when_checked is None
                    else "waiting for the exact size: the conversion starts if it fits")
        else:
            head = "refused" + forcible
        if verdict.estimated:
            head += " · sizing the output with llama.cpp's quantizer…"
        lines = verdict.lines()
        said = [line for line in lines if line.startswith(("problem", "warning"))]
        facts = sorted((line for line in lines if line not in said), key=lambda line: not line.startswith("output:"))
        lines = [head, *said, *facts]  # the output and its size first of the facts
        self._show_verdict_text("\n".join(lines), "-ok" if ok else ("" if pending else "-bad"))

    def _show_verdict_text(self, text: str, cls: str) -> None:
        widget = self.query_one("#conv-verdict", Static)
        widget.update(text)
        widget.set_class(cls == "-ok", "-ok")
        widget.set_class(cls == "-bad", "-bad")

    # -- running -----------------------------------------------------------------------------
    def action_start(self) -> None:
        """Start what the fields hold now, once a check of exactly these values has passed."""
        spec = self.spec()
        if not spec["input"]:
            self.notify("type an input path first", severity="warning")
            return
        key = spec_key(spec)
        if self._checked is not None and self._checked[0] == key:
            self._start(spec, self._checked[1])
            return
        self._start_when_checked = key
        if self._checking != key:
            self.action_recheck()  # not being checked yet (the pause after typing): check now
        else:
            self._show_verdict_text(self._checking_text(), "")

    def _start(self, spec: dict[str, Any], verdict: Any) -> None:
        """An estimated verdict (the quantize plan not in yet) starts when the disk holds the
        output's upper bound; one refused only for that bound waits for the exact verdict."""
        if not verdict.ok(spec["force"]):
            if verdict.may_pass_when_exact(spec["force"]):
                self._start_when_checked = spec_key(spec)
                self._show_verdict(verdict, bool(spec["force"]))
                return
            self.notify(verdict.blocking(spec["force"])[0].text, title="refused", severity="error")
            return
        from engine.convert.preflight import absolute_paths

        spec["output"] = verdict.output  # the verdict's output is this spec's (its default when empty)
        spec = absolute_paths(spec)
        kind = f"convert.{spec['action']}"
        try:
            name = f"{spec['action']} {Path(verdict.output).name}"
            info = self.app.store.start(kind, spec, name=name)
        except (RunError, OSError) as exc:
            self.notify(str(exc), title="could not start", severity="error")
            return
        self.current_run = info.id
        self.query_one("#conv-run", RunView).set_run(info.id)
        self.query_one("#conv-tabs", TabbedContent).active = "progress"
        self.notify(f"started {info.id}: {verdict.output}", timeout=4)
        self.app.run_watcher.poke()

    def action_cancel_run(self) -> None:
        if not self.current_run:
            self.notify("no conversion running from this screen", severity="warning")
            return
        try:
            run = self.app.store.get(self.current_run)  # read now: it may have started this instant
        except RunError as exc:
            self.notify(str(exc), severity="warning")
            return
        self.post_message(StopRun(run))  # the one stop dialog: an hour of converting is one key away

    def action_show_tab(self, tab: str) -> None:
        self.query_one("#conv-tabs", TabbedContent).active = tab

    def action_toggle_tab(self) -> None:
        tabs = self.query_one("#conv-tabs", TabbedContent)
        tabs.active = "progress" if tabs.active == "finished" else "finished"

    # -- finished list -----------------------------------------------------------------------
    def on_run_watcher_runs_changed(self, message: RunWatcher.RunsChanged) -> None:
        runs = [r for r in message.snapshot.runs if r.kind.startswith("convert.")][:50]
        unread = [r for r in runs if r.status in ("succeeded", "failed")
                  and r.id not in self._figures and r.id not in self._reading]
        if unread:
            self._reading.update(r.id for r in unread)
            self._read_figures(unread)
        self._runs = runs
        self._fill_finished()
        active = [r.id for r in runs if r.active]
        if self.current_run is None and active:
            self.current_run = active[0]  # reattach to a conversion started earlier
            self.query_one("#conv-run", RunView).set_run(self.current_run)

    @work(thread=True, group="convert-figures", exit_on_error=False,
          description="reading verification figures")
    def _read_figures(self, runs: list[RunInfo]) -> None:
        from engine.events import Failed, Finished

        store = self.app.store
        figures: dict[str, str] = {}
        for run in runs:
            figures[run.id] = ""
            events, _ = store.read_events(run.id, max(0, _size(run.events_path) - 65536))
            for event in reversed(events):
                if isinstance(event, Finished):
                    figures[run.id] = verify_figures(event.summary.get("verify"))
                    break
                if isinstance(event, Failed):
                    figures[run.id] = event.message[:80]
                    break
        self.post_message(self.FiguresRead(figures))

    def on_convert_screen_figures_read(self, message: FiguresRead) -> None:
        self._figures.update(message.figures)
        self._reading.difference_update(message.figures)
        self._fill_finished()

    def _fill_finished(self) -> None:
        rows = []
        for run in self._runs:
            when = time.strftime("%m-%d %H:%M", time.localtime(run.created))
            output = Path(str(run.spec.get("output", ""))).name
            rows.append((run.id, (when, run.kind.removeprefix("convert."), run.status, output,
                                  self._figures.get(run.id, ""))))
        table = self.query_one("#conv-finished", DataTable)
        sync_rows(table, FINISHED_COLUMNS, rows, self._finished_cells, ordered=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
