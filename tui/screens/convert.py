"""Convert mode: pick a conversion, paths and options, read the pre-flight verdict, start it as a
detached run and watch it; finished conversions list their verification figures.

The pre-flight check (`engine.convert.preflight.check`) runs in a thread worker a moment after
the last keystroke, so typing never waits on reading a GGUF header or memory-mapping a Meta
shard. Conversions run as detached runs (`RunStore.start`): leaving the screen or closing the
TUI does not stop them, and reopening shows them again.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Checkbox, DataTable, Input, Select, Static, TabbedContent, TabPane

from engine.convert import ACTIONS
from tui.screens.base import ModeScreen
from tui.widgets.run_view import RunView

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
INPUT_HINT = {
    "hf-to-gguf": "HF model folder (config.json + *.safetensors)",
    "quantize": "float GGUF file (f16/bf16/f32)",
    "gguf-to-hf": "GGUF file",
    "meta-to-hf": "Meta folder (params.json + consolidated.*.pth)",
    "merge-lora": "LoRA adapter folder (adapter_config.json)",
}


class PathSuggester(Suggester):
    """Completes the last path component from the file system (accept with → or End)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        path = Path(os.path.expanduser(value))
        folder, prefix = (path, "") if value.endswith("/") else (path.parent, path.name)
        try:
            names = sorted(n for n in os.listdir(folder) if n.startswith(prefix) and not n.startswith("."))
        except OSError:
            return None
        if not names:
            return None
        choice = names[0]
        suffix = "/" if (folder / choice).is_dir() else ""
        head = value[: len(value) - len(prefix)]
        return head + choice + suffix


@dataclass
class VerdictReady(Message):
    key: tuple
    verdict: Any


@dataclass
class FinishedListed(Message):
    rows: list[tuple[str, ...]] = field(default_factory=list)
    active: list[str] = field(default_factory=list)


def verify_figures(verify: Any) -> str:
    if not isinstance(verify, dict):
        return str(verify or "")
    text = f"top-1 {100 * float(verify.get('top1_agreement', 0)):.0f}%  Δmax {float(verify.get('max_abs_diff', 0)):.3g}"
    text += f"  r {float(verify.get('correlation', 0)):.4f}"
    if verify.get("tokenizer_match"):
        text += f"  tok {verify['tokenizer_match']}"
    return text


class ConvertScreen(ModeScreen):
    MODE_KEY = "convert"
    DEFAULT_CSS = """
    ConvertScreen .conv-row { height: 3; }
    ConvertScreen #conv-action { width: 20; }
    ConvertScreen #conv-type { width: 16; }
    ConvertScreen #conv-input, ConvertScreen #conv-output, ConvertScreen #conv-extra { width: 1fr; }
    ConvertScreen Checkbox { width: auto; }
    ConvertScreen #conv-verdict { height: auto; max-height: 6; padding: 0 1; color: $text-muted; }
    ConvertScreen #conv-verdict.-bad { color: $error; }
    ConvertScreen #conv-verdict.-ok { color: $success; }
    ConvertScreen #conv-tabs { height: 1fr; }
    ConvertScreen #conv-finished { height: 1fr; }
    """
    BINDINGS = [
        Binding("ctrl+s", "start", "start", id="convert.start"),
        Binding("ctrl+k", "cancel_run", "cancel run", id="convert.cancel"),
        Binding("ctrl+r", "recheck", "re-check", id="convert.check"),
        Binding("ctrl+f", "show_tab('finished')", "finished", id="convert.finished"),
        Binding("ctrl+p", "show_tab('progress')", "progress", show=False, id="convert.progress"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.verdict: Any = None
        self._verdict_key: tuple = ()
        self._timer: Any = None
        self.current_run: str | None = None

    # -- layout ------------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="conv-row"):
            yield Select([(a, a) for a in ACTIONS], value="hf-to-gguf", allow_blank=False, id="conv-action")
            yield Input(placeholder=INPUT_HINT["hf-to-gguf"], suggester=PathSuggester(), id="conv-input")
        with Horizontal(classes="conv-row"):
            yield Select([(t, t) for t in TYPE_CHOICES["hf-to-gguf"][1]], value="f16", allow_blank=False, id="conv-type")
            yield Input(placeholder="output (default: next to the input)", suggester=PathSuggester(), id="conv-output")
        with Horizontal(classes="conv-row"):
            yield Input(placeholder=EXTRA["hf-to-gguf"][1], suggester=PathSuggester(), id="conv-extra", disabled=True)
            yield Checkbox("verify", value=True, id="conv-verify")
            yield Checkbox("force", value=False, id="conv-force")
        yield Static("type an input path; the pre-flight verdict appears here", id="conv-verdict")
        with TabbedContent(id="conv-tabs", initial="progress"):
            with TabPane("Progress", id="progress"):
                yield RunView(self.app.store, id="conv-run")
            with TabPane("Finished", id="finished"):
                yield DataTable(id="conv-finished", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one("#conv-finished", DataTable)
        table.add_columns("when", "conversion", "status", "output", "verification")
        options = getattr(self.app, "options", {}) or {}
        if options.get("action") in ACTIONS:
            self.query_one("#conv-action", Select).value = options["action"]
        if options.get("input"):
            self.query_one("#conv-input", Input).value = str(options["input"])
        self.set_interval(2.0, self._list_finished)
        self._list_finished()

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
            self.query_one("#conv-input", Input).placeholder = INPUT_HINT[action]
            extra = self.query_one("#conv-extra", Input)
            extra.placeholder = EXTRA[action][1]
            extra.disabled = not EXTRA[action][0]
        self._schedule_check()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._schedule_check()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._schedule_check()

    def _schedule_check(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(0.3, self.action_recheck)

    def action_recheck(self) -> None:
        spec = self.spec()
        if not spec["input"]:
            self._show_verdict_text("type an input path; the pre-flight verdict appears here", "")
            self.verdict = None
            return
        key = tuple(sorted((k, str(v)) for k, v in spec.items()))
        self._verdict_key = key
        self.query_one("#conv-verdict", Static).update("checking…")
        self._check(key, spec)

    @work(thread=True, exclusive=True, group="convert-preflight", exit_on_error=False)
    def _check(self, key: tuple, spec: dict[str, Any]) -> None:
        from engine.convert import preflight

        try:
            verdict = preflight.check(spec)
        except Exception as exc:  # noqa: BLE001 - a check must never crash the screen
            verdict = preflight.Verdict(action=spec["action"], problems=[preflight.Problem(f"{type(exc).__name__}: {exc}")])
        self.post_message(VerdictReady(key, verdict))

    def on_verdict_ready(self, message: VerdictReady) -> None:
        if message.key != self._verdict_key:
            return  # the form changed since; a newer check is coming
        self.verdict = message.verdict
        force = self.query_one("#conv-force", Checkbox).value
        ok = message.verdict.ok(force)
        lines = message.verdict.lines()
        lines.append("ready: ctrl+s starts it" if ok else "refused" + (" (tick force to go on)" if message.verdict.ok(True) else ""))
        self._show_verdict_text("\n".join(lines), "-ok" if ok else "-bad")

    def _show_verdict_text(self, text: str, cls: str) -> None:
        widget = self.query_one("#conv-verdict", Static)
        widget.update(text)
        widget.set_class(cls == "-ok", "-ok")
        widget.set_class(cls == "-bad", "-bad")

    # -- running -----------------------------------------------------------------------------
    def action_start(self) -> None:
        spec = self.spec()
        verdict = self.verdict
        if verdict is None or self._verdict_key != tuple(sorted((k, str(v)) for k, v in spec.items())):
            self.notify("wait for the pre-flight verdict (ctrl+r re-checks)", severity="warning")
            return
        if not verdict.ok(spec["force"]):
            self.notify(verdict.blocking(spec["force"])[0].text, title="refused", severity="error")
            return
        from engine.convert.preflight import absolute_paths

        spec["output"] = verdict.output
        spec = absolute_paths(spec)
        kind = f"convert.{spec['action']}"
        try:
            info = self.app.store.start(kind, spec, name=f"{spec['action']} {Path(verdict.output).name}")
        except Exception as exc:  # noqa: BLE001 - RunError, OSError: show, never crash
            self.notify(str(exc), title="could not start", severity="error")
            return
        self.current_run = info.id
        self.query_one("#conv-run", RunView).set_run(info.id)
        self.query_one("#conv-tabs", TabbedContent).active = "progress"
        self.notify(f"started {info.id}", timeout=3)

    def action_cancel_run(self) -> None:
        if not self.current_run:
            self.notify("no conversion running from this screen", severity="warning")
            return
        try:
            self.app.store.cancel(self.current_run)
            self.notify("cancel requested; the partial output is removed", timeout=3)
        except Exception as exc:  # noqa: BLE001
            self.notify(str(exc), severity="warning")

    def action_show_tab(self, tab: str) -> None:
        self.query_one("#conv-tabs", TabbedContent).active = tab

    # -- finished list -----------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="convert-finished", exit_on_error=False)
    def _list_finished(self) -> None:
        from engine.events import Failed, Finished

        store = self.app.store
        rows: list[tuple[str, ...]] = []
        active: list[str] = []
        try:
            runs = [r for r in store.list() if r.kind.startswith("convert.")]
        except OSError:
            runs = []
        for run in runs[:50]:
            if run.active:
                active.append(run.id)
            figures = ""
            output = str(run.spec.get("output", ""))
            if run.status in ("succeeded", "failed"):
                events, _ = store.read_events(run.id, max(0, _size(run.events_path) - 65536))
                for event in reversed(events):
                    if isinstance(event, Finished):
                        figures = verify_figures(event.summary.get("verify"))
                        break
                    if isinstance(event, Failed):
                        figures = event.message[:80]
                        break
            when = time.strftime("%m-%d %H:%M", time.localtime(run.created))
            rows.append((when, run.kind.removeprefix("convert."), run.status, Path(output).name, figures))
        self.post_message(FinishedListed(rows, active))

    def on_finished_listed(self, message: FinishedListed) -> None:
        table = self.query_one("#conv-finished", DataTable)
        table.clear()
        for row in message.rows:
            table.add_row(*row)
        if self.current_run is None and message.active:
            self.current_run = message.active[0]  # reattach to a conversion started earlier
            self.query_one("#conv-run", RunView).set_run(self.current_run)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
