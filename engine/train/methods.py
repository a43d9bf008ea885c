"""Preference and RL fine-tuning through TRL: DPO, ORPO, KTO and GRPO on the run layer of SFT.

Each method plugs into the runner's steps (engine/train/runner.py) where it differs from SFT:
its data (`build_data`: pairs, unpaired labels or prompts from engine/data/preference.py, as a
`datasets.Dataset` in TRL's format), its arguments (`config`: TRL's config class with the same
schedule, batch, precision, checkpoint and seed values as SFT), and its Trainer (`trainer`).
Everything else -- the run folder, events, sealed checkpoints and exact resume, the stop and
NaN handling, detached and multi-process runs, failure messages -- is the runner's, unchanged.

The trainers come from the installed TRL: `DPOTrainer`, `KTOTrainer`, `GRPOTrainer` (trl), and
`ORPOTrainer` (trl.experimental.orpo in TRL 1.x). With LoRA/QLoRA the base model goes to the
trainer with a `peft_config`, so TRL computes the reference log-probabilities with the adapter
disabled (no second model in memory); a full fine-tune of DPO/KTO (or GRPO with beta > 0) gets a
frozen reference copy, which the estimator counts (engine/estimate/methods.py). Each trainer is
subclassed only to count real tokens for tokens/s and, for GRPO, to hand the completions it
sampled to the run as `Samples` events.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from engine.chat.templates import NO_TEMPLATE
from engine.jobs import JobError
from engine.train import cpu_fsdp

DEFAULT_BETA: dict[str, float] = {"dpo": 0.1, "orpo": 0.1, "kto": 0.1, "grpo": 0.0}
NEEDS_REFERENCE: tuple[str, ...] = ("dpo", "kto")  # GRPO too when beta > 0; ORPO never
SAMPLES_KEPT = 16  # completions of the latest step shown on the dashboard
# Characters kept per sample (events.jsonl gets one Samples event per logged step): the end of
# the prompt, which is where the question is, and the start of the completion.
PROMPT_CHARS, COMPLETION_CHARS = 600, 2000


def beta_of(spec: Any) -> float:
    return spec.beta if spec.beta > 0 else DEFAULT_BETA.get(spec.method, 0.0)


def has_reference_copy(method: str, adapter: str, beta: float) -> bool:
    """Whether training keeps a frozen second model (full fine-tune; LoRA disables the adapter instead)."""
    needs = method in NEEDS_REFERENCE or (method == "grpo" and beta > 0)
    return needs and adapter == "full"


def method_problems(spec: Any, *, check_paths: bool = True) -> list[str]:
    """The spec's problems that only a preference or RL method has (one sentence each)."""
    from engine.train import rewards

    out: list[str] = []
    if spec.beta < 0:
        out.append("beta: must be 0 (the method's default) or more")
    if spec.sft_weight < 0 or (spec.sft_weight and spec.method != "dpo"):
        out.append("sft_weight: a weight of 0 or more, for DPO only (ORPO has its SFT term built in)")
    if spec.packing:
        out.append(f"packing: {spec.method} trains on whole prompt/answer sequences; turn packing off")
    if spec.method != "grpo":
        if spec.rewards or spec.reward_model:
            out.append(f"rewards: only GRPO uses reward functions; {spec.method} learns from the dataset's labels")
        return out
    if not spec.rewards and not spec.reward_model:
        out.append("rewards: GRPO needs at least one --reward (exact:COLUMN, firstline:COLUMN, regex:PATTERN, "
                   "length:MIN:MAX, boxed, FILE.py:FUNC) or --reward-model FOLDER")
    out += rewards.check(spec.rewards) if check_paths else []
    if spec.reward_model and check_paths and not (Path(spec.reward_model).expanduser() / "config.json").is_file():
        out.append(f"reward_model: {spec.reward_model} is not a local HF model folder (no config.json)")
    if spec.num_generations < 2:
        out.append("num_generations: GRPO compares at least 2 completions per prompt")
    elif (spec.batch_size * spec.grad_accum * spec.processes()) % spec.num_generations:
        out.append(
            f"num_generations: batch_size x grad_accum{' x processes' if spec.processes() > 1 else ''} "
            f"({spec.batch_size * spec.grad_accum * spec.processes()}) must be a multiple of num_generations "
            f"({spec.num_generations}): each prompt's completions are scored as one group"
        )
    if spec.max_completion_len < 1:
        out.append("max_completion_len: must be at least 1 token")
    if not spec.temperature > 0:
        out.append("temperature: must be more than 0 (GRPO samples its completions)")
    return out


# -- data -------------------------------------------------------------------------------------------
def read_data(spec: Any, tokenizer: Any) -> tuple[Any, bool]:
    """engine.data's reading of the dataset for `spec.method`, and whether its records go through
    a chat template. A template named or given as a file becomes the tokenizer's (TRL renders with
    the tokenizer's); `none` keeps the prompts as written; empty uses the tokenizer's own, if any."""
    from engine.data.dataset import DataSpec, prepare
    from engine.data.preference import METHOD_FORMATS
    from engine.data.problems import DataError

    wanted = METHOD_FORMATS[spec.method]
    explicit = spec.chat_template not in ("", NO_TEMPLATE)

    def data_spec(fmt: str | None) -> DataSpec:
        return DataSpec(path=spec.dataset, format=fmt, chat_template=spec.chat_template if explicit else None)

    try:
        data = prepare(data_spec(spec.data_format or None), tokenizer, spec.model)
        if spec.method == "grpo" and not spec.data_format and data.format.name in ("preference", "unpaired",
                                                                                     "prompt_completion"):
            data = prepare(data_spec("prompt"), tokenizer, spec.model)  # GRPO needs only the prompts
    except DataError as exc:
        raise JobError(f"dataset: {exc}") from None
    if data.format.name not in wanted:
        raise JobError(
            f"dataset: {Path(spec.dataset).name} is {data.format.describe()}; {spec.method} trains on "
            + " or ".join(_FORMAT_NEEDS[f] for f in wanted)
        )
    if explicit:
        tokenizer.chat_template = data.template.text
    templated = spec.chat_template != NO_TEMPLATE and bool(getattr(tokenizer, "chat_template", None))
    return data, templated


def _usable(example: Any, templated: bool, spec: Any) -> Any:
    if templated:
        return example.as_conversation()
    if example.conversational:
        raise JobError(f"dataset: {Path(spec.dataset).name} holds conversations but there is no chat template "
                       f"(--chat-template {spec.chat_template or 'auto'}); give a name or a Jinja file")
    return example


def check_data(spec: Any, tokenizer: Any) -> str:
    """Before a run starts (launch.data_check): the format fits the method and the first record
    can be used. Returns what renders the records."""
    from engine.data.problems import DataError

    data, templated = read_data(spec, tokenizer)
    try:
        for _where, example in data.validator:
            _usable(example, templated, spec)
            break
    except DataError as exc:
        raise JobError(f"dataset: {exc}") from None
    if templated:
        return data.template_text
    return "none: the prompts as written" if spec.chat_template == NO_TEMPLATE else "none (plain text)"


def build_data(spec: Any, tokenizer: Any, ctx: Any, main_rank: bool) -> tuple[Any, Any, dict[str, Any]]:
    """(train Dataset, eval Dataset or None, figures) in TRL's format for `spec.method`."""
    from datasets import Dataset

    from engine.data.preference import PreferenceExample, trl_row
    from engine.data.problems import DataError

    data, templated = read_data(spec, tokenizer)
    name = Path(spec.dataset).name
    rows: list[dict[str, Any]] = []
    try:
        for n, (_where, example) in enumerate(data.validator):
            if ctx is not None and n % 64 == 0:
                ctx.raise_if_cancelled()
            assert isinstance(example, PreferenceExample)
            rows += trl_row(_usable(example, templated, spec), spec.method)
    except DataError as exc:
        raise JobError(f"dataset: {exc}") from None
    validator = data.validator
    if validator.problem_total and main_rank and ctx is not None:
        first = validator.problems[0]
        ctx.log(f"dataset: skipped {validator.problem_total} bad record(s), the first {first}", level="warning")
    if not rows:
        raise JobError(f"dataset: {name} gave no usable records (see `llmdeck data inspect {name} --model ...`)")
    train_rows, eval_rows = spec.split_for_eval(rows)
    stats = {"file": name, "format": data.format.describe(), "records": validator.records, "valid": validator.valid,
             "problems": dict(validator.counts), "rows": len(rows)}
    return Dataset.from_list(train_rows), Dataset.from_list(eval_rows) if eval_rows else None, stats


_FORMAT_NEEDS = {
    "preference": "preference pairs (prompt/chosen/rejected)",
    "unpaired": "unpaired labels (prompt/completion/label)",
    "prompt": "prompts (a prompt field, plus the columns your rewards read)",
}


# -- arguments ----------------------------------------------------------------------------------------
def config(spec: Any, values: dict[str, Any]) -> Any:
    """TRL's config for the method, from the runner's common TrainingArguments values."""
    values = {k: v for k, v in values.items() if k not in ("remove_unused_columns", "label_names")}
    beta = beta_of(spec)
    if spec.method == "dpo":
        from trl import DPOConfig

        losses = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, spec.sft_weight]} if spec.sft_weight else {}
        return DPOConfig(**values, beta=beta, max_length=spec.max_seq_len, **losses)
    if spec.method == "kto":
        from trl import KTOConfig

        return KTOConfig(**values, beta=beta, max_length=spec.max_seq_len)
    if spec.method == "orpo":
        from trl.experimental.orpo import ORPOConfig

        return ORPOConfig(**values, beta=beta, max_length=spec.max_seq_len, remove_unused_columns=False)
    if spec.method == "grpo":
        from trl import GRPOConfig

        return GRPOConfig(
            **values,
            beta=beta,
            num_generations=spec.num_generations,
            max_completion_length=spec.max_completion_len,
            temperature=spec.temperature,
            log_completions=False,  # it prints with rich and writes parquet; the run keeps them as events instead
        )
    raise JobError(f"method: no TRL config for {spec.method!r}")


# -- trainers -----------------------------------------------------------------------------------------
def lora_config(spec: Any) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=spec.lora_r,
        lora_alpha=spec.lora_alpha,
        lora_dropout=spec.lora_dropout,
        target_modules=spec.target_modules(),
        task_type="CAUSAL_LM",
    )


def trainer(spec: Any, model: Any, tokenizer: Any, data: Any, args: Any, callbacks: list[Any], throughput: Any) -> Any:
    """The TRL trainer for `spec.method` (the runner's factory signature)."""
    from transformers import PrinterCallback, ProgressCallback

    _quiet_datasets()
    _forget_build_tables(tokenizer)
    kwargs: dict[str, Any] = {
        "model": model,
        "args": args,
        "train_dataset": data.train_rows,
        "eval_dataset": data.eval_rows or None,
        "processing_class": tokenizer,
        "callbacks": callbacks,
    }
    if spec.adapter != "full":
        kwargs["peft_config"] = lora_config(spec)
    if spec.method == "grpo":
        from engine.train.rewards import reward_functions

        funcs: list[Any] = reward_functions(spec.rewards)
        if spec.reward_model:
            funcs.append(str(Path(spec.reward_model).expanduser()))  # TRL loads it as a sequence classifier
        kwargs["reward_funcs"] = funcs
    cls = trainer_class(spec.method)
    try:
        built = cls(**kwargs)
    except ValueError as exc:  # TRL's own checks: one line, with TRL's reason
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JobError(f"{spec.method}: {first}") from None
    built.throughput = throughput
    built.sample_sink = next((c for c in callbacks if hasattr(c, "samples")), None)
    built.remove_callback(PrinterCallback)
    built.remove_callback(ProgressCallback)
    return built


def _forget_build_tables(tokenizer: Any) -> None:
    """Drop the Python vocab and merges a transformers 5 tokenizer keeps after building its Rust
    tokenizer from them (only `__init__` reads them). TRL tokenizes with `Dataset.map`, whose
    cache fingerprint pickles every argument, the tokenizer's `__dict__` included: with Gemma's
    262k-entry vocab and its merges that hash took 11-16 s on 2 loaded cores before the first DPO
    step of every run, 3 s without them."""
    for name in ("_vocab", "_merges"):
        if isinstance(getattr(tokenizer, name, None), (dict, list)):
            setattr(tokenizer, name, None)


def _quiet_datasets() -> None:
    """datasets' progress bars ("Tokenizing train dataset") would fill the run's log."""
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()


_CLASSES: dict[str, Any] = {}


def trainer_class(method: str) -> Any:
    """TRL's trainer for `method`, subclassed to count tokens (and, for GRPO, hand over samples) and to
    shard CPU ranks of an FSDP launch (cpu_fsdp.SwitchOnCpu).
    Built on first use so importing this module stays light."""
    if method in _CLASSES:
        return _CLASSES[method]
    if method == "dpo":
        from trl import DPOTrainer as base
    elif method == "kto":
        from trl import KTOTrainer as base
    elif method == "orpo":
        from trl.experimental.orpo import ORPOTrainer as base
    elif method == "grpo":
        from trl import GRPOTrainer as base
    else:
        raise JobError(f"method: no TRL trainer for {method!r}")

    class Counted(cpu_fsdp.SwitchOnCpu, base):  # type: ignore[misc, valid-type]
        throughput: Any = None
        sample_sink: Any = None

        def compute_loss(self, model, inputs, *args, **kwargs):  # noqa: ANN001 - library signature
            if self.throughput is not None and model.training and isinstance(inputs, dict):
                self.throughput.add(*batch_counts(inputs))
            return super().compute_loss(model, inputs, *args, **kwargs)

        def log(self, logs, *args, **kwargs):  # noqa: ANN001 - library signature
            if self.sample_sink is not None and hasattr(self, "_logs") and "loss" in logs:
                self.sample_sink.samples(self.state.global_step, latest_samples(self._logs))
            return super().log(logs, *args, **kwargs)

    Counted.__name__ = f"LLMDeck{base.__name__}"
    _CLASSES[method] = Counted
    return Counted


def batch_counts(inputs: dict[str, Any]) -> tuple[int, int]:
    """(real tokens, sequences) of a preference or RL batch: its attention/completion masks."""
    tokens = 0
    sequences = 0
    for key, value in inputs.items():
        if not hasattr(value, "sum") or getattr(value, "ndim", 0) != 2:
            continue
        if key == "attention_mask" or (key.endswith("attention_mask") and key != "prompt_attention_mask") \
                or key in ("prompt_mask", "completion_mask"):
            tokens += int(value.sum())
            if key != "completion_mask":
                sequences += int(value.shape[0])
    return tokens, sequences


def latest_samples(logs: dict[str, Any], limit: int = SAMPLES_KEPT) -> list[dict[str, Any]]:
    """The last generation batch's prompts, completions, rewards per function and advantages
    (TRL's GRPO keeps them in `_logs`, deques of one generation batch)."""
    prompts, completions = list(logs.get("prompt", [])), list(logs.get("completion", []))
    advantages = list(logs.get("advantages", []))
    rewards = {name: list(values) for name, values in dict(logs.get("rewards", {})).items()}
    start = max(0, len(completions) - limit)
    rows = []
    for i in range(start, len(completions)):
        rows.append({
            "prompt": _text(prompts[i])[-PROMPT_CHARS:] if i < len(prompts) else "",
            "completion": _text(completions[i])[:COMPLETION_CHARS],
            "rewards": {name: _number(values[i]) for name, values in rewards.items() if i < len(values)},
            "advantage": _number(advantages[i]) if i < len(advantages) else None,
        })
    return rows


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # messages: the last user turn of a prompt, the assistant text of a completion
        turns = [m for m in value if isinstance(m, dict)]
        if turns and turns[-1].get("role") == "assistant":
            return "".join(str(m.get("content") or "") for m in turns if m.get("role") == "assistant")
        return str(turns[-1].get("content") or "") if turns else ""
    return str(value)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number  # NaN: an unscorable completion
