"""Training memory for the preference and RL methods: DPO, ORPO, KTO, GRPO (TRL's trainers).

Built on `estimate_training` (the SFT step: weights, gradients, optimizer, activations, logits)
with what each method adds, as TRL 1.x runs it:

  DPO, ORPO   chosen and rejected go through the model in one forward (TRL concatenates them):
              the step is an SFT step of 2 x batch sequences.
  KTO         batch completions, plus a no-grad forward of mismatched pairs for the KL estimate
              (transient, one layer at a time: not counted).
  GRPO        a training step of batch x (prompt + completion) tokens, and before it a
              generation phase: the generation batch (batch x grad_accum sequences, TRL's
              default generation_batch_size per device) sampled token by token with a KV cache
              of (prompt + max completion) tokens each, and the sampling logits (fp32, one row
              per sequence). The KV cache is freed before the training forward, so the peak is
              the larger of the two phases, not their sum.
  Reference   DPO and KTO (and GRPO with beta > 0) score against a frozen reference model. With
              LoRA/QLoRA TRL computes it with the adapter disabled: no second copy. A full
              fine-tune gets a frozen copy in the policy's dtype (fp32 master weights under
              mixed precision, as llmdeck trains; bf16 under pure bf16). ORPO has no reference.

The reference's own no-grad forward adds only transient buffers (TRL's fused LM head computes
log-probabilities in chunks), which are left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from engine.estimate.inference import kv_cache_bytes
from engine.estimate.result import Component, Estimate
from engine.estimate.spec import ModelSpec
from engine.estimate.training import TrainingOptions, estimate_training

OBJECTIVES: tuple[str, ...] = ("sft", "dpo", "orpo", "kto", "grpo")
DEFAULT_BETA: dict[str, float] = {"dpo": 0.1, "orpo": 0.1, "kto": 0.1, "grpo": 0.0}
# components that live through GRPO's generation phase (the rest are the training step's)
_PERSISTENT = ("weights", "optimizer", "reference", "cuda_context", "gathered")


@dataclass(frozen=True)
class MethodOptions(TrainingOptions):
    """TrainingOptions (`method` stays the adapter: full, lora, qlora) plus the objective."""

    objective: str = "sft"
    beta: float = 0.0  # 0 = the method's default (a GRPO beta > 0 needs a reference)
    grad_accum: int = 1  # GRPO: the generation batch is batch x grad_accum
    num_generations: int = 4  # GRPO: completions per prompt
    max_completion_len: int = 128  # GRPO: new tokens per completion (seq_len is the prompt)


def reference_copy(objective: str, adapter: str, beta: float) -> bool:
    """A frozen second model: DPO/KTO (GRPO with beta > 0) on a full fine-tune; LoRA disables
    the adapter instead."""
    beta = beta if beta > 0 else DEFAULT_BETA.get(objective, 0.0)
    needs = objective in ("dpo", "kto") or (objective == "grpo" and beta > 0)
    return needs and adapter == "full"


def estimate_method(spec: ModelSpec, opt: MethodOptions) -> Estimate:
    """Peak memory per GPU for one step of `opt.objective` (see the module docstring)."""
    if opt.objective not in OBJECTIVES:
        raise ValueError(f"method must be one of {', '.join(OBJECTIVES)} (got {opt.objective!r})")
    shared = TrainingOptions.__dataclass_fields__
    base_options = TrainingOptions(**{k: v for k, v in asdict(opt).items() if k in shared})
    if opt.objective == "sft":
        return _with_settings(estimate_training(spec, base_options), opt)
    if opt.grad_accum < 1 or opt.num_generations < 1 or opt.max_completion_len < 1:
        raise ValueError("grad_accum, num_generations and max_completion_len must be positive")
    notes: list[str] = []
    sequences = opt.batch * (2 if opt.objective in ("dpo", "orpo") else 1)
    seq_len = opt.seq_len + (opt.max_completion_len if opt.objective == "grpo" else 0)
    step = estimate_training(spec, replace(base_options, batch=sequences, seq_len=seq_len))
    if opt.objective in ("dpo", "orpo"):
        notes.append(f"chosen and rejected go through the model together: {sequences} sequences per micro-batch")
    components = list(step.components)
    phases = dict(step.extra.get("phase_bytes", {}))
    training_peak = step.total_bytes
    ref = 0.0
    if reference_copy(opt.objective, opt.method, opt.beta):
        a = 2 if opt.precision == "bf16" else 4
        ref = spec.params * a
        components.insert(1, Component("reference", f"frozen reference model ({'bf16' if a == 2 else 'fp32'} copy)",
                                       ref, f"{spec.params:,} x {a} B, no gradients or optimizer states"))
        training_peak += ref
    elif opt.objective in ("dpo", "kto") or (opt.objective == "grpo" and opt.beta > 0):
        notes.append("reference = the base with the LoRA adapter disabled (TRL with peft): no second copy in memory")
    elif opt.objective == "orpo":
        notes.append("ORPO needs no reference model")
    peak_phase = step.peak_phase
    if opt.objective == "grpo":
        gen_batch = opt.batch * opt.grad_accum
        context = opt.seq_len + opt.max_completion_len
        kv_dtype = "fp32" if opt.precision == "fp32" else "bf16"
        kv = kv_cache_bytes(spec, context, gen_batch, kv_dtype)
        sampling = gen_batch * spec.vocab * 4 * 2  # fp32 logits of the last position + the softmax
        persistent = sum(c.bytes for c in components
                         if c.key in _PERSISTENT and (c.allocator or c.key == "cuda_context"))
        generation_peak = persistent + kv + sampling
        notes.append(f"generation: {gen_batch} sequences ({gen_batch // max(1, opt.num_generations)} prompts x "
                     f"{opt.num_generations} completions) of up to {context:,} tokens")
        generating = generation_peak > training_peak
        if generating:
            components = [replace(c, at_peak=c.key in _PERSISTENT and c.at_peak) for c in components]
            peak_phase = "generation (KV cache of the sampled completions)"
        components += [
            Component("kv_cache", f"generation KV cache ({kv_dtype}, {gen_batch} sequences)", kv,
                      f"2 x layers x {context:,} tokens x kv_heads x head_dim x {gen_batch}", at_peak=generating),
            Component("sampling", "sampling logits (fp32)", sampling, f"{gen_batch} x vocab {spec.vocab:,} x 8 B",
                      at_peak=generating),
        ]
        phases["generation"] = int(generation_peak)
    settings = asdict(opt)
    return Estimate(mode=opt.method, model=step.model, settings=settings, components=tuple(components),
                    peak_phase=peak_phase, notes=tuple(notes) + step.notes, trainable_params=step.trainable_params,
                    extra={**step.extra, "phase_bytes": phases})


def _with_settings(est: Estimate, opt: MethodOptions) -> Estimate:
    return replace(est, settings=asdict(opt))


Change = tuple[str, Callable[[Any], Any | None]]


def method_changes(spec: ModelSpec, opt: MethodOptions) -> list[Change]:
    """Cheapest changes only these methods have (appended to fit's list for training)."""
    changes: list[Change] = []
    if reference_copy(opt.objective, opt.method, opt.beta):
        changes.append(("LoRA (the reference is the base with the adapter disabled: no copy)",
                        lambda o: replace(o, method="lora", precision="bf16") if o.method == "full" else None))
    if opt.objective == "grpo":
        for n in (opt.max_completion_len // 2, opt.max_completion_len // 4):
            if n >= 16:
                changes.append((f"shorter completions: --max-completion-len {n}",
                                (lambda n_: lambda o: replace(o, max_completion_len=n_) if o.max_completion_len > n_
                                 else None)(n)))
        if opt.grad_accum > 1:
            changes.append(("generate per micro-batch: --grad-accum 1",
                            lambda o: replace(o, grad_accum=1) if o.grad_accum > 1 else None))
    return changes


def options_for_spec(spec: Any, *, gpus: int | None = None) -> MethodOptions:
    """The estimator's options for a `TrainSpec` (what the Train form and a preflight show)."""
    precision = {"fp32": "fp32", "fp16": "mixed", "bf16": "mixed", "auto": "mixed"}[spec.precision]
    if spec.adapter != "full" and spec.precision in ("bf16", "auto"):
        precision = "bf16"
    return MethodOptions(
        method=spec.adapter,
        batch=spec.batch_size,
        seq_len=spec.max_seq_len,
        precision=precision,
        grad_checkpointing=spec.gradient_checkpointing,
        lora_rank=spec.lora_r,
        lora_targets=",".join(spec.target_modules()) if isinstance(spec.target_modules(), list) else "all-linear",
        lora_dropout=spec.lora_dropout,
        gpus=gpus or max(1, spec.processes()),
        objective=spec.method,
        beta=spec.beta,
        grad_accum=spec.grad_accum,
        num_generations=spec.num_generations,
        max_completion_len=spec.max_completion_len,
    )
