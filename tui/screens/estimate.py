"""Estimate mode: a form whose memory breakdown and fit verdicts update as you type.

The arithmetic is engine.estimate's (the same as `llmdeck estimate`); reading an HF folder's
headers or a GGUF's tensor table and the NVML query run in thread workers, so typing never
waits. The equivalent CLI command is shown under the verdicts, to script the same check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Checkbox, DataTable, Input, Label, Select, Static

from tui.messages import EstimateReady
from tui.screens.base import ModeScreen

MODES = (("inference", "infer"), ("full fine-tune", "full"), ("LoRA", "lora"), ("QLoRA", "qlora"))
PRECISIONS = (("bf16 (pure)", "bf16"), ("mixed fp32+bf16", "mixed"), ("fp32", "fp32"))
OPTIMIZERS = (("AdamW", "adamw"), ("AdamW 8-bit", "adamw_8bit"), ("paged AdamW", "paged_adamw"),
              ("paged AdamW 8-bit", "paged_adamw_8bit"), ("SGD", "sgd"))
BACKENDS = (("transformers", "transformers"), ("llama.cpp", "llama.cpp"))
KV_DTYPES = (("fp16", "fp16"), ("bf16", "bf16"), ("fp8", "fp8"), ("q8_0", "q8_0"), ("q4_0", "q4_0"), ("fp32", "fp32"))
SHARDS = (("none", "none"), ("DDP", "ddp"), ("ZeRO-1", "zero1"), ("ZeRO-2", "zero2"), ("ZeRO-3", "zero3"),
          ("FSDP", "fsdp"))
INFER_ONLY = {"context", "backend", "weights", "kv_dtype"}
TRAIN_ONLY = {"seq_len", "precision", "optimizer", "grad_ckpt", "shard"}
LORA_ONLY = {"rank"}
INT_FIELDS = ("context", "batch", "seq_len", "rank", "gpus")
DEFAULTS: dict[str, Any] = {"model": "llama-3-8b", "mode": "infer", "context": "4096", "batch": "1",
                            "seq_len": "2048", "rank": "16", "gpus": "1", "weights": "", "cards": "24,40,48,80,141",
                            "precision": "bf16", "optimizer": "adamw", "backend": "transformers",
                            "kv_dtype": "fp16", "shard": "none", "grad_ckpt": False}


def _gib(b: float) -> str:
    return f"{b / 1024**3:.2f}"


class EstimateScreen(ModeScreen):
    CSS_PATH = "estimate.tcss"
    MODE_KEY = "estimate"

    @dataclass
    class GpusFound(Message):
        """This machine's GPUs (NVML), for the local fit verdicts."""

        found: tuple
    BINDINGS = [
        Binding("ctrl+t", "cycle_mode", "mode"),
        Binding("ctrl+g", "toggle_checkpointing", "grad ckpt"),
        Binding("ctrl+r", "reset", "reset form"),
        Binding("ctrl+o", "show_command", "CLI command"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._seq = 0
        self._local: tuple | None = None
        self._spec_cache: dict[str, Any] = {}
        self._last_command = ""
        self.report = None  # last engine.estimate.report.Report shown

    # -- layout ------------------------------------------------------------------------------
    def _row(self, label: str, widget) -> Horizontal:
        row = Horizontal(Label(label), widget, classes="est-row", id=f"row-{widget.id.removeprefix('est-')}")
        return row

    def compose_body(self) -> ComposeResult:
        d = DEFAULTS | self._initial()
        with Horizontal(id="est-body"):
            with VerticalScroll(id="est-form", classes="panel") as form:
                form.border_title = "estimate"
                yield self._row("model", Input(d["model"], id="est-model", compact=True,
                                               placeholder="preset, HF folder, .gguf, dims:..."))
                yield self._row("mode", Select(MODES, value=d["mode"], allow_blank=False, id="est-mode", compact=True))
                yield self._row("context", Input(str(d["context"]), id="est-context", compact=True, type="integer"))
                yield self._row("backend", Select(BACKENDS, value=d["backend"], allow_blank=False, id="est-backend",
                                                  compact=True))
                yield self._row("weights", Input(str(d["weights"] or ""), id="est-weights", compact=True,
                                                 placeholder="as stored / bf16, nf4, Q4_K_M"))
                yield self._row("KV cache", Select(KV_DTYPES, value=d["kv_dtype"], allow_blank=False, id="est-kv_dtype",
                                                   compact=True))
                yield self._row("batch", Input(str(d["batch"]), id="est-batch", compact=True, type="integer"))
                yield self._row("seq len", Input(str(d["seq_len"]), id="est-seq_len", compact=True, type="integer"))
                yield self._row("LoRA rank", Input(str(d["rank"]), id="est-rank", compact=True, type="integer"))
                yield self._row("precision", Select(PRECISIONS, value=d["precision"], allow_blank=False,
                                                    id="est-precision", compact=True))
                yield self._row("optimizer", Select(OPTIMIZERS, value=d["optimizer"], allow_blank=False,
                                                    id="est-optimizer", compact=True))
                yield self._row("grad ckpt", Checkbox("on", bool(d["grad_ckpt"]), id="est-grad_ckpt",
                                                       compact=True))
                yield self._row("GPUs", Input(str(d["gpus"]), id="est-gpus", compact=True, type="integer"))
                yield self._row("sharding", Select(SHARDS, value=d["shard"], allow_blank=False, id="est-shard",
                                                   compact=True))
                yield self._row("cards GB", Input(str(d["cards"]), id="est-cards", compact=True))
            with Vertical(id="est-out"):
                yield Static("", id="est-summary")
                table: DataTable[str] = DataTable(id="est-table", cursor_type="row", zebra_stripes=True)
                table.add_column("component", key="component")
                table.add_column("GiB", key="gib")
                table.add_column("pk", key="peak")
                yield table
                yield Static("", id="est-error")
                with VerticalScroll(id="est-verdicts"):
                    yield Static("", id="est-verdict-text")

    def _initial(self) -> dict[str, Any]:
        """Form values from `llmdeck estimate --mode lora --batch 2` (no model): app.options['estimate']."""
        opts = dict(self.app.options.get("estimate") or {})
        out: dict[str, Any] = {}
        mapping = {"mode": "mode", "context": "context", "batch": "batch", "seq_len": "seq_len", "lora_rank": "rank",
                   "gpus": "gpus", "weight_dtype": "weights", "kv_dtype": "kv_dtype", "backend": "backend",
                   "precision": "precision", "optimizer": "optimizer", "grad_checkpointing": "grad_ckpt",
                   "shard": "shard", "model": "model"}
        for src, dst in mapping.items():
            if opts.get(src) is not None:
                out[dst] = opts[src]
        return out

    def on_mount(self) -> None:
        self._apply_visibility()
        self._query_gpus()
        self.recompute()

    # -- form -> estimate ----------------------------------------------------------------------
    def _value(self, key: str) -> Any:
        widget = self.query_one(f"#est-{key}")
        return widget.value

    def _form(self) -> tuple[str, str, dict[str, Any], list[float] | None, str | None]:
        mode = self._value("mode")
        knobs: dict[str, Any] = {}
        problem = None
        for key in INT_FIELDS:
            text = str(self._value(key)).strip()
            if not text:
                continue
            try:
                value = int(text)
            except ValueError:
                problem = f"{key.replace('_', ' ')} must be a whole number"
                continue
            if value <= 0:
                problem = f"{key.replace('_', ' ')} must be positive"
                continue
            knobs[{"rank": "lora_rank"}.get(key, key)] = value
        if mode == "infer":
            knobs["backend"] = self._value("backend")
            knobs["kv_dtype"] = self._value("kv_dtype")
            weights = str(self._value("weights")).strip()
            if weights:
                knobs["weight_dtype"] = weights
            for k in ("seq_len", "lora_rank"):
                knobs.pop(k, None)
        else:
            knobs["precision"] = self._value("precision")
            knobs["optimizer"] = self._value("optimizer")
            knobs["grad_checkpointing"] = bool(self._value("grad_ckpt"))
            shard = self._value("shard")
            if shard != "none":
                knobs["shard"] = shard
            knobs.pop("context", None)
        cards: list[float] | None = []
        for part in str(self._value("cards")).split(","):
            part = part.strip().lower().removesuffix("gb").strip()
            if not part:
                continue
            try:
                cards.append(float(part))
            except ValueError:
                problem = f"card size {part!r} is not a number"
        return str(self._value("model")).strip(), mode, knobs, cards or None, problem

    def recompute(self) -> None:
        model, mode, knobs, cards, problem = self._form()
        self._seq += 1
        if problem:
            self.query_one("#est-error", Static).update(problem)
            return
        if not model:
            self.query_one("#est-error", Static).update("type a model: a preset (llama-3-8b), a folder or a .gguf")
            return
        self._estimate(self._seq, model, mode, knobs, cards)

    @work(thread=True, exclusive=True, group="estimates", exit_on_error=False, description="memory estimate")
    def _estimate(self, seq: int, model: str, mode: str, knobs: dict[str, Any], cards: list[float] | None) -> None:
        from engine.estimate import EstimateError, resolve_model
        from engine.estimate.report import cli_command, estimate

        command = cli_command(model, mode, knobs, cards)
        try:
            spec = self._spec_cache.get(model)
            if spec is None:
                spec = resolve_model(model)
                self._spec_cache[model] = spec
            report = estimate(spec, mode, cards=cards, local=self._local is not None,
                              local_gpus_found=self._local, **knobs)
        except (EstimateError, ValueError, OSError) as exc:
            self.post_message(EstimateReady(seq, error=str(exc), command=command))
            return
        self.post_message(EstimateReady(seq, result=report, command=command))

    @work(thread=True, exclusive=True, group="gpu-queries", exit_on_error=False, description="querying the GPUs")
    def _query_gpus(self) -> None:
        from engine.estimate import local_gpus

        self.post_message(self.GpusFound(local_gpus()))

    def on_estimate_screen_gpus_found(self, message: GpusFound) -> None:
        self._local = message.found
        self.recompute()

    def on_estimate_ready(self, message: EstimateReady) -> None:
        if message.key != self._seq:
            return  # a newer edit is on its way
        self._last_command = message.command
        error = self.query_one("#est-error", Static)
        if message.error:
            error.update(message.error)
            return
        error.update("")
        self.report = report = message.result
        est, spec = report.estimate, report.spec
        self.query_one("#est-summary", Static).update(
            f"[b]{spec.name}[/b] {spec.params / 1e9:.2f}B L{spec.n_layers} h{spec.hidden} "
            f"{spec.n_heads}/{spec.n_kv_heads}h V{spec.vocab:,}\n"
            f"[b]total {est.total_gib:.2f} GiB[/b] per GPU (torch {est.allocated_bytes / 1024**3:.2f})\n"
            f"[dim]peak: {est.peak_phase}[/dim]"
        )
        table = self.query_one("#est-table", DataTable)
        table.clear()
        for c in est.components:
            table.add_row(c.label, _gib(c.bytes), "✓" if c.at_peak else "-", key=c.key)
        lines = []
        if report.gpu_note and report.gpu_note not in ("not queried",):
            lines.append(f"[dim]{report.gpu_note}[/dim]")
        previous_fix = None
        for v in report.verdicts:
            style = {"fits": "$success", "tight": "$warning", "does not fit": "$error"}[v.status]
            mark = {"fits": "fits", "tight": "TIGHT", "does not fit": "NO FIT"}[v.status]
            lines.append(f"[{style}]{mark:6}[/] {v.target.removesuffix(' card')}: "
                         f"{v.need_gib:.1f}/{v.capacity_gib:.1f} GiB")
            if v.change and v.change != previous_fix:
                tail = f" -> {v.change_need_gib:.1f} GiB" if v.change_need_gib is not None else ""
                lines.append(f"  fix: {v.change}{tail}")
            previous_fix = v.change or previous_fix
        t = report.timing
        if "decode_tokens_per_s" in t:
            lines.append(f"decode ~{t['decode_tokens_per_s']:,.0f} tok/s ({t['basis']})")
        elif "tokens_per_s" in t:
            lines.append(f"~{t['tokens_per_s']:,.0f} tok/s ({t.get('basis', '')})")
        for note in est.notes:
            lines.append(f"[dim]{note}[/dim]")
        self.query_one("#est-verdict-text", Static).update("\n".join(lines))

    # -- events -----------------------------------------------------------------------------
    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _changed(self, event) -> None:
        if getattr(event, "control", None) is not None and getattr(event.control, "id", "") == "est-mode":
            self._apply_visibility()
        self.recompute()

    def _apply_visibility(self) -> None:
        mode = self._value("mode")
        for row in self.query(".est-row"):
            key = (row.id or "").removeprefix("row-")
            visible = True
            if key in INFER_ONLY:
                visible = mode == "infer"
            elif key in TRAIN_ONLY:
                visible = mode != "infer"
            elif key in LORA_ONLY:
                visible = mode in ("lora", "qlora")
            row.display = visible

    # -- actions ----------------------------------------------------------------------------
    def action_cycle_mode(self) -> None:
        select = self.query_one("#est-mode", Select)
        keys = [v for _, v in MODES]
        select.value = keys[(keys.index(select.value) + 1) % len(keys)]

    def action_toggle_checkpointing(self) -> None:
        box = self.query_one("#est-grad_ckpt", Checkbox)
        box.value = not box.value

    def action_reset(self) -> None:
        for key, value in DEFAULTS.items():
            widget = self.query_one(f"#est-{key}")
            widget.value = value if not isinstance(widget, Input) else str(value)

    def action_show_command(self) -> None:
        if self._last_command:
            self.notify(self._last_command, title="same check from the shell", timeout=10)
