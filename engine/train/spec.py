"""What a training run is: every option a practitioner expects, validated, JSON-able.

A `TrainSpec` is saved in the run's `run.json` (as the run spec), so a run can be loaded,
edited and started again, and `to_cli()` prints the `llmdeck train ...` command that starts
the same run from a shell. Validation happens here, before a worker is spawned, and each
problem is one sentence naming the field and what to change (the TUI form shows them as you
type). Device-dependent choices (precision "auto") are resolved at run time by
`resolve_precision`, because the run may start on another machine than the one that wrote it.
"""

from __future__ import annotations

import json
import random
import shlex
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.cluster.spec import ClusterSpec

# The training objective (what the loss rewards) and the adapter (which weights train) are chosen
# apart: `method` is sft | dpo | orpo | kto | grpo, `adapter` is lora | qlora | full. The old
# `method` values lora | qlora | full still work and mean sft with that adapter.
METHODS: tuple[str, ...] = ("sft", "dpo", "orpo", "kto", "grpo")
ADAPTERS: tuple[str, ...] = ("lora", "qlora", "full")
LEGACY_METHODS: tuple[str, ...] = ADAPTERS  # --method lora == --method sft --adapter lora
SCHEDULERS: tuple[str, ...] = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts",
                               "polynomial")
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp16", "fp32")
LOSS_ON: tuple[str, ...] = ("assistant", "all")
# How several processes share the work: DDP replicates the model; FSDP (version 2) and DeepSpeed
# ZeRO-3 shard parameters, gradients and optimizer state; ZeRO-2 shards gradients and optimizer
# state. "deepspeed" is ZeRO-2 (the name older specs used).
DISTRIBUTED: tuple[str, ...] = ("ddp", "fsdp", "zero2", "zero3", "deepspeed")


class SpecError(ValueError):
    """The spec cannot run; the text lists every problem found, one per line."""


@dataclass
class TrainSpec:
    """One fine-tuning run. Defaults are sensible for a LoRA run on one GPU."""

    model: str = ""  # local HF model folder
    dataset: str = ""  # local dataset file (any format engine.data reads)
    method: str = "sft"  # the objective: sft, dpo, orpo, kto, grpo (lora/qlora/full: sft + that adapter)
    adapter: str = "lora"  # which weights train: lora, qlora (4-bit base, CUDA), full
    name: str = ""
    experiment: str = ""  # runs with one experiment name share a colour and average over seeds ("" = name minus -sN)
    # schedule
    epochs: float = 1.0
    max_steps: int = 0  # > 0 overrides epochs
    learning_rate: float = 2e-4
    scheduler: str = "cosine"
    warmup: float = 0.03  # ratio of total steps when < 1, else a step count
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    # batches
    batch_size: int = 4
    grad_accum: int = 1
    max_seq_len: int = 1024
    packing: bool = False
    gradient_checkpointing: bool = False
    precision: str = "auto"
    # data
    data_format: str = ""  # "" = detect
    loss_on: str = "assistant"
    # "" = auto (the model's own, else the built-in for its architecture), a built-in name or a Jinja file
    chat_template: str = ""
    # LoRA / QLoRA
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: str = "all-linear"  # or comma-separated module names: q_proj,v_proj
    # preference and RL methods (engine/train/methods.py)
    beta: float = 0.0  # 0 = the method's default: DPO/KTO 0.1, ORPO 0.1 (lambda), GRPO 0.0 (no KL, no reference)
    sft_weight: float = 0.0  # DPO: weight of an added SFT loss on the chosen answers (RPO), keeps a base model fluent
    # GRPO rewards, summed: exact:COLUMN, firstline:COLUMN, regex:PATTERN, length:MIN:MAX, boxed, FILE.py:FUNC
    # (engine/train/rewards.py)
    rewards: list[str] = field(default_factory=list)
    reward_model: str = ""  # GRPO: a local sequence-classification model folder that scores completions
    num_generations: int = 4  # GRPO: completions sampled per prompt (the group its advantages compare)
    max_completion_len: int = 128  # GRPO: new tokens per sampled completion
    temperature: float = 1.0  # GRPO: sampling temperature
    # evaluation and checkpoints
    eval_split: float = 0.0  # fraction of the examples held out (0 = none)
    eval_steps: int = 0  # 0 = at the end of each epoch when eval_split > 0
    save_steps: int = 0  # 0 = only at the end (and on stop)
    save_total_limit: int = 3
    logging_steps: int = 1
    seed: int = 42
    devices: str = ""  # "" = all visible / CPU; "0,1" = those CUDA devices (data parallel when > 1)
    distributed: str = "ddp"  # one of DISTRIBUTED (only with more than one process)
    cpu: bool = False  # force CPU even where CUDA exists
    output: str = ""  # where the final adapter/model goes ("" = the run's out/ folder)
    resume_from: str = ""  # a checkpoint folder (set by `llmdeck train resume`)
    debug: dict[str, Any] = field(default_factory=dict)  # tests: work_dir, and the faults of engine.train.faults
    cluster: dict[str, Any] = field(default_factory=dict)  # several machines: engine.cluster.spec.ClusterSpec

    def __post_init__(self) -> None:
        if self.method in LEGACY_METHODS:  # the old spelling: --method lora == sft with a LoRA adapter
            self.method, self.adapter = "sft", self.method

    # -- conversions ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSpec:
        """From a run spec; unknown keys are refused (a typo must not silently do nothing)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise SpecError(f"unknown training option(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            values[key] = _coerce(known[key].type, key, value)
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"the spec is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise SpecError("the spec must be a JSON object")
        return cls.from_dict(data)

    def to_cli(self) -> str:
        """The `llmdeck train ...` command that starts this run (non-default options only)."""
        default = TrainSpec()
        parts = ["llmdeck", "train"]
        for f in fields(self):
            if f.name in ("debug", "resume_from", "cluster"):
                continue
            value = getattr(self, f.name)
            if value == getattr(default, f.name) and f.name not in ("model", "dataset"):
                continue
            flag = CLI_FLAGS.get(f.name, "--" + f.name.replace("_", "-"))
            if isinstance(value, bool):
                parts.append(flag if value else "--no-" + flag[2:])
            elif isinstance(value, list):
                for item in value:
                    parts += [flag, _fmt(item)]
            else:
                parts += [flag, _fmt(value)]
        parts += self.cluster_spec().to_cli()
        return " ".join(shlex.quote(p) for p in parts)

    # -- checks ----------------------------------------------------------------------------------
    def problems(self, *, check_paths: bool = True) -> list[str]:
        """Every problem, one actionable sentence each (empty: the spec can run)."""
        out: list[str] = []
        if not self.model:
            out.append("model: give the folder of a local HF model (config.json + weights)")
        elif check_paths:
            p = Path(self.model).expanduser()
            if not p.exists():
                out.append(f"model: {p} does not exist")
            elif p.is_file():
                out.append(f"model: {p.name} is a file; give the model folder (a .gguf must be converted to HF first: "
                           "`llmdeck convert gguf-to-hf`)")
            elif not (p / "config.json").exists():
                out.append(f"model: {p} has no config.json; it is not an HF model folder")
            else:
                from engine.model_files import ModelFileError, check_model_files

                try:
                    check_model_files(p)  # a truncated shard is named now, not by a SafetensorError later
                except ModelFileError as exc:
                    out.append(f"model: {exc}")
        if not self.dataset:
            out.append("dataset: give a local dataset file (jsonl, json, csv, parquet, txt)")
        elif check_paths and not Path(self.dataset).expanduser().is_file():
            out.append(f"dataset: {Path(self.dataset).expanduser()} is not a file")
        template = self.chat_template.strip()
        if template == "none" and self.method == "sft":  # engine.chat.templates.NO_TEMPLATE
            out.append("chat_template: none (prompts as written) is for dpo/orpo/kto/grpo; SFT renders chat data "
                       "through a template (leave it empty for the model's own)")
        if template and check_paths and not is_template_name(template) and not Path(template).expanduser().is_file():
            from engine.chat.templates import BUILTIN_TEMPLATES

            out.append(
                f"chat_template: {template!r} is neither a built-in template ({', '.join(BUILTIN_TEMPLATES)}) "
                "nor a Jinja file; leave it empty for the model's own (else the one for its architecture)"
            )
        if self.method not in METHODS:
            out.append(f"method: {self.method!r} is not one of {', '.join(METHODS + LEGACY_METHODS)}")
        if self.adapter not in ADAPTERS:
            out.append(f"adapter: {self.adapter!r} is not one of {', '.join(ADAPTERS)}")
        if self.scheduler not in SCHEDULERS:
            out.append(f"scheduler: {self.scheduler!r} is not one of {', '.join(SCHEDULERS)}")
        if self.precision not in PRECISIONS:
            out.append(f"precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.loss_on not in LOSS_ON:
            out.append(f"loss_on: {self.loss_on!r} is not one of {', '.join(LOSS_ON)}")
        if self.max_steps < 0:
            out.append("max_steps: must be 0 (use epochs) or more")
        if self.max_steps == 0 and not self.epochs > 0:
            out.append("epochs: must be more than 0 when max_steps is 0")
        if not 0 < self.learning_rate < 1:
            out.append(f"learning_rate: {self.learning_rate:g} is out of range; typical: 2e-4 for LoRA, 1e-5 for full")
        if self.warmup < 0:
            out.append("warmup: must be a ratio in [0, 1) or a number of steps")
        for name in ("batch_size", "grad_accum", "logging_steps", "lora_r", "lora_alpha"):
            if getattr(self, name) < 1:
                out.append(f"{name}: must be at least 1")
        if self.max_seq_len < 8:
            out.append("max_seq_len: must be at least 8 tokens")
        if not 0 <= self.lora_dropout < 1:
            out.append("lora_dropout: must be in [0, 1)")
        if not 0 <= self.eval_split < 0.9:
            out.append("eval_split: must be a fraction in [0, 0.9), for example 0.05")
        for name in ("eval_steps", "save_steps", "save_total_limit"):
            if getattr(self, name) < 0:
                out.append(f"{name}: must be 0 or more")
        if self.eval_steps and not self.eval_split:
            out.append("eval_steps: set eval_split (for example 0.05) so there is something to evaluate on")
        if self.distributed not in DISTRIBUTED:
            out.append(f"distributed: {self.distributed!r} is not one of {', '.join(DISTRIBUTED)}")
        elif self.distributed not in ("ddp", "fsdp") and self.on_cpu():
            # accelerate 1.15 enables DeepSpeed only for processes that are not CPU (AcceleratorState:
            # `ACCELERATE_USE_DEEPSPEED ... and not cpu`): on CPU the run would silently be DDP.
            out.append(f"distributed: {self.distributed} (DeepSpeed ZeRO) needs GPUs (accelerate does not run "
                       "DeepSpeed on CPU processes); use --distributed ddp or fsdp on CPU")
        try:
            cluster = self.cluster_spec()
        except (TypeError, ValueError) as exc:
            out.append(f"cluster: {exc}")
        else:
            out += cluster.problems()
        if self.devices:
            try:
                self.device_list()
            except ValueError:
                out.append(f"devices: {self.devices!r} is not a comma-separated list of GPU numbers like 0,1")
        if self.adapter == "qlora" and self.cpu:
            out.append("adapter: QLoRA needs a CUDA GPU (bitsandbytes 4-bit); use lora on CPU")
        if self.adapter != "full" and not self.lora_targets.strip():
            out.append("lora_targets: give all-linear or module names such as q_proj,v_proj")
        if self.method in METHODS and self.method != "sft":
            from engine.train.methods import method_problems

            out += method_problems(self, check_paths=check_paths)
        return out

    def split_for_eval(self, rows: list[Any]) -> tuple[list[Any], list[Any]]:
        """(train, eval): `eval_split` of the rows (at least one when asked for and there are two),
        drawn with the run's seed so a resumed run holds out the same ones; both keep file order.
        Raises JobError (the run's one-line failure) when nothing is left to train on."""
        from engine.jobs import JobError

        order = list(range(len(rows)))
        n_eval = int(round(len(rows) * self.eval_split)) if self.eval_split else 0
        if self.eval_split and n_eval == 0 and len(rows) > 1:
            n_eval = 1
        if n_eval:
            random.Random(self.seed).shuffle(order)
        train = [rows[i] for i in sorted(order[n_eval:])]
        if not train:
            raise JobError("dataset: nothing is left to train on after the eval split; lower eval_split")
        return train, [rows[i] for i in sorted(order[:n_eval])]

    def validate(self, *, check_paths: bool = True) -> TrainSpec:
        problems = self.problems(check_paths=check_paths)
        if problems:
            raise SpecError("; ".join(problems))
        return self

    def device_list(self) -> list[int]:
        """The CUDA devices chosen ("0,1"); empty for all visible / CPU / "cpu:N"."""
        text = self.devices.replace(" ", "")
        if not text or text.startswith("cpu"):
            if text.startswith("cpu") and text not in ("cpu",) and not text[4:].isdecimal():
                raise ValueError(text)
            return []
        return [int(x) for x in text.split(",") if x != ""]

    def processes(self) -> int:
        """Training processes: one per selected GPU, or N for "cpu:N" (gloo data parallel,
        the CPU path that proves multi-process training works without GPUs)."""
        text = self.devices.replace(" ", "")
        if text.startswith("cpu:"):
            return max(1, int(text[4:]))
        return max(1, len(self.device_list()))

    def on_cpu(self) -> bool:
        """CPU processes by request (--cpu, --devices cpu or cpu:N)."""
        return self.cpu or self.devices.replace(" ", "").startswith("cpu")

    def cluster_spec(self) -> ClusterSpec:
        """The multi-node part of the run (empty: this machine only)."""
        return ClusterSpec.from_dict(self.cluster)

    def quantized_device_map(self) -> dict[str, int]:
        """`device_map` for loading this run's QLoRA model in this process: this rank's GPU
        (engine/train/devices.py says why a fixed GPU 0 is wrong in a multi-GPU run)."""
        from engine.train.devices import quantized_device_map

        return quantized_device_map()

    def target_modules(self) -> str | list[str]:
        text = self.lora_targets.strip()
        if text.replace("_", "-").lower() in ("all-linear", "all linear", "all"):
            return "all-linear"
        return [t.strip() for t in text.split(",") if t.strip()]

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        model = Path(self.model).name or "model"
        return f"{model}-{self.adapter}" if self.method == "sft" else f"{model}-{self.method}-{self.adapter}"

    @property
    def experiment_name(self) -> str:
        """The experiment this run belongs to: `experiment`, else its name without a seed suffix."""
        from engine.train.experiments import experiment_of

        return self.experiment or experiment_of(self.label)


def is_template_name(choice: str) -> bool:
    """A chat_template value that names a template (or none), as opposed to a Jinja file path."""
    from engine.chat.templates import BUILTIN_TEMPLATES, NO_TEMPLATE

    return choice in BUILTIN_TEMPLATES or choice in ("auto", "model", NO_TEMPLATE)


CLI_FLAGS: dict[str, str] = {
    "dataset": "--data",
    "learning_rate": "--lr",
    "grad_accum": "--grad-accum",
    "lora_targets": "--lora-targets",
    "rewards": "--reward",
}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _coerce(kind: Any, key: str, value: Any) -> Any:
    kind = str(kind)
    try:
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "str":
            return "" if value is None else str(value)
        if kind == "list[str]":
            if value is None:
                return []
            if isinstance(value, str):
                return [value] if value else []
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ValueError(value)
            return list(value)
    except (TypeError, ValueError):
        raise SpecError(f"{key}: {value!r} is not a valid {kind}") from None
    return value


def resolve_precision(requested: str, *, cuda: bool, bf16_supported: bool) -> str:
    """The precision actually used: 'auto' picks bf16 on GPUs that have it, fp16 on older
    GPUs, fp32 on CPU; an explicit choice the device cannot do is refused with the fix."""
    if requested == "auto":
        if not cuda:
            return "fp32"
        return "bf16" if bf16_supported else "fp16"
    if requested == "fp16" and not cuda:
        raise SpecError("precision: fp16 mixed precision needs a CUDA GPU; use fp32 (or auto) on CPU")
    if requested == "bf16" and cuda and not bf16_supported:
        raise SpecError("precision: this GPU has no bf16 support (needs compute capability 8.0+); use fp16 or auto")
    return requested
