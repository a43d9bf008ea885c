"""The form that starts a training run, checked as you type.

Every change rebuilds a `TrainSpec` and shows its problems (one line each, naming the field and
the fix: listed on top, and each under its own field, where the eye is when the form is
scrolled), the equivalent `llmdeck train ...` command, and, when the model folder is readable,
the memory estimate from `engine.estimate` (computed in a thread worker: it reads the model's
config and safetensors headers). Enter in any field, or the Start button, posts
`TrainForm.Submitted`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from engine.train.spec import ADAPTERS, METHODS, PRECISIONS, SCHEDULERS, SpecError, TrainSpec
from tui.messages import EstimateReady
from tui.widgets.model_input import ModelInput
from tui.workers import ReportsWorkerErrors

# (field, label, kind) in the order shown; kind: text | number | list (";"-separated) |
# select:<choices> | check
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("model", "model folder", "text"),
    ("dataset", "dataset file", "text"),
    ("chat_template", "chat template", "text"),
    ("method", "method", "select:method"),
    ("adapter", "adapter", "select:adapter"),
    ("name", "run name", "text"),
    ("experiment", "experiment (plots)", "text"),
    ("beta", "beta (0 = default)", "number"),
    ("sft_weight", "SFT weight (DPO)", "number"),
    ("rewards", "rewards (a; b)", "list"),
    ("reward_model", "reward model folder", "text"),
    ("num_generations", "generations per prompt", "number"),
    ("max_completion_len", "max completion tokens", "number"),
    ("temperature", "sampling temperature", "number"),
    ("max_steps", "max steps (0 = epochs)", "number"),
    ("epochs", "epochs", "number"),
    ("learning_rate", "learning rate", "number"),
    ("scheduler", "scheduler", "select:scheduler"),
    ("warmup", "warmup (ratio or steps)", "number"),
    ("batch_size", "batch size", "number"),
    ("grad_accum", "grad accumulation", "number"),
    ("max_seq_len", "max seq len", "number"),
    ("precision", "precision", "select:precision"),
    ("lora_r", "LoRA rank", "number"),
    ("lora_alpha", "LoRA alpha", "number"),
    ("lora_dropout", "LoRA dropout", "number"),
    ("lora_targets", "LoRA targets", "text"),
    ("eval_split", "eval split", "number"),
    ("eval_steps", "eval every (steps)", "number"),
    ("save_steps", "save every (steps)", "number"),
    ("seed", "seed", "number"),
    ("devices", "devices (0,1 / cpu:2)", "text"),
    ("packing", "packing", "check"),
    ("gradient_checkpointing", "gradient checkpointing", "check"),
)
CHOICES: dict[str, tuple[str, ...]] = {"method": METHODS, "adapter": ADAPTERS, "scheduler": SCHEDULERS,
                                       "precision": PRECISIONS}
# Fields only some methods use: shown when the method is one of these.
ONLY_FOR: dict[str, tuple[str, ...]] = {
    "beta": ("dpo", "orpo", "kto", "grpo"),
    "sft_weight": ("dpo",),
    "rewards": ("grpo",),
    "reward_model": ("grpo",),
    "num_generations": ("grpo",),
    "max_completion_len": ("grpo",),
    "temperature": ("grpo",),
}
PLACEHOLDERS: dict[str, str] = {
    "chat_template": "auto (model's own, else by architecture) | gemma | chatml | llama-3 | ... | file.jinja",
}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


class TrainForm(ReportsWorkerErrors, VerticalScroll):
    @dataclass
    class Submitted(Message):
        """Enter or the Start button, with a spec that passed every check."""

        spec: TrainSpec

    DEFAULT_CSS = """
    TrainForm { height: 1fr; padding: 0 1; }
    TrainForm .form-row { height: 1; }
    TrainForm .form-row Label { width: 24; padding: 0 1 0 0; color: $text-muted; }
    TrainForm .form-row Input, TrainForm .form-row Select { width: 1fr; }
    TrainForm #form-problems { color: $error; height: auto; padding: 0 0 1 0; }
    TrainForm #form-problems.ok { color: $success; }
    TrainForm #form-estimate { color: $text-muted; height: auto; }
    TrainForm #form-cli { color: $text-muted; height: auto; padding: 0 0 1 0; }
    TrainForm Checkbox { width: auto; }
    TrainForm .field-error { color: $error; height: auto; padding: 0 0 0 24; display: none; }
    """

    def __init__(self, spec: TrainSpec | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.initial = spec or TrainSpec()
        self.spec: TrainSpec | None = None
        self.problems: list[str] = []
        self._estimate_key = ""

    def compose(self) -> ComposeResult:
        yield Static("", id="form-problems")
        yield Static("", id="form-cli")
        yield Static("", id="form-estimate")
        yield Button("Start run", id="form-start", variant="primary", compact=True)
        for name, label, kind in FIELDS:
            value = getattr(self.initial, name)
            if kind == "check":
                yield Checkbox(label, value=bool(value), id=f"f-{name}", compact=True)
                yield Static("", id=f"e-{name}", classes="field-error")
                continue
            with Horizontal(classes="form-row", id=f"row-{name}"):
                yield Label(label)
                if kind.startswith("select:"):
                    options = [(c, c) for c in CHOICES[kind.split(":", 1)[1]]]
                    yield Select(options, value=value, allow_blank=False, id=f"f-{name}", compact=True)
                elif name == "model":
                    yield ModelInput(_fmt(value), id=f"f-{name}", placeholder="HF model folder; ctrl+o picks one",
                                     kinds=("hf", "adapter"), compact=True)
                else:
                    placeholder = PLACEHOLDERS.get(name, label)
                    yield Input(_fmt(value), id=f"f-{name}", placeholder=placeholder, type="text", compact=True)
            yield Static("", id=f"e-{name}", classes="field-error")

    def on_mount(self) -> None:
        self.validate_now()

    # -- values --------------------------------------------------------------------------------
    def load(self, spec: TrainSpec) -> None:
        """Fill the form from a spec (edit and re-run a previous run)."""
        for name, _label, kind in FIELDS:
            widget = self.query_one(f"#f-{name}")
            value = getattr(spec, name)
            if isinstance(widget, Checkbox):
                widget.value = bool(value)
            elif isinstance(widget, Select):
                widget.value = value
            elif isinstance(widget, Input):
                widget.value = _fmt(value)
        self.initial = spec
        self.validate_now()

    def values(self) -> dict[str, Any]:
        data = {k: v for k, v in self.initial.to_dict().items() if k not in ("resume_from",)}
        for name, _label, _kind in FIELDS:
            widget = self.query_one(f"#f-{name}")
            if isinstance(widget, (Checkbox, Select)):
                data[name] = widget.value
            elif _kind == "list":
                data[name] = [part.strip() for part in widget.value.split(";") if part.strip()]
            elif isinstance(widget, Input):
                data[name] = widget.value.strip()
        return data

    def _show_method_fields(self, method: str) -> None:
        for name, methods in ONLY_FOR.items():
            self.query_one(f"#row-{name}").display = method in methods

    def validate_now(self) -> list[str]:
        try:
            spec = TrainSpec.from_dict(self.values())
            problems = spec.problems()
        except SpecError as exc:
            spec, problems = None, [str(exc)]
        self._show_method_fields(spec.method if spec is not None else str(self.query_one("#f-method", Select).value))
        self.spec = spec if not problems else None
        self.problems = problems
        self._show_field_errors(problems)
        box = self.query_one("#form-problems", Static)
        box.set_class(not problems, "ok")
        box.update("\n".join(f"• {p}" for p in problems) if problems else "✓ ready to start (Enter or the button)")
        self.query_one("#form-cli", Static).update(spec.to_cli() if spec is not None else "")
        self.query_one("#form-start", Button).disabled = bool(problems)
        if spec is not None and not problems:
            key = spec.to_json()
            if key != self._estimate_key:
                self._estimate_key = key
                self._estimate(spec, key)
        else:
            self.query_one("#form-estimate", Static).update("")
        return problems

    def _show_field_errors(self, problems: list[str]) -> None:
        """Each "field: reason" problem under its field (the others stay in the list on top)."""
        by_field: dict[str, list[str]] = {}
        for problem in problems:
            name, _, reason = problem.partition(": ")
            by_field.setdefault(name, []).append(reason)
        for name, _label, _kind in FIELDS:
            error = self.query_one(f"#e-{name}", Static)
            text = "; ".join(by_field.get(name, ()))
            error.update(f"↑ {text}" if text else "")
            error.display = bool(text)

    @work(thread=True, exclusive=True, group="estimates", exit_on_error=False, description="memory estimate")
    def _estimate(self, spec: TrainSpec, key: str) -> None:
        self.post_message(EstimateReady(key, estimate_text(spec)))

    def on_estimate_ready(self, message: EstimateReady) -> None:
        message.stop()
        if message.key == self._estimate_key:
            self.query_one("#form-estimate", Static).update(message.result)

    # -- events --------------------------------------------------------------------------------
    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.validate_now()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.validate_now()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self.validate_now()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "form-start":
            self.submit()

    def submit(self) -> None:
        if self.validate_now() or self.spec is None:
            self.app.notify("fix the form first: " + "; ".join(self.problems[:2]), severity="warning")
            return
        self.post_message(self.Submitted(self.spec))


def estimate_text(spec: TrainSpec) -> str:
    """One line: the estimator's memory figure for this run, or why there is none."""
    try:
        from engine.estimate.methods import estimate_method, options_for_spec
        from engine.estimate.sources import spec_from_hf_dir
    except ImportError:
        return ""
    try:
        model = spec_from_hf_dir(Path(spec.model).expanduser())
        estimate = estimate_method(model, options_for_spec(spec))
    except (ValueError, OSError) as exc:  # EstimateError (a ValueError): not a model folder we can read
        return f"memory estimate unavailable: {str(exc)[:80]}"
    trainable = f", {estimate.trainable_params:,} trainable params" if estimate.trainable_params else ""
    phase = estimate.peak_phase or spec.method
    return f"estimated peak memory per GPU: {estimate.total_gib:.1f} GiB ({phase}{trainable})"
