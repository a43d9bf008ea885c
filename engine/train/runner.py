"""Training in this process: `train(spec, work_dir, ctx)` fine-tunes a local HF model with the
Trainer + peft (the whole run on one device, or one rank of a multi-process launch; the job that
chooses between them is `engine.train.job`).

Why the plain transformers `Trainer` and not a loop of our own: optimizer, schedulers, mixed
precision, gradient accumulation and checkpointing, exact resume (optimizer, scheduler, RNG and
data position) and DDP/FSDP through accelerate are the library's, tested by thousands of users.
What llmdeck adds sits around it: data from `engine.data` (chat template, assistant-only loss
masks, packing with restarting positions), a callback that streams metrics into the run's
events and reacts to stop/NaN, sealed checkpoints, a final output written atomically, and
failures (CUDA out of memory, QLoRA without CUDA) turned into one actionable message.

The library's own printing is removed (`PrinterCallback`, tqdm): the run's stdout is its log.

`train` reads as the steps of a run, each a function of its own: `placement` (device, precision,
rank) -> `build_tokenizer` -> `build_data` -> `build_model` -> `choose_resume` ->
`training_arguments` -> the Trainer from `trainer_factory(spec.method)` -> `fit` -> `summarize`
-> `save_final`. The preference and RL methods (DPO, ORPO, KTO, GRPO through TRL,
engine/train/methods.py) register their factory in TRAINER_FACTORIES and replace the steps they
need -- their data and their arguments -- not the loop; the adapter (LoRA, QLoRA, full) is
chosen apart from the method.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.convert.tokenizer_files import copy_tokenizer_files
from engine.jobs import JobError
from engine.train import cpu_fsdp
from engine.train.checkpoints import first_loss
from engine.train.spec import SpecError, TrainSpec, resolve_precision

SUGGESTIONS = (
    "turn on gradient checkpointing (--gradient-checkpointing)",
    "halve the batch size and double gradient accumulation (--batch-size N --grad-accum M)",
    "shorten --max-seq-len",
    "use LoRA or QLoRA instead of a full fine-tune",
)


def work_dir_for(spec: TrainSpec) -> Path:
    """Where checkpoints go: the run's `out/` folder (the worker runs inside the run folder),
    or `debug.work_dir` / the parent of `output` when called outside a worker (tests, bench)."""
    if spec.debug.get("work_dir"):
        return Path(spec.debug["work_dir"])
    cwd = Path.cwd()
    if (cwd / "run.json").exists() and (cwd / "out").is_dir():
        return cwd / "out"
    if spec.output:
        return Path(spec.output).expanduser().parent / (Path(spec.output).name + ".work")
    raise JobError("no place for checkpoints: start the run with `llmdeck train` (a detached run) or set output")


def final_dir(spec: TrainSpec, work_dir: Path) -> Path:
    if spec.output:
        return Path(spec.output).expanduser()
    return work_dir / ("model" if spec.adapter == "full" else "adapter")


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)


def load_data(spec: TrainSpec, tokenizer: Any, ctx: Any) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """Tokenized training rows (and held-out eval rows) from engine.data."""
    from engine.data.dataset import DataSpec, prepare
    from engine.data.problems import DataError

    data_spec = {
        "path": spec.dataset,
        "format": spec.data_format or None,
        "loss_on": spec.loss_on,
        "max_seq_len": spec.max_seq_len,
        "policy": "pack" if spec.packing else "truncate",
    }
    if spec.chat_template:
        data_spec["chat_template"] = spec.chat_template
    try:
        prepared = prepare(DataSpec.from_dict(data_spec), tokenizer, spec.model)
        tokenizer.chat_template = prepared.template.text  # saved with the outputs: chat renders as trained
        if ctx is not None:
            ctx.log(f"chat template: {prepared.template_text}")
        rows = list(prepared.examples(ctx))
    except DataError as exc:
        raise JobError(f"dataset: {exc}") from None
    stats = prepared.stats.to_dict() if hasattr(prepared.stats, "to_dict") else {}
    if not rows:
        raise JobError(f"dataset: {Path(spec.dataset).name} gave no trainable examples (every record was invalid, or "
                       "had no assistant tokens to learn)")
    train_rows, eval_rows = spec.split_for_eval(rows)
    return train_rows, eval_rows, stats


class RowDataset:
    """A list of TrainExamples as a map-style dataset (the collator batches them)."""

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Any:
        return self.rows[index]


def load_model(spec: TrainSpec, precision: str, cuda: bool, *, wrap: bool = True) -> Any:
    """The model with its adapter (`wrap`), or the base alone for a TRL trainer that adds the
    adapter itself from a peft config (so its reference is the base with the adapter disabled)."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"local_files_only": True}
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if spec.adapter == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=half or torch.bfloat16,
        )
        kwargs["dtype"] = half or torch.bfloat16
        kwargs["device_map"] = spec.quantized_device_map()
    elif spec.adapter == "lora" and half is not None and cuda:
        kwargs["dtype"] = half  # frozen base in half precision; peft keeps adapters in fp32
    else:
        kwargs["dtype"] = torch.float32  # full fine-tune: fp32 master weights, autocast does the rest
    try:
        model = AutoModelForCausalLM.from_pretrained(spec.model, **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JobError(f"model: cannot load {spec.model}: {first}") from None
    model.config.use_cache = False
    if spec.adapter == "full":
        return model
    from peft import get_peft_model

    from engine.train.methods import lora_config

    if spec.adapter == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=spec.gradient_checkpointing)
    if not wrap:
        return model
    try:
        return get_peft_model(model, lora_config(spec))
    except ValueError as exc:
        raise JobError(f"lora_targets: {exc}") from None


def check_qlora(cuda: bool) -> None:
    if not cuda:
        raise JobError("QLoRA needs a CUDA GPU (4-bit weights come from bitsandbytes, which has no CPU training path); "
                       "use --adapter lora here")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise JobError("QLoRA needs the bitsandbytes package: "
                       "pip install bitsandbytes (or use --adapter lora)") from None


def oom_message(step: int, spec: TrainSpec) -> str:
    import torch

    figures = []
    for i in range(torch.cuda.device_count()):
        total = torch.cuda.get_device_properties(i).total_memory / 2**30
        peak = torch.cuda.max_memory_allocated(i) / 2**30
        figures.append(f"GPU {i}: peak {peak:.1f} of {total:.1f} GiB")
    where = "; ".join(figures) or "no CUDA figures"
    return (
        f"CUDA out of memory at step {step} "
        f"(batch {spec.batch_size} x {spec.max_seq_len} tokens, {_what(spec)}; {where}). "
        f"Try: {'; '.join(SUGGESTIONS)}"
    )


def choose_resume(spec: TrainSpec, checkpoints_dir: Path, ctx: Any) -> str | None:
    """The checkpoint to resume from: `resume_from` ("latest" = the newest complete one in this
    run; a folder = that one if complete, else the newest complete one before it)."""
    from engine.train.checkpoints import inspect, list_checkpoints

    if not spec.resume_from:
        return None
    found = list_checkpoints(checkpoints_dir)
    if spec.resume_from != "latest":
        wanted = inspect(Path(spec.resume_from))
        if wanted.complete:
            return str(wanted.path)
        ctx.log(f"{wanted.name} cannot be resumed from ({wanted.problem}); looking for an older complete checkpoint",
                level="warning")
        found = [c for c in list_checkpoints(wanted.path.parent) if c.step < wanted.step]
    for bad in [c for c in found if not c.complete]:
        ctx.log(f"skipping {bad.name}: {bad.problem}", level="warning")
    complete = [c for c in found if c.complete]
    if not complete:
        ctx.log("no complete checkpoint to resume from: starting from the beginning", level="warning")
        return None
    ctx.log(f"resuming from {complete[-1].name} (step {complete[-1].step})")
    return str(complete[-1].path)


@dataclass(frozen=True)
class Placement:
    """Where and how this process trains, decided once before anything is loaded."""

    cuda: bool
    precision: str  # "bf16", "fp16" or "fp32", resolved from spec.precision for this machine
    main_rank: bool  # rank 0 (or the only process): the one that reports, logs and saves
    distributed: bool  # one rank of an accelerate launch


def _what(spec: TrainSpec) -> str:
    return spec.adapter if spec.method == "sft" else f"{spec.method} with {spec.adapter}"


@dataclass
class TrainData:
    """Rows ready for the Trainer (tokenized rows for SFT; a `datasets.Dataset` in TRL's format
    for the preference and RL methods), and what the data report said about them."""

    train_rows: Any
    eval_rows: Any
    stats: dict[str, Any]
    pad_id: int


TrainerFactory = Callable[..., Any]


def train(
    spec: TrainSpec, work_dir: Path, ctx: Any, *, should_cancel: Any = None, distributed: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train in this process (one device, or one rank of an accelerate launch; `on_step` hears
    each finished step, on every rank)."""
    _quiet_libraries()
    from engine.train.callbacks import RunCallback, Throughput
    from engine.train.faults import fault_callbacks

    where = placement(spec, distributed)
    if where.main_rank:
        device = "CUDA" if where.cuda else "CPU"
        ctx.log(f"{_what(spec)} fine-tune of {Path(spec.model).name} on {device} in {where.precision}; "
                f"data {Path(spec.dataset).name}")
    tokenizer = build_tokenizer(spec)
    data = build_data(spec, tokenizer, ctx, where)
    model = build_model(spec, where, ctx)
    checkpoints_dir = work_dir / "checkpoints"
    resume = choose_resume(spec, checkpoints_dir, ctx if where.main_rank else _Silent())
    args = training_arguments(spec, where, checkpoints_dir, evaluating=bool(data.eval_rows))
    throughput = Throughput()
    callback = RunCallback(ctx, throughput=throughput, should_cancel=should_cancel, emit=where.main_rank,
                           on_step=on_step)
    factory = trainer_factory(spec.method)
    trainer = factory(spec, model, tokenizer, data, args, [callback, *fault_callbacks(spec.debug)], throughput)
    if where.main_rank and spec.method != "sft":
        log_trainable(spec, trainer.model, ctx)  # TRL added the adapter
    started = time.monotonic()
    fit(trainer, resume, spec, callback)
    summary = summarize(spec, trainer, callback, throughput, where, started, checkpoints_dir, data, resume)
    share = cpu_fsdp.shard_share(trainer.model)
    if share is not None:
        summary["sharded"] = {"held": share[0], "total": share[1]}
        if where.main_rank:
            ctx.log(f"FSDP2: the weights were sharded, this rank held {share[0]:,} of {share[1]:,} values")
    if callback.stopped_by_cancel:
        return summary
    weights = cpu_fsdp.full_state_dict(trainer)  # sharded weights are gathered by every rank together
    if where.main_rank:
        final = final_dir(spec, work_dir)
        save_final(trainer, tokenizer, final, spec, state_dict=weights)
        summary["output"] = str(final)
        ctx.log(f"saved {'model' if spec.adapter == 'full' else 'LoRA adapter'} to {final}")
    if not math.isfinite(summary["final_loss"] or 0.0):
        raise JobError("the final loss is not finite")
    return summary


def placement(spec: TrainSpec, distributed: bool) -> Placement:
    """CUDA or CPU, the precision that means here, and whether this process is the main rank.

    Refuses early (before a model is loaded) what cannot run here: QLoRA without CUDA or
    bitsandbytes, fp16/bf16 on a device without it."""
    import torch

    cuda = torch.cuda.is_available() and not spec.cpu and not spec.devices.strip().startswith("cpu")
    if spec.adapter == "qlora":
        check_qlora(cuda)
    try:
        precision = resolve_precision(spec.precision, cuda=cuda, bf16_supported=cuda and torch.cuda.is_bf16_supported())
    except SpecError as exc:
        raise JobError(str(exc)) from None
    main_rank = int(os.environ.get("RANK", "0")) == 0
    return Placement(cuda=cuda, precision=precision, main_rank=main_rank, distributed=distributed)


def build_tokenizer(spec: TrainSpec) -> Any:
    """The model's tokenizer, with the spec's chat template file in place of its own if given."""
    from engine.data.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(spec.model)
    return tokenizer


def build_data(spec: TrainSpec, tokenizer: Any, ctx: Any, where: Placement) -> TrainData:
    """Training and eval rows (only the main rank reports the data's progress and figures)."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    if spec.method != "sft":
        from engine.train import methods

        train_set, eval_set, stats = methods.build_data(spec, tokenizer, ctx, where.main_rank)
        if where.main_rank:
            held_out = f", {len(eval_set)} eval rows" if eval_set is not None else ""
            ctx.log(f"data: {len(train_set)} {spec.method} rows from {stats['valid']} records "
                    f"({stats['format']}){held_out}")
        return TrainData(train_rows=train_set, eval_rows=eval_set, stats=stats, pad_id=pad_id)
    train_rows, eval_rows, stats = load_data(spec, tokenizer, ctx if where.main_rank else None)
    if where.main_rank:
        tokens = sum(len(r) for r in train_rows)
        held_out = f", {len(eval_rows)} eval rows" if eval_rows else ""
        ctx.log(f"data: {len(train_rows)} training rows ({tokens} tokens)"
                f"{held_out}{', packed' if spec.packing else ''}")
    return TrainData(train_rows=train_rows, eval_rows=eval_rows, stats=stats, pad_id=pad_id)


def build_model(spec: TrainSpec, where: Placement, ctx: Any) -> Any:
    """The model to train (seeded, so LoRA weights start the same on every rank and rerun)."""
    import torch

    torch.manual_seed(spec.seed)
    model = load_model(spec, where.precision, where.cuda, wrap=spec.method == "sft")
    if where.main_rank and spec.method == "sft":
        log_trainable(spec, model, ctx)
    return model


def log_trainable(spec: TrainSpec, model: Any, ctx: Any) -> None:
    if spec.adapter == "full":
        return
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    ctx.log(f"LoRA r={spec.lora_r} alpha={spec.lora_alpha} on {spec.lora_targets}: "
            f"{trainable:,} of {total:,} parameters trainable")


def training_arguments(spec: TrainSpec, where: Placement, checkpoints_dir: Path, *, evaluating: bool) -> Any:
    """The Trainer's arguments for this spec on this placement (a TRL config for the preference
    and RL methods, with the same values)."""
    values = argument_values(spec, where, checkpoints_dir, evaluating=evaluating)
    if spec.method != "sft":
        from engine.train.methods import config

        return config(spec, values)
    from transformers import TrainingArguments

    return TrainingArguments(**values)


def argument_values(spec: TrainSpec, where: Placement, checkpoints_dir: Path, *, evaluating: bool) -> dict[str, Any]:
    """Schedule, batch, precision, checkpoints, seeds and devices, as TrainingArguments keywords
    (TRL's configs subclass TrainingArguments, so its fields decide the checkpointing keywords)."""
    from transformers import TrainingArguments

    from engine.transformers_compat import checkpointing_arguments

    cuda, precision, distributed = where.cuda, where.precision, where.distributed
    eval_strategy = "no"
    if evaluating:
        eval_strategy = "steps" if spec.eval_steps else "epoch"
    return dict(
        output_dir=str(checkpoints_dir),
        per_device_train_batch_size=spec.batch_size,
        per_device_eval_batch_size=spec.batch_size,
        gradient_accumulation_steps=spec.grad_accum,
        num_train_epochs=spec.epochs,
        max_steps=spec.max_steps if spec.max_steps > 0 else -1,
        learning_rate=spec.learning_rate,
        lr_scheduler_type=spec.scheduler,
        warmup_steps=spec.warmup,
        weight_decay=spec.weight_decay,
        max_grad_norm=spec.max_grad_norm,
        logging_steps=spec.logging_steps,
        logging_nan_inf_filter=False,  # a NaN must reach the callback, not be averaged away
        eval_strategy=eval_strategy,
        eval_steps=spec.eval_steps or None,
        save_strategy="steps" if spec.save_steps else "no",
        save_steps=spec.save_steps or 500,
        save_total_limit=spec.save_total_limit or None,
        seed=spec.seed,
        data_seed=spec.seed,
        use_cpu=not cuda,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        **checkpointing_arguments(spec.gradient_checkpointing, TrainingArguments.__dataclass_fields__),
        report_to=[],
        disable_tqdm=True,
        remove_unused_columns=False,
        label_names=["labels"],
        dataloader_num_workers=0,
        ddp_backend="gloo" if distributed and not cuda else None,
        ddp_find_unused_parameters=False if distributed else None,
    )


def supervised_trainer(
    spec: TrainSpec, model: Any, tokenizer: Any, data: TrainData, args: Any, callbacks: list[Any], throughput: Any
) -> Any:
    """transformers' Trainer on tokenized rows with assistant-only labels (full, LoRA, QLoRA).

    The library's printing callbacks are removed: the run's stdout is its log."""
    from transformers import PrinterCallback, ProgressCallback

    from engine.data.pack import make_collator

    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=RowDataset(data.train_rows),
        eval_dataset=RowDataset(data.eval_rows) if data.eval_rows else None,
        data_collator=make_collator(padding_free=spec.packing, pad_token_id=data.pad_id),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.throughput = throughput
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


def preference_trainer(
    spec: TrainSpec, model: Any, tokenizer: Any, data: TrainData, args: Any, callbacks: list[Any], throughput: Any
) -> Any:
    """TRL's trainer for DPO, ORPO, KTO or GRPO (engine/train/methods.py)."""
    from engine.train.methods import trainer

    return trainer(spec, model, tokenizer, data, args, callbacks, throughput)


# The Trainer each method (spec.METHODS) trains with; the adapter is load_model's concern.
TRAINER_FACTORIES: dict[str, TrainerFactory] = {
    "sft": supervised_trainer,
    "dpo": preference_trainer,
    "orpo": preference_trainer,
    "kto": preference_trainer,
    "grpo": preference_trainer,
}


def trainer_factory(method: str) -> TrainerFactory:
    try:
        return TRAINER_FACTORIES[method]
    except KeyError:
        raise JobError(f"method: no trainer for {method!r}; one of {', '.join(TRAINER_FACTORIES)}") from None


def fit(trainer: Any, resume: str | None, spec: TrainSpec, callback: Any) -> None:
    """Run the training loop; CUDA out of memory and a non-finite loss become one clear message."""
    import torch

    try:
        trainer.train(resume_from_checkpoint=resume)
    except torch.OutOfMemoryError:
        step = trainer.state.global_step
        raise JobError(oom_message(step, spec)) from None
    if callback.nan_step is not None:
        raise JobError(
            f"the loss became NaN/inf at step {callback.nan_step}: lower the learning rate "
            f"(now {spec.learning_rate:g}), keep max_grad_norm on, or try fp32/bf16 instead of fp16; "
            "check the data for broken records"
        )
    evaluated_last_step = callback.last_eval_step == trainer.state.global_step
    if trainer.eval_dataset is not None and not callback.stopped_by_cancel and not evaluated_last_step:
        trainer.evaluate()  # the final eval loss belongs to the final weights


def summarize(
    spec: TrainSpec,
    trainer: Any,
    callback: Any,
    throughput: Any,
    where: Placement,
    started: float,
    checkpoints_dir: Path,
    data: TrainData,
    resume: str | None,
) -> dict[str, Any]:
    """The run's summary (its Finished event): steps, losses, speed, where checkpoints are."""
    summary: dict[str, Any] = {
        "method": spec.method,
        "steps": trainer.state.global_step,
        "max_steps": trainer.state.max_steps,
        "first_loss": first_loss(trainer.state.log_history, callback.losses),
        "final_loss": callback.last_loss,
        "train_runtime_s": round(time.monotonic() - started, 2),
        "tokens": throughput.snapshot()[0],
        "precision": where.precision,
        "checkpoints": str(checkpoints_dir),
        "data": data.stats,
    }
    if summary["train_runtime_s"]:
        summary["tokens_per_s"] = round(summary["tokens"] / summary["train_runtime_s"], 1)
    if callback.headline:
        summary["metrics"] = {key: list(pair) for key, pair in callback.headline.items()}  # key: [first, last]
    if resume:
        summary["resumed_from"] = resume
    return summary


class _Silent:
    def log(self, *_a: Any, **_k: Any) -> None:
        pass


_TRAINER_CLASS: Any = None


def _trainer_class() -> Any:
    """The library Trainer, subclassed only to count the real tokens of each training batch
    (cheap, no cross-device sync). Built on first use so importing this module stays light."""
    global _TRAINER_CLASS
    if _TRAINER_CLASS is None:
        from transformers import Trainer

        class LLMDeckTrainer(cpu_fsdp.SwitchOnCpu, Trainer):  # CPU ranks: accelerate leaves them on DDP
            throughput: Any = None

            def training_step(self, model, inputs, num_items_in_batch=None):  # noqa: ANN001 - library signature
                if self.throughput is not None:
                    self.throughput.add(*batch_counts(inputs))
                return super().training_step(model, inputs, num_items_in_batch)

        _TRAINER_CLASS = LLMDeckTrainer
    return _TRAINER_CLASS


def batch_counts(inputs: dict[str, Any]) -> tuple[int, int]:
    """(real tokens, examples) in one batch: padding excluded, packed examples counted one by one
    (their position ids restart at 0)."""
    ids = inputs.get("input_ids")
    if ids is None:
        return 0, 0
    mask = inputs.get("attention_mask")
    tokens = int(mask.sum()) if mask is not None else int(ids.numel())
    positions = inputs.get("position_ids")
    if mask is None and positions is not None:
        examples = int((positions == 0).sum())
    else:
        examples = int(ids.shape[0])
    return tokens, examples


def save_final(
    trainer: Any, tokenizer: Any, final: Path, spec: TrainSpec, *, state_dict: dict[str, Any] | None = None
) -> None:
    """Write the adapter (LoRA) or the full model + tokenizer atomically: staged sibling, rename
    (`state_dict`: the gathered weights of a sharded model)."""
    from engine.atomic import commit, staged

    with staged(final, directory=True) as tmp:
        trainer.model.save_pretrained(str(tmp), state_dict=state_dict)
        tokenizer.save_pretrained(str(tmp))
        copy_tokenizer_files(Path(spec.model).expanduser(), tmp)
        (tmp / "llmdeck-train.json").write_text(spec.to_json() + "\n", encoding="utf-8")
        commit(tmp, final)
